//! Domains: the unit of isolation. A [`Domain`] owns guest frames (its
//! [`p2m::P2m`]), an address space, a shared-info page, vCPUs and a console;
//! the [`DomainTable`] holds them all behind one lock. Creating a domain
//! allocates and zeroes its memory; destroying it returns every frame (a
//! domain whose frames dom0 still maps stays *dying* until they are
//! unmapped). Every frame is accounted: `tot_pages` guest frames plus the
//! overhead (page tables, shared info, FPU areas) the hypervisor keeps.

pub mod build;
pub mod console;
pub mod mmu;
pub mod p2m;
pub mod shared;
pub mod space;
pub mod vcpu;

use crate::mm::frame::Mfn;
use crate::mm::setup::{self, FRAMES};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use console::Console;
use core::fmt;
use dom0_abi::{DOMID_MAX, DomId, DomainInfo, MAX_VCPUS, ShutdownReason, Status, domstate};
use log::{info, warn};
use p2m::P2m;
use space::AddressSpace;
use spin::Mutex;
use vcpu::Vcpu;

/// Why a domain is not running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Alive (its vCPUs may still be paused or blocked).
    Alive,
    /// Stopped itself with `sched_shutdown`.
    Shutdown(ShutdownReason),
    /// Crashed (an undeliverable fault, or a bad `iret`).
    Crashed,
    /// Destroyed, waiting for foreign mappings of its frames to go.
    Dying,
}

/// A foreign mapping dom0 holds: whose frame is at a virtual address.
#[derive(Clone, Copy, Debug)]
pub struct ForeignMap {
    /// The owner of the frame.
    pub domid: DomId,
    /// The owner's frame number.
    pub gfn: u64,
}

/// One domain.
pub struct Domain {
    /// Its ID.
    pub id: DomId,
    /// Its unique name.
    pub name: String,
    /// May use domctl/sysctl (dom0).
    pub privileged: bool,
    /// Running, shut down, crashed or dying.
    pub state: State,
    /// Paused by the toolstack (new domains start paused).
    pub paused: bool,
    /// The builder set vCPU 0's context.
    pub built: bool,
    /// Most guest frames it may have.
    pub max_pages: u64,
    /// Its guest frames.
    pub p2m: P2m,
    /// Its page tables.
    pub space: AddressSpace,
    /// Its shared-info page.
    pub shared_info: Mfn,
    /// Its vCPUs.
    pub vcpus: Vec<Box<Vcpu>>,
    /// Mappings of this domain's frames held by dom0.
    pub foreign_refs: u64,
    /// Foreign frames this domain maps (dom0 only), by virtual address.
    pub foreign_maps: BTreeMap<u64, ForeignMap>,
    /// Its console.
    pub console: Console,
    /// CPU time used, in TSC ticks.
    pub cpu_tsc: u64,
    /// The boot bundle mapped read-only (dom0): first page and count.
    pub module_pages: Option<(u64, u64)>,
    /// Its event channels.
    pub events: crate::event::EventTable,
    /// Its shared-info page, as the hypervisor touches it.
    pub shared: shared::Shared,
    /// Scheduler weight.
    pub weight: u32,
    /// Scheduler cap, percent of a CPU (0: none).
    pub cap: u32,
    /// vCPUs the toolstack allows up (`xm vcpu-set`).
    pub vcpu_limit: u32,
    /// System time of creation, ns.
    pub created_ns: u64,
}

/// Why a domain could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// A name is empty, too long or badly formed.
    BadName,
    /// Another domain has that name.
    NameTaken,
    /// A size or count is out of range.
    Invalid,
    /// Not enough free frames.
    NoMemory,
    /// No domain ID left.
    NoId,
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CreateError::BadName => "the name is empty, longer than 31 bytes or not [A-Za-z0-9._-]",
            CreateError::NameTaken => "another domain has that name",
            CreateError::Invalid => "a size or count is out of range",
            CreateError::NoMemory => "not enough free memory",
            CreateError::NoId => "no domain ID left",
        })
    }
}

impl From<CreateError> for Status {
    fn from(e: CreateError) -> Status {
        match e {
            CreateError::BadName => Status::EINVAL,
            CreateError::NameTaken => Status::EEXIST,
            CreateError::Invalid => Status::EINVAL,
            CreateError::NoMemory => Status::ENOMEM,
            CreateError::NoId => Status::EAGAIN,
        }
    }
}

/// Page-table frames a domain may hold: enough for its physmap and a
/// generous number of sparse mappings, and no more.
fn pt_limit(max_pages: u64) -> u64 {
    64 + max_pages / 256
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 31
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn alloc_zeroed() -> Option<Mfn> {
    let mfn = FRAMES.lock().as_mut()?.alloc()?;
    setup::zero_frames(mfn, 1);
    Some(mfn)
}

fn free_frame(mfn: Mfn) {
    if let Some(frames) = FRAMES.lock().as_mut()
        && let Err(e) = frames.free(mfn)
    {
        log::error!("domain: frame {mfn} could not be freed: {e}");
    }
}

impl Domain {
    fn new(
        id: DomId,
        name: &str,
        privileged: bool,
        pages: u64,
        max_pages: u64,
        vcpus: u32,
    ) -> Result<Self, CreateError> {
        if !name_ok(name) {
            return Err(CreateError::BadName);
        }
        let vcpu_count = usize::try_from(vcpus).map_err(|_| CreateError::Invalid)?;
        if pages == 0 || pages > max_pages || vcpu_count == 0 || vcpu_count > MAX_VCPUS {
            return Err(CreateError::Invalid);
        }
        // Guest frames + shared info + FPU areas + a first page table, all
        // checked up front so that a refused create changes nothing.
        let overhead = 2 + u64::from(vcpus);
        let (total, free) = setup::frame_counts();
        if max_pages > total || pages + overhead > free {
            return Err(CreateError::NoMemory);
        }
        let space = AddressSpace::new(pt_limit(max_pages)).ok_or(CreateError::NoMemory)?;
        let shared_info = match alloc_zeroed() {
            Some(m) => m,
            None => {
                space.destroy();
                return Err(CreateError::NoMemory);
            }
        };
        let mut dom = Domain {
            id,
            name: String::from(name),
            privileged,
            state: State::Alive,
            paused: true,
            built: false,
            max_pages,
            p2m: P2m::new(),
            space,
            shared_info,
            vcpus: Vec::new(),
            foreign_refs: 0,
            foreign_maps: BTreeMap::new(),
            console: Console::default(),
            cpu_tsc: 0,
            module_pages: None,
            events: crate::event::EventTable::default(),
            shared: shared::Shared::new(shared_info),
            weight: dom0_abi::SCHED_WEIGHT_DEFAULT,
            cap: 0,
            vcpu_limit: vcpus,
            created_ns: crate::time::now_ns(),
        };
        let record = crate::time::record();
        let (wc_sec, wc_nsec) = crate::time::wallclock_at_boot();
        dom.shared.write_wallclock(wc_sec, wc_nsec);
        for v in 0..vcpu_count {
            dom.shared.write_time(v, &record);
        }
        for v in 0..vcpus {
            let Some(area) = alloc_zeroed() else {
                dom.release();
                return Err(CreateError::NoMemory);
            };
            crate::arch::fpu::init_area(setup::frame_bytes_mut(area));
            dom.vcpus.push(Box::new(Vcpu::new(v, area)));
        }
        if dom.grow(pages).is_err() {
            dom.release();
            return Err(CreateError::NoMemory);
        }
        Ok(dom)
    }

    /// Add `count` zeroed frames at the top of the p2m; the first new GFN.
    pub fn grow(&mut self, count: u64) -> Result<u64, Status> {
        let first = self.p2m.len();
        if first.checked_add(count).is_none_or(|n| n > self.max_pages) {
            return Err(Status::ENOMEM);
        }
        for _ in 0..count {
            let Some(mfn) = alloc_zeroed() else {
                self.shrink(self.p2m.len() - first);
                return Err(Status::ENOMEM);
            };
            self.p2m.push(mfn.0);
        }
        Ok(first)
    }

    /// Give back the top `count` frames (unmapped by the caller).
    pub fn shrink(&mut self, count: u64) {
        for _ in 0..count {
            match self.p2m.pop() {
                Some(mfn) => free_frame(Mfn(mfn)),
                None => break,
            }
        }
    }

    /// Frames the hypervisor keeps for this domain besides its memory.
    pub fn overhead_pages(&self) -> u64 {
        self.space.pt_pages + 1 + self.vcpus.len() as u64
    }

    /// Free everything the domain holds.
    fn release(mut self) {
        let pages = self.p2m.len();
        self.shrink(pages);
        for v in self.vcpus.drain(..) {
            free_frame(v.fpu);
        }
        free_frame(self.shared_info);
        self.space.destroy();
    }

    /// Whether a vCPU of this domain may run now.
    pub fn runnable(&self) -> bool {
        self.state == State::Alive && !self.paused && self.built
    }

    /// The `xm list` state bits.
    pub fn state_bits(&self) -> u32 {
        let mut bits = match self.state {
            State::Alive => 0,
            State::Shutdown(_) => domstate::SHUTDOWN,
            State::Crashed => domstate::CRASHED,
            State::Dying => domstate::DYING,
        };
        if self.state == State::Alive {
            if self.paused {
                bits |= domstate::PAUSED;
            } else if self.vcpus.iter().all(|v| !v.runnable()) {
                bits |= domstate::BLOCKED;
            } else {
                bits |= domstate::RUNNING;
            }
        }
        bits
    }

    /// The `domctl_getinfo` record.
    pub fn info(&self) -> DomainInfo {
        let cpu_time_ns = crate::time::tsc_to_ns(self.cpu_tsc);
        DomainInfo {
            domid: self.id,
            pad0: 0,
            state: self.state_bits(),
            flags: if self.privileged {
                dom0_abi::DOMINFO_PRIVILEGED
            } else {
                0
            },
            vcpus: u32::try_from(self.vcpus.len()).unwrap_or(u32::MAX),
            shutdown_reason: match self.state {
                State::Shutdown(r) => r as u32,
                State::Crashed => ShutdownReason::Crash as u32,
                _ => 0,
            },
            pad1: 0,
            tot_pages: self.p2m.len(),
            max_pages: self.max_pages,
            cpu_time_ns,
            name: dom0_abi::name_field(&self.name),
            overhead_pages: self.overhead_pages(),
            reserved: 0,
        }
    }
}

/// Every domain, by ID.
pub struct DomainTable {
    domains: BTreeMap<DomId, Box<Domain>>,
    next_id: DomId,
}

/// The one domain table.
pub static DOMAINS: Mutex<DomainTable> = Mutex::new(DomainTable {
    domains: BTreeMap::new(),
    next_id: 1,
});

impl DomainTable {
    /// The domain with this ID.
    pub fn get(&self, id: DomId) -> Option<&Domain> {
        self.domains.get(&id).map(|d| &**d)
    }

    /// The domain with this ID, mutably.
    pub fn get_mut(&mut self, id: DomId) -> Option<&mut Domain> {
        self.domains.get_mut(&id).map(|d| &mut **d)
    }

    /// The first domain with an ID `>= id`.
    pub fn first_from(&self, id: DomId) -> Option<&Domain> {
        self.domains.range(id..).next().map(|(_, d)| &**d)
    }

    /// IDs of every domain.
    pub fn ids(&self) -> Vec<DomId> {
        self.domains.keys().copied().collect()
    }

    /// Every domain, in ID order.
    pub fn iter(&self) -> impl Iterator<Item = &Domain> {
        self.domains.values().map(|d| &**d)
    }

    /// Whether a domain with this ID exists.
    pub fn contains(&self, id: DomId) -> bool {
        self.domains.contains_key(&id)
    }

    /// How many domains exist.
    pub fn len(&self) -> usize {
        self.domains.len()
    }

    /// Whether no domain exists.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    fn alloc_id(&mut self) -> Option<DomId> {
        for _ in 0..DOMID_MAX {
            let id = self.next_id;
            self.next_id = if id >= DOMID_MAX { 1 } else { id + 1 };
            if !self.domains.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    /// Create domain 0 (privileged).
    pub fn create_dom0(&mut self, pages: u64) -> Result<DomId, CreateError> {
        let dom = Domain::new(0, "Domain-0", true, pages, pages, 1)?;
        self.domains.insert(0, Box::new(dom));
        Ok(0)
    }

    /// Create an empty, paused domain.
    pub fn create(
        &mut self,
        name: &str,
        pages: u64,
        max_pages: u64,
        vcpus: u32,
    ) -> Result<DomId, CreateError> {
        if self.domains.values().any(|d| d.name == name) {
            return Err(CreateError::NameTaken);
        }
        let id = self.alloc_id().ok_or(CreateError::NoId)?;
        let dom = Domain::new(id, name, false, pages, max_pages, vcpus)?;
        info!("domain {id} ('{name}') created: {pages} pages (max {max_pages}), {vcpus} vCPU(s)");
        self.domains.insert(id, Box::new(dom));
        Ok(id)
    }

    /// Destroy a domain; its frames return now, or when the last foreign
    /// mapping of them goes (the domain is *dying* until then).
    pub fn destroy(&mut self, id: DomId) -> Result<(), Status> {
        let dom = self.domains.get_mut(&id).ok_or(Status::ESRCH)?;
        if dom.privileged {
            return Err(Status::EPERM);
        }
        dom.console.flush(id);
        let foreign_refs = dom.foreign_refs;
        crate::event::close_all(self, id);
        let Some(dom) = self.domains.get_mut(&id) else {
            return Ok(());
        };
        if foreign_refs > 0 {
            dom.state = State::Dying;
            dom.paused = true;
            info!(
                "domain {id} ('{}') dying: {} of its frames are still mapped by dom0",
                dom.name, dom.foreign_refs
            );
            return Ok(());
        }
        self.finalize(id);
        Ok(())
    }

    fn finalize(&mut self, id: DomId) {
        crate::sched::kick();
        if let Some(dom) = self.domains.remove(&id) {
            let pages = dom.p2m.len();
            let name = dom.name.clone();
            let cpu_ms = crate::time::tsc_to_ns(dom.cpu_tsc) / 1_000_000;
            dom.release();
            let (heap_used, _) = crate::mm::heap::usage();
            let (_, free) = setup::frame_counts();
            info!(
                "domain {id} ('{name}') destroyed after {cpu_ms} ms of CPU: {pages} pages returned; \
                 {free} frames free, heap {heap_used} bytes in use"
            );
        }
    }

    /// Free a domain that never started (a failed build), dom0 included.
    pub fn discard(&mut self, id: DomId) {
        crate::event::close_all(self, id);
        self.finalize(id);
    }

    /// Finish destroying `owner` if it is dying and nothing maps it any more.
    pub fn reap_if_unreferenced(&mut self, owner: DomId) {
        let Some(dom) = self.domains.get(&owner) else {
            return;
        };
        if dom.foreign_refs == 0 && dom.state == State::Dying {
            self.finalize(owner);
        }
    }

    /// Mark a domain crashed, report it, and tell dom0.
    pub fn crash(&mut self, id: DomId, why: fmt::Arguments<'_>) {
        if let Some(dom) = self.domains.get_mut(&id) {
            dom.console.flush(id);
            warn!("domain {id} ('{}') crashed: {why}", dom.name);
            dom.state = State::Crashed;
        }
        self.notify_dom0();
    }

    /// Record a domain's shutdown and tell dom0.
    pub fn shutdown(&mut self, id: DomId, reason: ShutdownReason) {
        if let Some(dom) = self.domains.get_mut(&id) {
            dom.console.flush(id);
            info!("domain {id} ('{}') shut down: {}", dom.name, reason.name());
            dom.state = State::Shutdown(reason);
        }
        self.notify_dom0();
    }

    /// Tell dom0 a domain changed state (and the scheduler): `VIRQ_DOM_EXC`, and a wake-up
    /// for a dom0 that waits in `sched_block` without having bound it.
    pub fn notify_dom0(&mut self) {
        crate::sched::kick();
        crate::event::raise_virq(self, 0, dom0_abi::Virq::DomExc, 0);
        self.wake_dom0();
    }

    /// Wake dom0's vCPU 0 from `sched_block`.
    pub fn wake_dom0(&mut self) {
        if let Some(dom0) = self.domains.get_mut(&0)
            && let Some(v) = dom0.vcpus.first_mut()
        {
            // A blocked vCPU consumes the wake-up by returning from its
            // block; a running one finds it pending at its next block.
            if v.blocked {
                v.blocked = false;
                if v.poll.take().is_some() {
                    // A poll ends as if it timed out: dom0 looks again.
                    v.regs.rax = 0;
                }
                crate::sched::kick();
            } else {
                v.wake_pending = true;
            }
        }
    }
}
