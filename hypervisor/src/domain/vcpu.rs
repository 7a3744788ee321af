//! A virtual CPU: its registers (the block the entry stubs fill on every
//! exit, see `arch::guest`), its FPU state, its trap table and its
//! scheduling state.

use crate::arch::gdt::{USER_CS, USER_SS};
use crate::arch::guest::{Regs, VECTOR_SYSRET};
use crate::mm::frame::Mfn;
use dom0_abi::{GUEST_RFLAGS_MASK, RFLAGS_FIXED, RFLAGS_IF, TRAP_TABLE_MAX};

/// A `sched_poll` in progress.
#[derive(Clone, Debug)]
pub struct Poll {
    /// The ports waited on.
    pub ports: alloc::vec::Vec<u32>,
    /// System time at which it gives up (0: never).
    pub deadline_ns: u64,
}

/// One vCPU.
pub struct Vcpu {
    /// Index within its domain.
    pub id: u32,
    /// The guest's registers while it is not running.
    pub regs: Regs,
    /// The frame holding its FPU/SSE/AVX state.
    pub fpu: Mfn,
    /// Handler per exception vector (0: none).
    pub trap_table: [u64; TRAP_TABLE_MAX as usize],
    /// Event upcall entry (0: none).
    pub event_callback: u64,
    /// Brought up (vCPU 0 once the builder set its context).
    pub online: bool,
    /// Waiting in `sched_block`.
    pub blocked: bool,
    /// Something happened that a block should return for.
    pub wake_pending: bool,
    /// The `sched_poll` it waits in, if any.
    pub poll: Option<Poll>,
    /// `vcpu_set_timer` deadline in system time (0: none).
    pub timer_deadline_ns: u64,
    /// CPU affinity (`xm vcpu-pin`), bit n = CPU n.
    pub affinity: u64,
    /// CPU time used, TSC ticks.
    pub cpu_tsc: u64,
}

/// RFLAGS a guest runs with, from what it asked for.
pub fn guest_rflags(requested: u64) -> u64 {
    (requested & GUEST_RFLAGS_MASK) | RFLAGS_IF | RFLAGS_FIXED
}

impl Vcpu {
    /// A vCPU with zeroed registers, offline.
    pub fn new(id: u32, fpu: Mfn) -> Self {
        let regs = Regs {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rbp: 0,
            rdi: 0,
            rsi: 0,
            rdx: 0,
            rcx: 0,
            rbx: 0,
            rax: 0,
            vector: 0,
            error_code: 0,
            rip: 0,
            cs: u64::from(USER_CS),
            rflags: guest_rflags(0),
            rsp: 0,
            ss: u64::from(USER_SS),
        };
        Vcpu {
            id,
            regs,
            fpu,
            trap_table: [0; TRAP_TABLE_MAX as usize],
            event_callback: 0,
            online: false,
            blocked: false,
            wake_pending: false,
            poll: None,
            timer_deadline_ns: 0,
            affinity: u64::MAX,
            cpu_tsc: 0,
        }
    }

    /// Set the entry state: everything zero but these.
    pub fn set_context(&mut self, rip: u64, rsp: u64, rdi: u64, rsi: u64) {
        let fpu = self.fpu;
        let id = self.id;
        let affinity = self.affinity;
        *self = Vcpu::new(id, fpu);
        self.affinity = affinity;
        self.regs.rip = rip;
        self.regs.rsp = rsp;
        self.regs.rdi = rdi;
        self.regs.rsi = rsi;
        self.online = true;
    }

    /// Whether the scheduler may run it (the domain must be runnable too).
    pub fn runnable(&self) -> bool {
        self.online && !self.blocked
    }

    /// Return from the current hypercall with `sysretq` when that is safe.
    pub fn prefer_sysret(&mut self) {
        // sysretq to a non-canonical RIP faults in ring 0 on some CPUs. The
        // run loop crashes a domain whose return RIP is outside the lower
        // half before it gets here; the check stays as a second line.
        self.regs.rflags = guest_rflags(self.regs.rflags);
        if self.regs.rip < dom0_abi::GUEST_VA_LIMIT {
            self.regs.vector = VECTOR_SYSRET;
        } else {
            self.regs.vector = 0;
        }
    }
}
