//! FPU/SSE/AVX state never leaks between domains. Two domains run side by
//! side: `fpu-leak-writer` loads its own pattern into xmm0-15 (ymm0-15 with
//! AVX), MXCSR and the x87 control word and yields, over and over;
//! `fpu-leak-reader` first checks that it starts with a clean state, then
//! loads its own pattern, yields, and checks after every yield that its
//! registers still hold exactly its pattern, never the writer's.
//!
//! The SDK and this crate are soft-float: compiled code never touches the
//! vector or x87 registers, so these asm blocks may leave them changed
//! without breaking any assumption of the compiler's.

use alloc::format;
use alloc::string::String;
use oxen_guest_sdk::dom0_abi::Hypercall;

use crate::framework::{Pass, PropResult};
use crate::lowlevel::{avx_usable, now_ns};

/// Vector registers.
const REGS: usize = 16;

/// The register image one domain loads: 16 × 32 bytes, MXCSR, FCW.
#[repr(C, align(64))]
#[derive(Clone, Copy, PartialEq, Eq)]
struct Image {
    vec: [[u64; 4]; REGS],
    mxcsr: u32,
    fcw: u16,
    pad: [u8; 58],
}

impl Image {
    const ZERO: Image = Image {
        vec: [[0; 4]; REGS],
        mxcsr: 0,
        fcw: 0,
        pad: [0; 58],
    };

    /// A recognisable pattern: `tag` in every word, with the register and
    /// lane numbers in the low bytes.
    fn pattern(tag: u64, mxcsr: u32, fcw: u16) -> Image {
        let mut img = Image::ZERO;
        for (r, reg) in img.vec.iter_mut().enumerate() {
            for (l, word) in reg.iter_mut().enumerate() {
                *word = tag | ((r as u64) << 8) | l as u64;
            }
        }
        img.mxcsr = mxcsr;
        img.fcw = fcw;
        img
    }
}

/// "WRITER\0\0" in the top bytes of every word.
const WRITER_TAG: u64 = 0x5752_4954_4552_0000;
/// "READER\0\0".
const READER_TAG: u64 = 0x5245_4144_4552_0000;
/// Writer: all exceptions masked, round toward zero. Reader: round down.
const WRITER_MXCSR: u32 = 0x7f80;
const READER_MXCSR: u32 = 0x3f80;
/// x87 control words: writer round toward zero, reader round down.
const WRITER_FCW: u16 = 0x0f7f;
const READER_FCW: u16 = 0x077f;
/// The state a new vCPU starts with: zero registers, MXCSR and FCW at their
/// reset values (Intel SDM Vol.1 10.2.3.1, 8.1.5).
const INIT_MXCSR: u32 = 0x1f80;
const INIT_FCW: u16 = 0x037f;

/// How long the writer keeps at it, ns of system time.
const WRITER_NS: u64 = 3_000_000_000;
/// Rounds of load, yield, check the reader makes.
const READER_ROUNDS: u32 = 400;

/// Load `img` into the registers (ymm with AVX, else xmm; MXCSR; FCW).
fn load(img: &Image, avx: bool) {
    let p = core::ptr::from_ref(img);
    // SAFETY: `img` is a live, 64-byte aligned Image; the loads only read
    // it. The registers written are never used by compiled code (see the
    // module doc). AVX instructions run only when `avx_usable` said so.
    unsafe {
        if avx {
            core::arch::asm!(
                "vmovdqu ymm0, [{p}]", "vmovdqu ymm1, [{p} + 32]", "vmovdqu ymm2, [{p} + 64]",
                "vmovdqu ymm3, [{p} + 96]", "vmovdqu ymm4, [{p} + 128]", "vmovdqu ymm5, [{p} + 160]",
                "vmovdqu ymm6, [{p} + 192]", "vmovdqu ymm7, [{p} + 224]", "vmovdqu ymm8, [{p} + 256]",
                "vmovdqu ymm9, [{p} + 288]", "vmovdqu ymm10, [{p} + 320]", "vmovdqu ymm11, [{p} + 352]",
                "vmovdqu ymm12, [{p} + 384]", "vmovdqu ymm13, [{p} + 416]", "vmovdqu ymm14, [{p} + 448]",
                "vmovdqu ymm15, [{p} + 480]",
                p = in(reg) p,
                options(nostack, readonly, preserves_flags),
            );
        } else {
            core::arch::asm!(
                "movdqu xmm0, [{p}]", "movdqu xmm1, [{p} + 32]", "movdqu xmm2, [{p} + 64]",
                "movdqu xmm3, [{p} + 96]", "movdqu xmm4, [{p} + 128]", "movdqu xmm5, [{p} + 160]",
                "movdqu xmm6, [{p} + 192]", "movdqu xmm7, [{p} + 224]", "movdqu xmm8, [{p} + 256]",
                "movdqu xmm9, [{p} + 288]", "movdqu xmm10, [{p} + 320]", "movdqu xmm11, [{p} + 352]",
                "movdqu xmm12, [{p} + 384]", "movdqu xmm13, [{p} + 416]", "movdqu xmm14, [{p} + 448]",
                "movdqu xmm15, [{p} + 480]",
                p = in(reg) p,
                options(nostack, readonly, preserves_flags),
            );
        }
        core::arch::asm!(
            "ldmxcsr [{p} + 512]",
            "fldcw [{p} + 516]",
            p = in(reg) p,
            options(nostack, readonly, preserves_flags),
        );
    }
}

/// Store the registers into an image (xmm only: the upper ymm halves stay 0).
fn store(avx: bool) -> Image {
    let mut img = Image::ZERO;
    let p = core::ptr::from_mut(&mut img);
    // SAFETY: `img` is a live, 64-byte aligned Image the stores write; the
    // registers are only read.
    unsafe {
        if avx {
            core::arch::asm!(
                "vmovdqu [{p}], ymm0", "vmovdqu [{p} + 32], ymm1", "vmovdqu [{p} + 64], ymm2",
                "vmovdqu [{p} + 96], ymm3", "vmovdqu [{p} + 128], ymm4", "vmovdqu [{p} + 160], ymm5",
                "vmovdqu [{p} + 192], ymm6", "vmovdqu [{p} + 224], ymm7", "vmovdqu [{p} + 256], ymm8",
                "vmovdqu [{p} + 288], ymm9", "vmovdqu [{p} + 320], ymm10", "vmovdqu [{p} + 352], ymm11",
                "vmovdqu [{p} + 384], ymm12", "vmovdqu [{p} + 416], ymm13", "vmovdqu [{p} + 448], ymm14",
                "vmovdqu [{p} + 480], ymm15",
                p = in(reg) p,
                options(nostack, preserves_flags),
            );
        } else {
            core::arch::asm!(
                "movdqu [{p}], xmm0", "movdqu [{p} + 32], xmm1", "movdqu [{p} + 64], xmm2",
                "movdqu [{p} + 96], xmm3", "movdqu [{p} + 128], xmm4", "movdqu [{p} + 160], xmm5",
                "movdqu [{p} + 192], xmm6", "movdqu [{p} + 224], xmm7", "movdqu [{p} + 256], xmm8",
                "movdqu [{p} + 288], xmm9", "movdqu [{p} + 320], xmm10", "movdqu [{p} + 352], xmm11",
                "movdqu [{p} + 384], xmm12", "movdqu [{p} + 416], xmm13", "movdqu [{p} + 448], xmm14",
                "movdqu [{p} + 480], xmm15",
                p = in(reg) p,
                options(nostack, preserves_flags),
            );
        }
        core::arch::asm!(
            "stmxcsr [{p} + 512]",
            "fnstcw [{p} + 516]",
            p = in(reg) p,
            options(nostack, preserves_flags),
        );
    }
    img
}

/// Give the CPU to another vCPU: a raw `syscall`, so that nothing but the
/// hypervisor runs between the load and the store.
fn yield_raw() {
    // SAFETY: sched_yield takes no arguments and returns 0 in rax; syscall
    // clobbers rcx and r11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") Hypercall::SchedYield as u64 => _,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
}

/// The image as the registers can hold it: without AVX, only the low 128
/// bits of each register.
fn visible(img: &Image, avx: bool) -> Image {
    let mut out = *img;
    if !avx {
        for reg in &mut out.vec {
            reg[2] = 0;
            reg[3] = 0;
        }
    }
    out
}

/// Why `got` is not `want`: the first difference, and whether it is the
/// writer's pattern (a leak) or something else.
fn difference(got: &Image, want: &Image, writer: &Image) -> String {
    if got.mxcsr != want.mxcsr {
        let leak = if got.mxcsr == writer.mxcsr {
            " (the writer's: LEAK)"
        } else {
            ""
        };
        return format!("MXCSR is {:#x}, expected {:#x}{leak}", got.mxcsr, want.mxcsr);
    }
    if got.fcw != want.fcw {
        let leak = if got.fcw == writer.fcw {
            " (the writer's: LEAK)"
        } else {
            ""
        };
        return format!("FCW is {:#x}, expected {:#x}{leak}", got.fcw, want.fcw);
    }
    for r in 0..REGS {
        for l in 0..4 {
            let (g, w) = (got.vec[r][l], want.vec[r][l]);
            if g != w {
                let leak = if g & !0xffff == WRITER_TAG {
                    " (the writer's: LEAK)"
                } else {
                    ""
                };
                return format!("register {r} word {l} is {g:#018x}, expected {w:#018x}{leak}");
            }
        }
    }
    String::from("no difference")
}

/// The writer: keep its pattern in the registers across yields for a while.
pub fn writer() -> PropResult {
    let avx = avx_usable();
    let mine = Image::pattern(WRITER_TAG, WRITER_MXCSR, WRITER_FCW);
    let start = now_ns();
    let mut rounds = 0u64;
    let mut changed = 0u64;
    while now_ns().saturating_sub(start) < WRITER_NS {
        load(&mine, avx);
        yield_raw();
        if store(avx) != visible(&mine, avx) {
            changed += 1;
            load(&mine, avx);
        }
        rounds += 1;
    }
    note!(
        "{rounds} rounds with {} registers",
        if avx { "ymm" } else { "xmm" }
    );
    ensure!(
        changed == 0,
        "the writer's own registers changed across a yield in {changed} of {rounds} rounds"
    );
    Ok(Pass::Success)
}

/// The reader: a clean start, then its own pattern, intact after every yield.
pub fn reader() -> PropResult {
    let avx = avx_usable();
    let writer = visible(&Image::pattern(WRITER_TAG, WRITER_MXCSR, WRITER_FCW), avx);
    let mut clean = Image::ZERO;
    clean.mxcsr = INIT_MXCSR;
    clean.fcw = INIT_FCW;
    let first = store(avx);
    ensure!(
        first == clean,
        "a new vCPU does not start with a clean FPU state: {}",
        difference(&first, &clean, &writer)
    );
    let mine = visible(&Image::pattern(READER_TAG, READER_MXCSR, READER_FCW), avx);
    for round in 0..READER_ROUNDS {
        load(&mine, avx);
        yield_raw();
        yield_raw();
        let got = store(avx);
        ensure!(
            got == mine,
            "after round {round}: {}",
            difference(&got, &mine, &writer)
        );
    }
    note!(
        "{READER_ROUNDS} rounds with {} registers",
        if avx { "ymm" } else { "xmm" }
    );
    Ok(Pass::Success)
}
