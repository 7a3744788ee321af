//! The IDT, the exception entry stubs and the fatal exception report.
//!
//! Every vector 0-31 enters one common stub that saves the general registers
//! into an [`ExceptionFrame`] and calls [`exception_handler`]. An exception
//! taken in the hypervisor is a bug: it prints a decoded report (vector name,
//! error code, RIP, CR2, registers, CPU) and stops; in test builds QEMU then
//! exits with the failure code. NMI, double fault and machine check run on
//! their own IST stacks so that even a kernel stack overflow is reported.

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI};
use core::fmt::Write;
use core::mem::{offset_of, size_of};
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

/// Vector of the LAPIC spurious interrupt.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// The registers saved by the entry stub, lowest address first.
///
/// 16-byte aligned: as a vCPU's register block its end is TSS.RSP0, and the
/// CPU aligns RSP0 down to 16 bytes before pushing an interrupt frame
/// (Intel SDM Vol.3A 7.14.2), which would shift every field otherwise.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub struct ExceptionFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Pushed by the stub.
    pub vector: u64,
    /// Pushed by the CPU, or 0 by the stub for vectors without one.
    pub error_code: u64,
    /// The interrupt stack frame (Intel SDM Vol.3A 7.14.2).
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(offset_of!(ExceptionFrame, vector) == 15 * 8);
const _: () = assert!(offset_of!(ExceptionFrame, rip) == 17 * 8);
const _: () = assert!(size_of::<ExceptionFrame>() == 22 * 8);
const _: () = assert!(size_of::<ExceptionFrame>().is_multiple_of(16));

core::arch::global_asm!(
    r#"
.macro EXC_NOERR vec
    .balign 16
exc_stub_\vec:
    push $0
    push $\vec
    jmp exception_common
.endm
.macro EXC_ERR vec
    .balign 16
exc_stub_\vec:
    push $\vec
    jmp exception_common
.endm

.section .text
.irp vec, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    EXC_NOERR \vec
.endr
.irp vec, 8,10,11,12,13,14,17,21,29,30
    EXC_ERR \vec
.endr

exception_common:
    /* NMI, #DF and #MC arrive on their IST stacks even from ring 3, so the
     * frame is not in a vCPU block: report them as hypervisor events. */
    cmpq $2, (%rsp)
    je 1f
    cmpq $8, (%rsp)
    je 1f
    cmpq $18, (%rsp)
    je 1f
    testb $3, 24(%rsp)
    jnz from_guest
1:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    cld
    mov %rsp, %rdi
    call exception_handler
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq

/* From ring 3: the CPU pushed the frame at TSS.RSP0, the end of the
 * current vCPU's register block; take the hypervisor's GS and finish
 * through guest_save_and_exit (guest.rs), which returns from enter_guest. */
from_guest:
    swapgs
    jmp guest_save_and_exit

/* Device interrupts: the LAPIC timer. */
.balign 16
irq_stub_timer:
    push $0
    push ${timer}
    jmp exception_common

.balign 16
spurious_stub:
    iretq

.section .rodata
.balign 8
.global exception_stub_table
.global spurious_stub_addr
exception_stub_table:
.irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exc_stub_\vec
.endr
spurious_stub_addr:
    .quad spurious_stub
.global timer_stub_addr
timer_stub_addr:
    .quad irq_stub_timer
"#,
    timer = const TIMER_VECTOR,
    options(att_syntax)
);

unsafe extern "C" {
    static exception_stub_table: [u64; 32];
    static spurious_stub_addr: u64;
    static timer_stub_addr: u64;
}

/// Vector of the LAPIC timer.
pub const TIMER_VECTOR: u8 = 0x20;

/// One 16-byte IDT gate (Intel SDM Vol.3A 7.14.1, figure 7-8).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}
const _: () = assert!(size_of::<Gate>() == 16);

/// Present, DPL 0, 64-bit interrupt gate (type 0xE): IF is cleared on entry.
const GATE_INTERRUPT: u8 = 0x8e;
/// The same with DPL 3, so that `int3` and `into` in a guest raise #BP and
/// #OF rather than #GP (Intel SDM Vol.3A 7.12.1.1).
const GATE_INTERRUPT_USER: u8 = 0xee;

impl Gate {
    fn new(handler: u64, selector: u16, ist_slot: Option<usize>, type_attr: u8) -> Self {
        // The TSS slot is 0-based; the gate's IST field is 1-based, 0 = none.
        let ist = ist_slot.and_then(|slot| u8::try_from(slot + 1).ok()).unwrap_or(0);
        Gate {
            offset_low: (handler & 0xffff) as u16,
            selector,
            ist,
            type_attr,
            offset_mid: ((handler >> 16) & 0xffff) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Once<Idt> = Once::new();
const IDT_LIMIT: u16 = {
    assert!(size_of::<Idt>() == 4096);
    4095
};

/// Build and load the IDT; `code_selector` is the kernel code segment.
pub fn init(code_selector: u16) {
    let idt = IDT.call_once(|| {
        let mut idt = Idt([Gate::default(); 256]);
        // SAFETY: both symbols are defined by the global_asm above, in
        // .rodata, and never written.
        let (stubs, spurious, timer) = unsafe { (exception_stub_table, spurious_stub_addr, timer_stub_addr) };
        for (vector, stub) in stubs.iter().enumerate() {
            let ist = match vector {
                2 => Some(IST_NMI),
                8 => Some(IST_DOUBLE_FAULT),
                18 => Some(IST_MACHINE_CHECK),
                _ => None,
            };
            let kind = if vector == 3 || vector == 4 {
                GATE_INTERRUPT_USER
            } else {
                GATE_INTERRUPT
            };
            idt.0[vector] = Gate::new(*stub, code_selector, ist, kind);
        }
        idt.0[usize::from(TIMER_VECTOR)] = Gate::new(timer, code_selector, None, GATE_INTERRUPT);
        idt.0[usize::from(SPURIOUS_VECTOR)] = Gate::new(spurious, code_selector, None, GATE_INTERRUPT);
        idt
    });
    let pointer = DescriptorTablePointer {
        limit: IDT_LIMIT,
        base: VirtAddr::from_ptr(idt),
    };
    // SAFETY: the IDT lives in a `static` forever and every present gate
    // points at a stub defined above.
    unsafe { lidt(&pointer) };
}

/// Name of an exception vector (Intel SDM Vol.3A table 7-1).
pub fn vector_name(vector: u64) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        28 => ("#HV", "hypervisor injection"),
        29 => ("#VC", "VMM communication"),
        30 => ("#SX", "security exception"),
        _ => ("#??", "reserved vector"),
    }
}

/// Called by `exception_common` for an exception or interrupt taken in the
/// hypervisor (ring 0). Interrupts are acknowledged and return; a fault on
/// an instruction listed in the exception table (the guest-memory
/// accessors) resumes at its fixup; anything else is fatal.
#[unsafe(no_mangle)]
extern "C" fn exception_handler(frame: &mut ExceptionFrame) {
    if frame.vector >= 32 {
        crate::irq::hypervisor_interrupt(frame.vector);
        return;
    }
    if (frame.vector == 14 || frame.vector == 13) && super::uaccess::fixup(frame) {
        return;
    }
    let cr2 = super::cpu::cr2();
    let mut out = crate::console::EmergencyWriter;
    let (short, long) = vector_name(frame.vector);
    let _ = writeln!(
        out,
        "\r\nFATAL: exception {short} ({long}) in hypervisor on cpu{}",
        super::cpu::current_cpu()
    );
    let _ = write!(
        out,
        "  vector {} error code {:#x}",
        frame.vector, frame.error_code
    );
    if frame.vector == 14 {
        let e = frame.error_code;
        let _ = write!(
            out,
            " ({} {}, {}{}{})",
            if e & 2 != 0 { "write" } else { "read" },
            if e & 1 != 0 {
                "protection violation"
            } else {
                "not-present page"
            },
            if e & 4 != 0 { "user" } else { "supervisor" },
            if e & 8 != 0 { ", reserved bit" } else { "" },
            if e & 16 != 0 { ", instruction fetch" } else { "" },
        );
    }
    let f = &*frame;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  RIP={:016x} CS={:04x} RFLAGS={:016x}",
        f.rip, f.cs, f.rflags
    );
    let _ = writeln!(
        out,
        "  RSP={:016x} SS={:04x} CR2={:016x} CR3={:016x}",
        f.rsp,
        f.ss,
        cr2,
        super::cpu::cr3()
    );
    let _ = writeln!(
        out,
        "  RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}",
        f.rax, f.rbx, f.rcx, f.rdx
    );
    let _ = writeln!(
        out,
        "  RSI={:016x} RDI={:016x} RBP={:016x} R8 ={:016x}",
        f.rsi, f.rdi, f.rbp, f.r8
    );
    let _ = writeln!(
        out,
        "  R9 ={:016x} R10={:016x} R11={:016x} R12={:016x}",
        f.r9, f.r10, f.r11, f.r12
    );
    let _ = writeln!(out, "  R13={:016x} R14={:016x} R15={:016x}", f.r13, f.r14, f.r15);
    crate::fatal::stop();
}
