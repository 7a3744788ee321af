//! Building dom0. The hypervisor builds exactly one domain itself, as Xen
//! does: dom0, from the boot bundle's `dom0` entry, with the shared builder
//! (`oxen-builder`) writing straight into dom0's frames. dom0 then gets the
//! whole bundle mapped read-only at `GUEST_MODULE_VA` and builds every other
//! domain itself through `domctl` and `mmu_batch`.

use super::space::Rights;
use super::{DOMAINS, DomainTable, mmu};
use crate::mm::layout::PAGE_SIZE;
use crate::mm::memmap::PhysRange;
use crate::mm::setup;
use alloc::format;
use alloc::string::String;
use dom0_abi::{GUEST_MODULE_VA, GUEST_START_INFO_VA, MmuOp, SIF_INITDOMAIN, SIF_PRIVILEGED, Status};
use oxen_builder::{BuildParams, BuildTarget};

/// Default memory for dom0 when `dom0_mem=` is not given.
pub const DOM0_DEFAULT_BYTES: u64 = 32 << 20;

/// The builder's view of dom0 under construction.
struct Dom0Target<'a> {
    table: &'a mut DomainTable,
}

impl BuildTarget for Dom0Target<'_> {
    type Error = Status;

    fn write(&mut self, gfn: u64, offset: usize, bytes: &[u8]) -> Result<(), Status> {
        let dom = self.table.get(0).ok_or(Status::ESRCH)?;
        let mfn = dom.p2m.mfn(gfn).ok_or(Status::EINVAL)?;
        let end = offset.checked_add(bytes.len()).ok_or(Status::EINVAL)?;
        let frame = setup::frame_bytes_mut(crate::mm::frame::Mfn(mfn));
        frame
            .get_mut(offset..end)
            .ok_or(Status::EINVAL)?
            .copy_from_slice(bytes);
        Ok(())
    }

    fn map(&mut self, ops: &[MmuOp]) -> Result<(), Status> {
        mmu::batch(self.table, 0, 0, ops).map(|_| ())
    }
}

/// Build and start dom0 from `image`, giving it `bundle` read-only.
pub fn build_dom0(image: &[u8], bundle: PhysRange, mem_bytes: u64, cmdline: &str) -> Result<(), String> {
    let (_, free) = setup::frame_counts();
    // Leave at least half of the free memory for the domains dom0 builds.
    let pages = (mem_bytes / PAGE_SIZE).min(free / 2);
    let mut table = DOMAINS.lock();
    table
        .create_dom0(pages)
        .map_err(|e| format!("cannot create dom0 with {pages} pages: {e}"))?;
    let params = BuildParams {
        image,
        domid: 0,
        nr_pages: pages,
        max_pages: pages,
        vcpus: 1,
        flags: SIF_PRIVILEGED | SIF_INITDOMAIN,
        name: "Domain-0",
        cmdline,
        tsc_khz: crate::time::tsc_hz().unwrap_or(0) / 1000,
        module_len: bundle.len(),
    };
    let result = {
        let mut target = Dom0Target { table: &mut table };
        oxen_builder::build(&mut target, &params)
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            table.discard(0);
            return Err(format!("the dom0 image was refused: {e}"));
        }
    };
    let dom = table.get_mut(0).ok_or("dom0 vanished")?;
    // The bundle, read-only, page by page; its first byte may sit inside a page.
    let first = bundle.start & !(PAGE_SIZE - 1);
    let count = (bundle.end - first).div_ceil(PAGE_SIZE);
    for i in 0..count {
        let rights = Rights {
            write: false,
            exec: false,
        };
        if let Err(e) = dom
            .space
            .map(GUEST_MODULE_VA + i * PAGE_SIZE, first + i * PAGE_SIZE, rights)
        {
            table.discard(0);
            return Err(format!("cannot map the boot bundle into dom0: {e}"));
        }
    }
    dom.module_pages = Some((first, count));
    let offset = bundle.start - first;
    if offset != 0 {
        // StartInfo::module_va (offset 80) must point at the first byte.
        let (pa, _) = dom
            .space
            .translate(GUEST_START_INFO_VA)
            .ok_or("dom0 has no start info")?;
        let frame = setup::frame_bytes_mut(crate::mm::frame::Mfn(pa / PAGE_SIZE));
        frame[80..88].copy_from_slice(&(GUEST_MODULE_VA + offset).to_le_bytes());
    }
    let vcpu = dom.vcpus.first_mut().ok_or("dom0 has no vCPU")?;
    vcpu.set_context(result.entry, result.stack_top, result.start_info_va, 0);
    dom.built = true;
    dom.paused = false;
    log::info!(
        "dom0 built: {} MiB, entry {:#x}, {} image pages, bundle of {} KiB mapped read-only",
        pages * PAGE_SIZE >> 20,
        result.entry,
        result.image_pages,
        bundle.len() >> 10
    );
    Ok(())
}
