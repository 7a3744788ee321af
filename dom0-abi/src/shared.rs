//! Structures shared with every guest: `start_info` (what the builder tells
//! a new domain), `shared_info` with its per-vCPU `vcpu_info` and time
//! records, the `mmu_batch` operation, `memory_info`, and the fixed guest
//! virtual layout the builder sets up.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

// ---- The guest virtual layout -------------------------------------------

/// Lowest address an image segment may occupy (4 MiB).
pub const GUEST_IMAGE_MIN: u64 = 0x40_0000;
/// One past the highest address an image segment may occupy (1 GiB).
pub const GUEST_IMAGE_MAX: u64 = 0x4000_0000;
/// Where the builder maps the `StartInfo` page (read-only).
pub const GUEST_START_INFO_VA: u64 = 0x0000_0800_0000_0000;
/// Where the builder maps the `SharedInfo` page (read-write).
pub const GUEST_SHARED_INFO_VA: u64 = 0x0000_0800_0000_1000;
/// Top of the initial stack; the page below the stack stays unmapped.
pub const GUEST_STACK_TOP: u64 = 0x0000_0800_0010_0000;
/// Pages of the initial stack.
pub const GUEST_STACK_PAGES: u64 = 16;
/// Where dom0 finds the boot bundle (read-only).
pub const GUEST_MODULE_VA: u64 = 0x0000_0900_0000_0000;
/// The physmap: guest frame `g` is mapped read-write at `GUEST_PHYSMAP_VA + g * 4096`.
pub const GUEST_PHYSMAP_VA: u64 = 0x0000_1000_0000_0000;
/// One past the highest guest virtual address (the lower half).
pub const GUEST_VA_LIMIT: u64 = 0x0000_8000_0000_0000;

// ---- start_info ------------------------------------------------------------

/// `StartInfo::magic`: "OXENSI01" little-endian.
pub const START_INFO_MAGIC: u64 = u64::from_le_bytes(*b"OXENSI01");
/// `StartInfo::flags`: the domain is privileged (may use domctl/sysctl).
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `StartInfo::flags`: the domain is the initial domain (dom0).
pub const SIF_INITDOMAIN: u32 = 1 << 1;

/// What the domain builder tells a new guest, at [`GUEST_START_INFO_VA`];
/// the guest's entry point also gets its address in `rdi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct StartInfo {
    /// [`START_INFO_MAGIC`].                                  @0
    pub magic: u64,
    /// ABI major version the domain was built with.          @8
    pub abi_major: u16,
    /// ABI minor version.                                     @10
    pub abi_minor: u16,
    /// `SIF_*` flags.                                         @12
    pub flags: u32,
    /// This domain's ID.                                      @16
    pub domid: u32,
    /// Number of vCPUs.                                       @20
    pub vcpus: u32,
    /// Guest frames the domain has (`tot_pages`).             @24
    pub nr_pages: u64,
    /// Most frames it may grow to (`max_pages`).              @32
    pub max_pages: u64,
    /// Where `SharedInfo` is mapped.                          @40
    pub shared_info_va: u64,
    /// Where the physmap starts.                              @48
    pub physmap_va: u64,
    /// First guest frame the builder left unused.             @56
    pub first_free_gfn: u64,
    /// Top of the initial stack.                              @64
    pub stack_top_va: u64,
    /// TSC frequency in kHz (the time record is the precise source). @72
    pub tsc_khz: u64,
    /// dom0: where the boot bundle is mapped, else 0.         @80
    pub module_va: u64,
    /// dom0: bundle length in bytes, else 0.                  @88
    pub module_len: u64,
    /// Console event channel (0: none; not used yet).           @96
    pub console_evtchn: u32,
    /// Store event channel (0: none; not used yet).             @100
    pub store_evtchn: u32,
    /// Reserved, zero.                                        @104
    pub reserved: [u64; 5],
    /// Domain name, NUL-padded.                               @144
    pub name: [u8; 32],
    /// Command line (`extra=`), NUL-padded.                   @176
    pub cmdline: [u8; 512],
    /// Reserved, zero.                                        @688
    pub reserved2: [u8; 336],
}
const _: () = assert!(core::mem::size_of::<StartInfo>() == 1024);

// ---- shared_info -----------------------------------------------------------

/// Most vCPUs a domain can have (entries in `SharedInfo::vcpu_info`).
pub const MAX_VCPUS: usize = 8;
/// Event-channel ports per domain (bits in the pending and mask bitmaps).
pub const EVTCHN_PORTS: usize = 4096;

/// Per-vCPU time record: guests compute system time as
/// `system_time + ((rdtsc() - tsc_timestamp) * tsc_to_system_mul) >> (32 - tsc_shift)`
/// (with `tsc_shift` applied first when negative), retrying while `version`
/// is odd or changes: a seqlock.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuTimeInfo {
    /// Seqlock version: odd while the hypervisor updates.     @0
    pub version: u32,
    /// Padding, zero.                                         @4
    pub pad0: u32,
    /// TSC at `system_time`.                                  @8
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at `tsc_timestamp`.             @16
    pub system_time: u64,
    /// TSC to nanoseconds multiplier (32.32 fixed point).     @24
    pub tsc_to_system_mul: u32,
    /// Power-of-two pre-shift of the TSC delta.               @28
    pub tsc_shift: i8,
    /// Flags, zero.                                           @29
    pub flags: u8,
    /// Padding, zero.                                         @30
    pub pad1: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<VcpuTimeInfo>() == 32);

/// Per-vCPU event state: the guest masks its upcall by writing memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuInfo {
    /// Set by the hypervisor when an event is pending.        @0
    pub evtchn_upcall_pending: u8,
    /// Set by the guest to hold off upcalls.                  @1
    pub evtchn_upcall_mask: u8,
    /// Padding, zero.                                         @2
    pub pad0: [u8; 6],
    /// Which words of `evtchn_pending` have bits set.         @8
    pub evtchn_pending_sel: u64,
    /// The time record.                                       @16
    pub time: VcpuTimeInfo,
    /// Reserved, zero.                                        @48
    pub reserved: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<VcpuInfo>() == 64);

/// The page every domain shares with the hypervisor, at [`GUEST_SHARED_INFO_VA`].
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SharedInfo {
    /// One record per vCPU.                                   @0
    pub vcpu_info: [VcpuInfo; MAX_VCPUS],
    /// Pending bit per event-channel port.                    @512
    pub evtchn_pending: [u64; EVTCHN_PORTS / 64],
    /// Mask bit per event-channel port.                       @1024
    pub evtchn_mask: [u64; EVTCHN_PORTS / 64],
    /// Wall-clock seqlock version.                            @1536
    pub wc_version: u32,
    /// Wall-clock seconds at system time 0.                   @1540
    pub wc_sec: u32,
    /// Wall-clock nanoseconds at system time 0.               @1544
    pub wc_nsec: u32,
    /// Padding, zero.                                         @1548
    pub pad0: u32,
    /// A shutdown the toolstack asks for: 0 none, else 1 + `ShutdownReason`
    /// (since 1.1).                                           @1552
    pub shutdown_request: u32,
    /// Padding, zero.                                         @1556
    pub pad1: u32,
    /// Memory the toolstack wants the domain to balloon to, in pages; 0 for
    /// none (since 1.1).                                      @1560
    pub mem_target_pages: u64,
    /// Reserved, zero.                                        @1568
    pub reserved: [u8; 2528],
}
const _: () = assert!(core::mem::size_of::<SharedInfo>() == 4096);

// ---- mmu_batch -------------------------------------------------------------

/// `MmuOp::op`: map guest frame `gfn` at `va`.
pub const MMU_MAP: u32 = 1;
/// `MmuOp::op`: remove the mapping at `va`.
pub const MMU_UNMAP: u32 = 2;
/// `MmuOp::op`: change the rights of the mapping at `va`.
pub const MMU_PROTECT: u32 = 3;
/// `MmuOp::op`: map the target domain's shared-info page at `va` (builder).
pub const MMU_MAP_SHARED_INFO: u32 = 4;
/// `MmuOp::flags`: writable.
pub const MMU_WRITE: u32 = 1 << 0;
/// `MmuOp::flags`: executable. Refused together with [`MMU_WRITE`] (W^X).
pub const MMU_EXEC: u32 = 1 << 1;
/// Every defined `MmuOp::flags` bit; the rest are reserved and refused.
pub const MMU_FLAGS_ALL: u32 = MMU_WRITE | MMU_EXEC;

/// One operation of an `mmu_batch`. A batch is checked whole before any of
/// it is applied: a bad operation, or two that touch the same page, refuse
/// the batch and change nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MmuOp {
    /// `MMU_MAP`, `MMU_UNMAP`, `MMU_PROTECT`, `MMU_MAP_SHARED_INFO`.  @0
    pub op: u32,
    /// `MMU_WRITE` / `MMU_EXEC`.                                       @4
    pub flags: u32,
    /// Page-aligned guest virtual address in the lower half, not page 0. @8
    pub va: u64,
    /// Guest frame number (map only).                                  @16
    pub gfn: u64,
    /// Whose frame: `DOMID_SELF`, or a domain the caller builds (dom0). @24
    pub frame_domid: u16,
    /// Padding, must be zero.                                          @26
    pub pad: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<MmuOp>() == 32);

/// What `memory_info` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MemoryInfo {
    /// Guest frames the domain has.                           @0
    pub tot_pages: u64,
    /// Most frames it may have.                               @8
    pub max_pages: u64,
    /// Where the physmap starts.                              @16
    pub physmap_va: u64,
    /// Frames the hypervisor spends on this domain's page tables. @24
    pub pt_pages: u64,
}
const _: () = assert!(core::mem::size_of::<MemoryInfo>() == 32);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn golden_layout() {
        assert_eq!(offset_of!(StartInfo, flags), 12);
        assert_eq!(offset_of!(StartInfo, nr_pages), 24);
        assert_eq!(offset_of!(StartInfo, shared_info_va), 40);
        assert_eq!(offset_of!(StartInfo, tsc_khz), 72);
        assert_eq!(offset_of!(StartInfo, module_va), 80);
        assert_eq!(offset_of!(StartInfo, console_evtchn), 96);
        assert_eq!(offset_of!(StartInfo, name), 144);
        assert_eq!(offset_of!(StartInfo, cmdline), 176);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_shift), 28);
        assert_eq!(offset_of!(VcpuInfo, time), 16);
        assert_eq!(offset_of!(SharedInfo, evtchn_pending), 512);
        assert_eq!(offset_of!(SharedInfo, evtchn_mask), 1024);
        assert_eq!(offset_of!(SharedInfo, wc_version), 1536);
        assert_eq!(offset_of!(SharedInfo, shutdown_request), 1552);
        assert_eq!(offset_of!(SharedInfo, mem_target_pages), 1560);
        assert_eq!(offset_of!(MmuOp, va), 8);
        assert_eq!(offset_of!(MmuOp, frame_domid), 24);
        assert_eq!(offset_of!(MemoryInfo, pt_pages), 24);
    }

    #[test]
    fn layout_fits_the_lower_half() {
        let regions = [
            (GUEST_IMAGE_MIN, GUEST_IMAGE_MAX),
            (GUEST_START_INFO_VA, GUEST_SHARED_INFO_VA + 4096),
            (GUEST_STACK_TOP - GUEST_STACK_PAGES * 4096, GUEST_STACK_TOP),
            (GUEST_MODULE_VA, GUEST_MODULE_VA + (1 << 32)),
            (GUEST_PHYSMAP_VA, GUEST_PHYSMAP_VA + (1 << 40)),
        ];
        for (i, a) in regions.iter().enumerate() {
            assert!(a.0 < a.1 && a.1 <= GUEST_VA_LIMIT);
            for b in &regions[i + 1..] {
                assert!(a.1 <= b.0 || b.1 <= a.0, "{a:x?} overlaps {b:x?}");
            }
        }
        assert_eq!(START_INFO_MAGIC.to_le_bytes(), *b"OXENSI01");
    }
}
