//! One step of a fuzzing run: a hypercall (most steps), an `iret` through
//! a landing pad, or a probe of the fuzzer's own address space. `generate.rs`
//! makes steps, `guard.rs` makes them safe for the fuzzer and says what a
//! probe must see, the guest issues them.

/// A hypercall with its arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// The number in `rax`.
    pub nr: u64,
    /// `rdi rsi rdx r10 r8 r9`.
    pub args: [u64; 6],
    /// `args[0]` is a delay to add to the system time when the call is
    /// made (a `vcpu_set_timer` deadline "now + x").
    pub relative: bool,
    /// A random word the guard uses for its choices, so that they too
    /// follow from the seed.
    pub salt: u64,
    /// What to do just before the call.
    pub pre: Pre,
    /// What to do just after it.
    pub post: Post,
}

/// What the guest does right before a call, so that the call cannot hang it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pre {
    /// Nothing.
    #[default]
    None,
    /// Mask event upcalls (`evtchn_upcall_mask`) and send an event on the
    /// guard IPI port: it stays pending, so a block returns at once and a
    /// poll that lists the port finds it pending. (Unmasked, the upcall
    /// would deliver the event on the way back from the send, and the wait
    /// would start with nothing pending.) Goes with [`Post::Unmask`].
    MaskAndSendIpi,
    /// Mask event upcalls and arm the one-shot timer this many nanoseconds
    /// ahead: a block ends then, or at once if the timer fired first (its
    /// event stays pending while upcalls are masked; unmasked, it would be
    /// delivered before the block and the block would never end). Goes with
    /// [`Post::Unmask`].
    MaskAndArmTimer(u64),
}

/// What the guest does right after a call, whatever it returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Post {
    /// Nothing.
    #[default]
    None,
    /// Register the fuzzer's own trap table again.
    RestoreTraps,
    /// Register the SDK's event entry again.
    RestoreCallbacks,
    /// Clear `evtchn_upcall_mask` again (after [`Pre::MaskAndSendIpi`]); the
    /// pending event is delivered on the way back from the next call.
    Unmask,
}

/// Where an `iret` resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The landing pad right after the call.
    Pad,
    /// An address that must fault (or hit an `int3`), which the probe
    /// handler turns into a resume at the landing pad.
    Addr(u64),
}

/// An `iret` with a frame the fuzzer builds on its own stack: `rsp` in the
/// frame is the stack pointer before it was built, so wherever the context
/// resumes the stack is intact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iret {
    /// Where it resumes.
    pub target: Target,
    /// `rax`, `rcx`, `r11` in the frame.
    pub regs: [u64; 3],
    /// RFLAGS in the frame (the hypervisor masks it).
    pub rflags: u64,
    /// What must happen.
    pub expect: Expect,
    /// Put an `int3` at this (physmap) address first: the junk frame
    /// behind the target.
    pub refill: Option<u64>,
}

/// What a probe does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// Read the `u64` at the address.
    Read,
    /// Write `0xcccc_cccc_cccc_cccc` there (only where that is harmless).
    Write,
    /// Jump there.
    Jump,
}

/// An access to the fuzzer's own address space whose outcome the shadow
/// of its mappings predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Read, write or jump.
    pub kind: ProbeKind,
    /// Where.
    pub addr: u64,
    /// What must happen.
    pub expect: Expect,
    /// Put an `int3` at this (physmap) address first (see [`Iret::refill`]).
    pub refill: Option<u64>,
}

/// The outcome a probe or an `iret` must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Nothing is known (the shadow lost track).
    Any,
    /// No fault.
    Clean,
    /// A fault with this vector, at this `rip` when given.
    Fault {
        /// Exception vector.
        vector: u8,
        /// Where the fault must be reported.
        rip: Option<u64>,
    },
}

/// A trap the fuzzer took and caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trap {
    /// Exception vector.
    pub vector: u64,
    /// Where it was reported.
    pub rip: u64,
    /// CR2 for a page fault.
    pub addr: u64,
}

impl Expect {
    /// Whether `trap` (or no trap) is what was expected; why not otherwise.
    pub fn judge(self, trap: Option<Trap>) -> Result<(), alloc::string::String> {
        use alloc::format;
        match (self, trap) {
            (Expect::Any, _) | (Expect::Clean, None) => Ok(()),
            (Expect::Clean, Some(t)) => Err(format!(
                "expected no fault, got vector {} at rip {:#x} (address {:#x})",
                t.vector, t.rip, t.addr
            )),
            (Expect::Fault { vector, rip }, None) => Err(format!(
                "expected vector {vector}{}, got no fault",
                rip.map(|r| format!(" at rip {r:#x}")).unwrap_or_default()
            )),
            (Expect::Fault { vector, rip }, Some(t)) => {
                if t.vector == u64::from(vector) && rip.is_none_or(|r| r == t.rip) {
                    Ok(())
                } else {
                    Err(format!(
                        "expected vector {vector}{}, got vector {} at rip {:#x} (address {:#x})",
                        rip.map(|r| format!(" at rip {r:#x}")).unwrap_or_default(),
                        t.vector,
                        t.rip,
                        t.addr
                    ))
                }
            }
        }
    }
}

/// One step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A hypercall.
    Call(Call),
    /// An `iret` hypercall through the landing pad.
    Iret(Iret),
    /// A probe (not a hypercall; not counted as a call).
    Probe(Probe),
}

impl Step {
    /// Whether the step makes a hypercall (and counts towards `calls=`).
    pub fn is_call(&self) -> bool {
        !matches!(self, Step::Probe(_))
    }

    /// The words that identify the step for the sequence checksum: what is
    /// issued after the guard, with time-relative values as the offsets
    /// they are (so that the checksum does not depend on the clock).
    pub fn words(&self) -> [u64; 8] {
        match *self {
            Step::Call(c) => [
                c.nr,
                c.args[0],
                c.args[1],
                c.args[2],
                c.args[3],
                c.args[4],
                c.args[5],
                u64::from(c.relative),
            ],
            Step::Iret(i) => {
                let target = match i.target {
                    Target::Pad => 0,
                    Target::Addr(a) => a,
                };
                [8, target, i.regs[0], i.regs[1], i.regs[2], i.rflags, 0, 1 << 32]
            }
            Step::Probe(p) => [u64::MAX, p.kind as u64, p.addr, 0, 0, 0, 0, 2 << 32],
        }
    }
}
