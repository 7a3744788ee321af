//! A guest address space: a PML4 whose lower half belongs to the domain and
//! whose upper half is the hypervisor's, shared by every space (the entries
//! are copied from the hypervisor's own PML4, whose upper-half slots all
//! exist from boot on). Guests never write an entry: every change comes
//! through here, from the domain builder or the `mmu_batch` hypercall, with
//! rights already checked. Page-table frames are charged to the domain up to
//! a limit, so a guest mapping sparse addresses cannot drain the machine.

use crate::arch::paging::{DirectMapTables, LiveTables, flush_page};
use crate::mm::frame::Mfn;
use crate::mm::layout::PAGE_SIZE;
use crate::mm::paging::{self, MapError, PageSize, PteFlags, TableMemory};
use crate::mm::setup::{self, FRAMES};

/// PML4 slots that belong to the guest (the lower half).
pub const GUEST_PML4_SLOTS: usize = 256;

/// Page-table memory for one guest space: frames come from the allocator,
/// are counted, and stop at the limit.
struct Tables<'a, 'b> {
    inner: DirectMapTables<'a, 'b>,
    pages: &'a mut u64,
    limit: u64,
}

impl TableMemory for Tables<'_, '_> {
    fn alloc_table(&mut self) -> Option<u64> {
        if *self.pages >= self.limit {
            return None;
        }
        let table = self.inner.alloc_table()?;
        *self.pages += 1;
        Some(table)
    }
    fn read(&self, table: u64, index: usize) -> u64 {
        self.inner.read(table, index)
    }
    fn write(&mut self, table: u64, index: usize, value: u64) {
        self.inner.write(table, index, value);
    }
}

/// Rights of a guest mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rights {
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl Rights {
    fn pte(self) -> PteFlags {
        let mut f = PteFlags::PRESENT | PteFlags::USER;
        if self.write {
            f |= PteFlags::WRITABLE;
        }
        if !self.exec {
            f |= PteFlags::NO_EXECUTE;
        }
        setup::mask_pte(f)
    }
}

/// One domain's page tables.
#[derive(Debug)]
pub struct AddressSpace {
    root: u64,
    /// Page-table frames held, the root included.
    pub pt_pages: u64,
    /// Most page-table frames allowed.
    pub pt_limit: u64,
}

impl AddressSpace {
    /// A new space with an empty lower half; `pt_limit` caps its tables.
    pub fn new(pt_limit: u64) -> Option<Self> {
        let mut guard = FRAMES.lock();
        let frames = guard.as_mut()?;
        let mut mem = DirectMapTables::new(frames);
        let root = mem.alloc_table()?;
        let kernel_root = setup::kernel_root();
        for slot in GUEST_PML4_SLOTS..512 {
            let entry = mem.read(kernel_root, slot);
            mem.write(root, slot, entry);
        }
        Some(AddressSpace {
            root,
            pt_pages: 1,
            pt_limit: pt_limit.max(8),
        })
    }

    /// Physical address of the PML4 (for CR3).
    pub fn root(&self) -> u64 {
        self.root
    }

    fn is_current(&self) -> bool {
        crate::arch::cpu::cr3() == self.root
    }

    /// Map the 4 KiB page at `va` to machine address `pa`.
    pub fn map(&mut self, va: u64, pa: u64, rights: Rights) -> Result<(), MapError> {
        let mut guard = FRAMES.lock();
        let frames = guard.as_mut().ok_or(MapError::OutOfMemory)?;
        let mut mem = Tables {
            inner: DirectMapTables::new(frames),
            pages: &mut self.pt_pages,
            limit: self.pt_limit,
        };
        paging::map(&mut mem, self.root, va, pa, PageSize::Size4K, rights.pte())
    }

    /// Remove the mapping at `va`; the machine address it had.
    pub fn unmap(&mut self, va: u64) -> Result<u64, MapError> {
        let mut guard = FRAMES.lock();
        let frames = guard.as_mut().ok_or(MapError::OutOfMemory)?;
        let mut mem = DirectMapTables::new(frames);
        let (_, pa) = paging::unmap(&mut mem, self.root, va)?;
        if self.is_current() {
            flush_page(va);
        }
        Ok(pa)
    }

    /// What `va` maps to: machine address and rights.
    pub fn translate(&self, va: u64) -> Option<(u64, Rights)> {
        let (pa, size, flags) = paging::translate(&LiveTables, self.root, va)?;
        if size != PageSize::Size4K {
            return None;
        }
        Some((
            pa,
            Rights {
                write: flags.contains(PteFlags::WRITABLE),
                exec: !flags.contains(PteFlags::NO_EXECUTE),
            },
        ))
    }

    /// Every lower-half mapping whose machine frame satisfies `pred`:
    /// `(va, pa)` pairs, for unmapping frames a domain gives back.
    pub fn find_mappings(&self, mut pred: impl FnMut(u64) -> bool) -> alloc::vec::Vec<(u64, u64)> {
        let mut found = alloc::vec::Vec::new();
        paging::walk(&LiveTables, self.root, |m| {
            if m.va < crate::mm::layout::LOWER_HALF_END && pred(m.pa) {
                found.push((m.va, m.pa));
            }
        });
        found
    }

    /// Free every page-table frame. The space must not be loaded.
    pub fn destroy(self) {
        debug_assert!(!self.is_current(), "destroying the loaded address space");
        let mut guard = FRAMES.lock();
        let Some(frames) = guard.as_mut() else { return };
        let mut tables = alloc::vec::Vec::new();
        {
            let mut mem = DirectMapTables::new(frames);
            paging::free_lower_tables(&mut mem, self.root, GUEST_PML4_SLOTS, |t| tables.push(t));
        }
        tables.push(self.root);
        for t in tables {
            if let Some(mfn) = Mfn::from_addr(t)
                && let Err(e) = frames.free(mfn)
            {
                log::error!("domain: page-table frame {t:#x} could not be freed: {e}");
            }
        }
    }
}

/// Whether `va` is a page-aligned guest address the guest may map (the
/// lower half, not page 0).
pub fn guest_va_ok(va: u64) -> bool {
    va.is_multiple_of(PAGE_SIZE) && va >= PAGE_SIZE && va < crate::mm::layout::LOWER_HALF_END
}
