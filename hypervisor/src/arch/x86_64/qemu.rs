//! QEMU's `isa-debug-exit` device (iobase 0xf4): a write of `v` ends QEMU with
//! status `(v << 1) | 1`. Test builds leave through it so that a test never
//! hangs; on hardware without the device the write goes nowhere.

use super::port::outl;

/// I/O port of `isa-debug-exit` as `cargo xtask` configures it.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// How a test run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Every check passed: QEMU exits with status 33.
    Success = 0x10,
    /// A check failed, or the hypervisor hit a fatal error: status 35.
    Failure = 0x11,
}

/// Ask QEMU to exit. Returns only if the device is absent.
pub fn exit(code: ExitCode) {
    outl(DEBUG_EXIT_PORT, code as u32);
}
