//! Hypercall numbers, decoded with `TryFrom` (an unknown number is
//! `ENOSYS`), and the flags and small constants their arguments use. The
//! register table in `docs/abi.md` is the reference for each call.

use crate::Status;

/// Defines [`Hypercall`] and its tables from one list, so that the
/// number, the name, the privilege and the decoding can never disagree.
macro_rules! hypercalls {
    ($($(#[$doc:meta])* $variant:ident = $nr:literal, $name:literal, $who:ident;)*) => {
        /// Every hypercall, by the number a guest puts in `rax`.
        ///
        /// Numbers are grouped by family and never reused; a removed call
        /// leaves a comment with its number.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u64)]
        pub enum Hypercall {
            $($(#[$doc])* $variant = $nr,)*
        }

        impl Hypercall {
            /// Every hypercall, in numeric order.
            pub const ALL: [Hypercall; [$($nr),*].len()] = [$(Hypercall::$variant),*];

            /// The name used in traces and docs.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Hypercall::$variant => $name,)*
                }
            }

            /// Whether only a privileged domain (dom0) may make this call.
            pub const fn privileged(self) -> bool {
                match self {
                    $(Hypercall::$variant => hypercalls!(@privileged $who),)*
                }
            }
        }

        impl TryFrom<u64> for Hypercall {
            type Error = Status;

            /// Decode a number (a jump table, not a search).
            fn try_from(nr: u64) -> Result<Self, Status> {
                match nr {
                    $($nr => Ok(Hypercall::$variant),)*
                    _ => Err(Status::ENOSYS),
                }
            }
        }
    };
    (@privileged privileged) => { true };
    (@privileged any) => { false };
}

hypercalls! {
    /// `version()` → `major << 16 | minor`.
    Version = 0, "version", any;
    /// `console_write(buf, len)` → bytes written; `len` at most [`CONSOLE_IO_MAX`].
    ConsoleWrite = 1, "console_write", any;
    /// `console_read(buf, len)` → bytes read from the serial input (dom0 only; 0 if none).
    ConsoleRead = 2, "console_read", privileged;
    /// `sched_yield()` → 0: let another vCPU run.
    SchedYield = 3, "sched_yield", any;
    /// `sched_block()` → 0 once an event is pending for this vCPU (an
    /// unmasked port, or for dom0 console input or a domain state change).
    SchedBlock = 4, "sched_block", any;
    /// `sched_shutdown(reason)`: stop this domain with a [`ShutdownReason`]; no return.
    SchedShutdown = 5, "sched_shutdown", any;
    /// `vcpu_set_trap_table(table, count)`: register [`TrapEntry`]s; `count == 0` clears.
    VcpuSetTrapTable = 6, "vcpu_set_trap_table", any;
    /// `vcpu_set_callbacks(event_handler, flags)`: the event upcall entry (flags must be 0).
    VcpuSetCallbacks = 7, "vcpu_set_callbacks", any;
    /// `iret()`: resume the context in the [`IretFrame`] at the guest's `rsp`.
    Iret = 8, "iret", any;
    /// `vcpu_set_timer(deadline_ns)`: raise `VIRQ_TIMER` on this vCPU once
    /// system time reaches `deadline_ns` (0 cancels; a past deadline fires
    /// at once). Since 1.1.
    VcpuSetTimer = 9, "vcpu_set_timer", any;
    /// `mmu_batch(ops, count, domid)` → `count`: apply [`MmuOp`]s to the
    /// address space of `domid` (`DOMID_SELF`, or a domain dom0 builds).
    MmuBatch = 10, "mmu_batch", any;
    /// `memory_info(out)`: write this domain's [`MemoryInfo`].
    MemoryInfo = 11, "memory_info", any;
    /// `memory_increase(count)` → first new guest frame: grow within `max_pages`.
    MemoryIncrease = 12, "memory_increase", any;
    /// `memory_decrease(count)` → new `tot_pages`: give back the top `count` frames.
    MemoryDecrease = 13, "memory_decrease", any;
    /// `sched_poll(ports, count, timeout_ns)` → 1 if one of the `u32` ports
    /// at `ports` is pending, 0 on timeout (0: none). Since 1.1.
    SchedPoll = 14, "sched_poll", any;
    /// `evtchn_alloc_unbound(remote_dom)` → a new local port that `remote_dom`
    /// may bind to (`DOMID_SELF` for a loopback). Since 1.1.
    EvtchnAllocUnbound = 16, "evtchn_alloc_unbound", any;
    /// `evtchn_bind_interdomain(remote_dom, remote_port)` → local port
    /// connected to a port `remote_dom` allocated for us. Since 1.1.
    EvtchnBindInterdomain = 17, "evtchn_bind_interdomain", any;
    /// `evtchn_bind_virq(virq, vcpu)` → port raised for that [`Virq`]. Since 1.1.
    EvtchnBindVirq = 18, "evtchn_bind_virq", any;
    /// `evtchn_bind_ipi(vcpu)` → port that signals one of our own vCPUs. Since 1.1.
    EvtchnBindIpi = 19, "evtchn_bind_ipi", any;
    /// `evtchn_send(port)`: notify the other end (`ENOTCONN` once it has
    /// closed). Since 1.1.
    EvtchnSend = 20, "evtchn_send", any;
    /// `evtchn_close(port)`: the other end of an interdomain channel becomes
    /// unbound and is notified. Since 1.1.
    EvtchnClose = 21, "evtchn_close", any;
    /// `evtchn_unmask(port)`: clear its mask bit, delivering it if pending. Since 1.1.
    EvtchnUnmask = 22, "evtchn_unmask", any;
    /// `evtchn_status(port, out)`: write an [`EvtchnStatus`]. Since 1.1.
    EvtchnStatus = 23, "evtchn_status", any;
    /// `domctl_create(config)` → new domain ID (dom0 only): an empty, paused
    /// domain with the [`DomainConfig`]'s memory.
    DomctlCreate = 32, "domctl_create", privileged;
    /// `domctl_destroy(domid)`: tear a domain down and return all its memory.
    DomctlDestroy = 33, "domctl_destroy", privileged;
    /// `domctl_pause(domid)`.
    DomctlPause = 34, "domctl_pause", privileged;
    /// `domctl_unpause(domid)`: let a built domain run.
    DomctlUnpause = 35, "domctl_unpause", privileged;
    /// `domctl_getinfo(domid, out)` → the domain ID described: the first
    /// domain with ID `>= domid`, as a [`DomainInfo`]; `ESRCH` past the last.
    DomctlGetInfo = 36, "domctl_getinfo", privileged;
    /// `domctl_set_vcpu_context(domid, ctx)`: the initial [`VcpuContext`].
    DomctlSetVcpuContext = 37, "domctl_set_vcpu_context", privileged;
    /// `domctl_shutdown(domid, reason)`: ask a domain to shut down with a
    /// [`ShutdownReason`] (sets `SharedInfo::shutdown_request`, raises
    /// `VIRQ_CONTROL`; the guest decides). Since 1.1.
    DomctlShutdown = 38, "domctl_shutdown", privileged;
    /// `domctl_set_max_mem(domid, max_pages)`: change `max_pages` (not below
    /// `tot_pages`). Since 1.1.
    DomctlSetMaxMem = 39, "domctl_set_max_mem", privileged;
    /// `domctl_set_vcpus(domid, online)`: allow vCPUs `0..online` to run and
    /// take the rest down (within the domain's vCPU count; a vCPU other than
    /// 0 runs only once it has a context, which no call sets yet). Since 1.1.
    DomctlSetVcpus = 40, "domctl_set_vcpus", privileged;
    /// `domctl_sched_get(domid, out)`: its [`SchedParams`]. Since 1.1.
    DomctlSchedGet = 41, "domctl_sched_get", privileged;
    /// `domctl_sched_set(domid, params)`: set its [`SchedParams`]. Since 1.1.
    DomctlSchedSet = 42, "domctl_sched_set", privileged;
    /// `domctl_console_read(domid, io)` → bytes copied: read a domain's
    /// console ring through a [`ConsoleRead`]. Since 1.1.
    DomctlConsoleRead = 43, "domctl_console_read", privileged;
    /// `domctl_vcpu_pin(domid, vcpu, cpumask)`: set a vCPU's CPU affinity
    /// (bit n = physical CPU n; kept, and honoured once SMP lands). Since 1.1.
    DomctlVcpuPin = 44, "domctl_vcpu_pin", privileged;
    /// `domctl_vcpu_info(domid, vcpu, out)`: a [`VcpuRecord`]. Since 1.1.
    DomctlVcpuInfo = 45, "domctl_vcpu_info", privileged;
    /// `domctl_set_target(domid, pages)`: the memory the domain should
    /// balloon to (sets `SharedInfo::mem_target_pages`, raises
    /// `VIRQ_CONTROL`; within `max_pages`). Since 1.1.
    DomctlSetTarget = 46, "domctl_set_target", privileged;
    /// `sysctl_physinfo(out)`: the machine's [`Physinfo`] (dom0 only).
    SysctlPhysinfo = 64, "sysctl_physinfo", privileged;
    /// `sysctl_dmesg(io)` → bytes copied: read the hypervisor's log ring
    /// through a [`ConsoleRead`]. Since 1.1.
    SysctlDmesg = 65, "sysctl_dmesg", privileged;
}

/// Most bytes one `console_write` or `console_read` moves.
pub const CONSOLE_IO_MAX: u64 = 4096;
/// Most entries in one trap table.
pub const TRAP_TABLE_MAX: u64 = 32;
/// Most operations in one `mmu_batch`.
pub const MMU_BATCH_MAX: u64 = 512;
/// Most ports one `sched_poll` waits on.
pub const POLL_PORTS_MAX: u64 = 128;

/// Why a domain stopped (`sched_shutdown`'s argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ShutdownReason {
    /// Clean power-off.
    Poweroff = 0,
    /// The guest asks to be restarted.
    Reboot = 1,
    /// The guest detected a fatal error.
    Crash = 2,
}

impl ShutdownReason {
    /// The word `xm` uses.
    pub const fn name(self) -> &'static str {
        match self {
            ShutdownReason::Poweroff => "poweroff",
            ShutdownReason::Reboot => "reboot",
            ShutdownReason::Crash => "crash",
        }
    }
}

impl TryFrom<u64> for ShutdownReason {
    type Error = Status;

    fn try_from(v: u64) -> Result<Self, Status> {
        match v {
            0 => Ok(ShutdownReason::Poweroff),
            1 => Ok(ShutdownReason::Reboot),
            2 => Ok(ShutdownReason::Crash),
            _ => Err(Status::EINVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_is_enosys() {
        for h in Hypercall::ALL {
            assert_eq!(Hypercall::try_from(h as u64), Ok(h));
        }
        assert!(Hypercall::ALL.windows(2).all(|w| (w[0] as u64) < (w[1] as u64)));
        for nr in [15u64, 24, 31, 47, 63, 66, u64::MAX] {
            assert_eq!(Hypercall::try_from(nr), Err(Status::ENOSYS));
        }
    }

    /// The numbers are the ABI: this table must only ever grow.
    #[test]
    fn golden_numbers() {
        let golden: [(u64, &str); 40] = [
            (0, "version"),
            (1, "console_write"),
            (2, "console_read"),
            (3, "sched_yield"),
            (4, "sched_block"),
            (5, "sched_shutdown"),
            (6, "vcpu_set_trap_table"),
            (7, "vcpu_set_callbacks"),
            (8, "iret"),
            (9, "vcpu_set_timer"),
            (10, "mmu_batch"),
            (11, "memory_info"),
            (12, "memory_increase"),
            (13, "memory_decrease"),
            (14, "sched_poll"),
            (16, "evtchn_alloc_unbound"),
            (17, "evtchn_bind_interdomain"),
            (18, "evtchn_bind_virq"),
            (19, "evtchn_bind_ipi"),
            (20, "evtchn_send"),
            (21, "evtchn_close"),
            (22, "evtchn_unmask"),
            (23, "evtchn_status"),
            (32, "domctl_create"),
            (33, "domctl_destroy"),
            (34, "domctl_pause"),
            (35, "domctl_unpause"),
            (36, "domctl_getinfo"),
            (37, "domctl_set_vcpu_context"),
            (38, "domctl_shutdown"),
            (39, "domctl_set_max_mem"),
            (40, "domctl_set_vcpus"),
            (41, "domctl_sched_get"),
            (42, "domctl_sched_set"),
            (43, "domctl_console_read"),
            (44, "domctl_vcpu_pin"),
            (45, "domctl_vcpu_info"),
            (46, "domctl_set_target"),
            (64, "sysctl_physinfo"),
            (65, "sysctl_dmesg"),
        ];
        for (nr, name) in golden {
            assert_eq!(Hypercall::try_from(nr).map(Hypercall::name), Ok(name));
        }
    }

    #[test]
    fn shutdown_reasons() {
        assert_eq!(ShutdownReason::try_from(2), Ok(ShutdownReason::Crash));
        assert_eq!(ShutdownReason::try_from(3), Err(Status::EINVAL));
    }
}
