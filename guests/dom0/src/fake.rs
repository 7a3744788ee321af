//! A fake hypervisor for the host tests of `toolstack.rs`, `foreign.rs`,
//! `watch.rs`, `xm/` and `shell/`: domains with frames kept in memory,
//! dom0's scratch mappings, a free-frame count that shows leaks, console
//! and log streams, scheduler and vCPU records, and failures injected on
//! demand. The ABI 1.1 calls check their arguments as the hypervisor does
//! (`hypervisor/src/hypercall/domctl.rs`). Also the bundles and guest images
//! the tests feed it.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use dom0_abi::{
    DOMID_SELF, DOMINFO_PRIVILEGED, DomId, DomainConfig, DomainInfo, MMU_MAP, MMU_MAP_SHARED_INFO, MMU_UNMAP,
    MMU_WRITE, MmuOp, NOTE_NAME, NOTE_TYPE_ABI_VERSION, Physinfo, SCHED_WEIGHT_DEFAULT, SCHED_WEIGHT_MAX,
    SchedParams, ShutdownReason, Status, VcpuContext, VcpuRecord, domstate, field_str, name_field,
};

use crate::hv::Hv;

/// A failure to inject: the next matching call returns the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// `domctl_destroy`.
    Destroy(Status),
    /// `mmu_batch` on dom0 mapping another domain's frames.
    ForeignMap(Status),
    /// `mmu_batch` on a domain being built.
    TargetMmu(Status),
    /// `domctl_set_vcpu_context`.
    SetContext(Status),
    /// `domctl_unpause`.
    Unpause(Status),
    /// `domctl_getinfo`.
    Getinfo(Status),
    /// `domctl_sched_set`.
    SchedSet(Status),
    /// Every ABI 1.1 call answers this (a 1.0 hypervisor: `ENOSYS`).
    Abi11(Status),
}

/// Bytes a fake console or log ring keeps, as the hypervisor's rings do.
pub const RING_BYTES: u64 = 16 * 1024;

/// One fake domain.
pub struct FakeDomain {
    /// What it was created with.
    pub config: DomainConfig,
    /// Frames written so far (the rest are zero).
    pub frames: BTreeMap<u64, Box<[u8; 4096]>>,
    /// Every mmu op applied to its address space.
    pub mappings: Vec<MmuOp>,
    /// vCPU 0's initial registers.
    pub context: Option<VcpuContext>,
    /// Unpaused.
    pub running: bool,
    /// `domstate` bits.
    pub state: u32,
    /// `ShutdownReason` as a number.
    pub shutdown_reason: u32,
    /// dom0.
    pub privileged: bool,
    /// CPU time used.
    pub cpu_time_ns: u64,
    /// Scheduler parameters.
    pub sched: SchedParams,
    /// vCPUs that may be up (`domctl_set_vcpus`).
    pub online_vcpus: u32,
    /// Affinity mask per vCPU.
    pub affinity: [u64; 8],
    /// Everything written to its console.
    pub console: Vec<u8>,
    /// The last shutdown asked for.
    pub shutdown_request: Option<ShutdownReason>,
    /// The last balloon target, in pages.
    pub mem_target: Option<u64>,
}

impl FakeDomain {
    /// A new, paused, empty domain.
    pub fn new(config: DomainConfig) -> Self {
        FakeDomain {
            config,
            frames: BTreeMap::new(),
            mappings: Vec::new(),
            context: None,
            running: false,
            state: domstate::PAUSED,
            shutdown_reason: 0,
            privileged: false,
            cpu_time_ns: 0,
            sched: SchedParams {
                weight: SCHED_WEIGHT_DEFAULT,
                cap: 0,
                reserved: 0,
            },
            online_vcpus: config.vcpus,
            affinity: [u64::MAX; 8],
            console: Vec::new(),
            shutdown_request: None,
            mem_target: None,
        }
    }

    /// The contents of frame `gfn`.
    pub fn frame(&self, gfn: u64) -> Box<[u8; 4096]> {
        self.frames
            .get(&gfn)
            .cloned()
            .unwrap_or_else(|| Box::new([0; 4096]))
    }
}

/// The fake hypervisor.
pub struct FakeHv {
    /// Free frames.
    pub free_pages: u64,
    /// Live domains.
    pub domains: BTreeMap<DomId, FakeDomain>,
    /// The next domain ID.
    pub next_domid: DomId,
    /// Domains created so far.
    pub created: usize,
    /// dom0's scratch mappings: page address → (domain, gfn, writable).
    pub scratch: BTreeMap<u64, (DomId, u64, bool)>,
    /// `mmu_batch` calls on `DOMID_SELF`.
    pub self_batches: u64,
    /// Failures to inject, first match first.
    pub fail: Vec<Fail>,
    /// Domains destroyed, in order.
    pub destroyed: Vec<DomId>,
    /// Frames the machine has.
    pub total_pages: u64,
    /// CPUs the machine has.
    pub nr_cpus: u32,
    /// The hypervisor's log.
    pub log: Vec<u8>,
    /// Guests act on `domctl_shutdown` at once (else they ignore it).
    pub cooperative: bool,
}

impl FakeHv {
    /// A hypervisor with `free_pages` free frames and no domUs.
    pub fn new(free_pages: u64) -> Self {
        FakeHv {
            free_pages,
            domains: BTreeMap::new(),
            next_domid: 1,
            created: 0,
            scratch: BTreeMap::new(),
            self_batches: 0,
            fail: Vec::new(),
            destroyed: Vec::new(),
            total_pages: free_pages + 8192,
            nr_cpus: 1,
            log: Vec::new(),
            cooperative: true,
        }
    }

    /// [`FakeHv::new`] with a dom0 ("Domain-0", 32 MiB, running, 1.5 s of
    /// CPU time), as the `xm` tests see the machine.
    pub fn with_dom0(free_pages: u64) -> Self {
        let mut hv = FakeHv::new(free_pages);
        let config = DomainConfig {
            max_pages: 8192,
            initial_pages: 8192,
            vcpus: 1,
            flags: 0,
            name: name_field("Domain-0"),
            reserved: 0,
        };
        let mut dom0 = FakeDomain::new(config);
        dom0.privileged = true;
        dom0.running = true;
        dom0.state = domstate::RUNNING;
        dom0.cpu_time_ns = 1_500_000_000;
        hv.domains.insert(0, dom0);
        hv.log
            .extend_from_slice(b"Oxen 0.1.0 hypervisor\n(XEN) boot log line\n");
        hv
    }

    /// Domain `domid` writes `bytes` to its console.
    pub fn console_write(&mut self, domid: DomId, bytes: &[u8]) {
        self.domains
            .get_mut(&domid)
            .expect("the test names a live domain")
            .console
            .extend_from_slice(bytes);
    }

    /// Domain `domid`, which must exist.
    pub fn domain(&self, domid: DomId) -> &FakeDomain {
        self.domains.get(&domid).expect("the test names a live domain")
    }

    /// Make domain `domid` shut down with `reason` (a `ShutdownReason` number).
    pub fn shut_down(&mut self, domid: DomId, reason: u32) {
        let d = self
            .domains
            .get_mut(&domid)
            .expect("the test names a live domain");
        d.state = domstate::SHUTDOWN;
        d.shutdown_reason = reason;
    }

    /// Make the hypervisor crash domain `domid`.
    pub fn crash(&mut self, domid: DomId) {
        let d = self
            .domains
            .get_mut(&domid)
            .expect("the test names a live domain");
        d.state = domstate::CRASHED;
    }

    /// Fail with the injected `Abi11` status, if any (kept for every call).
    fn abi11(&self) -> Result<(), Status> {
        match self.fail.iter().find_map(|f| match f {
            Fail::Abi11(s) => Some(*s),
            _ => None,
        }) {
            Some(s) => Err(s),
            None => Ok(()),
        }
    }

    /// A domU the toolstack may act on (the hypervisor's `managed`).
    fn managed(&mut self, domid: DomId) -> Result<&mut FakeDomain, Status> {
        self.abi11()?;
        let d = self.domains.get_mut(&domid).ok_or(Status::ESRCH)?;
        if d.privileged {
            return Err(Status::EPERM);
        }
        Ok(d)
    }

    /// Take the first injected failure `pick` accepts.
    fn take(&mut self, pick: impl Fn(Fail) -> Option<Status>) -> Result<(), Status> {
        match self.fail.iter().position(|&f| pick(f).is_some()) {
            Some(i) => Err(pick(self.fail.remove(i)).unwrap_or(Status::EINVAL)),
            None => Ok(()),
        }
    }

    /// Check one op on dom0's own address space against the current state.
    fn check_self_op(&self, op: &MmuOp, seen: &[u64]) -> Result<(), Status> {
        if !op.va.is_multiple_of(4096) || op.va == 0 || seen.contains(&op.va) {
            return Err(Status::EINVAL);
        }
        match op.op {
            MMU_MAP => {
                if self.scratch.contains_key(&op.va) {
                    return Err(Status::EEXIST);
                }
                if op.frame_domid != DOMID_SELF {
                    let d = self.domains.get(&op.frame_domid).ok_or(Status::ESRCH)?;
                    if op.gfn >= d.config.initial_pages {
                        return Err(Status::EINVAL);
                    }
                }
                Ok(())
            }
            MMU_UNMAP if self.scratch.contains_key(&op.va) => Ok(()),
            _ => Err(Status::EINVAL),
        }
    }
}

impl Hv for FakeHv {
    fn domctl_create(&mut self, config: &DomainConfig) -> Result<DomId, Status> {
        let name = field_str(&config.name);
        if self.domains.values().any(|d| field_str(&d.config.name) == name) {
            return Err(Status::EEXIST);
        }
        if config.initial_pages > self.free_pages {
            return Err(Status::ENOMEM);
        }
        self.free_pages -= config.initial_pages;
        let domid = self.next_domid;
        self.next_domid += 1;
        self.created += 1;
        self.domains.insert(domid, FakeDomain::new(*config));
        Ok(domid)
    }

    fn domctl_destroy(&mut self, domid: DomId) -> Result<(), Status> {
        self.take(|f| match f {
            Fail::Destroy(s) => Some(s),
            _ => None,
        })?;
        assert!(
            self.scratch.values().all(|&(d, _, _)| d != domid),
            "dom0 still maps frames of domain {domid} when it destroys it"
        );
        if self.domains.get(&domid).is_some_and(|d| d.privileged) {
            return Err(Status::EINVAL);
        }
        let d = self.domains.remove(&domid).ok_or(Status::ESRCH)?;
        self.free_pages += d.config.initial_pages;
        self.destroyed.push(domid);
        Ok(())
    }

    fn domctl_unpause(&mut self, domid: DomId) -> Result<(), Status> {
        self.take(|f| match f {
            Fail::Unpause(s) => Some(s),
            _ => None,
        })?;
        let d = self.domains.get_mut(&domid).ok_or(Status::ESRCH)?;
        if d.privileged {
            return Err(Status::EPERM);
        }
        if d.state & (domstate::SHUTDOWN | domstate::CRASHED) != 0 || d.context.is_none() {
            return Err(Status::EINVAL);
        }
        d.running = true;
        d.state = domstate::RUNNING;
        Ok(())
    }

    fn domctl_pause(&mut self, domid: DomId) -> Result<(), Status> {
        let d = self.domains.get_mut(&domid).ok_or(Status::ESRCH)?;
        if d.privileged {
            return Err(Status::EPERM);
        }
        if d.state & (domstate::SHUTDOWN | domstate::CRASHED) != 0 {
            return Err(Status::EINVAL);
        }
        d.running = false;
        d.state = domstate::PAUSED;
        Ok(())
    }

    fn domctl_getinfo(&mut self, domid: DomId) -> Result<DomainInfo, Status> {
        self.take(|f| match f {
            Fail::Getinfo(s) => Some(s),
            _ => None,
        })?;
        let (&id, d) = self.domains.range(domid..).next().ok_or(Status::ESRCH)?;
        Ok(DomainInfo {
            domid: id,
            pad0: 0,
            state: d.state,
            flags: if d.privileged { DOMINFO_PRIVILEGED } else { 0 },
            vcpus: d.config.vcpus,
            shutdown_reason: d.shutdown_reason,
            pad1: 0,
            tot_pages: d.config.initial_pages,
            max_pages: d.config.max_pages,
            cpu_time_ns: d.cpu_time_ns,
            name: d.config.name,
            overhead_pages: 0,
            reserved: 0,
        })
    }

    fn domctl_set_vcpu_context(&mut self, domid: DomId, context: &VcpuContext) -> Result<(), Status> {
        self.take(|f| match f {
            Fail::SetContext(s) => Some(s),
            _ => None,
        })?;
        self.domains.get_mut(&domid).ok_or(Status::ESRCH)?.context = Some(*context);
        Ok(())
    }

    fn mmu_batch(&mut self, ops: &[MmuOp], domid: DomId) -> Result<usize, Status> {
        assert!(
            ops.len() <= 512,
            "a batch of {} ops exceeds MMU_BATCH_MAX",
            ops.len()
        );
        if domid == DOMID_SELF {
            self.self_batches += 1;
            if ops
                .iter()
                .any(|op| op.op == MMU_MAP && op.frame_domid != DOMID_SELF)
            {
                self.take(|f| match f {
                    Fail::ForeignMap(s) => Some(s),
                    _ => None,
                })?;
            }
            // A batch is checked whole before any of it is applied.
            let mut seen = Vec::new();
            for op in ops {
                self.check_self_op(op, &seen)?;
                seen.push(op.va);
            }
            for op in ops {
                if op.op == MMU_MAP {
                    let writable = op.flags & MMU_WRITE != 0;
                    self.scratch.insert(op.va, (op.frame_domid, op.gfn, writable));
                } else {
                    self.scratch.remove(&op.va);
                }
            }
            return Ok(ops.len());
        }
        self.take(|f| match f {
            Fail::TargetMmu(s) => Some(s),
            _ => None,
        })?;
        let d = self.domains.get_mut(&domid).ok_or(Status::ESRCH)?;
        for op in ops {
            let ok = match op.op {
                MMU_MAP => op.gfn < d.config.initial_pages,
                MMU_MAP_SHARED_INFO => true,
                _ => false,
            };
            if !ok || op.frame_domid != domid {
                return Err(Status::EINVAL);
            }
        }
        d.mappings.extend_from_slice(ops);
        Ok(ops.len())
    }

    fn write_mapped(&mut self, va: u64, bytes: &[u8]) -> Result<(), Status> {
        let page = va & !0xfff;
        let offset = usize::try_from(va & 0xfff).map_err(|_| Status::EFAULT)?;
        let &(domid, gfn, writable) = self.scratch.get(&page).ok_or(Status::EFAULT)?;
        let end = offset
            .checked_add(bytes.len())
            .filter(|&e| e <= 4096)
            .ok_or(Status::EFAULT)?;
        if !writable || domid == DOMID_SELF {
            return Err(Status::EFAULT);
        }
        let d = self.domains.get_mut(&domid).ok_or(Status::EFAULT)?;
        let frame = d.frames.entry(gfn).or_insert_with(|| Box::new([0; 4096]));
        frame[offset..end].copy_from_slice(bytes);
        Ok(())
    }
    fn domctl_shutdown(&mut self, domid: DomId, reason: ShutdownReason) -> Result<(), Status> {
        let cooperative = self.cooperative;
        let d = self.managed(domid)?;
        if d.state & (domstate::SHUTDOWN | domstate::CRASHED) != 0 {
            return Err(Status::EINVAL);
        }
        d.shutdown_request = Some(reason);
        if cooperative && d.running {
            d.state = domstate::SHUTDOWN;
            d.shutdown_reason = reason as u32;
            d.running = false;
        }
        Ok(())
    }

    fn domctl_set_max_mem(&mut self, domid: DomId, max_pages: u64) -> Result<(), Status> {
        let total = self.total_pages;
        let d = self.managed(domid)?;
        if max_pages < d.config.initial_pages || max_pages > total {
            return Err(Status::EINVAL);
        }
        d.config.max_pages = max_pages;
        Ok(())
    }

    fn domctl_set_vcpus(&mut self, domid: DomId, online: u32) -> Result<(), Status> {
        let d = self.managed(domid)?;
        if online == 0 || online > d.config.vcpus {
            return Err(Status::EINVAL);
        }
        d.online_vcpus = online;
        Ok(())
    }

    fn domctl_sched_get(&mut self, domid: DomId) -> Result<SchedParams, Status> {
        self.abi11()?;
        Ok(self.domains.get(&domid).ok_or(Status::ESRCH)?.sched)
    }

    fn domctl_sched_set(&mut self, domid: DomId, params: &SchedParams) -> Result<(), Status> {
        self.abi11()?;
        self.take(|f| match f {
            Fail::SchedSet(s) => Some(s),
            _ => None,
        })?;
        if params.reserved != 0 || params.weight == 0 || params.weight > SCHED_WEIGHT_MAX || params.cap > 100
        {
            return Err(Status::EINVAL);
        }
        self.domains.get_mut(&domid).ok_or(Status::ESRCH)?.sched = *params;
        Ok(())
    }

    fn domctl_console_read(
        &mut self,
        domid: DomId,
        from: u64,
        buf: &mut [u8],
    ) -> Result<(usize, u64), Status> {
        self.abi11()?;
        let d = self.domains.get(&domid).ok_or(Status::ESRCH)?;
        Ok(ring_read(&d.console, from, buf))
    }

    fn sysctl_dmesg(&mut self, from: u64, buf: &mut [u8]) -> Result<(usize, u64), Status> {
        self.abi11()?;
        Ok(ring_read(&self.log, from, buf))
    }

    fn domctl_vcpu_pin(&mut self, domid: DomId, vcpu: u32, mask: u64) -> Result<(), Status> {
        self.abi11()?;
        let cpus = (1u64 << self.nr_cpus) - 1;
        if mask & cpus == 0 {
            return Err(Status::EINVAL);
        }
        let d = self.domains.get_mut(&domid).ok_or(Status::ESRCH)?;
        if vcpu >= d.config.vcpus {
            return Err(Status::EINVAL);
        }
        let slot = d
            .affinity
            .get_mut(usize::try_from(vcpu).map_err(|_| Status::EINVAL)?)
            .ok_or(Status::EINVAL)?;
        *slot = mask;
        Ok(())
    }

    fn domctl_vcpu_info(&mut self, domid: DomId, vcpu: u32) -> Result<VcpuRecord, Status> {
        self.abi11()?;
        let d = self.domains.get(&domid).ok_or(Status::ESRCH)?;
        if vcpu >= d.config.vcpus {
            return Err(Status::EINVAL);
        }
        let up = vcpu == 0 && vcpu < d.online_vcpus && d.state & domstate::SHUTDOWN == 0;
        Ok(VcpuRecord {
            online: u8::from(up),
            blocked: u8::from(up && d.running && !d.privileged),
            running: u8::from(up && d.privileged),
            pad: 0,
            cpu: 0,
            affinity: d.affinity[usize::try_from(vcpu).map_err(|_| Status::EINVAL)?],
            cpu_time_ns: if vcpu == 0 { d.cpu_time_ns } else { 0 },
            reserved: 0,
        })
    }

    fn domctl_set_target(&mut self, domid: DomId, pages: u64) -> Result<(), Status> {
        let d = self.managed(domid)?;
        if pages == 0 || pages > d.config.max_pages {
            return Err(Status::EINVAL);
        }
        d.mem_target = Some(pages);
        Ok(())
    }

    fn sysctl_physinfo(&mut self) -> Result<Physinfo, Status> {
        Ok(Physinfo {
            nr_cpus: self.nr_cpus,
            pad0: 0,
            total_pages: self.total_pages,
            free_pages: self.free_pages,
            tsc_khz: 2_000_000,
            hv_major: 0,
            hv_minor: 1,
            hv_patch: 0,
            pad1: 0,
            abi_major: dom0_abi::ABI_VERSION_MAJOR,
            abi_minor: dom0_abi::ABI_VERSION_MINOR,
            nr_domains: u32::try_from(self.domains.len()).unwrap_or(u32::MAX),
            reserved: [0; 2],
        })
    }
}

/// Read a fake stream as the hypervisor's rings do: only the last
/// [`RING_BYTES`] are kept; an older `from` starts at the oldest byte kept.
fn ring_read(stream: &[u8], from: u64, buf: &mut [u8]) -> (usize, u64) {
    let total = u64::try_from(stream.len()).expect("test streams are small");
    let start = from.max(total.saturating_sub(RING_BYTES)).min(total);
    let start_at = usize::try_from(start).expect("below the stream length");
    let n = (stream.len() - start_at).min(buf.len());
    buf[..n].copy_from_slice(&stream[start_at..start_at + n]);
    (n, start + u64::try_from(n).expect("buffer lengths fit"))
}

/// A bundle holding `files`.
pub fn bundle(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = oxen_bundle::Builder::new();
    for (name, data) in files {
        b.add_file(name, 0o644, data)
            .expect("test bundle names are valid");
    }
    b.finish()
}

/// A minimal guest image: one R X segment of `text_len` patterned bytes at
/// 4 MiB (file offset 0x1000), entry at its start, and an Oxen ABI note
/// stating `abi` (major, minor).
pub fn test_image(text_len: usize, abi: (u16, u16)) -> Vec<u8> {
    const TEXT_VA: u64 = 0x40_0000;
    const TEXT_OFFSET: usize = 0x1000;
    const PHDRS: u64 = 64;
    const NOTE_OFFSET: u64 = 64 + 2 * 56;
    const NOTE_LEN: u64 = 12 + 8 + 4;
    let u64_of = |n: usize| u64::try_from(n).expect("test sizes fit");

    let mut elf = Vec::new();
    // ELF header (System V gABI).
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    elf.extend_from_slice(&TEXT_VA.to_le_bytes()); // entry
    elf.extend_from_slice(&PHDRS.to_le_bytes()); // phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for half in [64u16, 56, 2, 0, 0, 0] {
        // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
        elf.extend_from_slice(&half.to_le_bytes());
    }
    // PT_LOAD, R X.
    let text_len64 = u64_of(text_len);
    let phdr = |p_type: u32, flags: u32, offset: u64, vaddr: u64, size: u64, align: u64| {
        let mut p = Vec::new();
        p.extend_from_slice(&p_type.to_le_bytes());
        p.extend_from_slice(&flags.to_le_bytes());
        for v in [offset, vaddr, vaddr, size, size, align] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p
    };
    elf.extend(phdr(1, 5, u64_of(TEXT_OFFSET), TEXT_VA, text_len64, 0x1000));
    elf.extend(phdr(4, 4, NOTE_OFFSET, 0, NOTE_LEN, 4));
    // The ABI note: namesz, descsz, type, "Oxen\0" padded to 8, major, minor.
    elf.extend_from_slice(&5u32.to_le_bytes());
    elf.extend_from_slice(&4u32.to_le_bytes());
    elf.extend_from_slice(&NOTE_TYPE_ABI_VERSION.to_le_bytes());
    elf.extend_from_slice(NOTE_NAME);
    elf.extend_from_slice(&[0; 3]);
    elf.extend_from_slice(&abi.0.to_le_bytes());
    elf.extend_from_slice(&abi.1.to_le_bytes());
    elf.resize(TEXT_OFFSET, 0);
    elf.extend((0..text_len).map(|i| u8::try_from(i % 251).expect("below 251") | 1));
    elf
}

/// A small deterministic random generator for the fuzz tests.
pub struct XorShift(pub u64);

impl XorShift {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A random byte, biased towards what terminals send: control bytes,
    /// ESC, `[`, the final bytes of escape sequences, CR, LF, DEL.
    pub fn byte(&mut self) -> u8 {
        const INTERESTING: &[u8] = b"\x1b[AOBCDH~3\r\n\x7f\x08\x03\x15\x0c\x1d";
        match self.next() % 8 {
            0 => INTERESTING[usize::try_from(self.next() % INTERESTING.len() as u64).unwrap_or(0)],
            1 => u8::try_from(self.next() % 0x20).unwrap_or(0),
            _ => u8::try_from(self.next() & 0xff).unwrap_or(0),
        }
    }
}
