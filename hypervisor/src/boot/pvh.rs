//! The PVH boot ABI (Xen's `arch-x86/hvm/start_info.h`): QEMU `-kernel`
//! enters the image at its `XEN_ELFNOTE_PHYS32_ENTRY` with EBX pointing at an
//! `hvm_start_info`. This parser reads physical memory only through the
//! `read` callback, so the host tests drive it with a fake memory.

use super::{AcpiRoot, BootError, BootInfo, CMDLINE_MAX, Protocol};
use crate::mm::memmap::{PhysRange, RegionKind};

/// `hvm_start_info.magic`.
pub const PVH_MAGIC: u32 = 0x336e_c578;
/// Size of `hvm_start_info` (version 1).
const START_INFO_SIZE: usize = 56;
/// Size of one `hvm_modlist_entry`.
const MODLIST_ENTRY_SIZE: usize = 32;
/// Size of one `hvm_memmap_table_entry`.
const MEMMAP_ENTRY_SIZE: usize = 24;
/// More memory-map entries than this is taken as corruption.
const MAX_MEMMAP_ENTRIES: u32 = 1024;

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

/// Whether the structure at `info` starts with the PVH magic.
pub fn is_pvh(read: &mut impl FnMut(u64, &mut [u8]) -> Result<(), BootError>, info: u64) -> bool {
    let mut magic = [0u8; 4];
    read(info, &mut magic).is_ok() && u32::from_le_bytes(magic) == PVH_MAGIC
}

/// Parse the `hvm_start_info` at physical `info`. `read(pa, buf)` fills
/// `buf` from physical memory or refuses an address it cannot reach.
pub fn parse(
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), BootError>,
    info: u64,
) -> Result<BootInfo, BootError> {
    let mut si = [0u8; START_INFO_SIZE];
    read(info, &mut si)?;
    if u32_at(&si, 0) != PVH_MAGIC {
        return Err(BootError::Malformed("hvm_start_info magic"));
    }
    let version = u32_at(&si, 4);
    let nr_modules = u32_at(&si, 12);
    let modlist = u64_at(&si, 16);
    let cmdline = u64_at(&si, 24);
    let rsdp = u64_at(&si, 32);

    let mut boot = BootInfo::new(Protocol::Pvh);
    if rsdp != 0 {
        boot.acpi = AcpiRoot::Rsdp(rsdp);
    }

    // Version 0 has no memory map; QEMU has provided version 1 since 4.0.
    if version < 1 {
        return Err(BootError::NoMemoryMap);
    }
    let memmap = u64_at(&si, 40);
    let entries = u32_at(&si, 48);
    if memmap == 0 || entries == 0 {
        return Err(BootError::NoMemoryMap);
    }
    if entries > MAX_MEMMAP_ENTRIES {
        return Err(BootError::Malformed("hvm_start_info memmap_entries"));
    }
    for i in 0..u64::from(entries) {
        let mut e = [0u8; MEMMAP_ENTRY_SIZE];
        let addr = memmap
            .checked_add(i * MEMMAP_ENTRY_SIZE as u64)
            .ok_or(BootError::Malformed("memmap_paddr"))?;
        read(addr, &mut e)?;
        boot.memory_map.add(
            u64_at(&e, 0),
            u64_at(&e, 8),
            RegionKind::from_e820(u32_at(&e, 16)),
        )?;
    }
    boot.memory_map.normalize();

    if nr_modules > 0 && modlist != 0 {
        for i in 0..u64::from(nr_modules.min(64)) {
            let mut m = [0u8; MODLIST_ENTRY_SIZE];
            let addr = modlist
                .checked_add(i * MODLIST_ENTRY_SIZE as u64)
                .ok_or(BootError::Malformed("modlist_paddr"))?;
            read(addr, &mut m)?;
            let start = u64_at(&m, 0);
            let size = u64_at(&m, 8);
            let end = start
                .checked_add(size)
                .ok_or(BootError::Malformed("module size"))?;
            boot.add_module(PhysRange { start, end });
        }
    }

    if cmdline != 0 {
        // Read the command line in chunks up to its NUL or CMDLINE_MAX.
        let mut buf = [0u8; CMDLINE_MAX + 1];
        let mut len = 0;
        while len < buf.len() {
            let chunk = (buf.len() - len).min(64);
            let addr = cmdline
                .checked_add(len as u64)
                .ok_or(BootError::Malformed("cmdline_paddr"))?;
            read(addr, &mut buf[len..len + chunk])?;
            let nul = buf[len..len + chunk].iter().position(|&b| b == 0);
            len += chunk;
            if nul.is_some() {
                break;
            }
        }
        boot.set_cmdline(&buf[..len]);
    }
    Ok(boot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::memmap::RegionKind;

    /// A fake physical memory of 64 KiB.
    struct Mem(Vec<u8>);

    impl Mem {
        fn put(&mut self, at: usize, bytes: &[u8]) {
            self.0[at..at + bytes.len()].copy_from_slice(bytes);
        }
        fn reader(&self) -> impl FnMut(u64, &mut [u8]) -> Result<(), BootError> + '_ {
            |pa, buf| {
                let start =
                    usize::try_from(pa).map_err(|_| BootError::Unreachable { what: "t", addr: pa })?;
                let end = start + buf.len();
                if end > self.0.len() {
                    return Err(BootError::Unreachable {
                        what: "test",
                        addr: pa,
                    });
                }
                buf.copy_from_slice(&self.0[start..end]);
                Ok(())
            }
        }
    }

    fn start_info(
        version: u32,
        nr_modules: u32,
        modlist: u64,
        cmdline: u64,
        rsdp: u64,
        memmap: u64,
        entries: u32,
    ) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&PVH_MAGIC.to_le_bytes());
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&nr_modules.to_le_bytes());
        v.extend_from_slice(&modlist.to_le_bytes());
        v.extend_from_slice(&cmdline.to_le_bytes());
        v.extend_from_slice(&rsdp.to_le_bytes());
        v.extend_from_slice(&memmap.to_le_bytes());
        v.extend_from_slice(&entries.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v
    }

    fn e820(addr: u64, size: u64, ty: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&addr.to_le_bytes());
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v
    }

    #[test]
    fn parses_qemu_like_start_info() {
        let mut mem = Mem(vec![0; 0x10000]);
        mem.put(0x1000, &start_info(1, 1, 0x2000, 0x3000, 0xf5a0, 0x4000, 2));
        let mut m = Vec::new();
        m.extend_from_slice(&0x80_0000u64.to_le_bytes());
        m.extend_from_slice(&0x1234u64.to_le_bytes());
        m.extend_from_slice(&[0u8; 16]);
        mem.put(0x2000, &m);
        mem.put(0x3000, b"loglvl=debug oxen_test=boot\0");
        mem.put(0x4000, &e820(0, 0x9fc00, 1));
        mem.put(0x4000 + 24, &e820(0x10_0000, 0x7ff_0000, 1));
        let boot = parse(mem.reader(), 0x1000).expect("valid start info");
        assert_eq!(boot.protocol, Protocol::Pvh);
        assert_eq!(boot.cmdline(), "loglvl=debug oxen_test=boot");
        assert_eq!(boot.acpi, AcpiRoot::Rsdp(0xf5a0));
        assert_eq!(
            boot.modules(),
            &[PhysRange {
                start: 0x80_0000,
                end: 0x80_1234
            }]
        );
        assert_eq!(boot.memory_map.regions().len(), 2);
        assert!(
            boot.memory_map
                .regions()
                .iter()
                .all(|r| r.kind == RegionKind::Usable)
        );
    }

    #[test]
    fn version_zero_has_no_memory_map() {
        let mut mem = Mem(vec![0; 0x10000]);
        mem.put(0x1000, &start_info(0, 0, 0, 0, 0, 0, 0));
        assert_eq!(parse(mem.reader(), 0x1000).err(), Some(BootError::NoMemoryMap));
    }

    #[test]
    fn bad_magic_and_unreachable_pointers_are_errors() {
        let mut mem = Mem(vec![0; 0x10000]);
        assert!(matches!(
            parse(mem.reader(), 0x1000),
            Err(BootError::Malformed(_))
        ));
        mem.put(0x1000, &start_info(1, 0, 0, 0, 0, 0xffff_0000, 4));
        assert!(matches!(
            parse(mem.reader(), 0x1000),
            Err(BootError::Unreachable { .. })
        ));
        mem.put(0x1000, &start_info(1, 0, 0, 0, 0, 0x4000, 100_000));
        assert!(matches!(
            parse(mem.reader(), 0x1000),
            Err(BootError::Malformed(_))
        ));
    }

    #[test]
    fn unterminated_cmdline_is_bounded() {
        let mut mem = Mem(vec![b'x'; 0x10000]);
        mem.put(0x1000, &start_info(1, 0, 0, 0x3000, 0, 0x4000, 1));
        mem.put(0x4000, &e820(0x10_0000, 0x100_0000, 1));
        let boot = parse(mem.reader(), 0x1000).expect("valid");
        assert_eq!(boot.cmdline().len(), CMDLINE_MAX);
        assert!(boot.cmdline_truncated);
    }
}
