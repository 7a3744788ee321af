//! A domU reaches nothing that is not its own: no domctl or sysctl, no
//! other domain's console ring, frames or address space. Every refusal is
//! `EPERM` — whether the other domain exists or not, so that a domU cannot
//! probe which domain IDs are in use — and no output buffer is touched.

use alloc::format;
use oxen_guest_sdk::dom0_abi::{
    ConsoleRead, DOMID_MAX, DOMID_SELF, DomainConfig, Hypercall, MMU_WRITE, name_field,
};
use oxen_guest_sdk::{Status, domid, hypercall};

use crate::framework::{PropResult, ok, raw, refused};
use crate::lowlevel::{SCRATCH_VA, install_probes};
use crate::mmu::{map_op, pool_frame, refused_untouched, unmap_op};

/// A byte that marks memory a refused call must not have written.
const CANARY: u8 = 0x5a;

/// Every privileged hypercall (`Hypercall::privileged`) from a domU is
/// `EPERM`, whatever its arguments name (dom0, this domain, `DOMID_SELF`,
/// valid and reserved-bit-laden structures), and writes nothing.
pub fn domctl_eperm() -> PropResult {
    let mut buf = [CANARY; 512];
    let p = buf.as_mut_ptr() as u64;
    let me = u64::from(domid());
    let cfg = DomainConfig {
        max_pages: 256,
        initial_pages: 256,
        vcpus: 1,
        flags: 0,
        name: name_field("p-domctl-child"),
        reserved: 0,
    };
    let bad_cfg = DomainConfig {
        flags: u32::MAX,
        reserved: u64::MAX,
        ..cfg
    };
    let c = core::ptr::from_ref(&cfg) as u64;
    let bc = core::ptr::from_ref(&bad_cfg) as u64;
    let arg_sets: [[u64; 6]; 6] = [
        [0, p, p, p, p, p],
        [me, p, p, p, p, p],
        [u64::from(DOMID_SELF), p, p, p, p, p],
        [p, p, p, p, p, p],
        [c, 0, 0, 0, 0, 0],
        [bc, p, 1, 1, 1, 1],
    ];
    let mut checked = 0;
    for h in Hypercall::ALL.into_iter().filter(|h| h.privileged()) {
        for args in arg_sets {
            // SAFETY: pointer arguments name `buf`, `cfg` or `bad_cfg`: the
            // hypervisor must refuse before touching them (checked below for
            // `buf`), and could at worst write within `buf`'s 512 bytes.
            let r = unsafe { raw(h as u64, args) };
            refused(
                &format!("{}({:#x}, ..) from a domU", h.name(), args[0]),
                r,
                Status::EPERM,
            )?;
            checked += 1;
        }
    }
    let buf = core::hint::black_box(buf);
    ensure!(
        buf.iter().all(|&b| b == CANARY),
        "a refused privileged hypercall wrote into its buffer"
    );
    ensure!(checked > 0, "Hypercall::ALL names no privileged hypercall");
    ok()
}

/// Reading another domain's console ring (dom0's, or even our own through
/// the toolstack call), the hypervisor log, or the serial input is
/// `EPERM`, and the buffers stay untouched.
pub fn console_ring_eperm() -> PropResult {
    let mut buf = [CANARY; 256];
    let me = domid();
    for target in [0, me, DOMID_SELF] {
        let r = hypercall::domctl_console_read(target, 0, &mut buf);
        refused(
            &format!("domctl_console_read of domain {target:#x}"),
            r,
            Status::EPERM,
        )?;
    }
    let r = hypercall::sysctl_dmesg(0, &mut buf);
    refused("sysctl_dmesg", r, Status::EPERM)?;
    let r = hypercall::console_read(&mut buf);
    refused("console_read", r, Status::EPERM)?;
    let mut io = ConsoleRead {
        from: 0,
        buf: buf.as_mut_ptr() as u64,
        len: 64,
        next: 0x1234,
    };
    // SAFETY: `io` and `buf` are live locals; the hypervisor must refuse
    // before it writes either.
    let r = unsafe {
        raw(
            Hypercall::DomctlConsoleRead as u64,
            [0, core::ptr::from_mut(&mut io) as u64, 0, 0, 0, 0],
        )
    };
    refused("domctl_console_read of dom0 (raw)", r, Status::EPERM)?;
    let (buf, io) = core::hint::black_box((buf, io));
    ensure!(io.next == 0x1234, "a refused console read wrote its ConsoleRead");
    ensure!(
        buf.iter().all(|&b| b == CANARY),
        "a refused console read wrote into its buffer"
    );
    ok()
}

/// Mapping another domain's frame into our own space (`frame_domid` of
/// dom0, of a neighbour, of nobody) is `EPERM`, and nothing is mapped.
pub fn foreign_frame_eperm() -> PropResult {
    install_probes()?;
    let me = domid();
    let neighbours = [0, me.wrapping_sub(1), me.wrapping_add(1), 0x7fe0, DOMID_MAX];
    for owner in neighbours.into_iter().filter(|&d| d != me) {
        for gfn in [0, 1, 0x100] {
            let mut op = map_op(SCRATCH_VA, gfn, MMU_WRITE);
            op.frame_domid = owner;
            refused_untouched(
                &format!("map gfn {gfn:#x} of domain {owner}"),
                &[op],
                &[Status::EPERM],
                &[SCRATCH_VA],
            )?;
        }
    }
    ok()
}

/// `mmu_batch` on another domain's address space (dom0's, a neighbour's,
/// nobody's) is `EPERM`, and a domain ID wider than 16 bits is `EINVAL`
/// rather than truncated.
pub fn foreign_space_eperm() -> PropResult {
    install_probes()?;
    let me = domid();
    let gfn = pool_frame()?;
    let map = [map_op(SCRATCH_VA, gfn, MMU_WRITE)];
    // dom0's image starts at 4 MiB (dom0_abi::GUEST_IMAGE_MIN).
    let unmap_dom0 = [unmap_op(0x40_0000)];
    for target in [0, me.wrapping_sub(1), me.wrapping_add(1), 0x7fe0, DOMID_MAX] {
        if target == me {
            continue;
        }
        for ops in [&map[..], &unmap_dom0[..]] {
            let r = hypercall::mmu_batch(ops, target);
            refused(&format!("mmu_batch on domain {target}'s space"), r, Status::EPERM)?;
        }
    }
    for wide in [1u64 << 16, (1 << 16) | u64::from(me), u64::MAX] {
        // SAFETY: `map` is a live local the hypervisor only reads.
        let r = unsafe {
            raw(
                Hypercall::MmuBatch as u64,
                [map.as_ptr() as u64, 1, wide, 0, 0, 0],
            )
        };
        refused(&format!("mmu_batch on domain {wide:#x}"), r, Status::EINVAL)?;
    }
    ensure!(
        crate::lowlevel::not_present(SCRATCH_VA),
        "a refused foreign batch mapped {SCRATCH_VA:#x} in our own space"
    );
    ok()
}
