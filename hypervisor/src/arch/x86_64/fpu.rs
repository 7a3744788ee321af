//! Guest FPU/SSE/AVX state. The hypervisor itself never touches these
//! registers (it is built soft-float), so a vCPU's state only has to be
//! saved and restored when another vCPU runs next on this CPU. XSAVE is
//! used where CPUID offers it (x87, SSE and AVX components), FXSAVE
//! otherwise (Intel SDM Vol.1 13.1, 10.5).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use raw_cpuid::CpuId;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::xcontrol::{XCr0, XCr0Flags};

static USE_XSAVE: AtomicBool = AtomicBool::new(false);
static XCR0_MASK: AtomicU64 = AtomicU64::new(0);

/// Bytes reserved per vCPU for its state (one page holds x87+SSE+AVX and
/// AVX-512's 2.7 KiB).
pub const AREA_BYTES: usize = 4096;

/// Enable the FPU, SSE and, where present, XSAVE with x87|SSE|AVX. Returns
/// the state size in bytes and whether XSAVE is used.
pub fn init(xsave: bool) -> (u32, bool) {
    // SAFETY: EM off and MP on select native FPU handling; TS off means no
    // #NM on first use (Intel SDM Vol.3A 2.5).
    unsafe {
        Cr0::update(|cr0| {
            cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            cr0.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|cr4| cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
    if !xsave {
        return (512, false);
    }
    let cpuid = CpuId::new();
    let supported = cpuid.get_extended_state_info().map_or(0b11, |s| {
        u64::from(s.xcr0_supports_legacy_x87())
            | (u64::from(s.xcr0_supports_sse_128()) << 1)
            | (u64::from(s.xcr0_supports_avx_256()) << 2)
    });
    // x87 and SSE are required; AVX where present.
    let mask = (supported & 0b111) | 0b11;
    // SAFETY: CPUID reports XSAVE, so CR4.OSXSAVE exists; XCR0 gets only
    // components CPUID reports, always including x87 (Intel SDM Vol.1 13.3).
    unsafe {
        Cr4::update(|cr4| cr4.insert(Cr4Flags::OSXSAVE));
        XCr0::write(XCr0Flags::from_bits_truncate(mask));
    }
    USE_XSAVE.store(true, Ordering::Relaxed);
    XCR0_MASK.store(mask, Ordering::Relaxed);
    let size = CpuId::new()
        .get_extended_state_info()
        .map_or(576, |s| s.xsave_area_size_enabled_features());
    (size, true)
}

/// Write the initial state (FCW 0x37f, MXCSR 0x1f80, nothing else) into a
/// zeroed area of `AREA_BYTES`, 64-byte aligned.
pub fn init_area(area: &mut [u8]) {
    area[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    area[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
}

/// Save the current FPU state into `area`.
///
/// # Safety
/// `area` must point at `AREA_BYTES` writable bytes, 64-byte aligned.
pub unsafe fn save(area: *mut u8) {
    if USE_XSAVE.load(Ordering::Relaxed) {
        let mask = XCR0_MASK.load(Ordering::Relaxed);
        // SAFETY: upheld by the caller; XSAVE is enabled (init).
        unsafe {
            core::arch::asm!("xsave64 [{}]", in(reg) area, in("eax") mask as u32, in("edx") (mask >> 32) as u32,
                options(nostack, preserves_flags));
        }
    } else {
        // SAFETY: upheld by the caller (512 bytes, 16-aligned suffice).
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) area, options(nostack, preserves_flags)) };
    }
}

/// Load the FPU state in `area`.
///
/// # Safety
/// `area` must hold a state written by `save` or `init_area`, aligned as
/// for `save`. (A guest cannot corrupt it: guests never see this memory.)
pub unsafe fn restore(area: *const u8) {
    if USE_XSAVE.load(Ordering::Relaxed) {
        let mask = XCR0_MASK.load(Ordering::Relaxed);
        // SAFETY: upheld by the caller.
        unsafe {
            core::arch::asm!("xrstor64 [{}]", in(reg) area, in("eax") mask as u32, in("edx") (mask >> 32) as u32,
                options(nostack, preserves_flags));
        }
    } else {
        // SAFETY: upheld by the caller.
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) area, options(nostack, preserves_flags)) };
    }
}
