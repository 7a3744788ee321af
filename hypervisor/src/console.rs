//! The hypervisor console: COM1 behind one lock, with `\n` turned into
//! `\r\n` for serial terminals. `logger.rs` writes through it; fatal reports
//! use [`EmergencyWriter`], which takes no lock, so a panic while the console
//! is held still gets its report out.

use crate::arch::serial::{self, Serial};
use crate::ring::ByteRing;
use core::fmt;
use spin::Mutex;

static SERIAL: Mutex<Option<Serial>> = Mutex::new(None);

/// Bytes of hypervisor output kept for `xm dmesg`.
pub const LOG_RING_BYTES: usize = 64 * 1024;
/// The hypervisor's own output (banner and log), for `sysctl_dmesg`.
pub static LOG_RING: Mutex<ByteRing<LOG_RING_BYTES>> = Mutex::new(ByteRing::new());

/// Bring up COM1. Until this runs, output goes nowhere.
pub fn init() {
    let mut guard = SERIAL.lock();
    if guard.is_none() {
        *guard = Serial::com1();
    }
}

fn write_translated(s: &str, mut out: impl FnMut(&[u8])) {
    let mut rest = s.as_bytes();
    while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
        out(&rest[..pos]);
        out(b"\r\n");
        rest = &rest[pos + 1..];
    }
    out(rest);
}

/// Write the hypervisor's own formatted text to the console under its
/// lock, keeping a copy in the log ring.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let mut guard = SERIAL.lock();
    let mut ring = LOG_RING.lock();
    let mut w = LockedWriter {
        serial: guard.as_mut(),
        ring: Some(&mut ring),
    };
    let _ = fmt::Write::write_fmt(&mut w, args);
}

/// Write a guest's console line (not kept in the hypervisor log).
pub fn write_guest_fmt(args: fmt::Arguments<'_>) {
    let mut guard = SERIAL.lock();
    let mut w = LockedWriter {
        serial: guard.as_mut(),
        ring: None,
    };
    let _ = fmt::Write::write_fmt(&mut w, args);
}

struct LockedWriter<'a> {
    serial: Option<&'a mut Serial>,
    ring: Option<&'a mut ByteRing<LOG_RING_BYTES>>,
}

impl fmt::Write for LockedWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(ring) = self.ring.as_mut() {
            ring.push(s.as_bytes());
        }
        if let Some(serial) = self.serial.as_mut() {
            write_translated(s, |b| serial.write(b));
        }
        Ok(())
    }
}

/// Write raw bytes (dom0's console output) under the lock, `\n` as `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    let mut guard = SERIAL.lock();
    if let Some(serial) = guard.as_mut() {
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            serial.write(&rest[..pos]);
            serial.write(b"\r\n");
            rest = &rest[pos + 1..];
        }
        serial.write(rest);
    }
}

/// Read waiting serial input into `buf`; the bytes read.
pub fn read_input(buf: &mut [u8]) -> usize {
    let mut guard = SERIAL.lock();
    let Some(serial) = guard.as_mut() else { return 0 };
    let mut n = 0;
    while n < buf.len() {
        match serial.try_read() {
            Some(b) => {
                buf[n] = b;
                n += 1;
            }
            None => break,
        }
    }
    n
}

/// A lock-free console writer for fatal reports.
pub struct EmergencyWriter;

impl fmt::Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_translated(s, serial::emergency_write);
        Ok(())
    }
}

/// Print to the console without a log prefix (banner, tables).
#[macro_export]
macro_rules! println {
    () => { $crate::console::write_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
