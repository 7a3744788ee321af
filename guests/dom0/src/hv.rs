//! The hypervisor as the toolstack sees it: the privileged hypercalls dom0
//! makes, behind a trait. The guest (`guest/hv.rs`) implements it over the
//! SDK's hypercall wrappers; the host tests (`fake.rs`) implement it with a
//! fake hypervisor that keeps domains and frames in memory.

use dom0_abi::{
    DomId, DomainConfig, DomainInfo, MmuOp, Physinfo, SchedParams, ShutdownReason, Status, VcpuContext,
    VcpuRecord,
};

/// The privileged hypercalls the toolstack uses, with the semantics of
/// `dom0_abi::Hypercall` (see `docs/abi.md`). The calls marked 1.1 answer
/// `ENOSYS` on a hypervisor that speaks ABI 1.0; the `xm` commands that
/// need them say so.
pub trait Hv {
    /// `domctl_create`: a new, empty, paused domain with
    /// `config.initial_pages` zeroed frames and no mappings.
    fn domctl_create(&mut self, config: &DomainConfig) -> Result<DomId, Status>;

    /// `domctl_destroy`: tear the domain down and return all its frames.
    fn domctl_destroy(&mut self, domid: DomId) -> Result<(), Status>;

    /// `domctl_pause`: stop scheduling the domain (`EPERM` for dom0).
    fn domctl_pause(&mut self, domid: DomId) -> Result<(), Status>;

    /// `domctl_unpause`: let a built domain run.
    fn domctl_unpause(&mut self, domid: DomId) -> Result<(), Status>;

    /// `domctl_getinfo`: the first domain with an ID `>= domid`; `ESRCH`
    /// past the last.
    fn domctl_getinfo(&mut self, domid: DomId) -> Result<DomainInfo, Status>;

    /// `domctl_set_vcpu_context`: vCPU 0's initial registers.
    fn domctl_set_vcpu_context(&mut self, domid: DomId, context: &VcpuContext) -> Result<(), Status>;

    /// `mmu_batch`: apply `ops` (at most `MMU_BATCH_MAX`) to the address
    /// space of `domid` (`DOMID_SELF` for dom0's own, where an op's
    /// `frame_domid` names a domain dom0 builds for a foreign mapping).
    /// Returns the number of operations applied.
    fn mmu_batch(&mut self, ops: &[MmuOp], domid: DomId) -> Result<usize, Status>;

    /// Copy `bytes` to dom0's own virtual address `va`, inside one page that
    /// an earlier `mmu_batch` on `DOMID_SELF` mapped writable at a
    /// [`crate::foreign`] scratch slot. `EFAULT` if it is not so mapped.
    fn write_mapped(&mut self, va: u64, bytes: &[u8]) -> Result<(), Status>;

    /// `domctl_shutdown` (1.1): ask the domain to shut down with `reason`;
    /// the guest decides, and its state shows when it has.
    fn domctl_shutdown(&mut self, domid: DomId, reason: ShutdownReason) -> Result<(), Status>;

    /// `domctl_set_max_mem` (1.1): the domain's new `max_pages`.
    fn domctl_set_max_mem(&mut self, domid: DomId, max_pages: u64) -> Result<(), Status>;

    /// `domctl_set_vcpus` (1.1): vCPUs `0..online` may be up, the rest go down.
    fn domctl_set_vcpus(&mut self, domid: DomId, online: u32) -> Result<(), Status>;

    /// `domctl_sched_get` (1.1): the domain's credit-scheduler parameters.
    fn domctl_sched_get(&mut self, domid: DomId) -> Result<SchedParams, Status>;

    /// `domctl_sched_set` (1.1): set them.
    fn domctl_sched_set(&mut self, domid: DomId, params: &SchedParams) -> Result<(), Status>;

    /// `domctl_console_read` (1.1): bytes of the domain's console stream
    /// from offset `from` (or from the oldest byte kept, if `from` is
    /// older) into `buf`: `(bytes copied, offset after them)`.
    fn domctl_console_read(
        &mut self,
        domid: DomId,
        from: u64,
        buf: &mut [u8],
    ) -> Result<(usize, u64), Status>;

    /// `sysctl_dmesg` (1.1): the hypervisor's log stream, as
    /// [`Hv::domctl_console_read`] reads a console.
    fn sysctl_dmesg(&mut self, from: u64, buf: &mut [u8]) -> Result<(usize, u64), Status>;

    /// `domctl_vcpu_pin` (1.1): vCPU `vcpu` may run on the CPUs of `mask`.
    fn domctl_vcpu_pin(&mut self, domid: DomId, vcpu: u32, mask: u64) -> Result<(), Status>;

    /// `domctl_vcpu_info` (1.1): what vCPU `vcpu` of the domain is doing.
    fn domctl_vcpu_info(&mut self, domid: DomId, vcpu: u32) -> Result<VcpuRecord, Status>;

    /// `domctl_set_target` (1.1): the memory the domain should balloon to.
    fn domctl_set_target(&mut self, domid: DomId, pages: u64) -> Result<(), Status>;

    /// `sysctl_physinfo`: the machine.
    fn sysctl_physinfo(&mut self) -> Result<Physinfo, Status>;
}
