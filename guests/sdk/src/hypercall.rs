//! One safe wrapper per hypercall over [`raw`], the `syscall` instruction with
//! the register convention of `dom0_abi` (`rax` = number, `rdi rsi rdx r10 r8
//! r9` = arguments, `rax` = result or negative [`Status`]). The wrappers pass
//! pointers to live, correctly sized Rust objects only; the hypervisor copies
//! through checked accessors and never keeps them.

use dom0_abi::{
    CONSOLE_IO_MAX, ConsoleRead, DomId, DomainConfig, DomainInfo, EvtchnStatus, Hypercall, MemoryInfo, MmuOp,
    Physinfo, SchedParams, ShutdownReason, Status, TrapEntry, VcpuContext, VcpuRecord, Virq,
};
use zerocopy::FromZeros;

/// Raw `syscall`: `rax` = `nr`, `rdi rsi rdx r10 r8 r9` = `args`; returns
/// `rax` (`>= 0` a result, `< 0` a negated [`Status`]). Clobbers `rcx` and
/// `r11`, as `syscall` does; every other register is preserved.
///
/// # Safety
/// The hypervisor may read or write guest memory through pointer arguments:
/// any pointer the call's contract says it writes must name memory the
/// caller owns, with room for the whole object, and nothing Rust assumes
/// unchanged. Calls that resume elsewhere ([`Hypercall::Iret`]) or never
/// return ([`Hypercall::SchedShutdown`]) have their own wrappers.
pub unsafe fn raw(nr: u64, args: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: `syscall` enters the hypervisor, which follows the dom0_abi
    // convention: it preserves every register but rax (result), rcx and r11
    // (declared clobbered) and does not touch our stack. Memory effects are
    // the caller's contract (no `nomem`: the compiler assumes any).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A hypercall that neither reads nor writes guest memory.
fn call_noptr(nr: Hypercall, args: [u64; 6]) -> Result<u64, Status> {
    // SAFETY: every caller passes only plain values (no pointers), so the
    // hypervisor touches no guest memory.
    Status::from_ret(unsafe { raw(nr as u64, args) })
}

/// The running hypervisor's ABI version: `(major, minor)`.
pub fn version() -> (u16, u16) {
    let packed = call_noptr(Hypercall::Version, [0; 6]).unwrap_or(0);
    let major = u16::try_from((packed >> 16) & 0xffff).unwrap_or(0);
    let minor = u16::try_from(packed & 0xffff).unwrap_or(0);
    (major, minor)
}

/// Write `bytes` to the console, in chunks of at most [`CONSOLE_IO_MAX`]
/// bytes; the number written (short only if the hypervisor wrote less).
pub fn console_write(bytes: &[u8]) -> Result<usize, Status> {
    write_chunked(bytes, |chunk| {
        // SAFETY: the hypervisor only reads `chunk`, a live slice of
        // `chunk.len()` bytes.
        let ret = unsafe {
            raw(
                Hypercall::ConsoleWrite as u64,
                [chunk.as_ptr() as u64, chunk.len() as u64, 0, 0, 0, 0],
            )
        };
        Status::from_ret(ret).and_then(to_usize)
    })
}

/// Feed `bytes` to `write` in [`CONSOLE_IO_MAX`]-sized chunks; stop early at
/// a short write. An error on the first chunk is the result; an error later
/// returns what was written so far.
fn write_chunked(
    bytes: &[u8],
    mut write: impl FnMut(&[u8]) -> Result<usize, Status>,
) -> Result<usize, Status> {
    let max = to_usize(CONSOLE_IO_MAX)?;
    let mut done = 0;
    for chunk in bytes.chunks(max) {
        match write(chunk) {
            Ok(n) => {
                done += n.min(chunk.len());
                if n < chunk.len() {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

/// Read console input into `buf` (dom0 only): the bytes read, 0 if none.
pub fn console_read(buf: &mut [u8]) -> Result<usize, Status> {
    let len = buf.len().min(to_usize(CONSOLE_IO_MAX)?);
    // SAFETY: the hypervisor writes at most `len <= buf.len()` bytes into
    // `buf`, which we borrow mutably for the call.
    let ret = unsafe {
        raw(
            Hypercall::ConsoleRead as u64,
            [buf.as_mut_ptr() as u64, len as u64, 0, 0, 0, 0],
        )
    };
    Status::from_ret(ret).and_then(to_usize)
}

/// Let another vCPU run.
pub fn sched_yield() {
    // Cannot fail; there is nothing to report.
    let _ = call_noptr(Hypercall::SchedYield, [0; 6]);
}

/// Sleep until a wake-up is pending (console input, a domain state change
/// for dom0).
pub fn sched_block() {
    // Cannot fail; there is nothing to report.
    let _ = call_noptr(Hypercall::SchedBlock, [0; 6]);
}

/// Stop this domain with `reason`. Flushes the [`print!`](crate::print)
/// buffer first.
pub fn shutdown(reason: ShutdownReason) -> ! {
    crate::console::flush();
    loop {
        // The hypervisor does not return from a valid shutdown; if it ever
        // did, ask again rather than run on.
        let _ = call_noptr(Hypercall::SchedShutdown, [reason as u64, 0, 0, 0, 0, 0]);
        core::hint::spin_loop();
    }
}

/// Register trap-table entries (an empty slice clears the table). Most
/// guests use [`crate::traps::set_handler`] instead.
pub fn set_trap_table(entries: &[TrapEntry]) -> Result<(), Status> {
    // SAFETY: the hypervisor only reads `entries`, a live slice.
    let ret = unsafe {
        raw(
            Hypercall::VcpuSetTrapTable as u64,
            [entries.as_ptr() as u64, entries.len() as u64, 0, 0, 0, 0],
        )
    };
    Status::from_ret(ret).map(drop)
}

/// Set the event upcall entry point (flags are reserved and passed as 0).
pub fn set_callbacks(event_handler: u64) -> Result<(), Status> {
    call_noptr(Hypercall::VcpuSetCallbacks, [event_handler, 0, 0, 0, 0, 0]).map(drop)
}

/// Apply `ops` to the address space of `domid`
/// ([`DOMID_SELF`](dom0_abi::DOMID_SELF) for our own): the number applied (all of them; a bad batch changes nothing).
pub fn mmu_batch(ops: &[MmuOp], domid: DomId) -> Result<usize, Status> {
    // SAFETY: the hypervisor only reads `ops`, a live slice. The mappings
    // it makes are of frames we own (or a built domain's): they cannot
    // alias Rust objects unless the caller maps over its own image, which
    // the hypervisor refuses for the image, stack and info pages it set up.
    let ret = unsafe {
        raw(
            Hypercall::MmuBatch as u64,
            [ops.as_ptr() as u64, ops.len() as u64, u64::from(domid), 0, 0, 0],
        )
    };
    Status::from_ret(ret).and_then(to_usize)
}

/// This domain's memory: frames, limit, physmap, page-table overhead.
pub fn memory_info() -> Result<MemoryInfo, Status> {
    let mut out = MemoryInfo::new_zeroed();
    // SAFETY: the hypervisor writes one `MemoryInfo` into `out`, which we
    // borrow mutably for the call.
    let ret = unsafe { raw(Hypercall::MemoryInfo as u64, [ptr_mut(&mut out), 0, 0, 0, 0, 0]) };
    Status::from_ret(ret).map(|_| out)
}

/// Grow by `count` frames within `max_pages`: the first new guest frame.
/// The new frames appear in the physmap.
pub fn memory_increase(count: u64) -> Result<u64, Status> {
    call_noptr(Hypercall::MemoryIncrease, [count, 0, 0, 0, 0, 0])
}

/// Give back the top `count` frames: the new `tot_pages`. Only give back
/// frames that [`memory_increase`] added: the SDK's heap and frame pool
/// live in the frames the domain started with.
pub fn memory_decrease(count: u64) -> Result<u64, Status> {
    call_noptr(Hypercall::MemoryDecrease, [count, 0, 0, 0, 0, 0])
}

/// Create an empty, paused domain (dom0 only): its ID.
pub fn domctl_create(cfg: &DomainConfig) -> Result<DomId, Status> {
    // SAFETY: the hypervisor only reads `cfg`, a live reference.
    let ret = unsafe { raw(Hypercall::DomctlCreate as u64, [ptr(cfg), 0, 0, 0, 0, 0]) };
    Status::from_ret(ret).and_then(|d| DomId::try_from(d).map_err(|_| Status::ERANGE))
}

/// Destroy domain `d` and free its memory (dom0 only).
pub fn domctl_destroy(d: DomId) -> Result<(), Status> {
    call_noptr(Hypercall::DomctlDestroy, [u64::from(d), 0, 0, 0, 0, 0]).map(drop)
}

/// Pause domain `d` (dom0 only).
pub fn domctl_pause(d: DomId) -> Result<(), Status> {
    call_noptr(Hypercall::DomctlPause, [u64::from(d), 0, 0, 0, 0, 0]).map(drop)
}

/// Let domain `d` run (dom0 only).
pub fn domctl_unpause(d: DomId) -> Result<(), Status> {
    call_noptr(Hypercall::DomctlUnpause, [u64::from(d), 0, 0, 0, 0, 0]).map(drop)
}

/// Describe the first domain with ID `>= d` (dom0 only); `ESRCH` past the
/// last. Iterate with `d = info.domid + 1`.
pub fn domctl_getinfo(d: DomId) -> Result<DomainInfo, Status> {
    let mut out = DomainInfo::new_zeroed();
    // SAFETY: the hypervisor writes one `DomainInfo` into `out`, which we
    // borrow mutably for the call.
    let ret = unsafe {
        raw(
            Hypercall::DomctlGetInfo as u64,
            [u64::from(d), ptr_mut(&mut out), 0, 0, 0, 0],
        )
    };
    Status::from_ret(ret).map(|_| out)
}

/// Set the initial registers of domain `d`'s vCPU 0 (dom0 only).
pub fn domctl_set_vcpu_context(d: DomId, ctx: &VcpuContext) -> Result<(), Status> {
    // SAFETY: the hypervisor only reads `ctx`, a live reference.
    let ret = unsafe {
        raw(
            Hypercall::DomctlSetVcpuContext as u64,
            [u64::from(d), ptr(ctx), 0, 0, 0, 0],
        )
    };
    Status::from_ret(ret).map(drop)
}

/// The machine (dom0 only): CPUs, memory, TSC, versions, domains.
pub fn physinfo() -> Result<Physinfo, Status> {
    let mut out = Physinfo::new_zeroed();
    // SAFETY: the hypervisor writes one `Physinfo` into `out`, which we
    // borrow mutably for the call.
    let ret = unsafe {
        raw(
            Hypercall::SysctlPhysinfo as u64,
            [ptr_mut(&mut out), 0, 0, 0, 0, 0],
        )
    };
    Status::from_ret(ret).map(|_| out)
}

// ---- Events and timers (ABI 1.1) ------------------------------------------

/// A port number as the hypervisor returns it.
fn port(ret: Result<u64, Status>) -> Result<u32, Status> {
    ret.and_then(|p| u32::try_from(p).map_err(|_| Status::ERANGE))
}

/// Raise `VIRQ_TIMER` on this vCPU at system time `deadline_ns` (0 cancels).
pub fn set_timer(deadline_ns: u64) -> Result<(), Status> {
    call_noptr(Hypercall::VcpuSetTimer, [deadline_ns, 0, 0, 0, 0, 0]).map(drop)
}

/// Wait until one of `ports` is pending (`Ok(true)`) or `timeout_ns` of
/// system time passed (`Ok(false)`; 0 waits without limit).
pub fn sched_poll(ports: &[u32], timeout_ns: u64) -> Result<bool, Status> {
    // SAFETY: the hypervisor only reads `ports`, a live slice.
    let ret = unsafe {
        raw(
            Hypercall::SchedPoll as u64,
            [ports.as_ptr() as u64, ports.len() as u64, timeout_ns, 0, 0, 0],
        )
    };
    Status::from_ret(ret).map(|v| v != 0)
}

/// A new port that `remote` may bind to ([`DOMID_SELF`](dom0_abi::DOMID_SELF) for a loopback).
pub fn evtchn_alloc_unbound(remote: DomId) -> Result<u32, Status> {
    port(call_noptr(
        Hypercall::EvtchnAllocUnbound,
        [u64::from(remote), 0, 0, 0, 0, 0],
    ))
}

/// Connect to `remote_port`, which `remote` allocated for us: our port.
pub fn evtchn_bind_interdomain(remote: DomId, remote_port: u32) -> Result<u32, Status> {
    port(call_noptr(
        Hypercall::EvtchnBindInterdomain,
        [u64::from(remote), u64::from(remote_port), 0, 0, 0, 0],
    ))
}

/// A port raised for `virq` on vCPU `vcpu`.
pub fn evtchn_bind_virq(virq: Virq, vcpu: u32) -> Result<u32, Status> {
    port(call_noptr(
        Hypercall::EvtchnBindVirq,
        [virq as u64, u64::from(vcpu), 0, 0, 0, 0],
    ))
}

/// A port that signals our own vCPU `vcpu`.
pub fn evtchn_bind_ipi(vcpu: u32) -> Result<u32, Status> {
    port(call_noptr(
        Hypercall::EvtchnBindIpi,
        [u64::from(vcpu), 0, 0, 0, 0, 0],
    ))
}

/// Notify the other end of `port`.
pub fn evtchn_send(port: u32) -> Result<(), Status> {
    call_noptr(Hypercall::EvtchnSend, [u64::from(port), 0, 0, 0, 0, 0]).map(drop)
}

/// Close `port`.
pub fn evtchn_close(port: u32) -> Result<(), Status> {
    call_noptr(Hypercall::EvtchnClose, [u64::from(port), 0, 0, 0, 0, 0]).map(drop)
}

/// Unmask `port`, delivering it if it is pending.
pub fn evtchn_unmask(port: u32) -> Result<(), Status> {
    call_noptr(Hypercall::EvtchnUnmask, [u64::from(port), 0, 0, 0, 0, 0]).map(drop)
}

/// What `port` is.
pub fn evtchn_status(port: u32) -> Result<EvtchnStatus, Status> {
    let mut out = EvtchnStatus::new_zeroed();
    // SAFETY: the hypervisor writes one `EvtchnStatus` into `out`.
    let ret = unsafe {
        raw(
            Hypercall::EvtchnStatus as u64,
            [u64::from(port), ptr_mut(&mut out), 0, 0, 0, 0],
        )
    };
    Status::from_ret(ret).map(|_| out)
}

// ---- Toolstack (dom0 only, ABI 1.1) ----------------------------------------

/// Ask domain `d` to shut down with `reason`.
pub fn domctl_shutdown(d: DomId, reason: ShutdownReason) -> Result<(), Status> {
    call_noptr(
        Hypercall::DomctlShutdown,
        [u64::from(d), reason as u64, 0, 0, 0, 0],
    )
    .map(drop)
}

/// Set domain `d`'s `max_pages`.
pub fn domctl_set_max_mem(d: DomId, max_pages: u64) -> Result<(), Status> {
    call_noptr(Hypercall::DomctlSetMaxMem, [u64::from(d), max_pages, 0, 0, 0, 0]).map(drop)
}

/// Bring vCPUs `0..online` of domain `d` up and the rest down.
pub fn domctl_set_vcpus(d: DomId, online: u32) -> Result<(), Status> {
    call_noptr(
        Hypercall::DomctlSetVcpus,
        [u64::from(d), u64::from(online), 0, 0, 0, 0],
    )
    .map(drop)
}

/// Domain `d`'s scheduler parameters.
pub fn domctl_sched_get(d: DomId) -> Result<SchedParams, Status> {
    let mut out = SchedParams::new_zeroed();
    // SAFETY: the hypervisor writes one `SchedParams` into `out`.
    let ret = unsafe {
        raw(
            Hypercall::DomctlSchedGet as u64,
            [u64::from(d), ptr_mut(&mut out), 0, 0, 0, 0],
        )
    };
    Status::from_ret(ret).map(|_| out)
}

/// Set domain `d`'s scheduler parameters.
pub fn domctl_sched_set(d: DomId, params: &SchedParams) -> Result<(), Status> {
    // SAFETY: the hypervisor only reads `params`.
    let ret = unsafe {
        raw(
            Hypercall::DomctlSchedSet as u64,
            [u64::from(d), ptr(params), 0, 0, 0, 0],
        )
    };
    Status::from_ret(ret).map(drop)
}

/// Read domain `d`'s console from stream offset `from` into `buf`:
/// `(bytes copied, next offset)`.
pub fn domctl_console_read(d: DomId, from: u64, buf: &mut [u8]) -> Result<(usize, u64), Status> {
    let len = buf
        .len()
        .min(usize::try_from(CONSOLE_IO_MAX).unwrap_or(usize::MAX));
    let mut io = ConsoleRead {
        from,
        buf: buf.as_mut_ptr() as u64,
        len: len as u64,
        next: 0,
    };
    // SAFETY: the hypervisor reads and writes `io` and writes at most `len`
    // bytes into `buf`, both borrowed mutably for the call.
    let ret = unsafe {
        raw(
            Hypercall::DomctlConsoleRead as u64,
            [u64::from(d), ptr_mut(&mut io), 0, 0, 0, 0],
        )
    };
    Status::from_ret(ret).and_then(to_usize).map(|n| (n, io.next))
}

/// Read the hypervisor's log from stream offset `from`: `(bytes, next)`.
pub fn sysctl_dmesg(from: u64, buf: &mut [u8]) -> Result<(usize, u64), Status> {
    let len = buf
        .len()
        .min(usize::try_from(CONSOLE_IO_MAX).unwrap_or(usize::MAX));
    let mut io = ConsoleRead {
        from,
        buf: buf.as_mut_ptr() as u64,
        len: len as u64,
        next: 0,
    };
    // SAFETY: as for `domctl_console_read`.
    let ret = unsafe { raw(Hypercall::SysctlDmesg as u64, [ptr_mut(&mut io), 0, 0, 0, 0, 0]) };
    Status::from_ret(ret).and_then(to_usize).map(|n| (n, io.next))
}

/// Pin vCPU `vcpu` of domain `d` to the CPUs in `mask`.
pub fn domctl_vcpu_pin(d: DomId, vcpu: u32, mask: u64) -> Result<(), Status> {
    call_noptr(
        Hypercall::DomctlVcpuPin,
        [u64::from(d), u64::from(vcpu), mask, 0, 0, 0],
    )
    .map(drop)
}

/// vCPU `vcpu` of domain `d`.
pub fn domctl_vcpu_info(d: DomId, vcpu: u32) -> Result<VcpuRecord, Status> {
    let mut out = VcpuRecord::new_zeroed();
    // SAFETY: the hypervisor writes one `VcpuRecord` into `out`.
    let ret = unsafe {
        raw(
            Hypercall::DomctlVcpuInfo as u64,
            [u64::from(d), u64::from(vcpu), ptr_mut(&mut out), 0, 0, 0],
        )
    };
    Status::from_ret(ret).map(|_| out)
}

/// Ask domain `d` to balloon to `pages`.
pub fn domctl_set_target(d: DomId, pages: u64) -> Result<(), Status> {
    call_noptr(Hypercall::DomctlSetTarget, [u64::from(d), pages, 0, 0, 0, 0]).map(drop)
}

/// The address of `r` as a hypercall argument.
fn ptr<T>(r: &T) -> u64 {
    core::ptr::from_ref(r) as u64
}

/// The address of `r` as a hypercall argument the hypervisor writes through.
fn ptr_mut<T>(r: &mut T) -> u64 {
    core::ptr::from_mut(r) as u64
}

/// A hypercall's count as a `usize` (`ERANGE` if it does not fit).
fn to_usize(v: u64) -> Result<usize, Status> {
    usize::try_from(v).map_err(|_| Status::ERANGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn console_writes_are_chunked() {
        let data = [7u8; 10_000];
        let mut sizes = Vec::new();
        let n = write_chunked(&data, |c| {
            sizes.push(c.len());
            Ok(c.len())
        });
        assert_eq!(n, Ok(10_000));
        assert_eq!(sizes, [4096, 4096, 1808]);
    }

    #[test]
    fn short_writes_and_errors_stop_the_loop() {
        let data = [0u8; 9000];
        let mut calls = 0;
        assert_eq!(
            write_chunked(&data, |_| {
                calls += 1;
                Ok(100)
            }),
            Ok(100)
        );
        assert_eq!(calls, 1);
        assert_eq!(write_chunked(&data, |_| Err(Status::EFAULT)), Err(Status::EFAULT));
        let mut first = true;
        let r = write_chunked(&data, |c| {
            if core::mem::take(&mut first) {
                Ok(c.len())
            } else {
                Err(Status::EFAULT)
            }
        });
        assert_eq!(r, Ok(4096));
        assert_eq!(write_chunked(&[], |_| Err(Status::EFAULT)), Ok(0));
    }
}
