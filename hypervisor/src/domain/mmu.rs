//! `mmu_batch`: the only way a guest address space changes. A batch is
//! checked whole before anything is applied (every operation's fields, its
//! rights, frame ownership, W^X, no two operations on one page), and if an
//! operation still fails while applying (out of page-table frames) the ones
//! already applied are undone: a batch happens entirely or not at all.
//!
//! Frames a domain may map: its own (by GFN), its shared-info page, and,
//! for dom0 only, frames of another live domain into dom0's own space (a
//! foreign mapping, counted on the owner so that its memory outlives the
//! mapping). dom0 building domain D applies batches to D's space.

use super::space::{Rights, guest_va_ok};
use super::{DomainTable, ForeignMap, State};
use crate::mm::paging::MapError;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use dom0_abi::{
    DOMID_SELF, DomId, MMU_BATCH_MAX, MMU_EXEC, MMU_FLAGS_ALL, MMU_MAP, MMU_MAP_SHARED_INFO, MMU_PROTECT,
    MMU_UNMAP, MMU_WRITE, MmuOp, PAGE_SIZE, Status,
};

/// What one checked operation will do.
#[derive(Clone, Copy, Debug)]
enum Step {
    Map {
        va: u64,
        pa: u64,
        rights: Rights,
        foreign: Option<ForeignMap>,
    },
    Unmap {
        va: u64,
    },
    Protect {
        va: u64,
        rights: Rights,
    },
}

fn rights(flags: u32) -> Rights {
    Rights {
        write: flags & MMU_WRITE != 0,
        exec: flags & MMU_EXEC != 0,
    }
}

fn map_err(e: MapError) -> Status {
    match e {
        MapError::OutOfMemory => Status::ENOMEM,
        MapError::AlreadyMapped { .. } => Status::EEXIST,
        MapError::NotMapped { .. } => Status::ENOENT,
        _ => Status::EINVAL,
    }
}

/// Check one operation against the current state; what to do.
fn check(table: &DomainTable, caller: DomId, target: DomId, op: &MmuOp) -> Result<Step, Status> {
    if op.pad != [0; 6] || op.flags & !MMU_FLAGS_ALL != 0 || !guest_va_ok(op.va) {
        return Err(Status::EINVAL);
    }
    let dom = table.get(target).ok_or(Status::ESRCH)?;
    let r = rights(op.flags);
    let mapped = dom.space.translate(op.va);
    match op.op {
        MMU_MAP | MMU_MAP_SHARED_INFO => {
            if r.write && r.exec {
                return Err(Status::EINVAL);
            }
            if mapped.is_some() {
                return Err(Status::EEXIST);
            }
            if op.op == MMU_MAP_SHARED_INFO {
                if r.exec || op.gfn != 0 {
                    return Err(Status::EINVAL);
                }
                return Ok(Step::Map {
                    va: op.va,
                    pa: dom.shared_info.addr(),
                    rights: r,
                    foreign: None,
                });
            }
            let owner_id = if op.frame_domid == DOMID_SELF {
                target
            } else {
                op.frame_domid
            };
            if owner_id == target {
                let mfn = dom.p2m.mfn(op.gfn).ok_or(Status::EINVAL)?;
                return Ok(Step::Map {
                    va: op.va,
                    pa: mfn * PAGE_SIZE,
                    rights: r,
                    foreign: None,
                });
            }
            // A foreign mapping: dom0 maps another domain's frame into its own space.
            let caller_dom = table.get(caller).ok_or(Status::ESRCH)?;
            if !caller_dom.privileged || target != caller {
                return Err(Status::EPERM);
            }
            let owner = table.get(owner_id).ok_or(Status::ESRCH)?;
            if owner.state == State::Dying || owner.privileged {
                return Err(Status::ESRCH);
            }
            let mfn = owner.p2m.mfn(op.gfn).ok_or(Status::EINVAL)?;
            Ok(Step::Map {
                va: op.va,
                pa: mfn * PAGE_SIZE,
                rights: r,
                foreign: Some(ForeignMap {
                    domid: owner_id,
                    gfn: op.gfn,
                }),
            })
        }
        MMU_UNMAP => {
            if op.flags != 0 || op.gfn != 0 || op.frame_domid != 0 && op.frame_domid != DOMID_SELF {
                return Err(Status::EINVAL);
            }
            mapped.ok_or(Status::ENOENT)?;
            Ok(Step::Unmap { va: op.va })
        }
        MMU_PROTECT => {
            if r.write && r.exec {
                return Err(Status::EINVAL);
            }
            if op.gfn != 0 || op.frame_domid != 0 && op.frame_domid != DOMID_SELF {
                return Err(Status::EINVAL);
            }
            let (pa, _) = mapped.ok_or(Status::ENOENT)?;
            // The shared-info page is data, never code: mapping it refuses
            // MMU_EXEC, and so does changing its rights (found by the fuzzer).
            if r.exec && pa == dom.shared_info.addr() {
                return Err(Status::EINVAL);
            }
            // Only memory the domain may write can be made writable: its
            // frames, its shared info, frames it maps foreign. Not the boot
            // bundle, which is mapped read-only for good.
            let own = dom.p2m.gfn_of(pa / PAGE_SIZE).is_some() || pa == dom.shared_info.addr();
            let foreign = dom.foreign_maps.contains_key(&op.va);
            if !own && !foreign {
                return Err(Status::EACCES);
            }
            Ok(Step::Protect { va: op.va, rights: r })
        }
        _ => Err(Status::EINVAL),
    }
}

/// Apply `ops` to `target`'s address space on behalf of `caller`; the
/// number of operations applied (all of them) or why none was.
pub fn batch(table: &mut DomainTable, caller: DomId, target: DomId, ops: &[MmuOp]) -> Result<u64, Status> {
    if ops.len() as u64 > MMU_BATCH_MAX {
        return Err(Status::E2BIG);
    }
    // Only dom0 reaches another domain's address space, never dom0's own
    // from outside, and never a dying one's.
    if target != caller {
        // Privilege first, so a domU cannot probe which domain IDs exist.
        if !table.get(caller).is_some_and(|d| d.privileged) {
            return Err(Status::EPERM);
        }
        let dom = table.get(target).ok_or(Status::ESRCH)?;
        if dom.privileged {
            return Err(Status::EPERM);
        }
        if dom.state == State::Dying {
            return Err(Status::ESRCH);
        }
    }
    let mut pages = BTreeSet::new();
    if !ops.iter().all(|op| pages.insert(op.va)) {
        return Err(Status::EINVAL);
    }
    let steps = ops
        .iter()
        .map(|op| check(table, caller, target, op))
        .collect::<Result<Vec<_>, _>>()?;

    let mut undo: Vec<Step> = Vec::with_capacity(steps.len());
    let mut dropped: Vec<DomId> = Vec::new();
    for step in &steps {
        let result = apply(table, target, *step, &mut dropped);
        match result {
            Ok(inverse) => undo.push(inverse),
            Err(e) => {
                for inverse in undo.iter().rev() {
                    let mut ignored = Vec::new();
                    if apply(table, target, *inverse, &mut ignored).is_err() {
                        log::error!("mmu: undoing a failed batch failed at {inverse:x?}");
                    }
                }
                return Err(e);
            }
        }
    }
    for owner in dropped {
        table.reap_if_unreferenced(owner);
    }
    Ok(ops.len() as u64)
}

/// Apply one step; the step that undoes it. Foreign reference counts move
/// at once; owners whose last reference an unmap dropped are collected in
/// `dropped`, to be reaped (if dying) once the batch stands.
fn apply(
    table: &mut DomainTable,
    target: DomId,
    step: Step,
    dropped: &mut Vec<DomId>,
) -> Result<Step, Status> {
    match step {
        Step::Map {
            va,
            pa,
            rights,
            foreign,
        } => {
            let dom = table.get_mut(target).ok_or(Status::ESRCH)?;
            dom.space.map(va, pa, rights).map_err(map_err)?;
            if let Some(f) = foreign {
                dom.foreign_maps.insert(va, f);
                if let Some(owner) = table.get_mut(f.domid) {
                    owner.foreign_refs += 1;
                }
            }
            Ok(Step::Unmap { va })
        }
        Step::Unmap { va } => {
            let dom = table.get_mut(target).ok_or(Status::ESRCH)?;
            let (_, old) = dom.space.translate(va).ok_or(Status::ENOENT)?;
            let pa = dom.space.unmap(va).map_err(map_err)?;
            let foreign = dom.foreign_maps.remove(&va);
            if let Some(f) = foreign {
                if let Some(owner) = table.get_mut(f.domid) {
                    owner.foreign_refs = owner.foreign_refs.saturating_sub(1);
                }
                dropped.push(f.domid);
            }
            Ok(Step::Map {
                va,
                pa,
                rights: old,
                foreign,
            })
        }
        Step::Protect { va, rights } => {
            let dom = table.get_mut(target).ok_or(Status::ESRCH)?;
            let (pa, old) = dom.space.translate(va).ok_or(Status::ENOENT)?;
            dom.space.unmap(va).map_err(map_err)?;
            dom.space.map(va, pa, rights).map_err(map_err)?;
            Ok(Step::Protect { va, rights: old })
        }
    }
}
