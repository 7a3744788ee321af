//! A fake hypervisor for the host tests of `toolstack.rs`, `foreign.rs` and
//! `watch.rs`: domains with frames kept in memory, dom0's scratch mappings,
//! a free-frame count that shows leaks, and failures injected on demand.
//! Also the bundles and guest images the tests feed it.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use dom0_abi::{
    DOMID_SELF, DomId, DomainConfig, DomainInfo, MMU_MAP, MMU_MAP_SHARED_INFO, MMU_UNMAP, MMU_WRITE, MmuOp,
    NOTE_NAME, NOTE_TYPE_ABI_VERSION, Status, VcpuContext, domstate, field_str,
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
}

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
}

impl FakeDomain {
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
        }
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
        let domain = FakeDomain {
            config: *config,
            frames: BTreeMap::new(),
            mappings: Vec::new(),
            context: None,
            running: false,
            state: domstate::PAUSED,
            shutdown_reason: 0,
        };
        self.domains.insert(domid, domain);
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
        d.running = true;
        d.state = domstate::RUNNING;
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
            flags: 0,
            vcpus: d.config.vcpus,
            shutdown_reason: d.shutdown_reason,
            pad1: 0,
            tot_pages: d.config.initial_pages,
            max_pages: d.config.max_pages,
            cpu_time_ns: 0,
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
