//! The privileged interface (dom0 only): domain control and system
//! information. A domU calling any of these gets `EPERM`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// What `domctl_create` builds: an empty, paused domain.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct DomainConfig {
    /// Most frames the domain may have (`maxmem`).             @0
    pub max_pages: u64,
    /// Frames it starts with (`memory`), `<= max_pages`.       @8
    pub initial_pages: u64,
    /// vCPUs, 1 ..= `MAX_VCPUS` (one runs until SMP lands).    @16
    pub vcpus: u32,
    /// Reserved, must be zero.                                 @20
    pub flags: u32,
    /// Name, NUL-padded; must be unique and non-empty.         @24
    pub name: [u8; 32],
    /// Reserved, must be zero.                                 @56
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<DomainConfig>() == 64);

/// `DomainInfo::state` bits, as `xm list` shows them (`r b p s c d`).
pub mod domstate {
    /// Running, or ready to run.
    pub const RUNNING: u32 = 1 << 0;
    /// Blocked waiting for an event.
    pub const BLOCKED: u32 = 1 << 1;
    /// Paused by the toolstack.
    pub const PAUSED: u32 = 1 << 2;
    /// Shut down (see `shutdown_reason`).
    pub const SHUTDOWN: u32 = 1 << 3;
    /// Crashed.
    pub const CRASHED: u32 = 1 << 4;
    /// Being destroyed (memory still referenced).
    pub const DYING: u32 = 1 << 5;
}

/// `DomainInfo::flags`: the domain is privileged (dom0).
pub const DOMINFO_PRIVILEGED: u32 = 1 << 0;

/// What `domctl_getinfo` reports about one domain.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct DomainInfo {
    /// Domain ID.                                             @0
    pub domid: u16,
    /// Padding, zero.                                         @2
    pub pad0: u16,
    /// `domstate` bits.                                       @4
    pub state: u32,
    /// `DOMINFO_*` flags.                                     @8
    pub flags: u32,
    /// vCPUs.                                                 @12
    pub vcpus: u32,
    /// `ShutdownReason` when `state` has SHUTDOWN.            @16
    pub shutdown_reason: u32,
    /// Padding, zero.                                         @20
    pub pad1: u32,
    /// Guest frames owned.                                    @24
    pub tot_pages: u64,
    /// Most frames allowed.                                   @32
    pub max_pages: u64,
    /// CPU time used, nanoseconds.                            @40
    pub cpu_time_ns: u64,
    /// Name, NUL-padded.                                      @48
    pub name: [u8; 32],
    /// Frames the hypervisor keeps for it (page tables, shared info). @80
    pub overhead_pages: u64,
    /// Reserved, zero.                                        @88
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<DomainInfo>() == 96);

/// The initial register state `domctl_set_vcpu_context` gives vCPU 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuContext {
    /// Entry point (lower half, canonical).                   @0
    pub rip: u64,
    /// Initial stack pointer.                                 @8
    pub rsp: u64,
    /// First argument (the builder passes the start_info address). @16
    pub rdi: u64,
    /// Second argument.                                       @24
    pub rsi: u64,
    /// Reserved, must be zero.                                @32
    pub flags: u64,
    /// Reserved, must be zero.                                @40
    pub reserved: [u64; 3],
}
const _: () = assert!(core::mem::size_of::<VcpuContext>() == 64);

/// What `sysctl_physinfo` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Physinfo {
    /// CPUs the hypervisor runs on.                           @0
    pub nr_cpus: u32,
    /// Padding, zero.                                         @4
    pub pad0: u32,
    /// Frames the hypervisor manages.                         @8
    pub total_pages: u64,
    /// Frames free now.                                       @16
    pub free_pages: u64,
    /// TSC frequency, kHz.                                    @24
    pub tsc_khz: u64,
    /// Hypervisor version.                                    @32
    pub hv_major: u16,
    /// @34
    pub hv_minor: u16,
    /// @36
    pub hv_patch: u16,
    /// Padding, zero.                                         @38
    pub pad1: u16,
    /// ABI version.                                           @40
    pub abi_major: u16,
    /// @42
    pub abi_minor: u16,
    /// Domains that exist now.                                @44
    pub nr_domains: u32,
    /// Reserved, zero.                                        @48
    pub reserved: [u64; 2],
}
const _: () = assert!(core::mem::size_of::<Physinfo>() == 64);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn golden_layout() {
        assert_eq!(offset_of!(DomainConfig, vcpus), 16);
        assert_eq!(offset_of!(DomainConfig, name), 24);
        assert_eq!(offset_of!(DomainInfo, state), 4);
        assert_eq!(offset_of!(DomainInfo, tot_pages), 24);
        assert_eq!(offset_of!(DomainInfo, name), 48);
        assert_eq!(offset_of!(DomainInfo, overhead_pages), 80);
        assert_eq!(offset_of!(VcpuContext, rdi), 16);
        assert_eq!(offset_of!(Physinfo, tsc_khz), 24);
        assert_eq!(offset_of!(Physinfo, abi_major), 40);
        assert_eq!(offset_of!(Physinfo, nr_domains), 44);
    }
}
