//! The fuzzer's map of its own address space: what it must never lose
//! (image, stack, start_info and shared_info, the physmap it started with),
//! the scratch frames that random structures are written into, the junk
//! frames that mappings may point at and probes may write, and the handful
//! of *tracked* pages that its `mmu_batch` operations are allowed to change.
//! [`Shadow`] remembers what each tracked page maps, so that probes know
//! what a read, a write or a jump there must do.
//!
//! Every lower-half page an operation may change is either tracked, a page
//! of the physmap above the frames the domain started with (frames it grew
//! itself), or refused by the hypervisor; `guard.rs` rewrites anything else.

use core::ops::Range;
use dom0_abi::{GUEST_VA_LIMIT, PAGE_SIZE};

/// The mapping window: the tracked pages most operations aim at.
pub const WINDOW_VA: u64 = 0x0000_2000_0000_0000;
/// Pages in the mapping window (as an index count).
const WINDOW_SLOTS: usize = 64;
/// Pages in the mapping window.
pub const WINDOW_PAGES: u64 = WINDOW_SLOTS as u64;
/// Never mapped by anyone: operations never aim here, so accesses fault.
pub const UNMAPPED_VA: u64 = 0x0000_3000_0000_0000;
/// Size of the never-mapped zone at [`UNMAPPED_VA`].
pub const UNMAPPED_LEN: u64 = 1 << 32;
/// The hypervisor image (kernel code model, top 2 GiB; supervisor-only).
pub const HV_IMAGE: u64 = 0xffff_ffff_8020_0000;
/// The hypervisor's direct map of RAM (supervisor-only).
pub const HV_DIRECT_MAP: u64 = 0xffff_8000_0000_0000;
/// The lowest non-canonical address.
pub const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;
/// `int3`: junk frames are full of it, so that a jump into one traps at once.
pub const INT3: u8 = 0xcc;

/// The page that holds `va`.
pub const fn page_of(va: u64) -> u64 {
    va & !(PAGE_SIZE - 1)
}

/// Whether `va` is a page-aligned lower-half address other than page 0:
/// one the hypervisor would map (`guest_va_ok`).
pub const fn mappable(va: u64) -> bool {
    va.is_multiple_of(PAGE_SIZE) && va >= PAGE_SIZE && va < GUEST_VA_LIMIT
}

/// Whether nothing can be mapped at `va`: page 0, the upper half and the
/// non-canonical hole, and the zone no operation aims at.
pub fn never_mapped(va: u64) -> bool {
    !(PAGE_SIZE..GUEST_VA_LIMIT).contains(&va) || (UNMAPPED_VA..UNMAPPED_VA + UNMAPPED_LEN).contains(&va)
}

/// `[start, start + len)` as a range, or `None` if it wraps.
pub fn span(start: u64, len: u64) -> Option<Range<u64>> {
    Some(start..start.checked_add(len)?)
}

/// Whether `inner` lies in `outer` (an empty `inner` lies wherever it starts).
pub fn within(inner: &Range<u64>, outer: &Range<u64>) -> bool {
    inner.start >= outer.start && inner.end <= outer.end && inner.start <= inner.end
}

/// The fuzzer's address space, as the builder laid it out and the fuzzer
/// set it up at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Env {
    /// This domain's ID.
    pub domid: u16,
    /// The whole image (text, rodata, data, bss).
    pub image: Range<u64>,
    /// The text segment (read-only, executable).
    pub text: Range<u64>,
    /// The read-only data segment.
    pub rodata: Range<u64>,
    /// The initial stack.
    pub stack: Range<u64>,
    /// The `StartInfo` page (read-only).
    pub start_info: u64,
    /// The `SharedInfo` page (read-write).
    pub shared_info: u64,
    /// Where the physmap starts.
    pub physmap: u64,
    /// Frames the domain started with (`nr_pages`).
    pub initial_pages: u64,
    /// Most frames it may have.
    pub max_pages: u64,
    /// The scratch frames, contiguous at the top of the initial physmap.
    pub scratch: Range<u64>,
    /// Junk frames by GFN: full of `int3`, free to map, write and jump into.
    pub junk: Range<u64>,
}

impl Env {
    /// The physmap address of frame `gfn`.
    pub fn frame_va(&self, gfn: u64) -> u64 {
        self.physmap.wrapping_add(gfn.wrapping_mul(PAGE_SIZE))
    }

    /// The physmap of the frames the domain started with.
    pub fn initial_physmap(&self) -> Range<u64> {
        self.physmap..self.frame_va(self.initial_pages)
    }

    /// The whole physmap area, grown frames included.
    pub fn physmap_area(&self) -> Range<u64> {
        self.physmap..self.frame_va(self.max_pages.max(self.initial_pages))
    }

    /// The start_info and shared_info pages, which are adjacent.
    pub fn info_pages(&self) -> Range<u64> {
        self.start_info.min(self.shared_info)..self.start_info.max(self.shared_info) + PAGE_SIZE
    }

    /// Pages an unmap or protect must never touch: losing them, or their
    /// rights, kills the fuzzer.
    pub fn protected(&self, va: u64) -> bool {
        let page = page_of(va);
        [
            self.image.clone(),
            self.stack.clone(),
            self.info_pages(),
            self.initial_physmap(),
        ]
        .iter()
        .any(|r| r.contains(&page))
    }

    /// The tracked pages besides the window: page edges worth mapping.
    pub fn edge_pages(&self) -> [u64; 6] {
        [
            PAGE_SIZE,
            2 * PAGE_SIZE,
            GUEST_VA_LIMIT - PAGE_SIZE,
            GUEST_VA_LIMIT - 2 * PAGE_SIZE,
            page_of(self.image.end.wrapping_add(PAGE_SIZE - 1)),
            self.stack.start.wrapping_sub(PAGE_SIZE),
        ]
    }

    /// The [`Shadow`] slot of `va`, if its page is tracked.
    pub fn tracked(&self, va: u64) -> Option<usize> {
        let page = page_of(va);
        if (WINDOW_VA..WINDOW_VA + WINDOW_PAGES * PAGE_SIZE).contains(&page) {
            return usize::try_from((page - WINDOW_VA) / PAGE_SIZE).ok();
        }
        let edges = self.edge_pages();
        let at = edges.iter().position(|&e| e == page)?;
        usize::try_from(WINDOW_PAGES).ok().map(|w| w + at)
    }

    /// The address of tracked slot `slot`.
    pub fn tracked_va(&self, slot: usize) -> u64 {
        let window = usize::try_from(WINDOW_PAGES).unwrap_or(0);
        match slot.checked_sub(window) {
            None => WINDOW_VA + slot as u64 * PAGE_SIZE,
            Some(edge) => self.edge_pages().get(edge).copied().unwrap_or(WINDOW_VA),
        }
    }

    /// Whether `va` is in the physmap above the frames the domain started
    /// with (grown frames, or nothing).
    pub fn grown_physmap(&self, va: u64) -> bool {
        let area = self.physmap_area();
        va >= self.frame_va(self.initial_pages) && va < area.end
    }

    /// Whether `gfn` is a junk frame.
    pub fn is_junk(&self, gfn: u64) -> bool {
        self.junk.contains(&gfn)
    }

    /// Read-only pages of the image and the start_info page: writes there
    /// fault on the first byte.
    pub fn read_only(&self, va: u64) -> bool {
        self.text.contains(&va) || self.rodata.contains(&va) || page_of(va) == self.start_info
    }

    /// Mapped regions the fuzzer may read itself (to check what the
    /// hypervisor would read there): each is contiguous and fully mapped.
    pub fn readable_regions(&self) -> [Range<u64>; 3] {
        [self.image.clone(), self.info_pages(), self.initial_physmap()]
    }
}

/// What a tracked page maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Nothing.
    Unmapped,
    /// One of this domain's frames.
    Frame {
        /// Its GFN.
        gfn: u64,
        /// Writable.
        write: bool,
        /// Executable.
        exec: bool,
    },
    /// The shared-info page.
    SharedInfo {
        /// Writable.
        write: bool,
        /// Executable (`MMU_MAP_SHARED_INFO` refuses it, `MMU_PROTECT`
        /// grants it).
        exec: bool,
    },
    /// Something the shadow lost track of (only after a hypervisor bug).
    Unknown,
}

/// Tracked slots: the window and the edge pages.
pub const TRACKED: usize = WINDOW_SLOTS + 6;

/// What every tracked page maps, as far as the fuzzer's successful
/// operations say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shadow {
    /// By tracked slot.
    pub slots: [Mapping; TRACKED],
}

impl Default for Shadow {
    fn default() -> Self {
        Shadow {
            slots: [Mapping::Unmapped; TRACKED],
        }
    }
}

impl Shadow {
    /// What the tracked page of `va` maps (`None`: not tracked).
    pub fn get(&self, env: &Env, va: u64) -> Option<Mapping> {
        env.tracked(va).and_then(|s| self.slots.get(s)).copied()
    }

    /// Record the mapping of `va` (ignored if untracked).
    pub fn set(&mut self, env: &Env, va: u64, m: Mapping) {
        if let Some(slot) = env.tracked(va).and_then(|s| self.slots.get_mut(s)) {
            *slot = m;
        }
    }

    /// Frames `gfn >= tot` went back to the hypervisor, which unmapped them
    /// everywhere.
    pub fn shrink(&mut self, tot: u64) {
        for slot in &mut self.slots {
            if let Mapping::Frame { gfn, .. } = *slot
                && gfn >= tot
            {
                *slot = Mapping::Unmapped;
            }
        }
    }

    /// Forget everything (after a batch that should have failed did not).
    pub fn lose_track(&mut self) {
        self.slots = [Mapping::Unknown; TRACKED];
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plausible fuzzer layout (what the builder gives a 16 MiB domain).
    pub fn env() -> Env {
        Env {
            domid: 1,
            image: 0x40_0000..0x42_0000,
            text: 0x40_0000..0x41_0000,
            rodata: 0x41_0000..0x41_8000,
            stack: 0x0000_0800_000f_0000..0x0000_0800_0010_0000,
            start_info: 0x0000_0800_0000_0000,
            shared_info: 0x0000_0800_0000_1000,
            physmap: 0x0000_1000_0000_0000,
            initial_pages: 4096,
            max_pages: 6144,
            scratch: 0x0000_1000_0000_0000 + 4088 * 4096..0x0000_1000_0000_0000 + 4096 * 4096,
            junk: 4084..4088,
        }
    }

    #[test]
    fn protected_pages() {
        let e = env();
        for va in [
            0x40_0000,
            0x41_ffff,
            e.stack.start,
            e.start_info,
            e.shared_info + 8,
            e.physmap,
            e.scratch.start,
        ] {
            assert!(e.protected(va), "{va:#x}");
        }
        for va in [
            WINDOW_VA,
            e.frame_va(4096),
            e.frame_va(5000),
            0x42_0000,
            UNMAPPED_VA,
            PAGE_SIZE,
        ] {
            assert!(!e.protected(va), "{va:#x}");
        }
    }

    #[test]
    fn tracked_slots_round_trip() {
        let e = env();
        for slot in 0..TRACKED {
            let va = e.tracked_va(slot);
            assert_eq!(e.tracked(va + 5), Some(slot), "{va:#x}");
        }
        assert_eq!(e.tracked(WINDOW_VA + WINDOW_PAGES * PAGE_SIZE), None);
        assert_eq!(e.tracked(0), None);
        assert_eq!(e.tracked(e.stack.start), None);
        assert_eq!(e.tracked(e.stack.start - 1), Some(TRACKED - 1));
        assert!(e.grown_physmap(e.frame_va(4096)));
        assert!(!e.grown_physmap(e.frame_va(4095)));
        assert!(!e.grown_physmap(e.frame_va(6144)));
    }

    #[test]
    fn shadow_follows_shrinks() {
        let e = env();
        let mut s = Shadow::default();
        let grown = Mapping::Frame {
            gfn: 5000,
            write: true,
            exec: false,
        };
        s.set(&e, WINDOW_VA, grown);
        s.set(
            &e,
            WINDOW_VA + PAGE_SIZE,
            Mapping::SharedInfo {
                write: true,
                exec: false,
            },
        );
        s.set(&e, UNMAPPED_VA, grown);
        assert_eq!(s.get(&e, WINDOW_VA + 12), Some(grown));
        assert_eq!(s.get(&e, UNMAPPED_VA), None);
        s.shrink(4500);
        assert_eq!(s.get(&e, WINDOW_VA), Some(Mapping::Unmapped));
        assert_eq!(
            s.get(&e, WINDOW_VA + PAGE_SIZE),
            Some(Mapping::SharedInfo {
                write: true,
                exec: false
            })
        );
    }
}
