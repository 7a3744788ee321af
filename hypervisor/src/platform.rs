//! Platform discovery: the CPUs, the local APIC and the I/O APICs, read from
//! the ACPI MADT with the `acpi` crate. A machine without ACPI (QEMU microvm
//! with `acpi=off`, or `acpi=off` on the command line) falls back to one CPU
//! with the local APIC where IA32_APIC_BASE says, and no I/O APIC.
//!
//! This module holds `unsafe`: `AcpiHandler` is an unsafe interface, and the
//! crate reads firmware tables through the mappings it hands out.
#![allow(unsafe_code)]

use crate::arch;
use crate::boot::AcpiRoot;
use crate::mm;
use crate::mm::layout::usize_from;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use core::ptr::NonNull;

/// Most CPUs recorded.
pub const MAX_CPUS: usize = 256;
/// Most I/O APICs recorded.
pub const MAX_IOAPICS: usize = 8;

/// One processor from the MADT.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// Its APIC ID.
    pub apic_id: u32,
    /// Enabled (or online-capable) per the MADT flags.
    pub usable: bool,
}

/// One I/O APIC.
#[derive(Clone, Copy, Debug, Default)]
pub struct IoApic {
    /// Its ID.
    pub id: u8,
    /// Physical address of its registers.
    pub address: u64,
    /// First global system interrupt it serves.
    pub gsi_base: u32,
}

/// Where the platform description came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The ACPI MADT.
    Acpi,
    /// No ACPI: defaults.
    Fallback,
}

/// What the hypervisor knows about the machine.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    /// Where this came from.
    pub source: Source,
    cpus: [Cpu; MAX_CPUS],
    cpu_count: usize,
    ioapics: [IoApic; MAX_IOAPICS],
    ioapic_count: usize,
    /// Physical address of the local APIC registers.
    pub lapic_address: u64,
    /// Whether legacy 8259 PICs are present (MADT PCAT_COMPAT).
    pub has_8259: bool,
}

impl Platform {
    fn empty(source: Source) -> Self {
        Platform {
            source,
            cpus: [Cpu::default(); MAX_CPUS],
            cpu_count: 0,
            ioapics: [IoApic::default(); MAX_IOAPICS],
            ioapic_count: 0,
            lapic_address: arch::apic::msr_phys_base(),
            has_8259: true,
        }
    }

    fn add_cpu(&mut self, cpu: Cpu) {
        if self.cpu_count < MAX_CPUS {
            self.cpus[self.cpu_count] = cpu;
            self.cpu_count += 1;
        }
    }

    /// The processors.
    pub fn cpus(&self) -> &[Cpu] {
        &self.cpus[..self.cpu_count]
    }

    /// The I/O APICs.
    pub fn ioapics(&self) -> &[IoApic] {
        &self.ioapics[..self.ioapic_count]
    }
}

#[derive(Clone, Copy, Debug)]
struct Handler;

impl AcpiHandler for Handler {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let pa = physical_address as u64;
        let va = mm::setup::map_firmware(pa, size as u64)
            .unwrap_or_else(|e| panic!("acpi: cannot map firmware table at {pa:#x}+{size:#x}: {e}"));
        let ptr = NonNull::new(va as *mut T).expect("a mapping is never at address 0");
        // SAFETY: `va` maps `[pa, pa + size)` for the life of the hypervisor
        // (firmware tables are never unmapped or reused).
        unsafe { PhysicalMapping::new(physical_address, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Read the MADT, or fall back when there is no ACPI or it is disabled.
pub fn discover(root: AcpiRoot, enabled: bool) -> Platform {
    if !enabled {
        log::info!(target: "acpi", "disabled on the command line (acpi=off); using defaults");
        return fallback();
    }
    let tables = match root {
        AcpiRoot::None => {
            log::warn!(
                target: "acpi",
                "no ACPI tables (the loader passed no RSDP); using defaults: one CPU, no I/O APIC"
            );
            return fallback();
        }
        // SAFETY: the loader vouches for the RSDP address; the crate checks
        // its signature and checksum, and those of every table, first.
        AcpiRoot::Rsdp(addr) => unsafe { AcpiTables::from_rsdp(Handler, usize_from(addr)) },
        // SAFETY: as above, for the RSDT/XSDT named by the loader's RSDP copy.
        AcpiRoot::Sdt { revision, address } => unsafe {
            AcpiTables::from_rsdt(Handler, revision, usize_from(address))
        },
    };
    let tables = match tables {
        Ok(t) => t,
        Err(e) => {
            log::warn!(target: "acpi", "no ACPI tables usable ({e:?}); using defaults: one CPU, no I/O APIC");
            return fallback();
        }
    };
    let madt = match tables.find_table::<Madt>() {
        Ok(m) => m,
        Err(e) => {
            log::warn!(target: "acpi", "no MADT ({e:?}); using defaults: one CPU, no I/O APIC");
            return fallback();
        }
    };
    let mut p = Platform::empty(Source::Acpi);
    p.lapic_address = u64::from(madt.get().local_apic_address);
    p.has_8259 = madt.get().supports_8259();
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => {
                let flags = e.flags;
                // Flags bit 0 enabled, bit 1 online capable (ACPI 6.5 5.2.12.2).
                p.add_cpu(Cpu {
                    apic_id: u32::from(e.apic_id),
                    usable: flags & 0b11 != 0,
                });
            }
            MadtEntry::LocalX2Apic(e) => {
                let flags = e.flags;
                p.add_cpu(Cpu {
                    apic_id: e.x2apic_id,
                    usable: flags & 0b11 != 0,
                });
            }
            MadtEntry::IoApic(e) if p.ioapic_count < MAX_IOAPICS => {
                p.ioapics[p.ioapic_count] = IoApic {
                    id: e.io_apic_id,
                    address: u64::from(e.io_apic_address),
                    gsi_base: e.global_system_interrupt_base,
                };
                p.ioapic_count += 1;
            }
            MadtEntry::LocalApicAddressOverride(e) => p.lapic_address = e.local_apic_address,
            _ => {}
        }
    }
    if p.cpu_count == 0 {
        log::warn!(target: "acpi", "the MADT lists no CPU; assuming the boot CPU alone");
        p.add_cpu(Cpu {
            apic_id: 0,
            usable: true,
        });
    }
    p
}

fn fallback() -> Platform {
    let mut p = Platform::empty(Source::Fallback);
    p.add_cpu(Cpu {
        apic_id: 0,
        usable: true,
    });
    p
}
