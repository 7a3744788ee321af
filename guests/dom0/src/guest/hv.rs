//! [`SdkHv`]: the `dom0::Hv` door implemented with the SDK's hypercall
//! wrappers, one call each. It also keeps track of which scratch slots (`dom0::foreign`)
//! are mapped writable, so that [`Hv::write_mapped`] only ever writes
//! through a mapping the hypervisor confirmed.

use dom0::Hv;
use dom0::foreign::{SCRATCH_SLOTS, slot_of, slot_va};
use dom0_abi::{
    DOMID_SELF, DomId, DomainConfig, DomainInfo, MMU_MAP, MMU_WRITE, MmuOp, PAGE_SIZE, Physinfo, SchedParams,
    ShutdownReason, Status, VcpuContext, VcpuRecord,
};
use oxen_guest_sdk::hypercall;

// One bit per scratch slot.
const _: () = assert!(SCRATCH_SLOTS <= u64::BITS as u64);

/// The hypervisor, reached by hypercalls.
pub struct SdkHv {
    /// Bit `s` set: scratch slot `s` is mapped writable in dom0.
    writable_slots: u64,
}

impl SdkHv {
    /// dom0's handle; no scratch slot is mapped at boot.
    pub fn new() -> Self {
        SdkHv { writable_slots: 0 }
    }

    /// Record what a batch on dom0's own address space did to the scratch
    /// window. `applied` is false when the outcome is unknown: every slot
    /// the batch touched is then treated as unmapped.
    fn track(&mut self, ops: &[MmuOp], applied: bool) {
        for op in ops {
            let Some(slot) = slot_of(op.va) else { continue };
            let bit = 1u64 << slot;
            if applied && op.op == MMU_MAP && op.flags & MMU_WRITE != 0 {
                self.writable_slots |= bit;
            } else {
                self.writable_slots &= !bit;
            }
        }
    }
}

impl Hv for SdkHv {
    fn domctl_create(&mut self, config: &DomainConfig) -> Result<DomId, Status> {
        hypercall::domctl_create(config)
    }

    fn domctl_destroy(&mut self, domid: DomId) -> Result<(), Status> {
        hypercall::domctl_destroy(domid)
    }

    fn domctl_pause(&mut self, domid: DomId) -> Result<(), Status> {
        hypercall::domctl_pause(domid)
    }

    fn domctl_unpause(&mut self, domid: DomId) -> Result<(), Status> {
        hypercall::domctl_unpause(domid)
    }

    fn domctl_getinfo(&mut self, domid: DomId) -> Result<DomainInfo, Status> {
        hypercall::domctl_getinfo(domid)
    }

    fn domctl_set_vcpu_context(&mut self, domid: DomId, context: &VcpuContext) -> Result<(), Status> {
        hypercall::domctl_set_vcpu_context(domid, context)
    }

    fn mmu_batch(&mut self, ops: &[MmuOp], domid: DomId) -> Result<usize, Status> {
        let result = hypercall::mmu_batch(ops, domid);
        if domid == DOMID_SELF {
            // A failed batch changed nothing; a short count is a hypervisor
            // bug, after which nothing in the batch is trusted.
            match result {
                Ok(n) if n == ops.len() => self.track(ops, true),
                Ok(_) => self.track(ops, false),
                Err(_) => {}
            }
        }
        result
    }

    // The one place dom0 writes through a raw pointer: into a frame of a
    // domain it builds, through the foreign mapping in the scratch window.
    #[allow(unsafe_code)]
    fn write_mapped(&mut self, va: u64, bytes: &[u8]) -> Result<(), Status> {
        let slot = slot_of(va).ok_or(Status::EFAULT)?;
        if self.writable_slots & (1u64 << slot) == 0 {
            return Err(Status::EFAULT);
        }
        let offset = va - slot_va(slot);
        let len = u64::try_from(bytes.len()).map_err(|_| Status::EFAULT)?;
        if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            return Err(Status::EFAULT);
        }
        // SAFETY: (1) the page at `slot_va(slot)` is mapped writable: the
        // hypervisor applied the MMU_MAP with MMU_WRITE for it, and no
        // successful MMU_UNMAP has followed (`track`); (2) `va .. va + len`
        // lies inside that one page (checked above); (3) the scratch window
        // belongs to `dom0::foreign` alone: no Rust reference or allocation
        // points into it, so the write aliases nothing of dom0's; the bytes
        // land in the other domain's frame, which dom0 may write.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), va as *mut u8, bytes.len()) };
        Ok(())
    }
    fn domctl_shutdown(&mut self, domid: DomId, reason: ShutdownReason) -> Result<(), Status> {
        hypercall::domctl_shutdown(domid, reason)
    }

    fn domctl_set_max_mem(&mut self, domid: DomId, max_pages: u64) -> Result<(), Status> {
        hypercall::domctl_set_max_mem(domid, max_pages)
    }

    fn domctl_set_vcpus(&mut self, domid: DomId, online: u32) -> Result<(), Status> {
        hypercall::domctl_set_vcpus(domid, online)
    }

    fn domctl_sched_get(&mut self, domid: DomId) -> Result<SchedParams, Status> {
        hypercall::domctl_sched_get(domid)
    }

    fn domctl_sched_set(&mut self, domid: DomId, params: &SchedParams) -> Result<(), Status> {
        hypercall::domctl_sched_set(domid, params)
    }

    fn domctl_console_read(
        &mut self,
        domid: DomId,
        from: u64,
        buf: &mut [u8],
    ) -> Result<(usize, u64), Status> {
        hypercall::domctl_console_read(domid, from, buf)
    }

    fn sysctl_dmesg(&mut self, from: u64, buf: &mut [u8]) -> Result<(usize, u64), Status> {
        hypercall::sysctl_dmesg(from, buf)
    }

    fn domctl_vcpu_pin(&mut self, domid: DomId, vcpu: u32, mask: u64) -> Result<(), Status> {
        hypercall::domctl_vcpu_pin(domid, vcpu, mask)
    }

    fn domctl_vcpu_info(&mut self, domid: DomId, vcpu: u32) -> Result<VcpuRecord, Status> {
        hypercall::domctl_vcpu_info(domid, vcpu)
    }

    fn domctl_set_target(&mut self, domid: DomId, pages: u64) -> Result<(), Status> {
        hypercall::domctl_set_target(domid, pages)
    }

    fn sysctl_physinfo(&mut self) -> Result<Physinfo, Status> {
        hypercall::physinfo()
    }
}
