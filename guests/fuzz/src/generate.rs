//! The generator: from the seed, one step after another. Most steps call a
//! valid hypercall (`Hypercall::ALL`, weighted) with arguments built for
//! it: random words, boundary values, small integers where the call takes
//! ports, domain IDs, vCPUs or counts, and pointers into the fuzzer's own
//! memory, mostly into its scratch frames, which the generator fills with
//! structured random content (`MmuOp` batches, trap tables, port lists,
//! domctl structures). Some steps use a raw random number with raw random
//! arguments, some `iret` through a landing pad, some probe the fuzzer's
//! own mappings. Nothing here looks at what the hypervisor answered, so
//! the sequence is a function of the seed alone; `guard.rs` then makes it
//! safe for the fuzzer.

use crate::layout::{
    Env, HV_DIRECT_MAP, HV_IMAGE, NON_CANONICAL, TRACKED, UNMAPPED_LEN, UNMAPPED_VA, WINDOW_PAGES, WINDOW_VA,
    page_of,
};
use crate::rng::Rng;
use crate::step::{Call, Expect, Iret, Probe, ProbeKind, Step, Target};
use dom0_abi::{
    CONSOLE_IO_MAX, DOMID_MAX, DOMID_SELF, GUEST_VA_LIMIT, Hypercall, MMU_BATCH_MAX, MMU_EXEC, MMU_MAP,
    MMU_MAP_SHARED_INFO, MMU_PROTECT, MMU_UNMAP, MMU_WRITE, MmuOp, PAGE_SIZE, POLL_PORTS_MAX, TRAP_TABLE_MAX,
    TrapEntry, trap_vector_allowed,
};
use zerocopy::IntoBytes;

/// How often a step uses a raw random number (1 in this many).
const RAW_ONE_IN: u64 = 10;
/// How often a step is a probe rather than a call (1 in this many).
const PROBE_ONE_IN: u64 = 40;

/// Relative weight of each hypercall among the valid-number steps.
fn weight(h: Hypercall) -> u32 {
    use Hypercall as H;
    match h {
        H::MmuBatch => 16,
        H::EvtchnSend | H::EvtchnClose => 5,
        H::VcpuSetTrapTable
        | H::MemoryInfo
        | H::MemoryIncrease
        | H::MemoryDecrease
        | H::EvtchnAllocUnbound
        | H::EvtchnBindInterdomain
        | H::EvtchnStatus
        | H::Iret => 4,
        H::SchedYield
        | H::VcpuSetCallbacks
        | H::VcpuSetTimer
        | H::EvtchnBindVirq
        | H::EvtchnBindIpi
        | H::EvtchnUnmask => 3,
        H::Version | H::ConsoleWrite | H::SchedShutdown | H::SchedPoll => 2,
        // Blocking costs wall time; privileged calls end in EPERM.
        _ => 1,
    }
}

/// The weights of `Hypercall::ALL`, in that order.
fn weights() -> [u32; Hypercall::ALL.len()] {
    let mut w = [0; Hypercall::ALL.len()];
    for (slot, h) in w.iter_mut().zip(Hypercall::ALL) {
        *slot = weight(h);
    }
    w
}

/// Boundary values every kind of argument is tried with now and then.
const BOUNDARIES: [u64; 16] = [
    0,
    1,
    u64::MAX,
    GUEST_VA_LIMIT - 1,
    GUEST_VA_LIMIT,
    NON_CANONICAL,
    PAGE_SIZE - 1,
    PAGE_SIZE,
    GUEST_VA_LIMIT - PAGE_SIZE,
    GUEST_VA_LIMIT - 8,
    HV_IMAGE,
    HV_DIRECT_MAP,
    HV_DIRECT_MAP - 8,
    1 << 32,
    u32::MAX as u64,
    i64::MAX as u64,
];

/// The step generator.
#[derive(Clone, Debug)]
pub struct Gen {
    rng: Rng,
    env: Env,
    weights: [u32; Hypercall::ALL.len()],
}

impl Gen {
    /// A generator for `seed` over the layout `env`.
    pub fn new(seed: u64, env: Env) -> Gen {
        Gen {
            rng: Rng::new(seed),
            env,
            weights: weights(),
        }
    }

    /// Fill the scratch frames with random bytes (once, at start).
    pub fn fill_scratch(&mut self, scratch: &mut [u8]) {
        self.rng.fill(scratch);
    }

    /// The next step; structures it points at are written into `scratch`
    /// (the bytes of `env.scratch`).
    pub fn step(&mut self, scratch: &mut [u8]) -> Step {
        if self.rng.one_in(PROBE_ONE_IN) {
            return Step::Probe(self.probe());
        }
        if self.rng.one_in(RAW_ONE_IN) {
            return self.raw();
        }
        let h = Hypercall::ALL[self.rng.weighted(&self.weights)];
        if h == Hypercall::Iret {
            return Step::Iret(self.iret());
        }
        let mut call = Call {
            nr: h as u64,
            args: [0; 6],
            salt: self.rng.next_u64(),
            ..Call::default()
        };
        // Unused argument registers carry junk: the hypervisor must ignore it.
        for a in &mut call.args {
            *a = self.junk();
        }
        self.fill_args(h, &mut call, scratch);
        Step::Call(call)
    }

    /// A raw step: a random number (small or anything) with random words.
    fn raw(&mut self) -> Step {
        let nr = match self.rng.below(4) {
            0 | 1 => self.rng.below(128),
            2 => self.rng.pick(&BOUNDARIES),
            _ => self.rng.next_u64(),
        };
        if nr == Hypercall::Iret as u64 {
            return Step::Iret(self.iret());
        }
        let mut call = Call {
            nr,
            salt: self.rng.next_u64(),
            ..Call::default()
        };
        for a in &mut call.args {
            *a = self.junk();
        }
        Step::Call(call)
    }

    /// An argument nobody should look at, or a raw one: random bits, a
    /// boundary value, or a small integer.
    fn junk(&mut self) -> u64 {
        match self.rng.below(3) {
            0 => self.rng.next_u64(),
            1 => self.rng.pick(&BOUNDARIES),
            _ => self.rng.below(64),
        }
    }

    fn fill_args(&mut self, h: Hypercall, c: &mut Call, scratch: &mut [u8]) {
        use Hypercall as H;
        let a = &mut c.args;
        match h {
            H::Version | H::SchedYield | H::SchedBlock | H::Iret => {}
            H::ConsoleWrite | H::ConsoleRead => {
                let (mut ptr, mut in_scratch) = self.pointer(64);
                if self.prints_own_text(ptr) {
                    // Our own strings would print our own report lines.
                    (ptr, in_scratch) = (self.env.scratch.start, true);
                }
                a[0] = ptr;
                // Whole pages of junk text only rarely: the transcript must stay readable.
                a[1] = if self.rng.one_in(if in_scratch { 200 } else { 8 }) {
                    self.rng.pick(&[
                        CONSOLE_IO_MAX - 1,
                        CONSOLE_IO_MAX,
                        CONSOLE_IO_MAX + 1,
                        u64::MAX,
                        1 << 32,
                    ])
                } else {
                    self.rng.below(65)
                };
            }
            H::SchedShutdown => a[0] = self.small_or_junk(6),
            H::VcpuSetTrapTable => {
                let count = self.count(&[0, 1, 2, 13, TRAP_TABLE_MAX, TRAP_TABLE_MAX + 1], 14);
                let (ptr, _) = self.structures(scratch, count, 16, Gen::trap_entry);
                a[0] = ptr;
                a[1] = count;
            }
            H::VcpuSetCallbacks => {
                a[0] = self.handler();
                a[1] = if self.rng.one_in(8) { self.junk() } else { 0 };
            }
            H::VcpuSetTimer => {
                let (value, relative) = self.deadline();
                a[0] = value;
                c.relative = relative;
            }
            H::MmuBatch => {
                let count = self.count(&[0, 1, 2, 64, MMU_BATCH_MAX, MMU_BATCH_MAX + 1, 600, u64::MAX], 9);
                let (ptr, _) = self.structures(scratch, count, 32, Gen::mmu_op);
                a[0] = ptr;
                a[1] = count;
                a[2] = self.domid();
            }
            H::MemoryInfo => a[0] = self.pointer(32).0,
            H::MemoryIncrease | H::MemoryDecrease => {
                a[0] = match self.rng.below(8) {
                    0 => self
                        .rng
                        .pick(&[0, self.env.max_pages, self.env.initial_pages, u64::MAX, 1 << 32]),
                    1 => self.rng.range(17, 600),
                    _ => self.rng.range(1, 16),
                };
            }
            H::SchedPoll => {
                let count = self.count(&[0, 1, 2, POLL_PORTS_MAX, POLL_PORTS_MAX + 1, u64::MAX], 9);
                let (ptr, _) = self.structures(scratch, count, 4, Gen::port_bytes);
                a[0] = ptr;
                a[1] = count;
                a[2] = match self.rng.below(6) {
                    0 => 0,
                    1 => self.rng.pick(&[u64::MAX, 1 << 40, i64::MAX as u64]),
                    2 => self.rng.range(1, 1_000_000),
                    _ => self.rng.range(1, 20_000),
                };
            }
            H::EvtchnAllocUnbound | H::EvtchnBindIpi => a[0] = self.domid_or_vcpu(h),
            H::EvtchnBindInterdomain => {
                a[0] = self.domid();
                a[1] = self.port();
            }
            H::EvtchnBindVirq => {
                a[0] = self.small_or_junk(6);
                a[1] = self.small_or_junk(10);
            }
            H::EvtchnSend | H::EvtchnClose | H::EvtchnUnmask => a[0] = self.port(),
            H::EvtchnStatus => {
                a[0] = self.port();
                a[1] = self.pointer(32).0;
            }
            // The privileged interface: a domU must get EPERM whatever it
            // passes, so the arguments are domain IDs and pointers at random
            // bytes of the right size.
            H::DomctlCreate | H::SysctlPhysinfo | H::SysctlDmesg => {
                a[0] = self.random_structure(scratch, 64);
            }
            H::DomctlDestroy | H::DomctlPause | H::DomctlUnpause => a[0] = self.domid(),
            H::DomctlGetInfo
            | H::DomctlSetVcpuContext
            | H::DomctlSchedGet
            | H::DomctlSchedSet
            | H::DomctlConsoleRead => {
                a[0] = self.domid();
                a[1] = self.random_structure(scratch, 96);
            }
            H::DomctlShutdown | H::DomctlSetMaxMem | H::DomctlSetVcpus | H::DomctlSetTarget => {
                a[0] = self.domid();
                a[1] = self.small_or_junk(8);
            }
            H::DomctlVcpuPin | H::DomctlVcpuInfo => {
                a[0] = self.domid();
                a[1] = self.small_or_junk(10);
                a[2] = self.random_structure(scratch, 32);
            }
            // A hypercall added to the ABI after this list keeps the junk
            // arguments until it gets an arm of its own.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    /// Whether a console write from `ptr` could print the fuzzer's own
    /// strings (its read-only data, or any of its frames through the
    /// physmap): junk that reads like a report line would fool whoever
    /// reads the transcript.
    fn prints_own_text(&self, ptr: u64) -> bool {
        let e = &self.env;
        let near = |r: &core::ops::Range<u64>| ptr >= r.start.saturating_sub(CONSOLE_IO_MAX) && ptr < r.end;
        (near(&e.rodata) || near(&e.initial_physmap())) && !e.scratch.contains(&ptr)
    }

    /// A count: mostly `1..=typical`, sometimes one of `edges`.
    fn count(&mut self, edges: &[u64], typical: u64) -> u64 {
        if self.rng.one_in(6) {
            self.rng.pick(edges)
        } else {
            self.rng.range(1, typical)
        }
    }

    /// A small integer below `n`, or now and then junk.
    fn small_or_junk(&mut self, n: u64) -> u64 {
        if self.rng.one_in(8) {
            self.junk()
        } else {
            self.rng.below(n)
        }
    }

    /// A domain ID: 0..8, ourselves, `DOMID_SELF`, or past the range.
    fn domid(&mut self) -> u64 {
        match self.rng.below(8) {
            0..=2 => self.rng.below(9),
            3 | 4 => u64::from(DOMID_SELF),
            5 => u64::from(self.env.domid),
            6 => self.rng.pick(&[
                u64::from(DOMID_MAX),
                u64::from(DOMID_SELF) + 1,
                0xffff,
                0x1_0000,
                0x1_7ff0,
            ]),
            _ => self.junk(),
        }
    }

    fn domid_or_vcpu(&mut self, h: Hypercall) -> u64 {
        if h == Hypercall::EvtchnBindIpi {
            self.small_or_junk(9)
        } else {
            self.domid()
        }
    }

    /// An event-channel port: mostly 0..64, sometimes past the table.
    fn port(&mut self) -> u64 {
        match self.rng.below(10) {
            0 => self
                .rng
                .pick(&[4095, 4096, u64::from(u32::MAX), 1 << 32, u64::MAX]),
            1 => self.junk(),
            _ => self.rng.below(64),
        }
    }

    /// An event-upcall or trap handler: a real one is put in by the guard;
    /// the rest must be refused.
    fn handler(&mut self) -> u64 {
        match self.rng.below(6) {
            0 => 0,
            1 => self
                .rng
                .pick(&[HV_IMAGE, HV_DIRECT_MAP, GUEST_VA_LIMIT, NON_CANONICAL, u64::MAX]),
            _ => self.env.text.start + self.rng.below(self.env.text.end - self.env.text.start),
        }
    }

    /// A timer deadline: `(value, relative to now)`.
    fn deadline(&mut self) -> (u64, bool) {
        match self.rng.below(8) {
            0 => (0, false),
            1 => (1, false),
            2 => (self.rng.pick(&[u64::MAX, i64::MAX as u64, 1 << 63]), false),
            3 => (self.rng.next_u64(), false),
            4 => (self.rng.range(1_000_000_000, 100_000_000_000), true),
            _ => (self.rng.range(1_000, 500_000), true),
        }
    }

    /// A pointer for a call that reads or writes about `len` bytes:
    /// `(address, whether it points into scratch)`.
    fn pointer(&mut self, len: u64) -> (u64, bool) {
        let scratch = self.env.scratch.clone();
        let size = scratch.end - scratch.start;
        let e = &self.env;
        match self.rng.below(20) {
            0..=10 => {
                let room = size.saturating_sub(len.min(size));
                (scratch.start + (self.rng.below(room / 8 + 1) * 8), true)
            }
            11 => (scratch.start + self.rng.below(size), true),
            12 => (scratch.end - self.rng.range(1, len.clamp(1, size)), true),
            _ => {
                let fixed = [
                    0,
                    1,
                    PAGE_SIZE - 1,
                    PAGE_SIZE,
                    e.text.start,
                    e.rodata.start,
                    e.rodata.end - 8,
                    e.start_info,
                    e.start_info + PAGE_SIZE - 8,
                    e.shared_info,
                    e.physmap,
                    GUEST_VA_LIMIT - 8,
                    GUEST_VA_LIMIT - PAGE_SIZE,
                    GUEST_VA_LIMIT,
                    NON_CANONICAL,
                    u64::MAX - 7,
                    HV_IMAGE,
                    HV_DIRECT_MAP,
                    HV_DIRECT_MAP - 8,
                    UNMAPPED_VA,
                ];
                let p = match self.rng.below(4) {
                    0 => e.frame_va(self.rng.below(e.initial_pages)),
                    1 => WINDOW_VA + self.rng.below(WINDOW_PAGES) * PAGE_SIZE + self.rng.below(8) * 8,
                    2 => self.rng.next_u64(),
                    _ => self.rng.pick(&fixed),
                };
                (p, false)
            }
        }
    }

    /// A pointer for `count` structures of `size` bytes; when it points
    /// into scratch, `make` writes each structure there (as many as fit).
    fn structures(
        &mut self,
        scratch: &mut [u8],
        count: u64,
        size: usize,
        make: fn(&mut Gen, &mut [u8]),
    ) -> (u64, bool) {
        let want = count.min(1024).saturating_mul(size as u64);
        let (ptr, in_scratch) = self.pointer(want);
        if in_scratch {
            let offset = usize::try_from(ptr - self.env.scratch.start).unwrap_or(usize::MAX);
            let n = usize::try_from(count.min(1024)).unwrap_or(0);
            let mut at = offset;
            for _ in 0..n {
                let Some(slot) = at.checked_add(size).and_then(|end| scratch.get_mut(at..end)) else {
                    break;
                };
                make(self, slot);
                at += size;
            }
        }
        (ptr, in_scratch)
    }

    /// A pointer at `len` random bytes (in scratch when it points there).
    fn random_structure(&mut self, scratch: &mut [u8], len: usize) -> u64 {
        self.structures(scratch, 1, len, |g, slot| g.rng.fill(slot)).0
    }

    /// A random, mostly well-formed `MmuOp`.
    fn mmu_op(&mut self, slot: &mut [u8]) {
        let e = self.env.clone();
        let op = match self.rng.below(10) {
            0..=3 => MMU_MAP,
            4 | 5 => MMU_UNMAP,
            6 | 7 => MMU_PROTECT,
            8 => MMU_MAP_SHARED_INFO,
            _ => u32::try_from(self.rng.below(8)).unwrap_or(0),
        };
        let flags = match self.rng.below(10) {
            0..=7 => self
                .rng
                .pick(&[0, MMU_WRITE, MMU_EXEC, MMU_WRITE | MMU_EXEC, 0, 0]),
            _ => (self.rng.next_u64() & 0xffff_ffff) as u32,
        };
        let va = match self.rng.below(20) {
            0..=11 => WINDOW_VA + self.rng.below(WINDOW_PAGES) * PAGE_SIZE,
            12 | 13 => e.tracked_va(self.rng.index(TRACKED)),
            14 => {
                let regions = [
                    e.image.clone(),
                    e.stack.clone(),
                    e.info_pages(),
                    e.initial_physmap(),
                ];
                let r = &regions[self.rng.index(regions.len())];
                page_of(r.start + self.rng.below(r.end - r.start))
            }
            15 => e.frame_va(e.initial_pages + self.rng.below(64)),
            _ => {
                let random = self.rng.next_u64();
                self.rng.pick(&[
                    0,
                    WINDOW_VA + 8,
                    GUEST_VA_LIMIT,
                    NON_CANONICAL,
                    HV_IMAGE,
                    HV_DIRECT_MAP,
                    random,
                    page_of(random),
                ])
            }
        };
        let gfn = match self.rng.below(10) {
            0..=5 => e.junk.start + self.rng.below(e.junk.end - e.junk.start),
            6 => e.initial_pages + self.rng.below(64),
            7 => self.rng.below(e.initial_pages + 16),
            _ => {
                let random = self.rng.next_u64();
                self.rng
                    .pick(&[e.initial_pages, e.max_pages, u64::MAX, 1 << 40, random])
            }
        };
        let frame_domid = match self.rng.below(20) {
            0..=16 => DOMID_SELF,
            17 => self.env.domid,
            18 => 0,
            _ => (self.rng.next_u64() & 0xffff) as u16,
        };
        let tidy = matches!(op, MMU_UNMAP | MMU_PROTECT) && self.rng.below(10) < 7;
        let op = MmuOp {
            op,
            flags: if tidy && op == MMU_UNMAP { 0 } else { flags },
            va,
            gfn: if tidy || op == MMU_MAP_SHARED_INFO && self.rng.below(4) != 0 {
                0
            } else {
                gfn
            },
            frame_domid,
            pad: if self.rng.one_in(20) {
                [1, 0, 0, 0, 0, 0]
            } else {
                [0; 6]
            },
        };
        slot.copy_from_slice(op.as_bytes());
    }

    /// A random, mostly well-formed `TrapEntry`.
    fn trap_entry(&mut self, slot: &mut [u8]) {
        let vector = if self.rng.below(10) < 7 {
            loop {
                let v = u8::try_from(self.rng.below(20)).unwrap_or(0);
                if trap_vector_allowed(v) {
                    break v;
                }
            }
        } else {
            u8::try_from(self.rng.below(256)).unwrap_or(0)
        };
        let e = TrapEntry {
            vector,
            flags: if self.rng.one_in(10) { 1 } else { 0 },
            pad: if self.rng.one_in(20) {
                [0, 0, 0, 0, 0, 1]
            } else {
                [0; 6]
            },
            handler: self.handler(),
        };
        slot.copy_from_slice(e.as_bytes());
    }

    /// A random port number for a `sched_poll` list.
    fn port_bytes(&mut self, slot: &mut [u8]) {
        let port = u32::try_from(self.port() & 0xffff_ffff).unwrap_or(0);
        slot.copy_from_slice(&port.to_le_bytes());
    }

    /// An `iret` step.
    fn iret(&mut self) -> Iret {
        let target = match self.rng.below(10) {
            0..=6 => Target::Pad,
            7 => Target::Addr(UNMAPPED_VA + self.rng.below(UNMAPPED_LEN)),
            8 => Target::Addr(WINDOW_VA + self.rng.below(WINDOW_PAGES * PAGE_SIZE)),
            _ => Target::Addr(self.rng.pick(&[
                0,
                0x10,
                PAGE_SIZE - 1,
                GUEST_VA_LIMIT - 1,
                GUEST_VA_LIMIT - PAGE_SIZE,
            ])),
        };
        let rflags = match self.rng.below(4) {
            0 => self.rng.next_u64(),
            // TF, DF, AC, IOPL, NT, VM, ID and plain.
            _ => self.rng.pick(&[
                0,
                1 << 8,
                1 << 10,
                1 << 18,
                3 << 12,
                1 << 14,
                1 << 17,
                1 << 21,
                0x202,
            ]),
        };
        Iret {
            target,
            regs: [self.rng.next_u64(), self.rng.next_u64(), self.rng.next_u64()],
            rflags,
            expect: Expect::Any,
            refill: None,
        }
    }

    /// A probe of a tracked page or of memory that must fault.
    fn probe(&mut self) -> Probe {
        let kind = match self.rng.below(3) {
            0 => ProbeKind::Read,
            1 => ProbeKind::Write,
            _ => ProbeKind::Jump,
        };
        let addr = match self.rng.below(10) {
            0..=5 => WINDOW_VA + self.rng.below(WINDOW_PAGES) * PAGE_SIZE + self.rng.below(PAGE_SIZE / 8) * 8,
            6 | 7 => self.env.tracked_va(self.rng.index(TRACKED)),
            _ => self
                .rng
                .pick(&[HV_IMAGE, HV_DIRECT_MAP, NON_CANONICAL, UNMAPPED_VA, 0, 8]),
        };
        Probe {
            kind,
            addr,
            expect: Expect::Any,
            refill: None,
        }
    }

    /// A step that reads the mapping at `va` (after a batch changed it).
    pub fn probe_at(&mut self, va: u64) -> Probe {
        let kind = match self.rng.below(3) {
            0 => ProbeKind::Read,
            1 => ProbeKind::Write,
            _ => ProbeKind::Jump,
        };
        Probe {
            kind,
            addr: page_of(va)
                + if kind == ProbeKind::Jump {
                    0
                } else {
                    self.rng.below(PAGE_SIZE / 8) * 8
                },
            expect: Expect::Any,
            refill: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::env;

    fn run(seed: u64, steps: usize) -> (Vec<Step>, Vec<u8>) {
        let e = env();
        let mut g = Gen::new(seed, e.clone());
        let mut scratch = vec![0u8; usize::try_from(e.scratch.end - e.scratch.start).unwrap_or(0)];
        g.fill_scratch(&mut scratch);
        let steps = (0..steps).map(|_| g.step(&mut scratch)).collect();
        (steps, scratch)
    }

    #[test]
    fn same_seed_same_steps_and_structures() {
        let (a, sa) = run(99, 5000);
        let (b, sb) = run(99, 5000);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        let (c, _) = run(100, 5000);
        assert_ne!(a, c);
    }

    #[test]
    fn every_hypercall_and_raw_numbers_appear() {
        let (steps, _) = run(5, 40_000);
        for h in Hypercall::ALL {
            let seen = steps.iter().any(|s| match s {
                Step::Call(c) => c.nr == h as u64,
                Step::Iret(_) => h == Hypercall::Iret,
                Step::Probe(_) => false,
            });
            assert!(seen, "{} never generated", h.name());
        }
        let raw = steps
            .iter()
            .filter(|s| matches!(s, Step::Call(c) if Hypercall::try_from(c.nr).is_err()));
        assert!(raw.count() > 100);
        assert!(steps.iter().filter(|s| matches!(s, Step::Probe(_))).count() > 100);
    }

    #[test]
    fn mmu_batches_in_scratch_are_mostly_well_formed() {
        let e = env();
        let mut g = Gen::new(3, e.clone());
        let mut scratch = vec![0u8; usize::try_from(e.scratch.end - e.scratch.start).unwrap_or(0)];
        let mut maps = 0;
        for _ in 0..2000 {
            let (ptr, inside) = g.structures(&mut scratch, 4, 32, Gen::mmu_op);
            if !inside {
                continue;
            }
            let at = usize::try_from(ptr - e.scratch.start).unwrap_or(0);
            let Some(bytes) = scratch.get(at..at + 32) else {
                continue;
            };
            let op = <MmuOp as zerocopy::FromBytes>::read_from_bytes(bytes).expect("32 bytes");
            if op.op == MMU_MAP && op.va >= WINDOW_VA && op.va < WINDOW_VA + WINDOW_PAGES * PAGE_SIZE {
                maps += 1;
            }
        }
        assert!(maps > 200, "{maps}");
    }
}
