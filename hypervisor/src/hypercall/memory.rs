//! Memory hypercalls: `mmu_batch` (checked in `domain::mmu`), and a
//! domain's own reservation: `memory_info`, `memory_increase` (new frames,
//! zeroed and mapped in the physmap, within `max_pages`) and
//! `memory_decrease` (the top frames go back, unmapped everywhere first).

use super::{Caller, domid_arg, write_guest};
use crate::arch::uaccess;
use crate::domain::mmu;
use crate::domain::space::Rights;
use alloc::collections::BTreeSet;
use alloc::vec;
use dom0_abi::{DOMID_SELF, GUEST_PHYSMAP_VA, MMU_BATCH_MAX, MemoryInfo, MmuOp, PAGE_SIZE, Status};
use zerocopy::FromBytes;

/// `mmu_batch(ops, count, domid)`.
pub fn mmu_batch(c: &mut Caller<'_>, ops_va: u64, count: u64, domid: u64) -> Result<u64, Status> {
    if count > MMU_BATCH_MAX {
        return Err(Status::E2BIG);
    }
    let target = match domid_arg(domid)? {
        DOMID_SELF => c.dom,
        d => d,
    };
    let size = core::mem::size_of::<MmuOp>();
    let mut bytes = vec![0u8; count as usize * size];
    uaccess::copy_from_guest(&mut bytes, ops_va)?;
    let ops = bytes
        .chunks_exact(size)
        .map(|chunk| MmuOp::read_from_bytes(chunk).map_err(|_| Status::EINVAL))
        .collect::<Result<vec::Vec<_>, _>>()?;
    mmu::batch(c.table, c.dom, target, &ops)
}

/// `memory_info(out)`.
pub fn info(c: &mut Caller<'_>, out: u64) -> Result<u64, Status> {
    let dom = c.domain();
    let info = MemoryInfo {
        tot_pages: dom.p2m.len(),
        max_pages: dom.max_pages,
        physmap_va: GUEST_PHYSMAP_VA,
        pt_pages: dom.space.pt_pages,
    };
    write_guest(out, &info)?;
    Ok(0)
}

/// `memory_increase(count)`: the first new guest frame.
pub fn increase(c: &mut Caller<'_>, count: u64) -> Result<u64, Status> {
    if count == 0 {
        return Err(Status::EINVAL);
    }
    let dom = c.domain();
    let first = dom.grow(count)?;
    for gfn in first..first + count {
        let Some(mfn) = dom.p2m.mfn(gfn) else { break };
        let va = GUEST_PHYSMAP_VA + gfn * PAGE_SIZE;
        // A page the guest already mapped there itself stays as it is.
        if dom.space.translate(va).is_some() {
            continue;
        }
        if dom
            .space
            .map(
                va,
                mfn * PAGE_SIZE,
                Rights {
                    write: true,
                    exec: false,
                },
            )
            .is_err()
        {
            // Out of page-table frames: give it all back.
            for g in first..gfn {
                let va = GUEST_PHYSMAP_VA + g * PAGE_SIZE;
                if let (Some(m), Some((pa, _))) = (dom.p2m.mfn(g), dom.space.translate(va))
                    && pa == m * PAGE_SIZE
                {
                    let _ = dom.space.unmap(va);
                }
            }
            dom.shrink(count);
            return Err(Status::ENOMEM);
        }
    }
    Ok(first)
}

/// `memory_decrease(count)`: the new `tot_pages`.
pub fn decrease(c: &mut Caller<'_>, count: u64) -> Result<u64, Status> {
    let dom = c.domain();
    let tot = dom.p2m.len();
    if count == 0 || count >= tot {
        return Err(Status::EINVAL);
    }
    if dom.foreign_refs > 0 {
        return Err(Status::EBUSY);
    }
    let going: BTreeSet<u64> = (tot - count..tot).filter_map(|g| dom.p2m.mfn(g)).collect();
    for (va, _) in dom.space.find_mappings(|pa| going.contains(&(pa / PAGE_SIZE))) {
        dom.space.unmap(va).map_err(|_| Status::EINVAL)?;
    }
    dom.shrink(count);
    Ok(dom.p2m.len())
}
