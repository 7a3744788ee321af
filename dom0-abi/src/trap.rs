//! Traps and events as the guest sees them: the trap table it registers,
//! the frame the hypervisor writes on the guest stack when it delivers an
//! exception (or, later, an event upcall), and the frame `iret` consumes.
//!
//! **Delivery.** For an exception with a registered handler the hypervisor
//! takes the interrupted `rsp`, skips 128 bytes (a red zone), aligns down to
//! 16, writes a [`TrapFrame`] below it and enters the handler with `rsp`
//! pointing at the frame and every other register as it was at the fault.
//! A handler returns by pointing `rsp` at an [`IretFrame`] (the first six
//! words of the trap frame) and calling [`crate::Hypercall::Iret`], which
//! restores `rax rcx r11 rip rflags rsp` from it and leaves the rest alone.
//! No handler, or a frame that cannot be written, crashes the domain.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One trap-table entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TrapEntry {
    /// Exception vector (see [`trap_vector_allowed`]).        @0
    pub vector: u8,
    /// Reserved, must be zero.                                @1
    pub flags: u8,
    /// Padding, must be zero.                                 @2
    pub pad: [u8; 6],
    /// Handler address (lower half); 0 removes the handler.   @8
    pub handler: u64,
}
const _: () = assert!(core::mem::size_of::<TrapEntry>() == 16);

/// What `iret` restores, at the guest's `rsp` when it calls it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct IretFrame {
    /// @0
    pub rax: u64,
    /// @8
    pub rcx: u64,
    /// @16
    pub r11: u64,
    /// Must be a canonical lower-half address. @24
    pub rip: u64,
    /// Masked with [`GUEST_RFLAGS_MASK`]; IF is always set. @32
    pub rflags: u64,
    /// @40
    pub rsp: u64,
}
const _: () = assert!(core::mem::size_of::<IretFrame>() == 48);

/// What the hypervisor writes on the guest stack when it delivers a trap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TrapFrame {
    /// The interrupted context, ready for `iret`.   @0
    pub iret: IretFrame,
    /// Exception vector, or [`EVENT_VECTOR`].        @48
    pub vector: u64,
    /// The CPU's error code (0 when it has none).     @56
    pub error_code: u64,
    /// CR2 for a page fault, 0 otherwise.              @64
    pub fault_addr: u64,
    /// Reserved, zero.                                @72
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<TrapFrame>() == 80);

/// The `vector` of a trap frame delivered for pending events (the upcall).
pub const EVENT_VECTOR: u64 = 0x100;
/// Bytes below the interrupted `rsp` that delivery leaves untouched.
pub const RED_ZONE: u64 = 128;

/// RFLAGS bits a guest controls: CF PF AF ZF SF TF DF OF and ID (Intel SDM
/// Vol.1 3.4.3). Everything else is forced: IF on, IOPL 0, NT/RF/VM/AC off.
pub const GUEST_RFLAGS_MASK: u64 =
    (1 << 0) | (1 << 2) | (1 << 4) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11) | (1 << 21);
/// RFLAGS.IF, always set in a guest.
pub const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS bit 1, always one.
pub const RFLAGS_FIXED: u64 = 1 << 1;

/// Exception vectors (Intel SDM Vol.3A table 7-1).
pub mod vector {
    /// Divide error.
    pub const DE: u8 = 0;
    /// Debug.
    pub const DB: u8 = 1;
    /// Breakpoint (`int3`).
    pub const BP: u8 = 3;
    /// Overflow (`into`).
    pub const OF: u8 = 4;
    /// Bound range.
    pub const BR: u8 = 5;
    /// Invalid opcode.
    pub const UD: u8 = 6;
    /// Device not available.
    pub const NM: u8 = 7;
    /// Stack-segment fault.
    pub const SS: u8 = 12;
    /// General protection (privileged instructions land here).
    pub const GP: u8 = 13;
    /// Page fault.
    pub const PF: u8 = 14;
    /// x87 floating-point error.
    pub const MF: u8 = 16;
    /// Alignment check.
    pub const AC: u8 = 17;
    /// SIMD floating-point.
    pub const XM: u8 = 19;
}

/// Whether a guest may register a handler for `vector`. NMI, double fault,
/// machine check, the TSS and segment faults and reserved vectors belong to
/// the hypervisor.
pub const fn trap_vector_allowed(v: u8) -> bool {
    matches!(v, 0 | 1 | 3 | 4 | 5 | 6 | 7 | 12 | 13 | 14 | 16 | 17 | 19)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn golden_layout() {
        assert_eq!(offset_of!(TrapEntry, handler), 8);
        assert_eq!(offset_of!(IretFrame, rip), 24);
        assert_eq!(offset_of!(IretFrame, rsp), 40);
        assert_eq!(offset_of!(TrapFrame, vector), 48);
        assert_eq!(offset_of!(TrapFrame, error_code), 56);
        assert_eq!(offset_of!(TrapFrame, fault_addr), 64);
    }

    #[test]
    fn hypervisor_vectors_are_refused() {
        for v in [2u8, 8, 10, 11, 18, 20, 31, 32, 255] {
            assert!(!trap_vector_allowed(v), "{v}");
        }
        assert!(trap_vector_allowed(vector::PF));
        assert_eq!(GUEST_RFLAGS_MASK & (RFLAGS_IF | (3 << 12)), 0);
    }
}
