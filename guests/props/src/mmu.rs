//! Page tables are the hypervisor's: a guest asks for mappings with
//! `mmu_batch` and the hypervisor checks each operation. These properties
//! ask for what must be refused — frames the domain does not own, growth
//! beyond `max_pages`, writable+executable pages, batches that touch one
//! page twice, addresses outside the guest's half, mappings over existing
//! ones — and check that a refused batch changed nothing (a batch is
//! applied whole or not at all). The helpers are shared with other files.

use alloc::format;
use alloc::string::String;
use oxen_guest_sdk::dom0_abi::{
    DOMID_SELF, GUEST_SHARED_INFO_VA, GUEST_START_INFO_VA, GUEST_VA_LIMIT, MMU_EXEC, MMU_MAP,
    MMU_MAP_SHARED_INFO, MMU_PROTECT, MMU_UNMAP, MMU_WRITE, MmuOp, PAGE_SIZE, vector,
};
use oxen_guest_sdk::{Status, hypercall, mem};

use crate::framework::{Check, PropResult, accepted, ok, refused, refused_any};
use crate::lowlevel::{
    HV_DIRECT_MAP, HV_IMAGE, NON_CANONICAL, SCRATCH_VA, UNMAPPED, install_probes, not_present, peek,
};

// ---- Helpers -------------------------------------------------------------------

/// A free frame from the SDK's pool.
pub fn pool_frame() -> Result<u64, String> {
    mem::alloc_frame().ok_or_else(|| String::from("the SDK frame pool is empty"))
}

/// `MMU_MAP` of our own frame `gfn` at `va`.
pub fn map_op(va: u64, gfn: u64, flags: u32) -> MmuOp {
    MmuOp {
        op: MMU_MAP,
        flags,
        va,
        gfn,
        frame_domid: DOMID_SELF,
        pad: [0; 6],
    }
}

/// `MMU_UNMAP` of `va`.
pub fn unmap_op(va: u64) -> MmuOp {
    MmuOp {
        op: MMU_UNMAP,
        va,
        ..MmuOp::default()
    }
}

/// `MMU_PROTECT` of `va` to `flags`.
pub fn protect_op(va: u64, flags: u32) -> MmuOp {
    MmuOp {
        op: MMU_PROTECT,
        flags,
        va,
        ..MmuOp::default()
    }
}

/// Apply `ops` to our own space; all of them must be applied.
pub fn apply(what: &str, ops: &[MmuOp]) -> Check {
    let n = accepted(what, hypercall::mmu_batch(ops, DOMID_SELF))?;
    ensure!(n == ops.len(), "{what}: {n} of {} ops applied", ops.len());
    Ok(())
}

/// Map our frame `gfn` at `va`.
pub fn map(va: u64, gfn: u64, flags: u32) -> Check {
    apply(&format!("map gfn {gfn:#x} at {va:#x}"), &[map_op(va, gfn, flags)])
}

/// Unmap `va`.
pub fn unmap(va: u64) -> Check {
    apply(&format!("unmap {va:#x}"), &[unmap_op(va)])
}

/// The batch must be refused with one of `wants`, and every VA in `vas`
/// must still be unmapped afterwards. If it was accepted, what it mapped
/// is unmapped again so that the next check starts clean.
pub fn refused_untouched(what: &str, ops: &[MmuOp], wants: &[Status], vas: &[u64]) -> Check {
    let r = hypercall::mmu_batch(ops, DOMID_SELF);
    if r.is_ok() {
        for &va in vas {
            let _ = hypercall::mmu_batch(&[unmap_op(va)], DOMID_SELF);
        }
    }
    refused_any(what, r, wants)?;
    for &va in vas {
        ensure!(
            not_present(va),
            "{what}: refused, but {va:#x} is mapped now (the batch was applied in part)"
        );
    }
    Ok(())
}

/// This domain's `(tot_pages, max_pages)`.
fn pages() -> Result<(u64, u64), String> {
    let mi = accepted("memory_info", hypercall::memory_info())?;
    Ok((mi.tot_pages, mi.max_pages))
}

// ---- Properties ----------------------------------------------------------------

/// Mapping a frame the domain does not own (a GFN at or above `tot_pages`):
/// refused, nothing mapped.
pub fn unowned_gfn() -> PropResult {
    install_probes()?;
    let (tot, max) = pages()?;
    for gfn in [tot, tot + 1, max, max + 1, 1 << 32, 1 << 52, u64::MAX] {
        refused_untouched(
            &format!("map gfn {gfn:#x} (tot_pages {tot})"),
            &[map_op(SCRATCH_VA, gfn, MMU_WRITE)],
            &[Status::EINVAL, Status::EACCES, Status::EPERM],
            &[SCRATCH_VA],
        )?;
    }
    ok()
}

/// `memory_increase` beyond `max_pages` (including counts that overflow)
/// is `ENOMEM` and changes nothing, so the frames past it stay unmappable.
pub fn beyond_max() -> PropResult {
    install_probes()?;
    let (tot, max) = pages()?;
    let headroom = max.saturating_sub(tot);
    for count in [headroom + 1, max + 1, u64::MAX - tot + 1, u64::MAX] {
        let r = hypercall::memory_increase(count);
        refused(
            &format!("memory_increase({count:#x}), {headroom} frames below max_pages"),
            r,
            Status::ENOMEM,
        )?;
        ensure!(
            pages()? == (tot, max),
            "a refused memory_increase({count:#x}) changed tot_pages/max_pages"
        );
    }
    refused_untouched(
        &format!("map gfn {max:#x} (max_pages)"),
        &[map_op(SCRATCH_VA, max, 0)],
        &[Status::EINVAL, Status::EACCES],
        &[SCRATCH_VA],
    )?;
    ok()
}

/// W^X: a writable and executable mapping is refused, both as a map and as
/// a protect (which leaves the mapping as it was), and the shared-info page
/// cannot be mapped executable.
pub fn wx() -> PropResult {
    install_probes()?;
    let gfn = pool_frame()?;
    let va = SCRATCH_VA;
    refused_untouched(
        "map W+X",
        &[map_op(va, gfn, MMU_WRITE | MMU_EXEC)],
        &[Status::EINVAL],
        &[va],
    )?;
    let si = MmuOp {
        op: MMU_MAP_SHARED_INFO,
        flags: MMU_EXEC,
        va: va + PAGE_SIZE,
        ..MmuOp::default()
    };
    refused_untouched(
        "map the shared-info page X",
        &[si],
        &[Status::EINVAL],
        &[va + PAGE_SIZE],
    )?;
    map(va, gfn, MMU_EXEC)?;
    let r = hypercall::mmu_batch(&[protect_op(va, MMU_WRITE | MMU_EXEC)], DOMID_SELF);
    let verdict = refused("protect an X page to W+X", r, Status::EINVAL).and_then(|()| {
        peek(va).map_err(|f| format!("the X page is no longer readable: {f}"))?;
        // SAFETY: `va` maps our own pool frame; a write is refused (read-only
        // mapping) and the probe resumes, or lands in a frame nothing uses.
        let probed = unsafe { probe_at!(va; ["xor eax, eax"] "mov qword ptr [rdx], rax") };
        let f = probed
            .fault
            .ok_or_else(|| String::from("after the refused protect the X page is writable"))?;
        ensure!(
            f.vector == u64::from(vector::PF) && f.fault_addr == va,
            "a write to the X page raised {f}, expected #PF at {va:#x}"
        );
        Ok(())
    });
    unmap(va)?;
    verdict?;
    ok()
}

/// A batch that touches one page twice, or holds one bad operation among
/// good ones, is refused whole: nothing of it is applied.
pub fn overlap() -> PropResult {
    install_probes()?;
    let (a, b, c) = (SCRATCH_VA, SCRATCH_VA + PAGE_SIZE, SCRATCH_VA + 2 * PAGE_SIZE);
    let f1 = pool_frame()?;
    let f2 = pool_frame()?;
    let (tot, _) = pages()?;
    let einval = [Status::EINVAL];
    refused_untouched(
        "map A twice",
        &[map_op(a, f1, 0), map_op(a, f2, 0)],
        &einval,
        &[a],
    )?;
    refused_untouched("map A, unmap A", &[map_op(a, f1, 0), unmap_op(a)], &einval, &[a])?;
    refused_untouched(
        "map A, protect A",
        &[map_op(a, f1, 0), protect_op(a, MMU_WRITE)],
        &einval,
        &[a],
    )?;
    refused_untouched(
        "map A, map B, map A",
        &[map_op(a, f1, 0), map_op(b, f2, 0), map_op(a, f2, 0)],
        &einval,
        &[a, b],
    )?;
    refused_untouched(
        "map A, map B, then a frame we do not own at C",
        &[map_op(a, f1, 0), map_op(b, f2, 0), map_op(c, tot, 0)],
        &[Status::EINVAL, Status::EACCES],
        &[a, b, c],
    )?;
    refused_untouched(
        "map A, map B, then W+X at C",
        &[
            map_op(a, f1, 0),
            map_op(b, f2, 0),
            map_op(c, f1, MMU_WRITE | MMU_EXEC),
        ],
        &einval,
        &[a, b, c],
    )?;
    // Mapped pages survive a refused batch over them, too.
    apply("map A and B", &[map_op(a, f1, MMU_WRITE), map_op(b, f2, 0)])?;
    let r = hypercall::mmu_batch(&[unmap_op(a), unmap_op(a)], DOMID_SELF);
    let verdict = refused("unmap A twice", r, Status::EINVAL).and_then(|()| {
        ensure!(
            peek(a).is_ok() && peek(b).is_ok(),
            "a refused unmap batch unmapped something"
        );
        Ok(())
    });
    apply("unmap A and B", &[unmap_op(a), unmap_op(b)])?;
    verdict?;
    ok()
}

/// Mappings outside the guest's half, at page 0 or unaligned are refused,
/// and the hypervisor's pages cannot be unmapped or reprotected.
pub fn bad_va() -> PropResult {
    install_probes()?;
    let gfn = pool_frame()?;
    for va in [
        0,
        SCRATCH_VA + 0x123,
        SCRATCH_VA + 8,
        GUEST_VA_LIMIT,
        NON_CANONICAL,
        HV_IMAGE,
        HV_DIRECT_MAP,
        !(PAGE_SIZE - 1),
    ] {
        let r = hypercall::mmu_batch(&[map_op(va, gfn, 0)], DOMID_SELF);
        refused(&format!("map at {va:#x}"), r, Status::EINVAL)?;
    }
    for va in [HV_IMAGE, HV_DIRECT_MAP, NON_CANONICAL] {
        let r = hypercall::mmu_batch(&[unmap_op(va)], DOMID_SELF);
        refused(&format!("unmap {va:#x}"), r, Status::EINVAL)?;
        let r = hypercall::mmu_batch(&[protect_op(va, MMU_WRITE)], DOMID_SELF);
        refused(&format!("make {va:#x} writable"), r, Status::EINVAL)?;
    }
    ok()
}

/// Mapping over a page that is mapped (our text, our stack, the info
/// pages) is `EEXIST`; unmapping or protecting a hole is `ENOENT`.
pub fn existing() -> PropResult {
    install_probes()?;
    let gfn = pool_frame()?;
    let page = |a: u64| a & !(PAGE_SIZE - 1);
    let text = page(existing as fn() -> PropResult as usize as u64);
    let here = 0u64;
    let stack = page(core::hint::black_box(&here) as *const u64 as u64);
    for (what, va) in [
        ("our text", text),
        ("our stack", stack),
        ("start_info", GUEST_START_INFO_VA),
        ("shared_info", GUEST_SHARED_INFO_VA),
    ] {
        let r = hypercall::mmu_batch(&[map_op(va, gfn, MMU_WRITE)], DOMID_SELF);
        refused(&format!("map over {what} at {va:#x}"), r, Status::EEXIST)?;
    }
    peek(text).map_err(|f| format!("our text became unreadable: {f}"))?;
    refused(
        "unmap a hole",
        hypercall::mmu_batch(&[unmap_op(UNMAPPED)], DOMID_SELF),
        Status::ENOENT,
    )?;
    refused(
        "protect a hole",
        hypercall::mmu_batch(&[protect_op(UNMAPPED, 0)], DOMID_SELF),
        Status::ENOENT,
    )?;
    ok()
}

/// `memory_decrease` of nothing, of everything, or of more than the domain
/// has is `EINVAL` and changes nothing.
pub fn decrease_bounds() -> PropResult {
    let (tot, max) = pages()?;
    for count in [0, tot, tot + 1, u64::MAX] {
        let r = hypercall::memory_decrease(count);
        refused(
            &format!("memory_decrease({count:#x}) of {tot} frames"),
            r,
            Status::EINVAL,
        )?;
        ensure!(
            pages()? == (tot, max),
            "a refused memory_decrease({count:#x}) changed the domain"
        );
    }
    ok()
}
