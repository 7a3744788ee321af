//! Hypercall dispatch: the one table from number to handler, and the one
//! validation boundary. The run loop (`sched`) calls [`dispatch`] when a
//! guest's `syscall` exits; the arguments come from its saved registers
//! (`rdi rsi rdx r10 r8 r9`, dom0-abi's convention), the result goes back
//! in `rax`. Unknown numbers are `ENOSYS`; privileged calls from an
//! unprivileged domain are `EPERM`; every handler checks every argument and
//! reaches guest memory only through `arch::uaccess`.

mod console;
mod domctl;
mod event;
mod memory;
mod sched;
pub mod stats;
mod vcpu;

use crate::arch::uaccess::{self, Fault};
use crate::domain::DomainTable;
use dom0_abi::{DomId, Hypercall, Status};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// What the run loop does after a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Return this result to the caller.
    Return(Result<u64, Status>),
    /// Return 0 and let another vCPU run first.
    Yield,
    /// Block the vCPU until a wake-up (returns 0 then).
    Block,
    /// The registers were replaced (`iret`): resume them as they are.
    Resume,
    /// The domain stopped (shutdown or crash): run something else.
    Stopped,
    /// The vCPU now waits (`sched_poll`); its result is already in `rax`.
    Wait,
}

/// The caller of a hypercall.
pub struct Caller<'a> {
    /// Every domain.
    pub table: &'a mut DomainTable,
    /// The calling domain.
    pub dom: DomId,
    /// The calling vCPU.
    pub vcpu: usize,
}

impl Caller<'_> {
    /// The calling domain (it exists for as long as the call runs).
    fn domain(&mut self) -> &mut crate::domain::Domain {
        self.table
            .get_mut(self.dom)
            .expect("the calling domain exists during its hypercall")
    }
}

impl From<Fault> for Status {
    fn from(_: Fault) -> Status {
        Status::EFAULT
    }
}

/// Read a `T` from guest memory.
fn read_guest<T: FromBytes + IntoBytes>(va: u64) -> Result<T, Status> {
    let mut value = T::new_zeroed();
    uaccess::copy_from_guest(value.as_mut_bytes(), va)?;
    Ok(value)
}

/// Write a `T` to guest memory.
fn write_guest<T: IntoBytes + Immutable>(va: u64, value: &T) -> Result<(), Status> {
    uaccess::copy_to_guest(va, value.as_bytes())?;
    Ok(())
}

/// Handle the hypercall that vCPU `vcpu` of domain `dom` just made.
pub fn dispatch(table: &mut DomainTable, dom: DomId, vcpu: usize) -> Flow {
    let Some(d) = table.get(dom) else {
        return Flow::Stopped;
    };
    let Some(v) = d.vcpus.get(vcpu) else {
        return Flow::Stopped;
    };
    let r = &v.regs;
    let (nr, a) = (r.rax, [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9]);
    let privileged = d.privileged;
    let call = match Hypercall::try_from(nr) {
        Ok(call) => call,
        Err(status) => {
            log::trace!("d{dom} hypercall {nr:#x}: no such hypercall");
            return Flow::Return(Err(status));
        }
    };
    log::trace!("d{dom} {}({:#x}, {:#x}, {:#x})", call.name(), a[0], a[1], a[2]);
    if call.privileged() && !privileged {
        return Flow::Return(Err(Status::EPERM));
    }
    let mut c = Caller { table, dom, vcpu };
    match call {
        Hypercall::Version => Flow::Return(Ok(u64::from(dom0_abi::abi_version_packed()))),
        Hypercall::ConsoleWrite => Flow::Return(console::write(&mut c, a[0], a[1])),
        Hypercall::ConsoleRead => Flow::Return(console::read(a[0], a[1])),
        Hypercall::SchedYield => Flow::Yield,
        Hypercall::SchedBlock => Flow::Block,
        Hypercall::SchedShutdown => sched::shutdown(&mut c, a[0]),
        Hypercall::VcpuSetTrapTable => Flow::Return(vcpu::set_trap_table(&mut c, a[0], a[1])),
        Hypercall::VcpuSetCallbacks => Flow::Return(vcpu::set_callbacks(&mut c, a[0], a[1])),
        Hypercall::Iret => vcpu::iret(&mut c),
        Hypercall::VcpuSetTimer => Flow::Return(vcpu::set_timer(&mut c, a[0])),
        Hypercall::SchedPoll => sched::poll(&mut c, a[0], a[1], a[2]),
        Hypercall::EvtchnAllocUnbound => Flow::Return(event::alloc_unbound(&mut c, a[0])),
        Hypercall::EvtchnBindInterdomain => Flow::Return(event::bind_interdomain(&mut c, a[0], a[1])),
        Hypercall::EvtchnBindVirq => Flow::Return(event::bind_virq(&mut c, a[0], a[1])),
        Hypercall::EvtchnBindIpi => Flow::Return(event::bind_ipi(&mut c, a[0])),
        Hypercall::EvtchnSend => Flow::Return(event::send(&mut c, a[0])),
        Hypercall::EvtchnClose => Flow::Return(event::close(&mut c, a[0])),
        Hypercall::EvtchnUnmask => Flow::Return(event::unmask(&mut c, a[0])),
        Hypercall::EvtchnStatus => Flow::Return(event::status(&mut c, a[0], a[1])),
        Hypercall::DomctlShutdown => Flow::Return(domctl::shutdown(&mut c, a[0], a[1])),
        Hypercall::DomctlSetMaxMem => Flow::Return(domctl::set_max_mem(&mut c, a[0], a[1])),
        Hypercall::DomctlSetVcpus => Flow::Return(domctl::set_vcpus(&mut c, a[0], a[1])),
        Hypercall::DomctlSchedGet => Flow::Return(domctl::sched_get(&mut c, a[0], a[1])),
        Hypercall::DomctlSchedSet => Flow::Return(domctl::sched_set(&mut c, a[0], a[1])),
        Hypercall::DomctlConsoleRead => Flow::Return(domctl::console_read(&mut c, a[0], a[1])),
        Hypercall::DomctlVcpuPin => Flow::Return(domctl::vcpu_pin(&mut c, a[0], a[1], a[2])),
        Hypercall::DomctlVcpuInfo => Flow::Return(domctl::vcpu_info(&mut c, a[0], a[1], a[2])),
        Hypercall::DomctlSetTarget => Flow::Return(domctl::set_target(&mut c, a[0], a[1])),
        Hypercall::SysctlDmesg => Flow::Return(domctl::dmesg(a[0])),
        Hypercall::MmuBatch => Flow::Return(memory::mmu_batch(&mut c, a[0], a[1], a[2])),
        Hypercall::MemoryInfo => Flow::Return(memory::info(&mut c, a[0])),
        Hypercall::MemoryIncrease => Flow::Return(memory::increase(&mut c, a[0])),
        Hypercall::MemoryDecrease => Flow::Return(memory::decrease(&mut c, a[0])),
        Hypercall::DomctlCreate => Flow::Return(domctl::create(&mut c, a[0])),
        Hypercall::DomctlDestroy => Flow::Return(domctl::destroy(&mut c, a[0])),
        Hypercall::DomctlPause => Flow::Return(domctl::pause(&mut c, a[0], true)),
        Hypercall::DomctlUnpause => Flow::Return(domctl::pause(&mut c, a[0], false)),
        Hypercall::DomctlGetInfo => Flow::Return(domctl::getinfo(&mut c, a[0], a[1])),
        Hypercall::DomctlSetVcpuContext => Flow::Return(domctl::set_vcpu_context(&mut c, a[0], a[1])),
        Hypercall::SysctlPhysinfo => Flow::Return(domctl::physinfo(&mut c, a[0])),
    }
}

/// Encode a result for `rax`.
pub fn encode(result: Result<u64, Status>) -> u64 {
    match result {
        Ok(v) => v,
        Err(s) => s.to_ret() as u64,
    }
}

/// A domain ID argument: the low 16 bits of a register, which must be all
/// there is.
fn domid_arg(v: u64) -> Result<DomId, Status> {
    DomId::try_from(v).map_err(|_| Status::EINVAL)
}
