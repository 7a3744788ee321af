//! The credit scheduler's policy: which vCPU runs next, and for how long.
//!
//! Pure bookkeeping, no hardware: the run loop in `super` (the parent `sched`
//! module) owns the context switch and the LAPIC timer, and asks this policy
//! what to run ([`Credit::pick`]), tells it what ran ([`Credit::charge`]) and
//! which vCPUs block and wake ([`Credit::sleep`], [`Credit::wake`]). Time is
//! system time in nanoseconds; every quantity is an exact integer number of
//! nanoseconds (`u64`/`i64`, `u128` for products).
//!
//! The semantics follow Xen's credit scheduler (`xen/common/sched/credit.c`),
//! with credit counted in nanoseconds of CPU time instead of Xen's
//! 10-per-millisecond credit units:
//!
//! * **Accounting period** ([`Params::period_ns`], default 30 ms). At every
//!   boundary the CPU time of the next period, `period_ns * ncpus`, is handed
//!   out as credit. A vCPU is *active* for the boundary if it is runnable at
//!   the boundary or was charged for running during the period that just
//!   ended; a domain is active if one of its vCPUs is. Active domains share
//!   the credit in proportion to their weight, and each domain splits its
//!   share evenly among its active vCPUs. Unlike Xen, where a domain's share
//!   grows with its number of active vCPUs, weight here is per domain.
//! * **Bounds.** A vCPU's credit stays within ± one period
//!   (`±period_ns`): a grant never lifts it above `+period_ns`, so an idle
//!   domain cannot hoard, and debt is floored at `-period_ns`. Credit a
//!   domain cannot hold is dropped, not handed to the others: handing it on
//!   would refill a domain that ran more than its share and erase the
//!   weights. Only what a capped domain may not use (beyond its cap budget)
//!   goes to the other active domains by weight ("water filling").
//! * **Balance.** If at a boundary the credits of the runnable vCPUs sum to
//!   less than zero (CPU time was used that no credit paid for, typically
//!   because a sleeping interactive domain kept its share to fill up to its
//!   bound), that debt is handed out too, on top of the period's credit and
//!   at most one period more (Xen's `credit_balance`). This keeps the busy
//!   vCPUs' credit centred on zero, where running `Under` before `Over` is
//!   what makes the shares proportional; without it the busy domains would
//!   share the CPU round robin in `Over` whatever their weights.
//! * **Priority** ([`Prio`]): `Under` while the credit is positive, `Over`
//!   otherwise, and `Boost` for a vCPU woken with positive credit (not in a
//!   parked domain), so an interactive domain (dom0's shell) runs within the
//!   next exit of the running vCPU. The boost ends once the vCPU has run
//!   [`BOOST_TICK_NS`] (10 ms, Xen's tick) or at its first charge after the
//!   accounting boundary that followed the wake.
//! * **Choice.** The best priority runs first; within a priority the vCPU
//!   holding the most credit, and among equals the one queued longest. A
//!   vCPU keeps the CPU for its slice ([`Params::tslice_ns`], default 30 ms)
//!   unless something strictly better becomes runnable, another of its
//!   priority leads it by [`LEAD_NS`] of credit, its priority drops (its
//!   credit or boost ran out while others wait), or it blocks or yields.
//!   Plain round robin within `Under` would share the CPU equally whatever
//!   the weights; running the richest keeps the busy vCPUs' credit close,
//!   so CPU time follows the grants.
//! * **Caps** (percent of one CPU, 0 = none). A capped domain may run
//!   `cap * period_ns / 100` per period. Once it has, its vCPUs are *parked*
//!   (runnable but never picked) until the next boundary; an overrun is
//!   carried into the next period (at most one budget), so the long-run share
//!   is exact. A capped domain's credit share is also limited to its budget.
//! * **The decision** ([`Decision::until_ns`]) is the earliest of: the end
//!   of the slice, the next accounting boundary, the moment the domain's cap
//!   budget runs out, and, when another vCPU is waiting, the moment the
//!   vCPU's credit (if `Under`) or boost runs out. The last three are never
//!   closer than [`MIN_RUN_NS`] (100 µs, Xen's minimum timer) so a nearly
//!   spent budget does not cause a storm of exits; the small overrun is
//!   charged like any other run.
//!
//! The first accounting happens at the first [`Credit::pick`] that finds a
//! runnable vCPU, so the very first period is already proportional; the
//! boundaries then follow every `period_ns` from that moment. A vCPU that
//! becomes active mid-period earns nothing until the next boundary.
//!
//! One run queue for now (one CPU). With SMP each CPU gets its own
//! `RunQueue` and `pick` takes the CPU; accounting stays global
//! (credit `period_ns * ncpus`), and a capped domain running on several CPUs
//! at once must divide its remaining budget among them when setting
//! `until_ns`.

#![deny(unsafe_code)]

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;

pub use dom0_abi::DomId;

/// A vCPU: its domain and index.
pub type Key = (DomId, usize);

/// Nanoseconds in a millisecond.
const NS_PER_MS: u64 = 1_000_000;
/// Default time slice: 30 ms (Xen credit's `sched_credit_tslice_ms` default).
pub const DEFAULT_TSLICE_NS: u64 = 30 * NS_PER_MS;
/// Default accounting period: 30 ms (Xen credit accounts once per slice).
pub const DEFAULT_PERIOD_NS: u64 = 30 * NS_PER_MS;
/// How long a woken vCPU may run boosted: 10 ms (Xen's tick, a third of a slice).
pub const BOOST_TICK_NS: u64 = 10 * NS_PER_MS;
/// Shortest run the policy asks for when a credit, boost or cap budget is
/// nearly spent: 100 µs (Xen's `CSCHED_MIN_TIMER`).
pub const MIN_RUN_NS: u64 = 100_000;
/// How much more credit another vCPU of the same priority must hold before
/// it takes the CPU from the running one (hysteresis against thrashing): 2 ms.
pub const LEAD_NS: i64 = 2_000_000;
/// Longest accepted slice or period: 60 s.
pub const MAX_PERIOD_NS: u64 = 60_000 * NS_PER_MS;
/// Weight of a domain nobody configured (Xen's default).
pub const DEFAULT_WEIGHT: u32 = 256;
/// Smallest weight.
pub const MIN_WEIGHT: u32 = 1;
/// Largest weight.
pub const MAX_WEIGHT: u32 = 65535;
/// A cap is a percentage of one CPU.
const CAP_PERCENT: u32 = 100;
/// After this many missed boundaries in one go, the remaining ones are
/// skipped. With nothing runnable a boundary changes nothing anyway; with
/// runnable vCPUs (a run loop held up) a few rounds bring their credit to
/// its bound and more would only repeat that.
const MAX_CATCHUP_PERIODS: u32 = 4;

/// Scheduler parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Longest a vCPU runs before others of its priority get a turn
    /// (`sched_tslice_ms=`); default 30 ms.
    pub tslice_ns: u64,
    /// Accounting period: credit is handed out at each boundary; default 30 ms.
    pub period_ns: u64,
    /// CPUs whose time is shared out (1 for now).
    pub ncpus: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            tslice_ns: DEFAULT_TSLICE_NS,
            period_ns: DEFAULT_PERIOD_NS,
            ncpus: 1,
        }
    }
}

impl Params {
    /// The defaults with the slice from `sched_tslice_ms=`.
    pub fn with_tslice_ms(ms: u32) -> Self {
        Self {
            tslice_ns: u64::from(ms).saturating_mul(NS_PER_MS),
            ..Self::default()
        }
    }

    /// Bring every field into its accepted range: slice and period
    /// `MIN_RUN_NS..=MAX_PERIOD_NS`, at least one CPU.
    fn sanitised(self) -> Self {
        Self {
            tslice_ns: self.tslice_ns.clamp(MIN_RUN_NS, MAX_PERIOD_NS),
            period_ns: self.period_ns.clamp(MIN_RUN_NS, MAX_PERIOD_NS),
            ncpus: self.ncpus.max(1),
        }
    }

    /// One period as a signed credit: the bound on every vCPU's credit.
    fn credit_bound(&self) -> i64 {
        i64::try_from(self.period_ns).unwrap_or(i64::MAX)
    }

    /// The largest accepted cap: every CPU, fully.
    fn max_cap(&self) -> u32 {
        CAP_PERCENT.saturating_mul(self.ncpus)
    }

    /// Run time per period allowed by `cap` percent (0 = uncapped: unlimited).
    fn cap_budget_ns(&self, cap: u32) -> u64 {
        if cap == 0 {
            return u64::MAX;
        }
        let ns = u128::from(self.period_ns) * u128::from(cap) / u128::from(CAP_PERCENT);
        u64::try_from(ns).unwrap_or(u64::MAX).max(1)
    }
}

/// Priority class of a vCPU; `Boost` runs first, `Over` last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Prio {
    /// Woken with credit left: runs before everyone else for a short while.
    Boost,
    /// Has credit left this period.
    Under,
    /// Spent its credit: runs only when no one else wants the CPU.
    Over,
}

/// What to run now, and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The vCPU to run.
    pub key: Key,
    /// Absolute system time (ns) at which the run loop must come back: end of
    /// slice, when the vCPU's credit or its domain's cap budget runs out, or
    /// the next accounting boundary, whichever is first. Always after the
    /// `now_ns` given to [`Credit::pick`].
    pub until_ns: u64,
}

/// A rejected [`Credit::set_domain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// The domain is not known to the scheduler.
    UnknownDomain,
    /// The weight is outside `MIN_WEIGHT..=MAX_WEIGHT`.
    Weight,
    /// The cap exceeds 100 % per CPU.
    Cap,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownDomain => "no such domain in the scheduler",
            Self::Weight => "weight outside 1..=65535",
            Self::Cap => "cap above 100 % per CPU",
        })
    }
}

/// A boost in progress.
#[derive(Clone, Copy, Debug)]
struct Boost {
    /// Run time since the wake that boosted.
    ran_ns: u64,
    /// The first accounting boundary after that wake; a charge after it ends
    /// the boost.
    boundary_ns: u64,
}

/// Per-vCPU state.
#[derive(Clone, Copy, Debug, Default)]
struct Vcpu {
    /// Credit in nanoseconds of CPU time, within `±period_ns`.
    credit_ns: i64,
    /// Wants the CPU (woken and not slept).
    runnable: bool,
    /// Was charged for running during the current period.
    ran: bool,
    /// Present while boosted.
    boost: Option<Boost>,
}

impl Vcpu {
    /// The priority class, ignoring whether the vCPU can run.
    fn prio(&self) -> Prio {
        if self.boost.is_some() {
            Prio::Boost
        } else if self.credit_ns > 0 {
            Prio::Under
        } else {
            Prio::Over
        }
    }

    /// Active for accounting: wants the CPU or used it this period.
    fn active(&self) -> bool {
        self.runnable || self.ran
    }

    /// Credit the vCPU can still take at a boundary: up to one period, and
    /// no more than brings it to `+bound`.
    fn headroom_ns(&self, bound: i64) -> u64 {
        u64::try_from(bound.saturating_sub(self.credit_ns)).unwrap_or(0)
    }
}

/// Per-domain state.
#[derive(Clone, Debug)]
struct Domain {
    /// Share relative to other domains, `MIN_WEIGHT..=MAX_WEIGHT`.
    weight: u32,
    /// Percent of one CPU, 0 = uncapped.
    cap: u32,
    /// Run time charged against the cap this period (including an overrun
    /// carried from the previous one).
    cap_used_ns: u64,
    /// The domain's vCPUs by index.
    vcpus: BTreeMap<usize, Vcpu>,
}

impl Domain {
    /// Out of cap budget for this period: its vCPUs are not picked.
    fn parked(&self, params: &Params) -> bool {
        self.cap != 0 && self.cap_used_ns >= params.cap_budget_ns(self.cap)
    }
}

/// The vCPU holding the CPU, as far as the policy knows.
#[derive(Clone, Copy, Debug)]
struct Current {
    /// Which vCPU.
    key: Key,
    /// When its slice ends.
    slice_end_ns: u64,
    /// Its priority at the last pick; a drop below it ends the turn.
    prio: Prio,
}

/// One CPU's run queue: runnable vCPUs in round-robin order (parked ones
/// included, skipped when picking), and the one it is running.
#[derive(Clone, Debug, Default)]
struct RunQueue {
    /// FIFO order; a picked vCPU moves to the tail.
    order: VecDeque<Key>,
    /// The vCPU picked last, until it blocks or another is picked.
    current: Option<Current>,
}

impl RunQueue {
    /// Forget `key`: off the queue, and no longer current.
    fn remove(&mut self, key: Key) {
        self.order.retain(|k| *k != key);
        if self.current.is_some_and(|c| c.key == key) {
            self.current = None;
        }
    }

    /// Move `key` to the tail.
    fn move_to_tail(&mut self, key: Key) {
        self.order.retain(|k| *k != key);
        self.order.push_back(key);
    }
}

/// The credit scheduler: domains with weights and caps, their vCPUs'
/// credit, and the run queue.
#[derive(Clone, Debug)]
pub struct Credit {
    /// Sanitised parameters.
    params: Params,
    /// Every domain by id.
    domains: BTreeMap<DomId, Domain>,
    /// The (single, for now) run queue.
    runq: RunQueue,
    /// The next accounting boundary (system time, ns).
    next_boundary_ns: u64,
    /// The first accounting has happened.
    started: bool,
}

impl Credit {
    /// An empty scheduler; out-of-range parameters are clamped (slice and
    /// period to 100 µs..=60 s, at least one CPU).
    pub fn new(params: Params, now_ns: u64) -> Self {
        let params = params.sanitised();
        Self {
            params,
            domains: BTreeMap::new(),
            runq: RunQueue::default(),
            next_boundary_ns: now_ns.saturating_add(params.period_ns),
            started: false,
        }
    }

    /// The parameters in use (after clamping).
    pub fn params(&self) -> Params {
        self.params
    }

    /// Add a domain without vCPUs, or reconfigure a known one. The weight is
    /// clamped to `1..=65535`, the cap (percent of one CPU, 0 = none) to
    /// `100 * ncpus`.
    pub fn add_domain(&mut self, dom: DomId, weight: u32, cap: u32) {
        let weight = weight.clamp(MIN_WEIGHT, MAX_WEIGHT);
        let cap = cap.min(self.params.max_cap());
        let d = self.domains.entry(dom).or_insert_with(|| Domain {
            weight,
            cap,
            cap_used_ns: 0,
            vcpus: BTreeMap::new(),
        });
        d.weight = weight;
        d.cap = cap;
    }

    /// Change a domain's weight (`1..=65535`) and cap (percent of one CPU,
    /// `0..=100 * ncpus`, 0 = none). The weight counts from the next
    /// accounting boundary; the cap at once, against this period's use.
    pub fn set_domain(&mut self, dom: DomId, weight: u32, cap: u32) -> Result<(), ParamError> {
        if !(MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) {
            return Err(ParamError::Weight);
        }
        if cap > self.params.max_cap() {
            return Err(ParamError::Cap);
        }
        let d = self.domains.get_mut(&dom).ok_or(ParamError::UnknownDomain)?;
        d.weight = weight;
        d.cap = cap;
        Ok(())
    }

    /// A domain's `(weight, cap)`.
    pub fn domain_params(&self, dom: DomId) -> Option<(u32, u32)> {
        self.domains.get(&dom).map(|d| (d.weight, d.cap))
    }

    /// Forget a domain and its vCPUs; safe while one of them is running
    /// (later charges for it are ignored).
    pub fn remove_domain(&mut self, dom: DomId) {
        if let Some(d) = self.domains.remove(&dom) {
            for v in d.vcpus.keys() {
                self.runq.remove((dom, *v));
            }
        }
    }

    /// Add a vCPU to its domain, blocked and with no credit. Ignored if the
    /// domain is unknown or the vCPU exists.
    pub fn add_vcpu(&mut self, key: Key) {
        if let Some(d) = self.domains.get_mut(&key.0) {
            d.vcpus.entry(key.1).or_default();
        }
    }

    /// Forget a vCPU; safe while it is running.
    pub fn remove_vcpu(&mut self, key: Key) {
        if let Some(d) = self.domains.get_mut(&key.0) {
            d.vcpus.remove(&key.1);
        }
        self.runq.remove(key);
    }

    /// Make a vCPU runnable (at the tail of the run queue). A vCPU that was
    /// not runnable, has positive credit and whose domain is not parked is
    /// boosted. Waking a runnable vCPU changes nothing.
    pub fn wake(&mut self, key: Key, now_ns: u64) {
        self.advance(now_ns);
        let params = self.params;
        let boundary_ns = self.next_boundary_ns;
        let Some(d) = self.domains.get_mut(&key.0) else {
            return;
        };
        let parked = d.parked(&params);
        let Some(v) = d.vcpus.get_mut(&key.1) else { return };
        if v.runnable {
            return;
        }
        v.runnable = true;
        v.boost = (v.credit_ns > 0 && !parked).then_some(Boost {
            ran_ns: 0,
            boundary_ns,
        });
        self.runq.move_to_tail(key);
    }

    /// Take a vCPU off the candidates: blocked, paused or offline. Its boost
    /// ends; its credit stays.
    pub fn sleep(&mut self, key: Key) {
        if let Some(v) = self.vcpu_mut(key) {
            v.runnable = false;
            v.boost = None;
        }
        self.runq.remove(key);
    }

    /// The running vCPU gives up the rest of its slice: the next
    /// [`pick`](Self::pick) prefers others of its priority.
    pub fn yield_now(&mut self, key: Key) {
        if self.runq.current.is_some_and(|c| c.key == key) {
            self.runq.current = None;
        }
        if self.vcpu(key).is_some_and(|v| v.runnable) {
            self.runq.move_to_tail(key);
        }
    }

    /// The vCPU ran `ran_ns`, ending at `now_ns`: debit its credit (floored
    /// at `-period_ns`) and its domain's cap budget, and end its boost if it
    /// has run [`BOOST_TICK_NS`] boosted or an accounting boundary has passed
    /// since the wake. Then account any boundaries up to `now_ns`. Unknown
    /// vCPUs (removed while running) are ignored.
    pub fn charge(&mut self, key: Key, ran_ns: u64, now_ns: u64) {
        let bound = self.params.credit_bound();
        if let Some(d) = self.domains.get_mut(&key.0)
            && let Some(v) = d.vcpus.get_mut(&key.1)
        {
            let ran = i64::try_from(ran_ns).unwrap_or(i64::MAX);
            v.credit_ns = v.credit_ns.saturating_sub(ran).max(bound.saturating_neg());
            v.ran |= ran_ns > 0;
            if let Some(b) = v.boost.as_mut() {
                b.ran_ns = b.ran_ns.saturating_add(ran_ns);
                if b.ran_ns >= BOOST_TICK_NS || now_ns > b.boundary_ns {
                    v.boost = None;
                }
            }
            d.cap_used_ns = d.cap_used_ns.saturating_add(ran_ns);
        }
        self.advance(now_ns);
    }

    /// Choose what runs from `now_ns`, after accounting any boundaries
    /// passed. `None`: nothing can run (all blocked, or parked by their cap);
    /// idle until [`next_event_ns`](Self::next_event_ns) or an interrupt.
    /// Calling it again before `until_ns` with nothing changed returns the
    /// same vCPU and slice end (so the loop may call it after any exit).
    pub fn pick(&mut self, now_ns: u64) -> Option<Decision> {
        self.start(now_ns);
        self.advance(now_ns);
        // The current vCPU keeps its turn while it can run, its slice lasts,
        // its priority has not dropped, and no one better waits.
        let keep = self.runq.current.and_then(|c| {
            let p = self.candidate_prio(c.key)?;
            (now_ns < c.slice_end_ns && p <= c.prio).then_some((c, p))
        });
        let other = self.best_candidate(keep.map(|(c, _)| c.key));
        // At equal priority the current vCPU also yields to one that holds
        // clearly more credit (see `best_candidate`).
        let credit_of = |k: Key| self.credit(k).unwrap_or(i64::MIN);
        let (key, prio, slice_end_ns) = match (keep, other) {
            (Some((c, p)), Some((k, q)))
                if p < q || (p == q && credit_of(k) <= credit_of(c.key).saturating_add(LEAD_NS)) =>
            {
                (c.key, p, c.slice_end_ns)
            }
            (Some((c, p)), None) => (c.key, p, c.slice_end_ns),
            (_, Some((k, q))) => {
                self.runq.move_to_tail(k);
                (k, q, now_ns.saturating_add(self.params.tslice_ns))
            }
            (None, None) => {
                self.runq.current = None;
                return None;
            }
        };
        self.runq.current = Some(Current {
            key,
            slice_end_ns,
            prio,
        });
        Some(Decision {
            key,
            until_ns: self.until(key, prio, slice_end_ns, now_ns),
        })
    }

    /// Whether the run loop should take the CPU from `running` now (after a
    /// wake, typically): it can no longer run, or a runnable vCPU has a
    /// strictly better priority (a boosted waker).
    pub fn should_preempt(&self, running: Key) -> bool {
        let Some(p) = self.candidate_prio(running) else {
            return true;
        };
        self.best_candidate(Some(running)).is_some_and(|(_, q)| q < p)
    }

    /// When the idle loop must come back even without an interrupt: the next
    /// accounting boundary while some vCPU is runnable (it may be parked, or
    /// the boundary may change the choice); `None` when nothing is runnable,
    /// as only a wake can change that.
    pub fn next_event_ns(&self) -> Option<u64> {
        self.domains
            .values()
            .any(|d| d.vcpus.values().any(|v| v.runnable))
            .then_some(self.next_boundary_ns)
    }

    /// A vCPU's priority class (whether or not it is runnable).
    pub fn prio(&self, key: Key) -> Option<Prio> {
        self.vcpu(key).map(Vcpu::prio)
    }

    /// A vCPU's credit in nanoseconds of CPU time.
    pub fn credit(&self, key: Key) -> Option<i64> {
        self.vcpu(key).map(|v| v.credit_ns)
    }

    /// Whether a vCPU is runnable (woken, not slept); a parked one is.
    pub fn is_runnable(&self, key: Key) -> bool {
        self.vcpu(key).is_some_and(|v| v.runnable)
    }

    /// Whether a domain is parked: out of cap budget until the next boundary.
    pub fn is_parked(&self, dom: DomId) -> bool {
        self.domains.get(&dom).is_some_and(|d| d.parked(&self.params))
    }

    fn vcpu(&self, (dom, v): Key) -> Option<&Vcpu> {
        self.domains.get(&dom)?.vcpus.get(&v)
    }

    fn vcpu_mut(&mut self, (dom, v): Key) -> Option<&mut Vcpu> {
        self.domains.get_mut(&dom)?.vcpus.get_mut(&v)
    }

    /// The priority of a vCPU that may be picked: runnable, domain not parked.
    fn candidate_prio(&self, (dom, v): Key) -> Option<Prio> {
        let d = self.domains.get(&dom)?;
        let vcpu = d.vcpus.get(&v)?;
        (vcpu.runnable && !d.parked(&self.params)).then(|| vcpu.prio())
    }

    /// The first candidate in queue order with the best priority, other than
    /// `exclude`.
    fn best_candidate(&self, exclude: Option<Key>) -> Option<(Key, Prio)> {
        // Best priority first; within a priority the vCPU holding the most
        // credit, and among equals the one that waited longest (queue
        // order). Running whoever has the most credit keeps every busy
        // vCPU's credit close together, so CPU time follows the grants,
        // that is the weights; plain round robin within a priority would
        // share equally while everyone is Under.
        let mut best: Option<(Key, Prio, i64)> = None;
        for &k in &self.runq.order {
            if Some(k) == exclude {
                continue;
            }
            if let Some(p) = self.candidate_prio(k) {
                let c = self.credit(k).unwrap_or(i64::MIN);
                if best.is_none_or(|(_, bp, bc)| p < bp || (p == bp && c > bc)) {
                    best = Some((k, p, c));
                }
            }
        }
        best.map(|(k, p, _)| (k, p))
    }

    /// When the run loop must come back from running `key` (see
    /// [`Decision::until_ns`]).
    fn until(&self, key: Key, prio: Prio, slice_end_ns: u64, now_ns: u64) -> u64 {
        let hard = slice_end_ns.min(self.next_boundary_ns);
        let Some(d) = self.domains.get(&key.0) else {
            return hard;
        };
        let Some(v) = d.vcpus.get(&key.1) else { return hard };
        let mut soft = u64::MAX;
        if d.cap != 0 {
            soft = soft.min(self.params.cap_budget_ns(d.cap).saturating_sub(d.cap_used_ns));
        }
        // Running out of credit or boost only matters if someone else waits.
        if let Some((other, q)) = self.best_candidate(Some(key)) {
            if let Some(b) = v.boost {
                soft = soft.min(BOOST_TICK_NS.saturating_sub(b.ran_ns));
            } else if prio == Prio::Under {
                soft = soft.min(u64::try_from(v.credit_ns).unwrap_or(0));
            }
            // At equal priority: until this vCPU holds `LEAD_NS` less credit
            // than the other, so busy vCPUs interleave in proportion.
            if q == prio && v.boost.is_none() {
                let other_credit = self.credit(other).unwrap_or(i64::MIN);
                let lead = v.credit_ns.saturating_sub(other_credit).saturating_add(LEAD_NS);
                soft = soft.min(u64::try_from(lead).unwrap_or(0));
            }
        }
        if soft == u64::MAX {
            return hard;
        }
        hard.min(now_ns.saturating_add(soft.max(MIN_RUN_NS)))
    }

    /// Start the first period at `now_ns` if some vCPU is runnable: its
    /// credit is handed out at once, to everyone woken by then. Only `pick`
    /// starts it, so that all the vCPUs woken together at boot share it.
    fn start(&mut self, now_ns: u64) {
        if !self.started && self.next_event_ns().is_some() {
            self.started = true;
            self.next_boundary_ns = now_ns.saturating_add(self.params.period_ns);
            self.account();
        }
    }

    /// Account every boundary up to `now_ns` (nothing before the first
    /// period has started).
    fn advance(&mut self, now_ns: u64) {
        let period = self.params.period_ns;
        if !self.started {
            return;
        }
        let mut rounds = 0;
        while now_ns >= self.next_boundary_ns {
            if rounds == MAX_CATCHUP_PERIODS {
                // Skip the rest, keeping boundaries on the same grid.
                let behind = now_ns.saturating_sub(self.next_boundary_ns) / period;
                let skip = behind.saturating_add(1).saturating_mul(period);
                self.next_boundary_ns = self.next_boundary_ns.saturating_add(skip);
                break;
            }
            self.account();
            self.next_boundary_ns = self.next_boundary_ns.saturating_add(period);
            rounds += 1;
        }
    }

    /// One accounting boundary: hand out a period of credit to the active
    /// domains and vCPUs, then start a new period (activity and cap use).
    fn account(&mut self) {
        let params = self.params;
        let bound = params.credit_bound();
        let period_total = params.period_ns.saturating_mul(u64::from(params.ncpus));
        // Converge the runnable vCPUs' summed credit back to zero when it
        // drops negative (Xen's `credit_balance`).
        let balance: i64 = self
            .domains
            .values()
            .flat_map(|d| d.vcpus.values())
            .filter(|v| v.runnable)
            .fold(0i64, |sum, v| sum.saturating_add(v.credit_ns));
        let extra = u64::try_from(balance.saturating_neg())
            .unwrap_or(0)
            .min(period_total);
        let total = period_total.saturating_add(extra);
        // Each active domain's weight and how much credit it can take.
        let mut active: Vec<(DomId, Share)> = Vec::new();
        for (&id, d) in &self.domains {
            let any = d.vcpus.values().any(|v| v.active());
            if any {
                // Only a cap limits what a domain is handed. Credit a domain
                // cannot hold (above the bound) is dropped, not given to the
                // others: handing it on would refill a domain that used more
                // than its share and erase the weights.
                let limit = params.cap_budget_ns(d.cap);
                active.push((
                    id,
                    Share {
                        weight: u64::from(d.weight),
                        limit,
                    },
                ));
            }
        }
        let shares: Vec<Share> = active.iter().map(|(_, s)| *s).collect();
        let grants = water_fill(total, &shares);
        for ((id, _), grant) in active.iter().zip(grants) {
            let Some(d) = self.domains.get_mut(id) else {
                continue;
            };
            let vcpus: Vec<Share> = d
                .vcpus
                .values()
                .filter(|v| v.active())
                .map(|v| Share {
                    weight: 1,
                    limit: v.headroom_ns(bound),
                })
                .collect();
            let each = water_fill(grant, &vcpus);
            for (v, g) in d.vcpus.values_mut().filter(|v| v.active()).zip(each) {
                let g = i64::try_from(g).unwrap_or(i64::MAX);
                v.credit_ns = v.credit_ns.saturating_add(g).min(bound);
            }
        }
        for d in self.domains.values_mut() {
            let budget = params.cap_budget_ns(d.cap);
            d.cap_used_ns = if d.cap == 0 {
                0
            } else {
                d.cap_used_ns.saturating_sub(budget).min(budget)
            };
            for v in d.vcpus.values_mut() {
                v.ran = false;
            }
        }
    }
}

/// A claimant in [`water_fill`]: its weight and the most it can take.
#[derive(Clone, Copy, Debug)]
struct Share {
    weight: u64,
    limit: u64,
}

/// Divide `total` among `shares` in proportion to weight, none above its
/// limit, what a limited one cannot take going to the others by weight.
/// Returns each share's grant; they sum to `min(total, sum of limits)`
/// (rounding down, the remainder going to the last unlimited share).
fn water_fill(total: u64, shares: &[Share]) -> Vec<u64> {
    let mut grants = alloc::vec![0u64; shares.len()];
    // Most constrained (smallest limit per unit of weight) first: once one
    // is not held by its limit, none after it is.
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (shares[a], shares[b]);
        (u128::from(sa.limit) * u128::from(sb.weight)).cmp(&(u128::from(sb.limit) * u128::from(sa.weight)))
    });
    let mut remaining = u128::from(total);
    let mut weight_left: u128 = shares.iter().map(|s| u128::from(s.weight)).sum();
    for i in order {
        let s = shares[i];
        if weight_left == 0 {
            break;
        }
        let fair = remaining * u128::from(s.weight) / weight_left;
        let g = fair.min(u128::from(s.limit));
        remaining -= g;
        weight_left -= u128::from(s.weight);
        grants[i] = u64::try_from(g).unwrap_or(u64::MAX);
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::println;
    use std::vec;

    const MS: u64 = NS_PER_MS;
    const SECOND: u64 = 1000 * MS;

    /// What a simulated vCPU does.
    #[derive(Clone, Copy, Debug)]
    enum Load {
        /// Always wants the CPU.
        Busy,
        /// Wakes every `every_ns` from `first_ns`, runs `work_ns`, blocks.
        Periodic {
            first_ns: u64,
            every_ns: u64,
            work_ns: u64,
        },
    }

    struct Task {
        key: Key,
        load: Load,
        sleeping: bool,
        work_left_ns: u64,
        next_wake_ns: u64,
        woke_at_ns: Option<u64>,
    }

    /// A run loop over simulated time: pick, run until `until_ns`, a wake
    /// that preempts, or the vCPU blocking; charge at every exit.
    struct Sim {
        s: Credit,
        tasks: Vec<Task>,
        now: u64,
        cpu_ns: BTreeMap<Key, u64>,
        idle_ns: u64,
        /// Wake-to-pick latencies of each vCPU, for wakes from `latency_from`.
        latency: BTreeMap<Key, Vec<u64>>,
        latency_from: u64,
        /// Longest gap between two runs of a busy vCPU.
        max_gap: BTreeMap<Key, u64>,
        last_run_end: BTreeMap<Key, u64>,
        decisions: u64,
    }

    impl Sim {
        fn new(params: Params) -> Self {
            Self {
                s: Credit::new(params, 0),
                tasks: Vec::new(),
                now: 0,
                cpu_ns: BTreeMap::new(),
                idle_ns: 0,
                latency: BTreeMap::new(),
                latency_from: 0,
                max_gap: BTreeMap::new(),
                last_run_end: BTreeMap::new(),
                decisions: 0,
            }
        }

        fn domain(&mut self, dom: DomId, weight: u32, cap: u32) {
            self.s.add_domain(dom, weight, cap);
        }

        fn task(&mut self, key: Key, load: Load) {
            self.s.add_vcpu(key);
            let (sleeping, next) = match load {
                Load::Busy => {
                    self.s.wake(key, self.now);
                    (false, u64::MAX)
                }
                Load::Periodic { first_ns, .. } => (true, first_ns),
            };
            self.tasks.push(Task {
                key,
                load,
                sleeping,
                work_left_ns: 0,
                next_wake_ns: next,
                woke_at_ns: None,
            });
        }

        fn next_wake(&self) -> u64 {
            self.tasks
                .iter()
                .filter(|t| t.sleeping)
                .map(|t| t.next_wake_ns)
                .min()
                .unwrap_or(u64::MAX)
        }

        fn deliver_wakes(&mut self) {
            for t in self.tasks.iter_mut() {
                if t.sleeping && t.next_wake_ns <= self.now {
                    let Load::Periodic {
                        every_ns, work_ns, ..
                    } = t.load
                    else {
                        continue;
                    };
                    t.sleeping = false;
                    t.work_left_ns = work_ns;
                    t.woke_at_ns = Some(self.now);
                    t.next_wake_ns += every_ns;
                    self.s.wake(t.key, self.now);
                }
            }
        }

        fn run_until(&mut self, end: u64) {
            let tslice = self.s.params().tslice_ns;
            while self.now < end {
                self.deliver_wakes();
                let Some(d) = self.s.pick(self.now) else {
                    let wake = self.next_wake();
                    let next = self.s.next_event_ns().unwrap_or(u64::MAX).min(wake).min(end);
                    assert!(next > self.now, "idle must make progress");
                    self.idle_ns += next - self.now;
                    self.now = next;
                    continue;
                };
                self.decisions += 1;
                assert!(
                    d.until_ns > self.now,
                    "until_ns {} <= now {}",
                    d.until_ns,
                    self.now
                );
                assert!(d.until_ns - self.now <= tslice, "slice longer than tslice");
                if let Some(t) = self.tasks.iter_mut().find(|t| t.key == d.key)
                    && let Some(w) = t.woke_at_ns.take()
                    && w >= self.latency_from
                {
                    self.latency.entry(d.key).or_default().push(self.now - w);
                }
                if let Some(&last) = self.last_run_end.get(&d.key) {
                    let gap = self.now - last;
                    let g = self.max_gap.entry(d.key).or_default();
                    *g = (*g).max(gap);
                }
                self.run(d, end);
                self.last_run_end.insert(d.key, self.now);
            }
        }

        /// Run `d` from `now` with the exits a real loop sees.
        fn run(&mut self, d: Decision, end: u64) {
            let stop = d.until_ns.min(end);
            loop {
                let idx = self.tasks.iter().position(|t| t.key == d.key).expect("task");
                let finish = match self.tasks[idx].load {
                    Load::Busy => u64::MAX,
                    Load::Periodic { .. } => self.now + self.tasks[idx].work_left_ns,
                };
                let t1 = stop.min(finish).min(self.next_wake());
                assert!(t1 > self.now);
                let ran = t1 - self.now;
                self.now = t1;
                self.s.charge(d.key, ran, t1);
                *self.cpu_ns.entry(d.key).or_default() += ran;
                let t = &mut self.tasks[idx];
                if matches!(t.load, Load::Periodic { .. }) {
                    t.work_left_ns -= ran;
                    if t.work_left_ns == 0 {
                        t.sleeping = true;
                        self.s.sleep(d.key);
                        self.deliver_wakes();
                        return;
                    }
                }
                self.deliver_wakes();
                if self.now >= stop || self.s.should_preempt(d.key) {
                    return;
                }
            }
        }

        fn dom_ns(&self, dom: DomId) -> u64 {
            self.cpu_ns
                .iter()
                .filter(|(k, _)| k.0 == dom)
                .map(|(_, n)| n)
                .sum()
        }

        fn snapshot(&self) -> BTreeMap<DomId, u64> {
            let mut m = BTreeMap::new();
            for (k, n) in &self.cpu_ns {
                *m.entry(k.0).or_default() += n;
            }
            m
        }
    }

    fn ratio(a: u64, b: u64) -> f64 {
        a as f64 / b as f64
    }

    fn assert_near(what: &str, got: f64, want: f64, tol: f64) {
        println!("{what}: {got:.4} (want {want:.4} ± {:.1} %)", tol * 100.0);
        assert!(
            (got / want - 1.0).abs() <= tol,
            "{what}: got {got}, want {want} ± {tol}"
        );
    }

    #[test]
    fn credit_water_fill_respects_limits_and_weights() {
        let s = |weight, limit| Share { weight, limit };
        assert_eq!(water_fill(30, &[s(1, 100), s(2, 100)]), vec![10, 20]);
        // The limited one takes what it can; the rest goes to the others.
        assert_eq!(water_fill(30, &[s(1, 1), s(1, 100), s(2, 100)]), vec![1, 10, 19]);
        // Everyone limited: the sum is the sum of the limits.
        assert_eq!(water_fill(30, &[s(1, 5), s(1, 6)]), vec![5, 6]);
        // Rounding: nothing lost while someone can take it.
        let g = water_fill(100, &[s(1, 100), s(1, 100), s(1, 100)]);
        assert_eq!(g.iter().sum::<u64>(), 100);
        assert!(g.iter().all(|&x| (33..=34).contains(&x)));
        assert!(water_fill(5, &[]).is_empty());
    }

    #[test]
    fn credit_nothing_runnable_is_none() {
        let mut s = Credit::new(Params::default(), 0);
        assert_eq!(s.pick(0), None);
        s.add_domain(1, 256, 0);
        s.add_vcpu((1, 0));
        assert_eq!(s.pick(5), None);
        assert_eq!(s.next_event_ns(), None);
        assert!(!s.is_runnable((1, 0)));
        s.wake((1, 0), 10);
        assert!(s.is_runnable((1, 0)));
        assert_eq!(s.pick(10).map(|d| d.key), Some((1, 0)));
        s.sleep((1, 0));
        assert_eq!(s.pick(20), None);
        // Unknown domain: the vCPU is not added.
        s.add_vcpu((9, 0));
        assert_eq!(s.prio((9, 0)), None);
        s.wake((9, 0), 30);
        assert_eq!(s.pick(30), None);
    }

    #[test]
    fn credit_params_are_validated() {
        let mut s = Credit::new(Params::default(), 0);
        s.add_domain(1, 0, 500);
        assert_eq!(s.domain_params(1), Some((MIN_WEIGHT, 100)));
        s.add_domain(2, 1_000_000, 0);
        assert_eq!(s.domain_params(2), Some((MAX_WEIGHT, 0)));
        assert_eq!(s.set_domain(1, 0, 0), Err(ParamError::Weight));
        assert_eq!(s.set_domain(1, 65536, 0), Err(ParamError::Weight));
        assert_eq!(s.set_domain(1, 512, 101), Err(ParamError::Cap));
        assert_eq!(s.set_domain(3, 512, 0), Err(ParamError::UnknownDomain));
        assert_eq!(s.set_domain(1, 512, 50), Ok(()));
        assert_eq!(s.domain_params(1), Some((512, 50)));
        assert_eq!(s.domain_params(3), None);
        let two = Params {
            ncpus: 2,
            ..Params::default()
        };
        let mut s = Credit::new(two, 0);
        s.add_domain(1, 256, 0);
        assert_eq!(s.set_domain(1, 256, 200), Ok(()));
        assert_eq!(s.set_domain(1, 256, 201), Err(ParamError::Cap));
        // Degenerate parameters are clamped.
        let p = Credit::new(
            Params {
                tslice_ns: 0,
                period_ns: u64::MAX,
                ncpus: 0,
            },
            0,
        )
        .params();
        assert_eq!(
            (p.tslice_ns, p.period_ns, p.ncpus),
            (MIN_RUN_NS, MAX_PERIOD_NS, 1)
        );
        assert_eq!(Params::with_tslice_ms(5).tslice_ns, 5 * MS);
    }

    #[test]
    fn credit_single_busy_vcpu_gets_everything() {
        let mut sim = Sim::new(Params::default());
        sim.domain(0, 256, 0);
        sim.task((0, 0), Load::Busy);
        sim.run_until(3 * SECOND);
        assert_eq!(sim.dom_ns(0), 3 * SECOND);
        assert_eq!(sim.idle_ns, 0);
        println!("single busy vCPU: {} decisions in 3 s", sim.decisions);
    }

    #[test]
    fn credit_weights_256_512() {
        let mut sim = Sim::new(Params::default());
        sim.domain(1, 256, 0);
        sim.domain(2, 512, 0);
        sim.task((1, 0), Load::Busy);
        sim.task((2, 0), Load::Busy);
        sim.run_until(3 * SECOND);
        assert_eq!(sim.idle_ns, 0);
        assert_near(
            "256:512 share of dom1",
            ratio(sim.dom_ns(1), 3 * SECOND),
            1.0 / 3.0,
            0.02,
        );
        assert_near("256:512 ratio", ratio(sim.dom_ns(1), sim.dom_ns(2)), 0.5, 0.02);
    }

    #[test]
    fn credit_weights_1_1_2() {
        let mut sim = Sim::new(Params::default());
        sim.domain(1, 256, 0);
        sim.domain(2, 256, 0);
        sim.domain(3, 512, 0);
        for d in 1..=3 {
            sim.task((d, 0), Load::Busy);
        }
        sim.run_until(3 * SECOND);
        let total = 3 * SECOND;
        assert_near("1:1:2 dom1", ratio(sim.dom_ns(1), total), 0.25, 0.02);
        assert_near("1:1:2 dom2", ratio(sim.dom_ns(2), total), 0.25, 0.02);
        assert_near("1:1:2 dom3", ratio(sim.dom_ns(3), total), 0.5, 0.02);
    }

    #[test]
    fn credit_weights_per_domain_not_per_vcpu() {
        // dom1 has two busy vCPUs, dom2 one; equal weights: equal halves,
        // dom1's half split evenly between its vCPUs.
        let mut sim = Sim::new(Params::default());
        sim.domain(1, 256, 0);
        sim.domain(2, 256, 0);
        sim.task((1, 0), Load::Busy);
        sim.task((1, 1), Load::Busy);
        sim.task((2, 0), Load::Busy);
        sim.run_until(3 * SECOND);
        let total = 3 * SECOND;
        assert_near("2 vCPUs vs 1: dom1", ratio(sim.dom_ns(1), total), 0.5, 0.02);
        assert_near("dom1 vCPU 0", ratio(sim.cpu_ns[&(1, 0)], total), 0.25, 0.02);
        assert_near("dom1 vCPU 1", ratio(sim.cpu_ns[&(1, 1)], total), 0.25, 0.02);
    }

    #[test]
    fn credit_interactive_dom0_is_boosted() {
        let mut sim = Sim::new(Params::default());
        sim.domain(0, 256, 0);
        sim.domain(1, 256, 0);
        sim.domain(2, 512, 0);
        sim.task(
            (0, 0),
            Load::Periodic {
                first_ns: 7 * MS,
                every_ns: 50 * MS,
                work_ns: MS,
            },
        );
        sim.task((1, 0), Load::Busy);
        sim.task((2, 0), Load::Busy);
        // The first wake comes before dom0 has earned any credit.
        sim.latency_from = 2 * DEFAULT_PERIOD_NS;
        sim.run_until(3 * SECOND);
        let lat = &sim.latency[&(0, 0)];
        let worst = lat.iter().copied().max().unwrap_or(0);
        println!(
            "dom0: {} wakes after warm-up, worst wake-to-pick {} ns, ran {} ns",
            lat.len(),
            worst,
            sim.dom_ns(0)
        );
        assert!(lat.len() >= 55);
        assert!(worst <= MS, "dom0 waited {worst} ns");
        assert_eq!(sim.idle_ns, 0);
        assert_near(
            "busy 256:512 beside dom0",
            ratio(sim.dom_ns(1), sim.dom_ns(2)),
            0.5,
            0.03,
        );
    }

    #[test]
    fn credit_mixed_loads() {
        // (domain, weight, cap, periodic load (first, every, work) in ms or busy)
        type Spec = &'static [(DomId, u32, u32, Option<(u64, u64, u64)>)];
        let run = |doms: Spec| {
            let mut sim = Sim::new(Params::default());
            for &(d, w, c, load) in doms {
                sim.domain(d, w, c);
                let load = load.map_or(Load::Busy, |(f, e, w)| Load::Periodic {
                    first_ns: f * MS,
                    every_ns: e * MS,
                    work_ns: w * MS,
                });
                sim.task((d, 0), load);
            }
            sim.run_until(10 * SECOND);
            let share = |d| ratio(sim.dom_ns(d), 10 * SECOND);
            (sim.idle_ns, share(0), share(1), share(2))
        };
        // dom0 wants 20 % (below its 25 % share): it gets it, the rest 1:2.
        let (idle, d0, d1, d2) = run(&[
            (0, 256, 0, Some((3, 10, 2))),
            (1, 256, 0, None),
            (2, 512, 0, None),
        ]);
        assert_eq!(idle, 0);
        assert_near("dom0 wanting 20 %", d0, 0.2, 0.01);
        assert_near("1:2 beside a 20 % dom0", d1 / d2, 0.5, 0.02);
        // dom0 wants 60 % at equal weight: it gets half, not more.
        let (_, d0, d1, _) = run(&[(0, 256, 0, Some((3, 10, 6))), (1, 256, 0, None)]);
        assert_near("dom0 wanting 60 %", d0, 0.5, 0.02);
        assert_near("busy beside it", d1, 0.5, 0.02);
        // A 30 % cap, an interactive dom0 and a busy domain.
        let (_, d0, d1, d2) = run(&[
            (0, 256, 0, Some((3, 50, 1))),
            (1, 256, 30, None),
            (2, 256, 0, None),
        ]);
        assert_near("dom0 1 ms / 50 ms", d0, 0.02, 0.01);
        assert_near("capped 30 %", d1, 0.3, 0.01);
        assert_near("the rest", d2, 0.68, 0.01);
        // 1:3:9 busy.
        let (_, _, d1, d2) = run(&[(0, 100, 0, None), (1, 300, 0, None), (2, 900, 0, None)]);
        assert_near("1:3:9, 3", d1, 3.0 / 13.0, 0.02);
        assert_near("1:3:9, 9", d2, 9.0 / 13.0, 0.02);
    }

    #[test]
    fn credit_cap_beside_uncapped() {
        let mut sim = Sim::new(Params::default());
        sim.domain(1, 256, 25);
        sim.domain(2, 256, 0);
        sim.task((1, 0), Load::Busy);
        sim.task((2, 0), Load::Busy);
        sim.run_until(3 * SECOND);
        let total = 3 * SECOND;
        assert_near("capped 25 % beside busy", ratio(sim.dom_ns(1), total), 0.25, 0.01);
        assert_eq!(sim.idle_ns, 0);
    }

    #[test]
    fn credit_cap_alone_idles_the_rest() {
        let mut sim = Sim::new(Params::default());
        sim.domain(1, 256, 25);
        sim.task((1, 0), Load::Busy);
        sim.task((1, 1), Load::Busy);
        sim.run_until(3 * SECOND);
        let total = 3 * SECOND;
        assert_near(
            "capped 25 % alone (2 vCPUs)",
            ratio(sim.dom_ns(1), total),
            0.25,
            0.01,
        );
        assert_near("idle", ratio(sim.idle_ns, total), 0.75, 0.01);
        // While parked: nothing to pick, and the idle loop knows when to return.
        let mut s = Credit::new(Params::default(), 0);
        s.add_domain(1, 256, 25);
        s.add_vcpu((1, 0));
        s.wake((1, 0), 0);
        let d = s.pick(0).expect("runs first");
        assert_eq!(d.until_ns, DEFAULT_PERIOD_NS / 4);
        s.charge((1, 0), d.until_ns, d.until_ns);
        assert!(s.is_parked(1));
        assert_eq!(s.pick(d.until_ns), None);
        assert_eq!(s.next_event_ns(), Some(DEFAULT_PERIOD_NS));
        assert!(!s.should_preempt((2, 0)) || s.prio((2, 0)).is_none());
        assert_eq!(s.pick(DEFAULT_PERIOD_NS).map(|d| d.key), Some((1, 0)));
        assert!(!s.is_parked(1));
    }

    #[test]
    fn credit_cap_overrun_is_carried() {
        let mut s = Credit::new(Params::default(), 0);
        s.add_domain(1, 256, 10);
        s.add_vcpu((1, 0));
        s.wake((1, 0), 0);
        assert!(s.pick(0).is_some());
        // Ran 5 ms on a 3 ms budget (a late timer): 2 ms owed next period.
        s.charge((1, 0), 5 * MS, 5 * MS);
        assert_eq!(s.pick(5 * MS), None);
        let d = s.pick(DEFAULT_PERIOD_NS).expect("unparked");
        assert_eq!(d.until_ns, DEFAULT_PERIOD_NS + MS);
    }

    #[test]
    fn credit_four_equal_vcpus_round_robin() {
        for per_domain in [false, true] {
            let mut sim = Sim::new(Params::default());
            for i in 0..4u16 {
                let key = if per_domain { (i, 0) } else { (0, usize::from(i)) };
                sim.domain(key.0, 256, 0);
                sim.task(key, Load::Busy);
            }
            sim.run_until(3 * SECOND);
            for (k, ns) in &sim.cpu_ns {
                assert_near(
                    &std::format!("4 equal, {k:?}"),
                    ratio(*ns, 3 * SECOND),
                    0.25,
                    0.02,
                );
            }
            let worst_gap = sim.max_gap.values().copied().max().unwrap_or(0);
            println!("4 equal (one domain each: {per_domain}): longest wait {worst_gap} ns");
            assert!(worst_gap <= 3 * DEFAULT_TSLICE_NS);
        }
    }

    #[test]
    fn credit_short_slices_are_respected() {
        let mut sim = Sim::new(Params::with_tslice_ms(1));
        sim.domain(1, 256, 0);
        sim.domain(2, 256, 0);
        sim.task((1, 0), Load::Busy);
        sim.task((1, 1), Load::Busy);
        sim.task((2, 0), Load::Busy);
        sim.run_until(SECOND);
        assert_near("1 ms slices dom1", ratio(sim.dom_ns(1), SECOND), 0.5, 0.02);
        // Every slice is 1 ms or less (asserted by the loop), so many decisions.
        assert!(sim.decisions >= 1000);
    }

    #[test]
    fn credit_weight_change_takes_effect_quickly() {
        let mut sim = Sim::new(Params::default());
        sim.domain(1, 256, 0);
        sim.domain(2, 256, 0);
        sim.task((1, 0), Load::Busy);
        sim.task((2, 0), Load::Busy);
        sim.run_until(SECOND + 7 * MS);
        assert_eq!(sim.s.set_domain(1, 768, 0), Ok(()));
        // From two periods after the change, the split is 3:1.
        sim.run_until(SECOND + 7 * MS + 2 * DEFAULT_PERIOD_NS);
        let before = sim.snapshot();
        let window = 30 * DEFAULT_PERIOD_NS;
        sim.run_until(sim.now + window);
        let after = sim.snapshot();
        let got = |d| after[&d] - before[&d];
        assert_near(
            "after weight change, dom1 share",
            ratio(got(1), window),
            0.75,
            0.02,
        );
    }

    #[test]
    fn credit_remove_domain_while_running() {
        let mut s = Credit::new(Params::default(), 0);
        for d in 1..=2 {
            s.add_domain(d, 256, 0);
            s.add_vcpu((d, 0));
            s.wake((d, 0), 0);
        }
        let d = s.pick(0).expect("something runs");
        s.remove_domain(d.key.0);
        assert!(s.should_preempt(d.key));
        s.charge(d.key, MS, MS);
        s.sleep(d.key);
        s.wake(d.key, MS);
        let next = s.pick(MS).expect("the other runs");
        assert_ne!(next.key.0, d.key.0);
        assert_eq!(s.prio(d.key), None);
        s.remove_vcpu(next.key);
        assert_eq!(s.pick(2 * MS), None);
        assert_eq!(s.next_event_ns(), None);
    }

    #[test]
    fn credit_boost_rules() {
        let p = Params::default();
        let mut s = Credit::new(p, 0);
        s.add_domain(1, 256, 0);
        s.add_domain(2, 256, 0);
        s.add_vcpu((1, 0));
        s.add_vcpu((2, 0));
        s.wake((2, 0), 0);
        s.wake((1, 0), 0);
        // Neither had credit when woken: no boost.
        assert_eq!(s.prio((1, 0)), Some(Prio::Over));
        let d = s.pick(0).expect("runs");
        assert_eq!(d.key, (2, 0));
        // Accounting at the first pick: 15 ms each.
        assert_eq!(s.credit((1, 0)), Some(i64::try_from(15 * MS).expect("small")));
        assert_eq!(s.prio((1, 0)), Some(Prio::Under));
        // Equal credit and priority: it runs until it leads by `LEAD_NS`.
        assert_eq!(d.until_ns, LEAD_NS.unsigned_abs());
        s.sleep((1, 0));
        assert!(!s.should_preempt((2, 0)));
        s.wake((1, 0), MS);
        assert_eq!(s.prio((1, 0)), Some(Prio::Boost));
        assert!(s.should_preempt((2, 0)));
        s.charge((2, 0), MS, MS);
        let d = s.pick(MS).expect("runs");
        assert_eq!(d.key, (1, 0));
        // Until the boost runs out (10 ms), the other waiting.
        assert_eq!(d.until_ns, 11 * MS);
        // Waking a runnable vCPU changes nothing.
        s.wake((1, 0), 2 * MS);
        s.charge((1, 0), 9 * MS, 10 * MS);
        assert_eq!(s.prio((1, 0)), Some(Prio::Boost));
        s.charge((1, 0), MS, 11 * MS);
        assert_eq!(s.prio((1, 0)), Some(Prio::Under));
        // A boost ends at the first charge after the next boundary.
        s.sleep((1, 0));
        s.wake((1, 0), 25 * MS);
        assert_eq!(s.prio((1, 0)), Some(Prio::Boost));
        s.charge((1, 0), 5 * MS, 30 * MS);
        assert_eq!(s.prio((1, 0)), Some(Prio::Boost));
        s.charge((1, 0), MS, 31 * MS);
        assert_eq!(s.prio((1, 0)), Some(Prio::Under));
        // Sleeping ends a boost.
        s.sleep((1, 0));
        s.wake((1, 0), 32 * MS);
        s.sleep((1, 0));
        assert_eq!(s.prio((1, 0)), Some(Prio::Under));
    }

    #[test]
    fn credit_is_bounded() {
        let p = Params::default();
        let bound = i64::try_from(p.period_ns).expect("small");
        let mut s = Credit::new(p, 0);
        s.add_domain(1, 256, 0);
        s.add_domain(2, 256, 0);
        s.add_vcpu((1, 0));
        s.add_vcpu((2, 0));
        s.wake((1, 0), 0);
        s.wake((2, 0), 0);
        assert!(s.pick(0).is_some());
        // Debt floors at one period.
        s.charge((1, 0), 10 * SECOND, 0);
        assert_eq!(s.credit((1, 0)), Some(-bound));
        s.charge((1, 0), u64::MAX, 0);
        assert_eq!(s.credit((1, 0)), Some(-bound));
        // A runnable vCPU that never runs stops earning at one period.
        for i in 1..20 {
            s.charge((1, 0), p.period_ns, i * p.period_ns);
        }
        assert_eq!(s.credit((2, 0)), Some(bound));
        // Long idle: boundaries skipped, still on the grid, still bounded.
        s.sleep((1, 0));
        s.sleep((2, 0));
        let late = 3600 * SECOND + 5;
        s.wake((2, 0), late);
        let d = s.pick(late).expect("runs");
        assert_eq!(d.key, (2, 0));
        assert!(d.until_ns > late);
        assert_eq!(d.until_ns % p.period_ns, 0);
        assert!(s.credit((2, 0)).is_some_and(|c| c <= bound));
    }

    #[test]
    fn credit_pick_is_stable_and_yield_rotates() {
        let mut s = Credit::new(Params::default(), 0);
        s.add_domain(1, 256, 0);
        s.add_vcpu((1, 0));
        s.add_vcpu((1, 1));
        s.wake((1, 0), 0);
        s.wake((1, 1), 0);
        let a = s.pick(0).expect("runs");
        s.charge(a.key, MS, MS);
        // Picking again mid-slice, nothing changed: same vCPU, same end.
        let b = s.pick(MS).expect("runs");
        assert_eq!(a, b);
        s.yield_now(a.key);
        let c = s.pick(MS).expect("runs");
        assert_ne!(c.key, a.key);
    }
}
