//! Event channels, virtual IRQs and the structures of the 1.1 additions
//! (scheduler parameters, console and log reads, vCPU records).
//!
//! **Event channels** work as in Xen: each domain has ports `1 ..
//! EVTCHN_PORTS` (port 0 is never allocated). A port is unbound (offered to
//! one remote domain), interdomain (connected), bound to a [`Virq`], or an
//! IPI to one of the domain's own vCPUs. Sending sets the pending bit of the
//! far end in its `SharedInfo::evtchn_pending`; unless that port is masked
//! (`evtchn_mask`) its word bit goes into the vCPU's `evtchn_pending_sel` and
//! `evtchn_upcall_pending` is set, which wakes a blocked vCPU and, unless the
//! guest set `evtchn_upcall_mask`, enters its event callback with a
//! `TrapFrame` whose vector is `EVENT_VECTOR`. Delivery sets
//! `evtchn_upcall_mask`; the guest clears it when it is done (it can then
//! `iret`). Closing one end of an interdomain channel makes the other end
//! unbound and marks it pending, so a waiter wakes and sees `ENOTCONN`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Virtual IRQs a port can be bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Virq {
    /// This vCPU's `vcpu_set_timer` deadline passed (per vCPU).
    Timer = 0,
    /// Serial input is waiting (dom0 only).
    Console = 1,
    /// A domain shut down or crashed (dom0 only).
    DomExc = 2,
    /// The toolstack asks something: `SharedInfo::shutdown_request` or
    /// `mem_target_pages` changed.
    Control = 3,
}

/// How many VIRQs exist.
pub const NR_VIRQS: u32 = 4;

impl TryFrom<u64> for Virq {
    type Error = crate::Status;

    fn try_from(v: u64) -> Result<Self, crate::Status> {
        match v {
            0 => Ok(Virq::Timer),
            1 => Ok(Virq::Console),
            2 => Ok(Virq::DomExc),
            3 => Ok(Virq::Control),
            _ => Err(crate::Status::EINVAL),
        }
    }
}

/// `EvtchnStatus::state`: the port is free.
pub const EVTCHN_CLOSED: u32 = 0;
/// `EvtchnStatus::state`: offered to `remote_dom`, not connected.
pub const EVTCHN_UNBOUND: u32 = 1;
/// `EvtchnStatus::state`: connected to `remote_dom`'s `remote_port`.
pub const EVTCHN_INTERDOMAIN: u32 = 2;
/// `EvtchnStatus::state`: bound to `virq`.
pub const EVTCHN_VIRQ: u32 = 3;
/// `EvtchnStatus::state`: an IPI to `vcpu`.
pub const EVTCHN_IPI: u32 = 4;

/// What `evtchn_status` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EvtchnStatus {
    /// The port asked about.                               @0
    pub port: u32,
    /// `EVTCHN_*`.                                         @4
    pub state: u32,
    /// The vCPU events on it are delivered to.              @8
    pub vcpu: u32,
    /// The VIRQ (state VIRQ).                               @12
    pub virq: u32,
    /// The remote domain (unbound, interdomain).            @16
    pub remote_dom: u16,
    /// Padding, zero.                                       @18
    pub pad: u16,
    /// The remote port (interdomain).                       @20
    pub remote_port: u32,
    /// Reserved, zero.                                      @24
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<EvtchnStatus>() == 32);

/// Default scheduler weight (Xen's credit scheduler default).
pub const SCHED_WEIGHT_DEFAULT: u32 = 256;
/// Largest scheduler weight.
pub const SCHED_WEIGHT_MAX: u32 = 65535;

/// A domain's scheduler parameters, as `xm sched-credit` shows them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SchedParams {
    /// Relative share, 1 ..= `SCHED_WEIGHT_MAX`.            @0
    pub weight: u32,
    /// Most CPU in percent of one CPU; 0 = no cap.           @4
    pub cap: u32,
    /// Reserved, zero.                                       @8
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<SchedParams>() == 16);

/// In/out record of `domctl_console_read` and `sysctl_dmesg`. Rings keep
/// the newest bytes; offsets count every byte ever written, so a reader
/// that keeps `next` follows the stream and sees a gap (`next - count >
/// from`) when it fell behind.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ConsoleRead {
    /// In: the stream offset to read from.                   @0
    pub from: u64,
    /// In: guest buffer address.                              @8
    pub buf: u64,
    /// In: buffer length, at most `CONSOLE_IO_MAX`.            @16
    pub len: u64,
    /// Out: the offset after the last byte copied.             @24
    pub next: u64,
}
const _: () = assert!(core::mem::size_of::<ConsoleRead>() == 32);

/// What `domctl_vcpu_info` reports, for `xm vcpu-list`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuRecord {
    /// 1 if up.                                              @0
    pub online: u8,
    /// 1 if blocked.                                         @1
    pub blocked: u8,
    /// 1 if running now.                                     @2
    pub running: u8,
    /// Padding, zero.                                        @3
    pub pad: u8,
    /// Physical CPU it runs (or last ran) on.                 @4
    pub cpu: u32,
    /// Affinity mask (bit n = CPU n).                        @8
    pub affinity: u64,
    /// CPU time used, nanoseconds.                           @16
    pub cpu_time_ns: u64,
    /// Reserved, zero.                                       @24
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuRecord>() == 32);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn golden_layout() {
        assert_eq!(offset_of!(EvtchnStatus, remote_dom), 16);
        assert_eq!(offset_of!(EvtchnStatus, remote_port), 20);
        assert_eq!(offset_of!(SchedParams, cap), 4);
        assert_eq!(offset_of!(ConsoleRead, next), 24);
        assert_eq!(offset_of!(VcpuRecord, affinity), 8);
        assert_eq!(offset_of!(VcpuRecord, cpu_time_ns), 16);
    }

    #[test]
    fn virqs_decode() {
        assert_eq!(Virq::try_from(2), Ok(Virq::DomExc));
        assert!(Virq::try_from(u64::from(NR_VIRQS)).is_err());
    }
}
