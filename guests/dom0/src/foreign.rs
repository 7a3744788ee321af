//! The domain builder's target in dom0 ([`DomainTarget`]): how
//! `oxen_builder::build` reaches a domain that dom0 is building.
//!
//! Writes go through foreign mappings. dom0 maps a run of the new domain's
//! frames into a scratch window of its own address space (one `mmu_batch`
//! on `DOMID_SELF` whose ops name the new domain in `frame_domid`), copies
//! the bytes in through [`Hv::write_mapped`], and moves the window on (one
//! batch to unmap, one to map the next run) when the builder writes a frame
//! outside it. The builder writes frames in ascending order, so a window of
//! [`SCRATCH_SLOTS`] frames costs two hypercalls per that many frames.
//! Mappings go straight to `mmu_batch` on the new domain.
//!
//! The window is always unmapped before the target goes away
//! ([`DomainTarget::finish`], or `Drop` on an error path), so no foreign
//! mapping outlives the build and a destroyed domain's frames are free.

use core::fmt;

use dom0_abi::{
    DOMID_SELF, DomId, GUEST_MODULE_VA, GUEST_PHYSMAP_VA, GUEST_VA_LIMIT, MMU_BATCH_MAX, MMU_MAP, MMU_UNMAP,
    MMU_WRITE, MmuOp, PAGE_SIZE, Status,
};
use oxen_builder::BuildTarget;

use crate::hv::Hv;

/// Base of dom0's scratch window for foreign mappings. It lies above the
/// bundle (`GUEST_MODULE_VA`, at most 4 GiB) and the physmap
/// (`GUEST_PHYSMAP_VA`, at most 1 TiB of frames), in the lower half.
pub const SCRATCH_VA: u64 = 0x0000_3000_0000_0000;
/// Frames the scratch window holds at once.
pub const SCRATCH_SLOTS: u64 = SLOTS as u64;
/// [`SCRATCH_SLOTS`] as an array length.
const SLOTS: usize = 64;
/// Bytes of one large page (2 MiB): the span of one last-level page table.
const LARGE_PAGE: u64 = 2 << 20;

// The window lies inside one last-level page table (so warming one slot up
// allocates every table the window needs), in the lower half, clear of
// dom0's physmap and bundle mappings.
const _: () = assert!(SCRATCH_VA.is_multiple_of(LARGE_PAGE) && SCRATCH_SLOTS * PAGE_SIZE <= LARGE_PAGE);
const _: () = assert!(SCRATCH_SLOTS <= MMU_BATCH_MAX && SCRATCH_SLOTS > 0);
const _: () =
    assert!(SCRATCH_VA >= GUEST_PHYSMAP_VA + (1 << 40) && SCRATCH_VA >= GUEST_MODULE_VA + (1 << 32));
const _: () = assert!(SCRATCH_VA + SCRATCH_SLOTS * PAGE_SIZE <= GUEST_VA_LIMIT);

/// The virtual address of scratch slot `slot` (`< SCRATCH_SLOTS`).
pub const fn slot_va(slot: u64) -> u64 {
    SCRATCH_VA + slot * PAGE_SIZE
}

/// The scratch slot whose page holds `va`, if `va` lies in the window.
pub fn slot_of(va: u64) -> Option<u64> {
    let slot = va.checked_sub(SCRATCH_VA)? / PAGE_SIZE;
    (slot < SCRATCH_SLOTS).then_some(slot)
}

/// Map one of dom0's own frames at the first scratch slot and unmap it
/// again, so that the page tables behind the window exist before dom0
/// counts the free frames it will compare against once every domain has
/// gone: they stay with dom0 and would otherwise look like a leak.
pub fn warm_up<H: Hv>(hv: &mut H) -> Result<(), Status> {
    let map = MmuOp {
        op: MMU_MAP,
        va: slot_va(0),
        gfn: 0,
        frame_domid: DOMID_SELF,
        ..MmuOp::default()
    };
    hv.mmu_batch(&[map], DOMID_SELF)?;
    hv.mmu_batch(&[unmap_op(0)], DOMID_SELF).map(|_| ())
}

/// The op that removes scratch slot `slot`'s mapping.
fn unmap_op(slot: u64) -> MmuOp {
    MmuOp {
        op: MMU_UNMAP,
        va: slot_va(slot),
        frame_domid: DOMID_SELF,
        ..MmuOp::default()
    }
}

/// A [`BuildTarget`] for a domain dom0 builds (see the module docs).
pub struct DomainTarget<'h, H: Hv> {
    /// The hypervisor.
    hv: &'h mut H,
    /// The domain being built.
    domid: DomId,
    /// Its frames: every gfn written is below this.
    nr_pages: u64,
    /// First gfn mapped in the window (at slot 0).
    first_gfn: u64,
    /// Frames mapped in the window (slots `0 .. count`), 0 when empty.
    count: u64,
    /// An unmap failed: the window's state is unknown, so it is not used again.
    broken: bool,
    /// `mmu_batch` calls made to move the window (for the tests).
    window_batches: u64,
}

impl<'h, H: Hv> DomainTarget<'h, H> {
    /// A target for domain `domid`, which has `nr_pages` frames.
    pub fn new(hv: &'h mut H, domid: DomId, nr_pages: u64) -> Self {
        DomainTarget {
            hv,
            domid,
            nr_pages,
            first_gfn: 0,
            count: 0,
            broken: false,
            window_batches: 0,
        }
    }

    /// Unmap the scratch window; call once the build is over, whatever its
    /// outcome.
    pub fn finish(mut self) -> Result<(), TargetError> {
        self.unmap_window()
    }

    /// `mmu_batch` calls made so far to move the window.
    pub fn window_batches(&self) -> u64 {
        self.window_batches
    }

    /// Remove every mapping in the window.
    fn unmap_window(&mut self) -> Result<(), TargetError> {
        if self.count == 0 {
            return Ok(());
        }
        let mut ops = [MmuOp::default(); SLOTS];
        for (slot, op) in (0..self.count).zip(ops.iter_mut()) {
            *op = unmap_op(slot);
        }
        let ops = ops.get(..usize::try_from(self.count).unwrap_or(0)).unwrap_or(&[]);
        self.window_batches += 1;
        let status = match self.hv.mmu_batch(ops, DOMID_SELF) {
            Ok(n) if n == ops.len() => {
                self.count = 0;
                return Ok(());
            }
            // A batch is applied whole or not at all: a short count is a
            // hypervisor bug, reported as EINVAL.
            Ok(_) => Status::EINVAL,
            Err(status) => status,
        };
        // The window can no longer be trusted.
        self.broken = true;
        Err(TargetError::UnmapWindow {
            domid: self.domid,
            status,
        })
    }

    /// Map frames `first_gfn ..` (up to the window size and the domain's
    /// end) into the (empty) window.
    fn map_window(&mut self, first_gfn: u64) -> Result<(), TargetError> {
        let count = self.nr_pages.saturating_sub(first_gfn).min(SCRATCH_SLOTS);
        let mut ops = [MmuOp::default(); SLOTS];
        for (slot, op) in (0..count).zip(ops.iter_mut()) {
            *op = MmuOp {
                op: MMU_MAP,
                flags: MMU_WRITE,
                va: slot_va(slot),
                gfn: first_gfn + slot,
                frame_domid: self.domid,
                pad: [0; 6],
            };
        }
        let ops = ops.get(..usize::try_from(count).unwrap_or(0)).unwrap_or(&[]);
        self.window_batches += 1;
        let fail = |status| TargetError::MapWindow {
            domid: self.domid,
            first_gfn,
            count,
            status,
        };
        match self.hv.mmu_batch(ops, DOMID_SELF) {
            Ok(n) if n == ops.len() => {
                self.first_gfn = first_gfn;
                self.count = count;
                Ok(())
            }
            Ok(_) => {
                self.broken = true;
                Err(fail(Status::EINVAL))
            }
            Err(status) => Err(fail(status)),
        }
    }
}

impl<H: Hv> Drop for DomainTarget<'_, H> {
    fn drop(&mut self) {
        // An error path that skipped `finish`: still leave no foreign
        // mapping behind. The error that led here is the one reported.
        let _ = self.unmap_window();
    }
}

impl<H: Hv> BuildTarget for DomainTarget<'_, H> {
    type Error = TargetError;

    fn write(&mut self, gfn: u64, offset: usize, bytes: &[u8]) -> Result<(), TargetError> {
        let out_of_range = TargetError::OutOfRange {
            domid: self.domid,
            gfn,
            offset,
            len: bytes.len(),
            nr_pages: self.nr_pages,
        };
        let end = offset.checked_add(bytes.len()).ok_or(out_of_range)?;
        if gfn >= self.nr_pages || u64::try_from(end).map_or(true, |end| end > PAGE_SIZE) {
            return Err(out_of_range);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if self.broken {
            return Err(TargetError::WindowBroken { domid: self.domid });
        }
        if !(self.first_gfn..self.first_gfn + self.count).contains(&gfn) {
            self.unmap_window()?;
            self.map_window(gfn)?;
        }
        // In the window, so `gfn - first_gfn < SCRATCH_SLOTS`; `offset < 4096`.
        let va = slot_va(gfn - self.first_gfn) + u64::try_from(offset).map_err(|_| out_of_range)?;
        self.hv
            .write_mapped(va, bytes)
            .map_err(|status| TargetError::Write {
                domid: self.domid,
                gfn,
                status,
            })
    }

    fn map(&mut self, ops: &[MmuOp]) -> Result<(), TargetError> {
        let batch_max = usize::try_from(MMU_BATCH_MAX).unwrap_or(usize::MAX);
        for chunk in ops.chunks(batch_max) {
            let fail = |status| TargetError::Mmu {
                domid: self.domid,
                count: chunk.len(),
                status,
            };
            match self.hv.mmu_batch(chunk, self.domid) {
                Ok(n) if n == chunk.len() => {}
                Ok(_) => return Err(fail(Status::EINVAL)),
                Err(status) => return Err(fail(status)),
            }
        }
        Ok(())
    }
}

/// Why [`DomainTarget`] failed; carried in `BuildError::Target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// The builder wrote outside the domain's frames or a frame's 4 KiB.
    OutOfRange {
        /// The domain.
        domid: DomId,
        /// The frame.
        gfn: u64,
        /// Byte offset in the frame.
        offset: usize,
        /// Bytes written.
        len: usize,
        /// Frames the domain has.
        nr_pages: u64,
    },
    /// Mapping a run of the domain's frames into dom0 failed.
    MapWindow {
        /// The domain.
        domid: DomId,
        /// First frame of the run.
        first_gfn: u64,
        /// Frames in the run.
        count: u64,
        /// What the hypervisor said.
        status: Status,
    },
    /// Unmapping the scratch window failed.
    UnmapWindow {
        /// The domain.
        domid: DomId,
        /// What the hypervisor said.
        status: Status,
    },
    /// A write after a failed unmap.
    WindowBroken {
        /// The domain.
        domid: DomId,
    },
    /// Copying into a mapped frame failed.
    Write {
        /// The domain.
        domid: DomId,
        /// The frame.
        gfn: u64,
        /// What the hypervisor interface said.
        status: Status,
    },
    /// An `mmu_batch` on the new domain's address space failed.
    Mmu {
        /// The domain.
        domid: DomId,
        /// Operations in the batch.
        count: usize,
        /// What the hypervisor said.
        status: Status,
    },
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TargetError::OutOfRange {
                domid,
                gfn,
                offset,
                len,
                nr_pages,
            } => write!(
                f,
                "the builder wrote {len} bytes at offset {offset} of frame {gfn}, outside domain {domid}'s \
                 {nr_pages} frames of 4 KiB"
            ),
            TargetError::MapWindow {
                domid,
                first_gfn,
                count,
                status,
            } => write!(
                f,
                "mapping frames {first_gfn}..{} of domain {domid} into dom0 failed: {status}",
                first_gfn + count
            ),
            TargetError::UnmapWindow { domid, status } => {
                write!(f, "unmapping domain {domid}'s frames from dom0 failed: {status}")
            }
            TargetError::WindowBroken { domid } => write!(
                f,
                "dom0's scratch mappings of domain {domid} are in an unknown state after a failed unmap"
            ),
            TargetError::Write { domid, gfn, status } => {
                write!(f, "writing frame {gfn} of domain {domid} failed: {status}")
            }
            TargetError::Mmu { domid, count, status } => {
                write!(
                    f,
                    "mmu_batch of {count} mappings for domain {domid} failed: {status}"
                )
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::fake::{Fail, FakeHv};
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;
    use dom0_abi::{DomainConfig, name_field};

    /// A fake with one empty domain of `pages` frames (domain 1).
    fn with_domain(pages: u64) -> FakeHv {
        let mut hv = FakeHv::new(100_000);
        let config = DomainConfig {
            max_pages: pages,
            initial_pages: pages,
            vcpus: 1,
            flags: 0,
            name: name_field("t"),
            reserved: 0,
        };
        assert_eq!(hv.domctl_create(&config), Ok(1));
        hv
    }

    #[test]
    fn slots_and_addresses() {
        assert_eq!(slot_of(SCRATCH_VA), Some(0));
        assert_eq!(slot_of(slot_va(5) + 17), Some(5));
        assert_eq!(
            slot_of(slot_va(SCRATCH_SLOTS - 1) + 4095),
            Some(SCRATCH_SLOTS - 1)
        );
        assert_eq!(slot_of(slot_va(SCRATCH_SLOTS)), None);
        assert_eq!(slot_of(SCRATCH_VA - 1), None);
    }

    #[test]
    fn warm_up_leaves_nothing_mapped() {
        let mut hv = FakeHv::new(10);
        warm_up(&mut hv).unwrap();
        assert_eq!(hv.self_batches, 2);
        assert!(hv.scratch.is_empty());
    }

    #[test]
    fn writes_outside_the_domain_or_a_frame_are_refused() {
        let mut hv = with_domain(10);
        let mut t = DomainTarget::new(&mut hv, 1, 10);
        let refused = |r: Result<(), TargetError>| matches!(r, Err(TargetError::OutOfRange { .. }));
        assert!(refused(t.write(10, 0, b"x")));
        assert!(refused(t.write(0, 4095, b"xy")));
        assert!(refused(t.write(0, usize::MAX, b"x")));
        assert_eq!(t.write(9, 4095, b"z"), Ok(()));
        assert_eq!(t.write(3, 4096, b""), Ok(()));
        assert_eq!(t.window_batches(), 1, "only the good write mapped the window");
        t.finish().unwrap();
        assert_eq!(hv.domain(1).frame(9)[4095], b'z');
        assert!(hv.scratch.is_empty());
    }

    #[test]
    fn the_window_stops_at_the_domain_end_and_is_reused() {
        let mut hv = with_domain(10);
        let mut t = DomainTarget::new(&mut hv, 1, 10);
        for gfn in [2, 3, 9, 2] {
            t.write(gfn, 8, &[u8::try_from(gfn).unwrap(); 8]).unwrap();
        }
        // Frames 2..10 fit one window.
        assert_eq!(t.window_batches(), 1);
        t.finish().unwrap();
        assert_eq!(hv.self_batches, 2);
        assert_eq!(hv.domain(1).frame(9)[8..16], [9; 8]);
    }

    #[test]
    fn dropping_the_target_unmaps_the_window() {
        let mut hv = with_domain(100);
        {
            let mut t = DomainTarget::new(&mut hv, 1, 100);
            t.write(0, 0, b"abc").unwrap();
        }
        assert!(hv.scratch.is_empty());
    }

    #[test]
    fn a_failed_map_is_reported_and_leaves_nothing_mapped() {
        let mut hv = with_domain(100);
        hv.fail = vec![Fail::ForeignMap(Status::ENOMEM)];
        let mut t = DomainTarget::new(&mut hv, 1, 100);
        let e = t.write(70, 0, b"abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mapping frames 70..100 of domain 1 into dom0 failed: ENOMEM (out of memory)"
        );
        t.finish().unwrap();
        assert!(hv.scratch.is_empty());
    }

    #[test]
    fn mappings_go_to_the_domain_in_batches_of_at_most_the_abi_limit() {
        let mut hv = with_domain(2000);
        let ops: Vec<MmuOp> = (0..1200)
            .map(|gfn| MmuOp {
                op: MMU_MAP,
                flags: MMU_WRITE,
                va: GUEST_PHYSMAP_VA + gfn * PAGE_SIZE,
                gfn,
                frame_domid: 1,
                pad: [0; 6],
            })
            .collect();
        let mut t = DomainTarget::new(&mut hv, 1, 2000);
        t.map(&ops).unwrap();
        t.finish().unwrap();
        assert_eq!(hv.domain(1).mappings.len(), 1200);

        hv.fail = vec![Fail::TargetMmu(Status::EINVAL)];
        let mut t = DomainTarget::new(&mut hv, 1, 2000);
        assert_eq!(
            t.map(&ops[..3]).unwrap_err().to_string(),
            "mmu_batch of 3 mappings for domain 1 failed: EINVAL (invalid argument)"
        );
    }
}
