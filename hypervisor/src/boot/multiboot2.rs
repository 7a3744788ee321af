//! The multiboot2 boot information (GRUB), read with the `multiboot2` crate.
//!
//! This module holds `unsafe`: the crate reads the information structure
//! through a raw pointer, which is sound only while the boot stub's direct
//! map covers it and nothing has reused its memory yet (both true until the
//! frame allocator starts, and everything needed is copied out before that).
#![allow(unsafe_code)]

use super::{AcpiRoot, BootError, BootInfo, Protocol};
use crate::mm::layout::{EARLY_DIRECT_MAP_LIMIT, phys_to_virt};
use crate::mm::memmap::{PhysRange, RegionKind};
use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};

/// Parse the multiboot2 information at physical `info`.
pub fn parse(info: u64) -> Result<BootInfo, BootError> {
    // The header's total size must fit below the boot stub's 4 GiB map.
    if info == 0 || !info.is_multiple_of(8) || info >= EARLY_DIRECT_MAP_LIMIT - 4096 {
        return Err(BootError::Unreachable {
            what: "multiboot2 information",
            addr: info,
        });
    }
    let ptr = phys_to_virt(info) as *const BootInformationHeader;
    // SAFETY: `info` is 8-byte aligned and inside the boot direct map (checked
    // above); the loader guarantees a well-formed structure there and nothing
    // writes to it before parsing ends. The crate validates sizes itself.
    let mbi = unsafe { BootInformation::load(ptr) }
        .map_err(|_| BootError::Malformed("multiboot2 information header"))?;
    if mbi.end_address() as u64 > phys_to_virt(EARLY_DIRECT_MAP_LIMIT) {
        return Err(BootError::Unreachable {
            what: "multiboot2 information end",
            addr: info,
        });
    }

    let mut boot = BootInfo::new(Protocol::Multiboot2);
    let map = mbi.memory_map_tag().ok_or(BootError::NoMemoryMap)?;
    for area in map.memory_areas() {
        let kind = match area.typ() {
            MemoryAreaType::Available => RegionKind::Usable,
            MemoryAreaType::AcpiAvailable => RegionKind::AcpiReclaimable,
            MemoryAreaType::ReservedHibernate => RegionKind::AcpiNvs,
            MemoryAreaType::Defective => RegionKind::Unusable,
            _ => RegionKind::Reserved,
        };
        boot.memory_map.add(area.start_address(), area.size(), kind)?;
    }
    boot.memory_map.normalize();

    for module in mbi.module_tags() {
        boot.add_module(PhysRange {
            start: u64::from(module.start_address()),
            end: u64::from(module.end_address()),
        });
    }
    if let Some(tag) = mbi.command_line_tag() {
        boot.set_cmdline(tag.cmdline().unwrap_or("").as_bytes());
    }
    if let Some(rsdp) = mbi.rsdp_v2_tag().filter(|t| t.checksum_is_valid()) {
        boot.acpi = AcpiRoot::Sdt {
            revision: rsdp.revision(),
            address: rsdp.xsdt_address() as u64,
        };
    } else if let Some(rsdp) = mbi.rsdp_v1_tag().filter(|t| t.checksum_is_valid()) {
        boot.acpi = AcpiRoot::Sdt {
            revision: 0,
            address: rsdp.rsdt_address() as u64,
        };
    }
    Ok(boot)
}
