//! Boot information: the two boot protocols (PVH from QEMU `-kernel`,
//! multiboot2 from GRUB) normalised into one [`BootInfo`] that the rest of
//! the hypervisor uses. Everything the hypervisor needs from the loader's
//! structures is copied here before the frame allocator starts, so those
//! structures may be overwritten afterwards; only the modules (the boot
//! bundle) are kept out of the allocator.

#[cfg(target_os = "none")]
pub mod multiboot2;
pub mod pvh;

use crate::mm::memmap::{MemMapError, MemoryMap, PhysRange};
use core::fmt;

/// Magic value in EAX when a multiboot2 loader enters (Multiboot2 spec 3.2).
pub const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;
/// How many boot modules are kept.
pub const MAX_MODULES: usize = 8;
/// Longest command line kept, in bytes.
pub const CMDLINE_MAX: usize = 1024;

/// How the hypervisor was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Xen's PVH boot ABI (`hvm_start_info`), as QEMU `-kernel` uses it.
    Pvh,
    /// Multiboot2, as GRUB uses it.
    Multiboot2,
}

impl Protocol {
    /// The name in the boot banner.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pvh => "PVH",
            Protocol::Multiboot2 => "multiboot2",
        }
    }
}

/// Where the ACPI tables start, as the loader said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiRoot {
    /// The loader gave no ACPI pointer.
    None,
    /// Physical address of the RSDP (PVH).
    Rsdp(u64),
    /// The RSDT (revision 0) or XSDT (revision 2+) address that the RSDP
    /// copy in the multiboot2 information names.
    Sdt {
        /// RSDP revision.
        revision: u8,
        /// Physical address of the RSDT or XSDT.
        address: u64,
    },
}

/// Why the boot information could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// Neither the multiboot2 magic in EAX nor the PVH magic at EBX.
    UnknownProtocol {
        /// EAX at entry.
        magic: u32,
        /// EBX at entry.
        info: u32,
    },
    /// A loader structure lies where the boot page tables do not reach.
    Unreachable {
        /// What was being read.
        what: &'static str,
        /// Its physical address.
        addr: u64,
    },
    /// The loader gave no memory map.
    NoMemoryMap,
    /// The memory map did not fit.
    MemoryMap(MemMapError),
    /// The loader's structure is malformed.
    Malformed(&'static str),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::UnknownProtocol { magic, info } => write!(
                f,
                "unknown boot protocol (eax={magic:#x}, ebx={info:#x}): boot Oxen with GRUB's multiboot2 or QEMU's -kernel (PVH)"
            ),
            BootError::Unreachable { what, addr } => {
                write!(f, "{what} at {addr:#x} lies above 4 GiB, out of reach at boot")
            }
            BootError::NoMemoryMap => f.write_str("the boot loader passed no memory map"),
            BootError::MemoryMap(e) => write!(f, "memory map: {e}"),
            BootError::Malformed(what) => write!(f, "malformed boot information: {what}"),
        }
    }
}

impl From<MemMapError> for BootError {
    fn from(e: MemMapError) -> Self {
        BootError::MemoryMap(e)
    }
}

/// Everything the hypervisor takes from the boot loader.
pub struct BootInfo {
    /// Which protocol brought us here.
    pub protocol: Protocol,
    /// The firmware memory map, normalised.
    pub memory_map: MemoryMap,
    /// Where the ACPI tables are.
    pub acpi: AcpiRoot,
    modules: [PhysRange; MAX_MODULES],
    module_count: usize,
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    /// Whether the command line was cut to `CMDLINE_MAX`.
    pub cmdline_truncated: bool,
    /// Modules beyond `MAX_MODULES` that were ignored.
    pub modules_dropped: usize,
}

impl BootInfo {
    /// An empty record for `protocol`.
    pub const fn new(protocol: Protocol) -> Self {
        BootInfo {
            protocol,
            memory_map: MemoryMap::new(),
            acpi: AcpiRoot::None,
            modules: [PhysRange { start: 0, end: 0 }; MAX_MODULES],
            module_count: 0,
            cmdline: [0; CMDLINE_MAX],
            cmdline_len: 0,
            cmdline_truncated: false,
            modules_dropped: 0,
        }
    }

    /// The command line (invalid UTF-8 is cut at the first bad byte).
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// Store the command line, stopping at a NUL and at `CMDLINE_MAX`.
    pub fn set_cmdline(&mut self, raw: &[u8]) {
        let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
        let n = raw.len().min(CMDLINE_MAX);
        self.cmdline[..n].copy_from_slice(&raw[..n]);
        self.cmdline_len = n;
        self.cmdline_truncated = raw.len() > CMDLINE_MAX;
    }

    /// The boot modules in the loader's order; the first is the boot bundle.
    pub fn modules(&self) -> &[PhysRange] {
        &self.modules[..self.module_count]
    }

    /// Record a module; empty ones are ignored, extras counted.
    pub fn add_module(&mut self, range: PhysRange) {
        if range.end <= range.start {
            return;
        }
        if self.module_count == MAX_MODULES {
            self.modules_dropped += 1;
            return;
        }
        self.modules[self.module_count] = range;
        self.module_count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_stops_at_nul_and_limit() {
        let mut info = BootInfo::new(Protocol::Pvh);
        info.set_cmdline(b"loglvl=debug\0junk");
        assert_eq!(info.cmdline(), "loglvl=debug");
        let long = [b'a'; CMDLINE_MAX + 10];
        info.set_cmdline(&long);
        assert_eq!(info.cmdline().len(), CMDLINE_MAX);
        assert!(info.cmdline_truncated);
    }

    #[test]
    fn invalid_utf8_is_cut() {
        let mut info = BootInfo::new(Protocol::Pvh);
        info.set_cmdline(b"abc\xffdef");
        assert_eq!(info.cmdline(), "abc");
    }

    #[test]
    fn modules_are_bounded() {
        let mut info = BootInfo::new(Protocol::Multiboot2);
        info.add_module(PhysRange { start: 5, end: 5 });
        for i in 0..(MAX_MODULES as u64 + 2) {
            info.add_module(PhysRange {
                start: i * 4096,
                end: i * 4096 + 10,
            });
        }
        assert_eq!(info.modules().len(), MAX_MODULES);
        assert_eq!(info.modules_dropped, 2);
    }
}
