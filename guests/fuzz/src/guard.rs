//! The guard: keeps the fuzzer alive without taking the danger out of its
//! calls, and judges what came back.
//!
//! Before a step it rewrites what would kill the fuzzer on purpose rather
//! than by a hypervisor bug: `sched_shutdown` with a valid reason, `mmu_batch`
//! operations that would unmap or re-protect its image, stack, info pages
//! or initial physmap (or touch pages it does not track), `memory_decrease`
//! of frames it did not grow, event handlers other than its real ones (and
//! it registers the real ones again right after), `close`/`send` on the
//! ports it lives on, output pointers at its own data, waits that could
//! last for ever, jumps where its shadow cannot say what happens.
//!
//! After a call it checks what the ABI promises: a batch with a reserved
//! bit, a W+X mapping or a page it does not own must be refused whole; a
//! pointer at unmapped or read-only memory must give `EFAULT`, not
//! success; a domU never gets a privileged call through; `memory_increase`
//! and `memory_decrease` move `tot_pages` exactly; `memory_info` agrees.
//! A broken promise is a [`Bug`]. Probes and `iret`s get the outcome the
//! [`Shadow`] predicts ([`Expect`]).

use crate::layout::{
    Env, HV_DIRECT_MAP, Mapping, Shadow, UNMAPPED_LEN, UNMAPPED_VA, WINDOW_PAGES, WINDOW_VA, mappable,
    never_mapped, page_of, span, within,
};
use crate::step::{Call, Expect, Iret, Post, Pre, Probe, ProbeKind, Step, Target};
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use dom0_abi::{
    CONSOLE_IO_MAX, ConsoleRead, DOMID_SELF, GUEST_VA_LIMIT, Hypercall, MMU_BATCH_MAX, MMU_EXEC,
    MMU_FLAGS_ALL, MMU_MAP, MMU_MAP_SHARED_INFO, MMU_PROTECT, MMU_UNMAP, MMU_WRITE, MemoryInfo, MmuOp,
    PAGE_SIZE, POLL_PORTS_MAX, ShutdownReason, Status, TRAP_TABLE_MAX, TrapEntry, abi_version_packed,
    trap_vector_allowed, vector,
};
use zerocopy::{FromBytes, IntoBytes};

/// The longest a `sched_poll` may wait when the guard cannot make one of
/// its ports pending first.
pub const POLL_MAX_NS: u64 = 200_000;
/// Size of an `MmuOp`.
const OP_SIZE: u64 = 32;

/// A broken promise: the hypervisor did what the ABI says it must not.
pub type Bug = String;

/// Reads `len` bytes of the fuzzer's own memory at a virtual address (the
/// guest reads them directly; the host tests use a fake). Only ever called
/// for ranges inside [`Env::readable_regions`].
pub type ReadMem<'a> = &'a dyn Fn(u64, &mut [u8]);

/// Where the operations of the current `mmu_batch` come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Batch {
    /// The guard read them (they are in `Guard::ops`).
    Known,
    /// The call must fail before reading any (bad pointer, bad count).
    MustFail,
}

/// The guard's state across steps.
#[derive(Clone, Debug)]
pub struct Guard {
    /// The address space.
    pub env: Env,
    /// What the tracked pages map.
    pub shadow: Shadow,
    /// Frames grown with `memory_increase` and not given back.
    pub grown: u64,
    /// Ports the fuzzer lives on: VIRQ_CONTROL, VIRQ_TIMER, the guard IPI,
    /// the canary link (0: none).
    pub protected_ports: [u32; 4],
    /// The guard IPI port (also in `protected_ports`).
    pub ipi_port: u32,
    /// The real trap entry stub by vector (0: none).
    pub stubs: [u64; 32],
    /// The real event upcall entry.
    pub event_entry: u64,
    /// Let `MMU_PROTECT` make a mapping of the shared-info page executable.
    /// Off by default: `MMU_MAP_SHARED_INFO` refuses an executable mapping,
    /// but `MMU_PROTECT` grants one, so the page the hypervisor writes time
    /// and event bits into runs as code. With `allow=shx` such a batch
    /// accepted is a broken promise.
    pub shared_exec: bool,
    /// The operations of the current batch.
    ops: Vec<MmuOp>,
    batch: Batch,
}

impl Guard {
    /// A guard for `env`, nothing grown or mapped yet.
    pub fn new(
        env: Env,
        protected_ports: [u32; 4],
        ipi_port: u32,
        stubs: [u64; 32],
        event_entry: u64,
    ) -> Guard {
        Guard {
            env,
            shadow: Shadow::default(),
            grown: 0,
            protected_ports,
            ipi_port,
            stubs,
            event_entry,
            shared_exec: false,
            ops: Vec::new(),
            batch: Batch::MustFail,
        }
    }

    /// Frames the domain has now.
    pub fn tot_pages(&self) -> u64 {
        self.env.initial_pages + self.grown
    }

    /// Offset of `[ptr, ptr + len)` in scratch, if it lies there.
    fn in_scratch(&self, ptr: u64, len: u64) -> Option<usize> {
        let r = span(ptr, len)?;
        within(&r, &self.env.scratch)
            .then(|| usize::try_from(ptr - self.env.scratch.start).ok())
            .flatten()
    }

    /// A scratch address with room for `len` bytes, chosen by `salt`.
    fn scratch_spot(&self, len: u64, salt: u64) -> u64 {
        let size = self.env.scratch.end - self.env.scratch.start;
        let room = size.saturating_sub(len);
        self.env.scratch.start + (salt % (room / 8 + 1)) * 8
    }

    /// Make `step` safe to issue and fill in what it must do; `scratch`
    /// is the bytes of `env.scratch`, `mem` reads other own memory.
    pub fn prepare(&mut self, step: &mut Step, scratch: &mut [u8], mem: ReadMem<'_>) {
        match step {
            Step::Call(c) => self.prepare_call(c, scratch, mem),
            Step::Iret(i) => self.prepare_iret(i),
            Step::Probe(p) => self.prepare_probe(p),
        }
    }

    fn prepare_call(&mut self, c: &mut Call, scratch: &mut [u8], mem: ReadMem<'_>) {
        use Hypercall as H;
        let Ok(h) = Hypercall::try_from(c.nr) else { return };
        let a = &mut c.args;
        match h {
            H::SchedShutdown if ShutdownReason::try_from(a[0]).is_ok() => a[0] += 3,
            H::SchedBlock => {
                c.pre = if c.salt.is_multiple_of(4) {
                    Pre::MaskAndArmTimer(20_000 + (c.salt >> 2) % 200_000)
                } else {
                    Pre::MaskAndSendIpi
                };
                c.post = Post::Unmask;
            }
            H::SchedPoll => {
                let (ptr, count, timeout) = (a[0], a[1], a[2]);
                if timeout == 0 || timeout > POLL_MAX_NS {
                    let fits = (1..=POLL_PORTS_MAX).contains(&count);
                    match self.in_scratch(ptr, count.saturating_mul(4)).filter(|_| fits) {
                        Some(at) => {
                            let slot = at + usize::try_from((c.salt % count) * 4).unwrap_or(0);
                            if let Some(b) = scratch.get_mut(slot..slot + 4) {
                                b.copy_from_slice(&self.ipi_port.to_le_bytes());
                            }
                            c.pre = Pre::MaskAndSendIpi;
                            c.post = Post::Unmask;
                        }
                        None => a[2] = 1 + timeout % POLL_MAX_NS,
                    }
                }
            }
            H::VcpuSetTrapTable => {
                let count = a[1].min(TRAP_TABLE_MAX);
                if let Some(at) = self.in_scratch(a[0], count * 16) {
                    for i in 0..usize::try_from(count).unwrap_or(0) {
                        let o = at + i * 16;
                        let Some(bytes) = scratch.get_mut(o..o + 16) else {
                            break;
                        };
                        let Ok(mut e) = TrapEntry::read_from_bytes(bytes) else {
                            break;
                        };
                        let stub = self.stubs.get(usize::from(e.vector)).copied().unwrap_or(0);
                        if e.handler != 0 && e.handler < GUEST_VA_LIMIT && trap_vector_allowed(e.vector) {
                            e.handler = stub;
                            bytes.copy_from_slice(e.as_bytes());
                        }
                    }
                }
                c.post = Post::RestoreTraps;
            }
            H::VcpuSetCallbacks => {
                if a[1] == 0 && a[0] != 0 && a[0] < GUEST_VA_LIMIT {
                    a[0] = self.event_entry;
                }
                c.post = Post::RestoreCallbacks;
            }
            H::MmuBatch => self.prepare_batch(c, scratch, mem),
            H::MemoryDecrease => {
                let (count, tot) = (a[0], self.tot_pages());
                if count != 0 && count < tot && count > self.grown {
                    a[0] = if self.grown > 0 {
                        1 + c.salt % self.grown
                    } else {
                        tot + c.salt % 4
                    };
                }
            }
            H::EvtchnSend | H::EvtchnClose
                if u32::try_from(a[0]).is_ok_and(|p| p != 0 && self.protected_ports.contains(&p)) =>
            {
                a[0] += 4096;
            }
            H::MemoryInfo | H::SysctlPhysinfo => self.guard_output(&mut a[0], 64, c.salt),
            H::ConsoleRead => {
                let len = a[1].min(CONSOLE_IO_MAX);
                self.guard_output(&mut a[0], len, c.salt);
            }
            H::EvtchnStatus | H::DomctlGetInfo | H::DomctlSchedGet => {
                self.guard_output(&mut a[1], 96, c.salt)
            }
            H::DomctlVcpuInfo => self.guard_output(&mut a[2], 32, c.salt),
            H::DomctlConsoleRead | H::SysctlDmesg => {
                // An in/out record whose `buf` is written too.
                let slot = if h == H::SysctlDmesg { 0 } else { 1 };
                self.guard_output(&mut a[slot], 32, c.salt);
                if let Some(at) = self.in_scratch(a[slot], 32)
                    && let Some(bytes) = scratch.get_mut(at..at + 32)
                    && let Ok(mut io) = ConsoleRead::read_from_bytes(bytes)
                {
                    let len = io.len.min(CONSOLE_IO_MAX);
                    let mut buf = io.buf;
                    self.guard_output(&mut buf, len, c.salt.rotate_left(7));
                    io.buf = buf;
                    bytes.copy_from_slice(io.as_bytes());
                }
            }
            _ => {}
        }
    }

    /// Whether the fuzzer knows `va` to be mapped (`Some(true)`), known to
    /// be unmapped (`Some(false)`), or cannot say; and if mapped, writable.
    fn access(&self, va: u64) -> Option<(bool, bool)> {
        let e = &self.env;
        if never_mapped(va) {
            return Some((false, false));
        }
        if let Some(m) = self.shadow.get(e, va) {
            return match m {
                Mapping::Unmapped => Some((false, false)),
                Mapping::Frame { write, .. } | Mapping::SharedInfo { write, .. } => Some((true, write)),
                Mapping::Unknown => None,
            };
        }
        if e.grown_physmap(va) {
            // Above the frames the domain has: nothing (operations may not
            // map there). Below: the hypervisor mapped each grown frame, but
            // operations may have unmapped or re-protected it since.
            return (va >= e.frame_va(self.tot_pages())).then_some((false, false));
        }
        if e.read_only(va) {
            return Some((true, false));
        }
        let rw = [
            e.image.clone(),
            e.stack.clone(),
            e.info_pages(),
            e.initial_physmap(),
        ];
        rw.iter().any(|r| r.contains(&va)).then_some((true, true))
    }

    /// What every page of `[ptr, ptr + len)` allows: `Some((readable,
    /// writable))` for the whole range when known.
    fn range_access(&self, ptr: u64, len: u64) -> Option<(bool, bool)> {
        if len == 0 {
            return Some((true, true));
        }
        let Some(end) = ptr.checked_add(len - 1) else {
            return Some((false, false));
        };
        let (mut read, mut write) = (true, true);
        let mut page = page_of(ptr);
        loop {
            let (r, w) = self.access(page.max(ptr))?;
            read &= r;
            write &= w;
            if page >= page_of(end) {
                break;
            }
            page += PAGE_SIZE;
        }
        Some((read, write))
    }

    /// Whether the hypervisor may write `len` bytes at `ptr` without
    /// hurting the fuzzer: scratch, grown frames, junk mappings, or memory
    /// it must refuse (read-only, unmapped, the upper half).
    fn output_harmless(&self, ptr: u64, len: u64) -> bool {
        if self.in_scratch(ptr, len).is_some() {
            return true;
        }
        let e = &self.env;
        let Some(end) = ptr.checked_add(len.max(1) - 1) else {
            return true;
        };
        // A write that starts on a page it may not write faults there first.
        if ptr >= GUEST_VA_LIMIT || e.read_only(ptr) {
            return true;
        }
        let mut page = page_of(ptr);
        loop {
            let ok = match self.shadow.get(e, page) {
                Some(Mapping::Unmapped) => true,
                Some(Mapping::Frame { gfn, write, .. }) => !write || e.is_junk(gfn) || gfn >= e.initial_pages,
                Some(Mapping::SharedInfo { write, .. }) => !write,
                Some(Mapping::Unknown) => false,
                None => never_mapped(page) || e.grown_physmap(page) || e.scratch.contains(&page),
            };
            if !ok {
                return false;
            }
            if page >= page_of(end) {
                return true;
            }
            page += PAGE_SIZE;
        }
    }

    /// Point an output argument somewhere harmless if it is not.
    fn guard_output(&self, ptr: &mut u64, len: u64, salt: u64) {
        if !self.output_harmless(*ptr, len) {
            *ptr = self.scratch_spot(len, salt);
        }
    }

    // ---- mmu_batch -------------------------------------------------------

    /// Whether applying `op` would hurt the fuzzer or change a page it does
    /// not track.
    fn harmful(&self, op: &MmuOp) -> bool {
        let e = &self.env;
        if !mappable(op.va) {
            return false; // The hypervisor refuses the whole batch.
        }
        if self.makes_shared_info_executable(op) && !self.shared_exec {
            return true;
        }
        let tracked = e.tracked(op.va).is_some();
        match op.op {
            MMU_UNMAP | MMU_PROTECT => e.protected(op.va) || !(tracked || e.grown_physmap(op.va)),
            MMU_MAP | MMU_MAP_SHARED_INFO => !(tracked || e.protected(op.va)),
            _ => false,
        }
    }

    /// Whether `op` would make the shared-info page executable: a protect
    /// with `MMU_EXEC` of a tracked page that maps it.
    fn makes_shared_info_executable(&self, op: &MmuOp) -> bool {
        op.op == MMU_PROTECT
            && op.flags & MMU_EXEC != 0
            && matches!(
                self.shadow.get(&self.env, op.va),
                Some(Mapping::SharedInfo { .. })
            )
    }

    /// A harmless replacement address for operation `i` of a batch.
    fn window_page(i: usize, salt: u64) -> u64 {
        WINDOW_VA + ((i as u64).wrapping_add(salt) % WINDOW_PAGES) * PAGE_SIZE
    }

    /// Rewrite the harmful operations among `count` at scratch offset `at`
    /// and remember them all.
    fn sanitize_scratch_ops(&mut self, scratch: &mut [u8], at: usize, count: u64, salt: u64) {
        self.ops.clear();
        for i in 0..usize::try_from(count).unwrap_or(0) {
            let o = at + i * 32;
            let Some(bytes) = scratch.get_mut(o..o + 32) else {
                break;
            };
            let Ok(mut op) = MmuOp::read_from_bytes(bytes) else {
                break;
            };
            if self.harmful(&op) {
                if !self.makes_shared_info_executable(&op) {
                    op.va = Self::window_page(i, salt);
                }
                // The new page may map shared info too.
                if self.makes_shared_info_executable(&op) && !self.shared_exec {
                    op.flags &= !MMU_EXEC;
                }
                bytes.copy_from_slice(op.as_bytes());
            }
            self.ops.push(op);
        }
        self.batch = Batch::Known;
    }

    fn prepare_batch(&mut self, c: &mut Call, scratch: &mut [u8], mem: ReadMem<'_>) {
        let (ptr, count) = (c.args[0], c.args[1]);
        self.ops.clear();
        self.batch = Batch::MustFail;
        if count == 0 {
            self.batch = Batch::Known;
            return;
        }
        if count > MMU_BATCH_MAX {
            return;
        }
        let len = count * OP_SIZE;
        if let Some(at) = self.in_scratch(ptr, len) {
            self.sanitize_scratch_ops(scratch, at, count, c.salt);
            return;
        }
        let range = span(ptr, len);
        let refused = ptr >= GUEST_VA_LIMIT
            || range
                .as_ref()
                .is_none_or(|r| r.end <= PAGE_SIZE || within(r, &(UNMAPPED_VA..UNMAPPED_VA + UNMAPPED_LEN)));
        if refused {
            return;
        }
        let readable = range
            .as_ref()
            .is_some_and(|r| self.env.readable_regions().iter().any(|region| within(r, region)));
        if readable {
            let mut ops = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
            let mut bytes = [0u8; 32];
            for i in 0..count {
                mem(ptr + i * OP_SIZE, &mut bytes);
                ops.push(MmuOp::read_from_bytes(&bytes).unwrap_or_default());
            }
            if !ops.iter().any(|op| self.harmful(op)) {
                self.ops = ops;
                self.batch = Batch::Known;
                return;
            }
        }
        // Operations the guard cannot vouch for: take them from scratch.
        let spot = self.scratch_spot(len, c.salt);
        c.args[0] = spot;
        let at = usize::try_from(spot - self.env.scratch.start).unwrap_or(0);
        self.sanitize_scratch_ops(scratch, at, count, c.salt);
    }

    /// Whether the hypervisor must refuse the current batch whole, and why.
    fn batch_must_fail(&self, target_self: bool) -> Option<String> {
        if !target_self {
            return Some(String::from("it names another domain's address space"));
        }
        let tot = self.tot_pages();
        let mut pages = BTreeSet::new();
        for (i, op) in self.ops.iter().enumerate() {
            let why = |w: &str| Some(format!("operation {i} ({}) {w}", show_op(op)));
            if !pages.insert(op.va) {
                return why("touches a page twice");
            }
            if op.pad != [0; 6] || op.flags & !MMU_FLAGS_ALL != 0 {
                return why("has reserved bits set");
            }
            if !mappable(op.va) {
                return why("names an address no guest may map");
            }
            let wx = op.flags & MMU_WRITE != 0 && op.flags & MMU_EXEC != 0;
            let own = op.frame_domid == DOMID_SELF || op.frame_domid == self.env.domid;
            match op.op {
                MMU_MAP if wx => return why("maps writable and executable"),
                MMU_MAP if !own => return why("maps another domain's frame"),
                MMU_MAP if op.gfn >= tot => return why("maps a frame the domain does not own"),
                MMU_MAP_SHARED_INFO if op.flags & MMU_EXEC != 0 || op.gfn != 0 => {
                    return why("maps shared info executable or with a frame number");
                }
                MMU_UNMAP
                    if op.flags != 0
                        || op.gfn != 0
                        || !(op.frame_domid == 0 || op.frame_domid == DOMID_SELF) =>
                {
                    return why("is an unmap with stray fields");
                }
                MMU_PROTECT if wx => return why("makes a page writable and executable"),
                MMU_PROTECT if self.makes_shared_info_executable(op) => {
                    return why("makes the shared-info page executable, which MMU_MAP_SHARED_INFO refuses");
                }
                MMU_PROTECT if op.gfn != 0 || !(op.frame_domid == 0 || op.frame_domid == DOMID_SELF) => {
                    return why("is a protect with stray fields");
                }
                MMU_MAP | MMU_MAP_SHARED_INFO | MMU_UNMAP | MMU_PROTECT => {}
                _ => return why("has an unknown operation"),
            }
            // Mapped or unmapped as the shadow says (only where it knows).
            let mapped = self.access(op.va).map(|(r, _)| r);
            match op.op {
                MMU_MAP | MMU_MAP_SHARED_INFO if mapped == Some(true) => return why("maps over a mapping"),
                MMU_UNMAP | MMU_PROTECT if mapped == Some(false) => return why("changes an unmapped page"),
                _ => {}
            }
        }
        None
    }

    /// Record a successful batch in the shadow.
    fn apply_batch(&mut self) {
        for op in &self.ops {
            let write = op.flags & MMU_WRITE != 0;
            let exec = op.flags & MMU_EXEC != 0;
            let m = match (op.op, self.shadow.get(&self.env, op.va)) {
                (_, None) => continue,
                (MMU_MAP, _) => Mapping::Frame {
                    gfn: op.gfn,
                    write,
                    exec,
                },
                (MMU_MAP_SHARED_INFO, _) => Mapping::SharedInfo { write, exec },
                (MMU_UNMAP, _) => Mapping::Unmapped,
                (MMU_PROTECT, Some(Mapping::Frame { gfn, .. })) => Mapping::Frame { gfn, write, exec },
                (MMU_PROTECT, Some(Mapping::SharedInfo { .. })) => Mapping::SharedInfo { write, exec },
                _ => Mapping::Unknown,
            };
            self.shadow.set(&self.env, op.va, m);
        }
    }

    // ---- after a call -------------------------------------------------------

    /// Judge what `call` returned (`ret`, the raw `rax`), update the state,
    /// and return the broken promise, if any. `scratch` is read for
    /// `memory_info`'s answer.
    pub fn after(&mut self, call: &Call, ret: i64, scratch: &[u8]) -> Result<(), Bug> {
        let status = if ret < 0 {
            match Status::try_from(ret.unsigned_abs()) {
                Ok(s) => Some(s),
                Err(code) => return Err(format!("returned {ret}, which is no status ({code})")),
            }
        } else {
            None
        };
        let Ok(h) = Hypercall::try_from(call.nr) else {
            return match status {
                Some(Status::ENOSYS) => Ok(()),
                _ => Err(format!(
                    "unknown hypercall {:#x} returned {ret}, not ENOSYS",
                    call.nr
                )),
            };
        };
        if h.privileged() {
            return match status {
                Some(Status::EPERM) => Ok(()),
                _ => Err(format!("{} from a domU returned {ret}, not EPERM", h.name())),
            };
        }
        let a = call.args;
        let ok = status.is_none();
        use Hypercall as H;
        match h {
            H::Version if ret != i64::from(abi_version_packed()) => Err(format!(
                "version returned {ret:#x}, not {:#x}",
                abi_version_packed()
            )),
            H::ConsoleWrite if a[1] == 0 => Ok(()),
            H::ConsoleWrite if a[1] <= CONSOLE_IO_MAX => {
                match (self.range_access(a[0], a[1]).map(|(r, _)| r), ok) {
                    (Some(false), true) => Err(format!(
                        "console_write({:#x}, {}) read unmapped memory",
                        a[0], a[1]
                    )),
                    (Some(true), false) => Err(format!("console_write({:#x}, {}) failed: {ret}", a[0], a[1])),
                    (Some(true), true) if u64::try_from(ret) != Ok(a[1]) => {
                        Err(format!("console_write of {} bytes returned {ret}", a[1]))
                    }
                    _ => Ok(()),
                }
            }
            H::ConsoleWrite if ok => Err(format!("console_write of {} bytes succeeded", a[1])),
            H::MemoryInfo | H::EvtchnStatus => {
                let out = if h == H::MemoryInfo { a[0] } else { a[1] };
                let access = self.range_access(out, 32).map(|(_, w)| w);
                if access == Some(false) && ok {
                    return Err(format!(
                        "{} wrote through {out:#x}, which is not writable",
                        h.name()
                    ));
                }
                if access == Some(true) && h == H::MemoryInfo && !ok {
                    return Err(format!("memory_info({out:#x}) failed: {ret}"));
                }
                if h == H::MemoryInfo && ok {
                    return self.check_memory_info(out, scratch);
                }
                Ok(())
            }
            H::MmuBatch => self.after_batch(call, ret, ok),
            H::MemoryIncrease if ok => {
                let tot = self.tot_pages();
                if u64::try_from(ret) != Ok(tot) {
                    return Err(format!(
                        "memory_increase({}) returned gfn {ret}, expected {tot}",
                        a[0]
                    ));
                }
                if a[0] == 0 || tot.checked_add(a[0]).is_none_or(|n| n > self.env.max_pages) {
                    return Err(format!(
                        "memory_increase({}) went past max_pages {}",
                        a[0], self.env.max_pages
                    ));
                }
                self.grown += a[0];
                Ok(())
            }
            H::MemoryDecrease if ok => {
                let tot = self.tot_pages();
                let want = tot.checked_sub(a[0]).filter(|_| a[0] != 0 && a[0] < tot);
                if want.is_none() || u64::try_from(ret).ok() != want {
                    return Err(format!(
                        "memory_decrease({}) with {tot} pages returned {ret}",
                        a[0]
                    ));
                }
                self.grown = self.grown.saturating_sub(a[0]);
                self.shadow.shrink(self.tot_pages());
                Ok(())
            }
            H::SchedShutdown if status != Some(Status::EINVAL) => {
                Err(format!("sched_shutdown({}) returned {ret}, not EINVAL", a[0]))
            }
            H::VcpuSetCallbacks if ok && (a[1] != 0 || a[0] >= GUEST_VA_LIMIT) => {
                Err(format!("vcpu_set_callbacks({:#x}, {:#x}) accepted", a[0], a[1]))
            }
            _ => Ok(()),
        }
    }

    fn check_memory_info(&self, out: u64, scratch: &[u8]) -> Result<(), Bug> {
        let Some(at) = self.in_scratch(out, 32) else {
            return Ok(());
        };
        let Some(info) = scratch
            .get(at..at + 32)
            .and_then(|b| MemoryInfo::read_from_bytes(b).ok())
        else {
            return Ok(());
        };
        let tot = self.tot_pages();
        if info.tot_pages != tot
            || info.max_pages != self.env.max_pages
            || info.physmap_va != self.env.physmap
        {
            return Err(format!(
                "memory_info says {} pages (max {}, physmap {:#x}); the fuzzer counts {tot} (max {}, physmap {:#x})",
                info.tot_pages, info.max_pages, info.physmap_va, self.env.max_pages, self.env.physmap
            ));
        }
        Ok(())
    }

    fn after_batch(&mut self, call: &Call, ret: i64, ok: bool) -> Result<(), Bug> {
        let a = call.args;
        let target_self = u16::try_from(a[2]).is_ok_and(|d| d == DOMID_SELF || d == self.env.domid);
        if self.batch == Batch::MustFail {
            if ok {
                self.shadow.lose_track();
                return Err(format!(
                    "mmu_batch({:#x}, {}, {:#x}) succeeded: it must fail",
                    a[0], a[1], a[2]
                ));
            }
            return Ok(());
        }
        let must_fail = if self.ops.is_empty() {
            None
        } else {
            self.batch_must_fail(target_self)
        };
        match (ok, must_fail) {
            (true, Some(why)) => {
                self.shadow.lose_track();
                Err(format!("mmu_batch succeeded although {why}"))
            }
            (true, None) if u64::try_from(ret) != Ok(a[1]) => {
                Err(format!("mmu_batch of {} operations returned {ret}", a[1]))
            }
            (true, None) => {
                self.apply_batch();
                Ok(())
            }
            (false, _) => Ok(()),
        }
    }

    /// A tracked page the last batch changed, to probe.
    pub fn batch_target(&self) -> Option<u64> {
        self.ops
            .iter()
            .find(|op| self.env.tracked(op.va).is_some() && mappable(op.va))
            .map(|op| op.va)
    }

    // ---- iret and probes ----------------------------------------------------

    /// What a fetch at `va` does: `None` if it could run code the fuzzer
    /// does not know; else the expected trap and the `int3` to refill.
    fn fetch(&self, va: u64) -> Option<(Expect, Option<u64>)> {
        let pf = Expect::Fault {
            vector: vector::PF,
            rip: Some(va),
        };
        if (GUEST_VA_LIMIT..HV_DIRECT_MAP).contains(&va) {
            return Some((
                Expect::Fault {
                    vector: vector::GP,
                    rip: None,
                },
                None,
            ));
        }
        if never_mapped(va) {
            return Some((pf, None));
        }
        match self.shadow.get(&self.env, va)? {
            Mapping::Unmapped
            | Mapping::SharedInfo { exec: false, .. }
            | Mapping::Frame { exec: false, .. } => Some((pf, None)),
            Mapping::Frame { gfn, exec: true, .. } if self.env.is_junk(gfn) => Some((
                Expect::Fault {
                    vector: vector::BP,
                    rip: Some(va + 1),
                },
                Some(self.env.frame_va(gfn) + (va & (PAGE_SIZE - 1))),
            )),
            Mapping::Frame { .. } | Mapping::SharedInfo { exec: true, .. } | Mapping::Unknown => None,
        }
    }

    fn prepare_iret(&self, i: &mut Iret) {
        i.expect = Expect::Clean;
        i.refill = None;
        if let Target::Addr(va) = i.target {
            match self.fetch(va).filter(|_| va < GUEST_VA_LIMIT) {
                Some((expect, refill)) => {
                    i.expect = expect;
                    i.refill = refill;
                }
                None => i.target = Target::Pad,
            }
        }
    }

    fn prepare_probe(&self, p: &mut Probe) {
        let e = &self.env;
        p.refill = None;
        let upper = p.addr >= GUEST_VA_LIMIT;
        let gp = upper && p.addr < HV_DIRECT_MAP;
        let data_fault = Expect::Fault {
            vector: if gp { vector::GP } else { vector::PF },
            rip: None,
        };
        match p.kind {
            ProbeKind::Jump => match self.fetch(p.addr) {
                Some((expect, refill)) => {
                    p.expect = expect;
                    p.refill = refill;
                }
                None => p.kind = ProbeKind::Read,
            },
            ProbeKind::Write => {
                let ok = upper
                    || match self.shadow.get(e, p.addr) {
                        Some(Mapping::Frame { gfn, write, .. }) => {
                            !write || e.is_junk(gfn) || gfn >= e.initial_pages
                        }
                        Some(Mapping::SharedInfo { write, .. }) => !write,
                        Some(Mapping::Unmapped) => true,
                        Some(Mapping::Unknown) => false,
                        None => matches!(self.access(p.addr), Some((false, _))),
                    };
                if !ok {
                    p.kind = ProbeKind::Read;
                } else {
                    p.expect = match self.access(p.addr) {
                        _ if upper => data_fault,
                        Some((true, true)) => Expect::Clean,
                        Some(_) => data_fault,
                        None => Expect::Any,
                    };
                }
            }
            ProbeKind::Read => {}
        }
        if p.kind == ProbeKind::Read {
            p.expect = match self.access(p.addr) {
                _ if upper => data_fault,
                Some((true, _)) => Expect::Clean,
                Some((false, _)) => data_fault,
                None => Expect::Any,
            };
        }
    }
}

/// An operation, short (report lines are cut at 256 characters).
fn show_op(op: &MmuOp) -> String {
    let mut s = format!(
        "op {} flags {:#x} va {:#x} gfn {:#x} domid {:#x}",
        op.op, op.flags, op.va, op.gfn, op.frame_domid
    );
    if op.pad != [0; 6] {
        s.push_str(&format!(" pad {:x?}", op.pad));
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::layout::NON_CANONICAL;
    use crate::layout::tests::env;

    fn guard() -> Guard {
        let mut stubs = [0u64; 32];
        for (v, s) in stubs.iter_mut().enumerate() {
            if u8::try_from(v).is_ok_and(trap_vector_allowed) {
                *s = 0x40_1000 + v as u64 * 16;
            }
        }
        Guard::new(env(), [1, 2, 3, 4], 3, stubs, 0x40_2000)
    }

    fn scratch(g: &Guard) -> Vec<u8> {
        vec![0u8; usize::try_from(g.env.scratch.end - g.env.scratch.start).unwrap_or(0)]
    }

    fn no_mem(_: u64, _: &mut [u8]) {
        panic!("the guard read memory it should not need");
    }

    fn call(h: Hypercall, args: [u64; 6]) -> Call {
        Call {
            nr: h as u64,
            args,
            salt: 12345,
            ..Call::default()
        }
    }

    fn put_op(s: &mut [u8], i: usize, op: MmuOp) {
        s[i * 32..i * 32 + 32].copy_from_slice(op.as_bytes());
    }

    fn get_op(s: &[u8], i: usize) -> MmuOp {
        MmuOp::read_from_bytes(&s[i * 32..i * 32 + 32]).expect("32 bytes")
    }

    #[test]
    fn harmful_operations_are_rewritten_in_place() {
        let mut g = guard();
        let mut s = scratch(&g);
        let text = g.env.text.start;
        put_op(
            &mut s,
            0,
            MmuOp {
                op: MMU_UNMAP,
                va: text,
                ..MmuOp::default()
            },
        );
        put_op(
            &mut s,
            1,
            MmuOp {
                op: MMU_PROTECT,
                flags: MMU_WRITE,
                va: g.env.stack.start,
                ..MmuOp::default()
            },
        );
        put_op(
            &mut s,
            2,
            MmuOp {
                op: MMU_MAP,
                va: WINDOW_VA,
                gfn: 4084,
                frame_domid: DOMID_SELF,
                ..MmuOp::default()
            },
        );
        put_op(
            &mut s,
            3,
            MmuOp {
                op: MMU_MAP,
                va: 0x0000_4444_0000_0000,
                gfn: 4084,
                ..MmuOp::default()
            },
        );
        put_op(
            &mut s,
            4,
            MmuOp {
                op: MMU_UNMAP,
                va: g.env.frame_va(5000),
                ..MmuOp::default()
            },
        );
        let mut step = Step::Call(call(
            Hypercall::MmuBatch,
            [g.env.scratch.start, 5, u64::from(DOMID_SELF), 0, 0, 0],
        ));
        g.prepare(&mut step, &mut s, &no_mem);
        for i in [0, 1, 3] {
            let op = get_op(&s, i);
            assert!(g.env.tracked(op.va).is_some(), "op {i} now at {:#x}", op.va);
        }
        assert_eq!(get_op(&s, 2).va, WINDOW_VA);
        assert_eq!(get_op(&s, 4).va, g.env.frame_va(5000));
    }

    #[test]
    fn batches_from_own_memory_are_scanned_and_redirected() {
        let mut g = guard();
        let mut s = scratch(&g);
        let text = g.env.text.start;
        let bad = MmuOp {
            op: MMU_UNMAP,
            va: text,
            ..MmuOp::default()
        };
        let read_bad = move |_: u64, buf: &mut [u8]| buf.copy_from_slice(bad.as_bytes());
        let mut c = call(
            Hypercall::MmuBatch,
            [g.env.rodata.start, 2, u64::from(DOMID_SELF), 0, 0, 0],
        );
        g.prepare_batch(&mut c, &mut s, &read_bad);
        assert!(g.env.scratch.contains(&c.args[0]), "{:#x}", c.args[0]);
        // Harmless operations are left where they are.
        let good = MmuOp {
            op: 77,
            ..MmuOp::default()
        };
        let read_good = move |_: u64, buf: &mut [u8]| buf.copy_from_slice(good.as_bytes());
        let mut c = call(
            Hypercall::MmuBatch,
            [g.env.rodata.start, 2, u64::from(DOMID_SELF), 0, 0, 0],
        );
        g.prepare_batch(&mut c, &mut s, &read_good);
        assert_eq!(c.args[0], g.env.rodata.start);
        // Pointers the hypervisor must refuse are left alone, unread.
        for ptr in [HV_DIRECT_MAP, NON_CANONICAL, UNMAPPED_VA, 8] {
            let mut c = call(Hypercall::MmuBatch, [ptr, 3, u64::from(DOMID_SELF), 0, 0, 0]);
            g.prepare_batch(&mut c, &mut s, &no_mem);
            assert_eq!(c.args[0], ptr);
            assert!(g.after(&c, Status::EFAULT.to_ret(), &s).is_ok());
            assert!(g.after(&c, 3, &s).is_err(), "{ptr:#x}");
        }
        // Anything else (the window, the stack, data) is replaced by scratch.
        let mut c = call(
            Hypercall::MmuBatch,
            [WINDOW_VA, 3, u64::from(DOMID_SELF), 0, 0, 0],
        );
        g.prepare_batch(&mut c, &mut s, &no_mem);
        assert!(g.env.scratch.contains(&c.args[0]));
    }

    #[test]
    fn successful_batches_update_the_shadow_and_bad_ones_are_bugs() {
        let mut g = guard();
        let mut s = scratch(&g);
        let map = MmuOp {
            op: MMU_MAP,
            flags: MMU_EXEC,
            va: WINDOW_VA,
            gfn: 4085,
            frame_domid: DOMID_SELF,
            pad: [0; 6],
        };
        put_op(&mut s, 0, map);
        let c = call(
            Hypercall::MmuBatch,
            [g.env.scratch.start, 1, u64::from(DOMID_SELF), 0, 0, 0],
        );
        let mut step = Step::Call(c);
        g.prepare(&mut step, &mut s, &no_mem);
        assert!(g.after(&c, 1, &s).is_ok());
        assert_eq!(
            g.shadow.get(&g.env, WINDOW_VA),
            Some(Mapping::Frame {
                gfn: 4085,
                write: false,
                exec: true
            })
        );
        assert_eq!(g.batch_target(), Some(WINDOW_VA));
        // A jump there hits the int3 of the junk frame.
        let mut p = Probe {
            kind: ProbeKind::Jump,
            addr: WINDOW_VA,
            expect: Expect::Any,
            refill: None,
        };
        g.prepare_probe(&mut p);
        assert_eq!(
            p.expect,
            Expect::Fault {
                vector: vector::BP,
                rip: Some(WINDOW_VA + 1)
            }
        );
        assert_eq!(p.refill, Some(g.env.frame_va(4085)));
        // Mapping over it again must fail; success is a bug.
        let mut step = Step::Call(c);
        g.prepare(&mut step, &mut s, &no_mem);
        assert!(g.after(&c, 1, &s).unwrap_err().contains("maps over a mapping"));
        // A W+X mapping accepted is a bug.
        let mut g = guard();
        put_op(
            &mut s,
            0,
            MmuOp {
                flags: MMU_WRITE | MMU_EXEC,
                ..map
            },
        );
        let mut step = Step::Call(c);
        g.prepare(&mut step, &mut s, &no_mem);
        assert!(g.after(&c, Status::EINVAL.to_ret(), &s).is_ok());
        assert!(
            g.after(&c, 1, &s)
                .unwrap_err()
                .contains("writable and executable")
        );
    }

    #[test]
    fn memory_accounting() {
        let mut g = guard();
        let s = scratch(&g);
        let inc = call(Hypercall::MemoryIncrease, [10, 0, 0, 0, 0, 0]);
        assert!(g.after(&inc, 4096, &s).is_ok());
        assert_eq!(g.grown, 10);
        assert!(g.after(&inc, 4096, &s).unwrap_err().contains("expected 4106"));
        // Decreases are limited to grown frames.
        let mut step = Step::Call(call(Hypercall::MemoryDecrease, [100, 0, 0, 0, 0, 0]));
        g.prepare(&mut step, &mut scratch(&g), &no_mem);
        let Step::Call(dec) = step else { panic!() };
        assert!((1..=10).contains(&dec.args[0]), "{}", dec.args[0]);
        let want = i64::try_from(4106 - dec.args[0]).expect("small");
        assert!(g.after(&dec, want, &s).is_ok());
        assert_eq!(g.grown, 10 - dec.args[0]);
        for count in [0, 1 << 40] {
            let mut step = Step::Call(call(Hypercall::MemoryDecrease, [count, 0, 0, 0, 0, 0]));
            g.prepare(&mut step, &mut scratch(&g), &no_mem);
            assert_eq!(
                step,
                Step::Call(call(Hypercall::MemoryDecrease, [count, 0, 0, 0, 0, 0]))
            );
        }
    }

    #[test]
    fn outputs_never_land_on_the_fuzzer() {
        let g = guard();
        let e = &g.env;
        for ptr in [
            e.image.end - 64,
            e.stack.start + 64,
            e.shared_info,
            e.physmap + 4096,
        ] {
            assert!(!g.output_harmless(ptr, 32), "{ptr:#x}");
        }
        for ptr in [
            e.scratch.start,
            e.text.start,
            e.rodata.end - 8,
            e.start_info,
            HV_DIRECT_MAP,
            UNMAPPED_VA,
            0,
            WINDOW_VA,
            e.scratch.end - 8,
        ] {
            assert!(g.output_harmless(ptr, 32), "{ptr:#x}");
        }
    }

    #[test]
    fn waits_cannot_hang() {
        let mut g = guard();
        let mut s = scratch(&g);
        let mut step = Step::Call(call(Hypercall::SchedPoll, [g.env.scratch.start, 4, 0, 0, 0, 0]));
        g.prepare(&mut step, &mut s, &no_mem);
        let Step::Call(c) = step else { panic!() };
        assert_eq!((c.pre, c.post), (Pre::MaskAndSendIpi, Post::Unmask));
        let ports: Vec<u32> = s[..16]
            .chunks(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert!(ports.contains(&3), "{ports:?}");
        let mut step = Step::Call(call(
            Hypercall::SchedPoll,
            [g.env.text.start, 4, u64::MAX, 0, 0, 0],
        ));
        g.prepare(&mut step, &mut s, &no_mem);
        let Step::Call(c) = step else { panic!() };
        assert!(c.args[2] >= 1 && c.args[2] <= POLL_MAX_NS);
        let mut step = Step::Call(call(Hypercall::SchedBlock, [0; 6]));
        g.prepare(&mut step, &mut s, &no_mem);
        let Step::Call(c) = step else { panic!() };
        assert_ne!(c.pre, Pre::None);
        let mut step = Step::Call(call(Hypercall::SchedShutdown, [2, 0, 0, 0, 0, 0]));
        g.prepare(&mut step, &mut s, &no_mem);
        assert!(matches!(step, Step::Call(c) if c.args[0] == 5));
        let mut step = Step::Call(call(Hypercall::EvtchnClose, [4, 0, 0, 0, 0, 0]));
        g.prepare(&mut step, &mut s, &no_mem);
        assert!(matches!(step, Step::Call(c) if c.args[0] == 4100));
    }

    #[test]
    fn verdicts() {
        let mut g = guard();
        let s = scratch(&g);
        let r = g.after(&call(Hypercall::DomctlPause, [1, 0, 0, 0, 0, 0]), 0, &s);
        assert!(r.unwrap_err().contains("not EPERM"));
        assert!(
            g.after(
                &call(Hypercall::DomctlPause, [1, 0, 0, 0, 0, 0]),
                Status::EPERM.to_ret(),
                &s
            )
            .is_ok()
        );
        let unknown = Call {
            nr: 15,
            ..Call::default()
        };
        assert!(g.after(&unknown, Status::ENOSYS.to_ret(), &s).is_ok());
        assert!(g.after(&unknown, 0, &s).is_err());
        assert!(g.after(&unknown, -9999, &s).unwrap_err().contains("no status"));
        let cw = call(Hypercall::ConsoleWrite, [HV_DIRECT_MAP, 16, 0, 0, 0, 0]);
        assert!(g.after(&cw, 16, &s).unwrap_err().contains("unmapped"));
        let cw = call(Hypercall::ConsoleWrite, [g.env.scratch.start, 16, 0, 0, 0, 0]);
        assert!(g.after(&cw, Status::EFAULT.to_ret(), &s).is_err());
        assert!(g.after(&cw, 16, &s).is_ok());
        let mi = call(Hypercall::MemoryInfo, [g.env.text.start, 0, 0, 0, 0, 0]);
        assert!(g.after(&mi, 0, &s).unwrap_err().contains("not writable"));
        let mut s2 = scratch(&g);
        let info = MemoryInfo {
            tot_pages: 4096,
            max_pages: 6144,
            physmap_va: g.env.physmap,
            pt_pages: 9,
        };
        s2[..32].copy_from_slice(info.as_bytes());
        let mi = call(Hypercall::MemoryInfo, [g.env.scratch.start, 0, 0, 0, 0, 0]);
        assert!(g.after(&mi, 0, &s2).is_ok());
        g.grown = 1;
        assert!(
            g.after(&mi, 0, &s2)
                .unwrap_err()
                .contains("memory_info says 4096")
        );
    }

    #[test]
    fn irets_go_only_where_the_outcome_is_known() {
        let mut g = guard();
        let mut i = Iret {
            target: Target::Addr(UNMAPPED_VA + 5),
            regs: [0; 3],
            rflags: 0,
            expect: Expect::Any,
            refill: None,
        };
        g.prepare_iret(&mut i);
        assert_eq!(
            i.expect,
            Expect::Fault {
                vector: vector::PF,
                rip: Some(UNMAPPED_VA + 5)
            }
        );
        g.shadow.set(
            &g.env.clone(),
            WINDOW_VA,
            Mapping::Frame {
                gfn: 10,
                write: false,
                exec: true,
            },
        );
        let mut i = Iret {
            target: Target::Addr(WINDOW_VA + 3),
            ..i
        };
        g.prepare_iret(&mut i);
        assert_eq!(i.target, Target::Pad);
        assert_eq!(i.expect, Expect::Clean);
    }

    #[test]
    fn judging_traps() {
        use crate::step::Trap;
        let pf = Expect::Fault {
            vector: 14,
            rip: Some(0x1000),
        };
        assert!(
            pf.judge(Some(Trap {
                vector: 14,
                rip: 0x1000,
                addr: 0x1000
            }))
            .is_ok()
        );
        assert!(
            pf.judge(Some(Trap {
                vector: 14,
                rip: 0x1001,
                addr: 0x1000
            }))
            .is_err()
        );
        assert!(pf.judge(None).is_err());
        assert!(Expect::Clean.judge(None).is_ok());
        assert!(
            Expect::Clean
                .judge(Some(Trap {
                    vector: 3,
                    rip: 1,
                    addr: 0
                }))
                .is_err()
        );
        assert!(
            Expect::Any
                .judge(Some(Trap {
                    vector: 3,
                    rip: 1,
                    addr: 0
                }))
                .is_ok()
        );
    }
}
