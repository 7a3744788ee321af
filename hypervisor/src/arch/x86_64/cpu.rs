//! The processor: feature discovery (CPUID), control registers and the few
//! instructions the portable code needs (halt, TSC, interrupt flag).

use core::fmt;
use raw_cpuid::CpuId;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

/// What the hypervisor uses from the CPU, read once from CPUID at boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// Execute-disable bit in page tables (CPUID 8000_0001h:EDX[20]).
    pub nx: bool,
    /// Supervisor-mode execution prevention (CPUID 07h:EBX[7]).
    pub smep: bool,
    /// Supervisor-mode access prevention (CPUID 07h:EBX[20]).
    pub smap: bool,
    /// 1 GiB pages (CPUID 8000_0001h:EDX[26]).
    pub huge_pages: bool,
    /// Global pages (CPUID 01h:EDX[13]).
    pub pge: bool,
    /// x2APIC mode (CPUID 01h:ECX[21]).
    pub x2apic: bool,
    /// XSAVE family (CPUID 01h:ECX[26]).
    pub xsave: bool,
    /// LAPIC timer TSC-deadline mode (CPUID 01h:ECX[24]).
    pub tsc_deadline: bool,
    /// Invariant TSC (CPUID 8000_0007h:EDX[8]).
    pub invariant_tsc: bool,
    /// AMD SVM (CPUID 8000_0001h:ECX[2]).
    pub svm: bool,
    /// Intel VMX (CPUID 01h:ECX[5]).
    pub vmx: bool,
    /// Running under a hypervisor (CPUID 01h:ECX[31]).
    pub hypervisor: bool,
    /// User-mode instruction prevention: `sgdt`, `sidt`, `sldt`, `smsw`,
    /// `str` fault in ring 3 (CPUID 07h:ECX[2]).
    pub umip: bool,
}

impl Features {
    /// Read the features of the current CPU.
    pub fn detect() -> Self {
        let cpuid = CpuId::new();
        let mut f = Features::default();
        if let Some(info) = cpuid.get_feature_info() {
            f.pge = info.has_pge();
            f.x2apic = info.has_x2apic();
            f.xsave = info.has_xsave();
            f.tsc_deadline = info.has_tsc_deadline();
            f.vmx = info.has_vmx();
            f.hypervisor = info.has_hypervisor();
        }
        if let Some(ext) = cpuid.get_extended_feature_info() {
            f.smep = ext.has_smep();
            f.smap = ext.has_smap();
            f.umip = ext.has_umip();
        }
        if let Some(ext) = cpuid.get_extended_processor_and_feature_identifiers() {
            f.nx = ext.has_execute_disable();
            f.huge_pages = ext.has_1gib_pages();
            f.svm = ext.has_svm();
        }
        if let Some(apm) = cpuid.get_advanced_power_mgmt_info() {
            f.invariant_tsc = apm.has_invariant_tsc();
        }
        f
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = [
            ("nx", self.nx),
            ("smep", self.smep),
            ("smap", self.smap),
            ("umip", self.umip),
            ("1g-pages", self.huge_pages),
            ("pge", self.pge),
            ("x2apic", self.x2apic),
            ("xsave", self.xsave),
            ("tsc-deadline", self.tsc_deadline),
            ("invariant-tsc", self.invariant_tsc),
            ("svm", self.svm),
            ("vmx", self.vmx),
        ];
        f.write_str("present:")?;
        for (name, _) in all.iter().filter(|(_, on)| *on) {
            write!(f, " {name}")?;
        }
        f.write_str("; absent:")?;
        for (name, _) in all.iter().filter(|(_, on)| !*on) {
            write!(f, " {name}")?;
        }
        Ok(())
    }
}

/// The processor's brand string, or its vendor when there is none.
pub fn model_name(buf: &mut [u8; 48]) -> &str {
    let cpuid = CpuId::new();
    if let Some(brand) = cpuid.get_processor_brand_string() {
        let s = brand.as_str().trim();
        let n = s.len().min(buf.len());
        buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        return core::str::from_utf8(&buf[..n]).unwrap_or("unknown");
    }
    "unknown"
}

/// Turn on the protections the hypervisor runs with: EFER.NXE, CR0.WP,
/// CR4.PGE, and CR4.SMEP / CR4.SMAP (Intel SDM Vol.3A 2.5, 4.6) where the
/// CPU has them. Call before loading page tables that use NX or global bits.
pub fn enable_protections(features: &Features) {
    if features.nx {
        // SAFETY: NXE only makes bit 63 of page-table entries meaningful; the
        // boot tables never set it.
        unsafe { Efer::update(|efer| efer.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    }
    // SAFETY: WP makes supervisor writes honour read-only pages, which only
    // removes rights.
    unsafe { Cr0::update(|cr0| cr0.insert(Cr0Flags::WRITE_PROTECT)) };
    let mut cr4 = Cr4::read();
    if features.pge {
        cr4.insert(Cr4Flags::PAGE_GLOBAL);
    }
    if features.smep {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
    }
    if features.smap {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
    }
    if features.umip {
        cr4.insert(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION);
    }
    // SAFETY: no user pages exist yet, so SMEP and SMAP cannot fault; PGE only
    // affects TLB retention of pages marked global.
    unsafe { Cr4::write(cr4) };
}

/// Read the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is never set.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Halt until the next interrupt, with interrupts enabled.
pub fn idle() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Stop this CPU for good: interrupts off, halt forever.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// The faulting linear address of the last page fault.
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// The physical address of the current top-level page table.
pub fn cr3() -> u64 {
    x86_64::registers::control::Cr3::read_raw()
        .0
        .start_address()
        .as_u64()
}

/// Index of the CPU this code runs on. Only the boot CPU (0) runs until the
/// SMP work brings up the others; it will then come from per-CPU data.
pub fn current_cpu() -> u32 {
    0
}

/// Disable interrupts on this CPU.
pub fn disable_interrupts() {
    x86_64::instructions::interrupts::disable();
}
