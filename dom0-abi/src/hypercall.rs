//! Hypercall numbers, decoded with `TryFrom` (an unknown number is
//! `ENOSYS`), and the flags and small constants their arguments use. The
//! register table in `docs/abi.md` is the reference for each call.

use crate::Status;

/// Every hypercall, by the number a guest puts in `rax`.
///
/// Numbers are grouped by family and never reused; a removed call leaves a
/// comment with its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum Hypercall {
    /// `version()` → `major << 16 | minor`.
    Version = 0,
    /// `console_write(buf, len)` → bytes written; `len` at most [`CONSOLE_IO_MAX`].
    ConsoleWrite = 1,
    /// `console_read(buf, len)` → bytes read from the serial input (dom0 only; 0 if none).
    ConsoleRead = 2,
    /// `sched_yield()` → 0: let another vCPU run.
    SchedYield = 3,
    /// `sched_block()` → 0 once a wake-up is pending (console input or a domain
    /// state change for dom0; event channels later).
    SchedBlock = 4,
    /// `sched_shutdown(reason)`: stop this domain with a [`ShutdownReason`]; no return.
    SchedShutdown = 5,
    /// `vcpu_set_trap_table(table, count)`: register [`TrapEntry`]s; `count == 0` clears.
    VcpuSetTrapTable = 6,
    /// `vcpu_set_callbacks(event_handler, flags)`: the event upcall entry (flags must be 0).
    VcpuSetCallbacks = 7,
    /// `iret()`: resume the context in the [`IretFrame`] at the guest's `rsp`.
    Iret = 8,
    // 9 is reserved for `vcpu_set_timer` (events, timers and scheduling).
    /// `mmu_batch(ops, count, domid)` → `count`: apply [`MmuOp`]s to the
    /// address space of `domid` (`DOMID_SELF`, or a domain dom0 builds).
    MmuBatch = 10,
    /// `memory_info(out)`: write this domain's [`MemoryInfo`].
    MemoryInfo = 11,
    /// `memory_increase(count)` → first new guest frame: grow within `max_pages`.
    MemoryIncrease = 12,
    /// `memory_decrease(count)` → new `tot_pages`: give back the top `count` frames.
    MemoryDecrease = 13,
    /// `domctl_create(config)` → new domain ID (dom0 only): an empty, paused
    /// domain with the [`DomainConfig`]'s memory.
    DomctlCreate = 32,
    /// `domctl_destroy(domid)`: tear a domain down and return all its memory.
    DomctlDestroy = 33,
    /// `domctl_pause(domid)`.
    DomctlPause = 34,
    /// `domctl_unpause(domid)`: let a built domain run.
    DomctlUnpause = 35,
    /// `domctl_getinfo(domid, out)` → the domain ID described: the first
    /// domain with ID `>= domid`, as a [`DomainInfo`]; `ESRCH` past the last.
    DomctlGetInfo = 36,
    /// `domctl_set_vcpu_context(domid, ctx)`: the initial [`VcpuContext`].
    DomctlSetVcpuContext = 37,
    /// `sysctl_physinfo(out)`: the machine's [`Physinfo`] (dom0 only).
    SysctlPhysinfo = 64,
}

impl Hypercall {
    /// Every hypercall, in numeric order.
    pub const ALL: [Hypercall; 20] = [
        Hypercall::Version,
        Hypercall::ConsoleWrite,
        Hypercall::ConsoleRead,
        Hypercall::SchedYield,
        Hypercall::SchedBlock,
        Hypercall::SchedShutdown,
        Hypercall::VcpuSetTrapTable,
        Hypercall::VcpuSetCallbacks,
        Hypercall::Iret,
        Hypercall::MmuBatch,
        Hypercall::MemoryInfo,
        Hypercall::MemoryIncrease,
        Hypercall::MemoryDecrease,
        Hypercall::DomctlCreate,
        Hypercall::DomctlDestroy,
        Hypercall::DomctlPause,
        Hypercall::DomctlUnpause,
        Hypercall::DomctlGetInfo,
        Hypercall::DomctlSetVcpuContext,
        Hypercall::SysctlPhysinfo,
    ];

    /// The name used in traces and docs.
    pub const fn name(self) -> &'static str {
        match self {
            Hypercall::Version => "version",
            Hypercall::ConsoleWrite => "console_write",
            Hypercall::ConsoleRead => "console_read",
            Hypercall::SchedYield => "sched_yield",
            Hypercall::SchedBlock => "sched_block",
            Hypercall::SchedShutdown => "sched_shutdown",
            Hypercall::VcpuSetTrapTable => "vcpu_set_trap_table",
            Hypercall::VcpuSetCallbacks => "vcpu_set_callbacks",
            Hypercall::Iret => "iret",
            Hypercall::MmuBatch => "mmu_batch",
            Hypercall::MemoryInfo => "memory_info",
            Hypercall::MemoryIncrease => "memory_increase",
            Hypercall::MemoryDecrease => "memory_decrease",
            Hypercall::DomctlCreate => "domctl_create",
            Hypercall::DomctlDestroy => "domctl_destroy",
            Hypercall::DomctlPause => "domctl_pause",
            Hypercall::DomctlUnpause => "domctl_unpause",
            Hypercall::DomctlGetInfo => "domctl_getinfo",
            Hypercall::DomctlSetVcpuContext => "domctl_set_vcpu_context",
            Hypercall::SysctlPhysinfo => "sysctl_physinfo",
        }
    }

    /// Whether only a privileged domain (dom0) may make this call.
    pub const fn privileged(self) -> bool {
        matches!(
            self,
            Hypercall::ConsoleRead
                | Hypercall::DomctlCreate
                | Hypercall::DomctlDestroy
                | Hypercall::DomctlPause
                | Hypercall::DomctlUnpause
                | Hypercall::DomctlGetInfo
                | Hypercall::DomctlSetVcpuContext
                | Hypercall::SysctlPhysinfo
        )
    }
}

impl TryFrom<u64> for Hypercall {
    type Error = Status;

    fn try_from(nr: u64) -> Result<Self, Status> {
        Hypercall::ALL
            .iter()
            .copied()
            .find(|h| *h as u64 == nr)
            .ok_or(Status::ENOSYS)
    }
}

/// Most bytes one `console_write` or `console_read` moves.
pub const CONSOLE_IO_MAX: u64 = 4096;
/// Most entries in one trap table.
pub const TRAP_TABLE_MAX: u64 = 32;
/// Most operations in one `mmu_batch`.
pub const MMU_BATCH_MAX: u64 = 512;

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
        for nr in [9u64, 14, 31, 38, 63, 65, u64::MAX] {
            assert_eq!(Hypercall::try_from(nr), Err(Status::ENOSYS));
        }
    }

    /// The numbers are the ABI: this table must only ever grow.
    #[test]
    fn golden_numbers() {
        let golden: [(u64, &str); 20] = [
            (0, "version"),
            (1, "console_write"),
            (2, "console_read"),
            (3, "sched_yield"),
            (4, "sched_block"),
            (5, "sched_shutdown"),
            (6, "vcpu_set_trap_table"),
            (7, "vcpu_set_callbacks"),
            (8, "iret"),
            (10, "mmu_batch"),
            (11, "memory_info"),
            (12, "memory_increase"),
            (13, "memory_decrease"),
            (32, "domctl_create"),
            (33, "domctl_destroy"),
            (34, "domctl_pause"),
            (35, "domctl_unpause"),
            (36, "domctl_getinfo"),
            (37, "domctl_set_vcpu_context"),
            (64, "sysctl_physinfo"),
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
