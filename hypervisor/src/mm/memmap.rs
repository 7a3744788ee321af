//! The physical memory map, normalised.
//!
//! Boot code feeds the raw firmware map into a [`MemoryMap`] (e820 entries from
//! the PVH `hvm_start_info`, or the multiboot2 memory-map tag), one entry at a
//! time with [`MemoryMap::add`]. Firmware maps overlap, are unsorted, carry
//! zero-length and unaligned entries and leave holes (the PCI hole below
//! 4 GiB, RAM above it); [`MemoryMap::normalize`] turns them into a sorted,
//! non-overlapping list in which the more restrictive kind wins every overlap.
//! [`MemoryMap::free_ranges`] then yields the page-aligned RAM that the frame
//! allocator (`super::frame`) may hand out, minus the ranges the kernel already
//! occupies (its image, the boot modules, the bitmap itself). The page-table
//! builder (`super::paging`) uses [`MemoryMap::highest_address`] to size the
//! direct map. Everything here runs before the heap exists, so storage is a
//! fixed array.

#![deny(unsafe_code)]

use core::fmt;

/// Size of the smallest x86-64 page, and the granule of the frame allocator
/// (Intel SDM Vol. 3A 4.5, AMD APM Vol. 2 5.3).
pub const PAGE_SIZE: u64 = 4096;

/// How many raw firmware entries [`MemoryMap::add`] accepts.
///
/// Real firmware reports a few dozen at most; QEMU's q35 reports eight.
pub const MAX_REGIONS: usize = 128;

/// Capacity of the region storage: twice [`MAX_REGIONS`].
///
/// Normalising `n` overlapping regions cuts the line at no more than `2n`
/// distinct boundaries, hence into at most `2n - 1` pieces (a `Reserved` range
/// inside a `Usable` one turns 2 entries into 3). Storage of `2 * MAX_REGIONS`
/// therefore holds any normalised result of `MAX_REGIONS` raw entries, and
/// normalisation never has to drop anything.
pub const REGION_CAPACITY: usize = 2 * MAX_REGIONS;

/// Round `addr` down to a page boundary.
pub const fn page_floor(addr: u64) -> u64 {
    addr - addr % PAGE_SIZE
}

/// Round `addr` up to a page boundary; `None` if that overflows `u64`.
pub const fn page_ceil(addr: u64) -> Option<u64> {
    match addr.checked_add(PAGE_SIZE - 1) {
        Some(bumped) => Some(page_floor(bumped)),
        None => None,
    }
}

/// What a range of physical memory is, as far as the hypervisor cares.
///
/// The declaration order is the precedence: where two firmware entries
/// overlap, the greater (more restrictive) kind wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegionKind {
    /// RAM free for any use (e820 type 1).
    Usable,
    /// ACPI tables; reusable once they have been parsed (e820 type 3).
    AcpiReclaimable,
    /// ACPI non-volatile storage; must be preserved (e820 type 4).
    AcpiNvs,
    /// Firmware-reserved or device memory (e820 type 2 and any unknown type).
    Reserved,
    /// RAM the firmware found defective (e820 type 5).
    Unusable,
}

impl RegionKind {
    /// Decode an e820 / multiboot2 memory type (ACPI 6.5 table 15.4). Unknown
    /// types, including persistent memory (7), count as [`Reserved`](Self::Reserved).
    pub const fn from_e820(ty: u32) -> Self {
        match ty {
            1 => Self::Usable,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            _ => Self::Reserved,
        }
    }

    /// A short human-readable name, for the boot log.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Usable => "usable",
            Self::AcpiReclaimable => "ACPI reclaimable",
            Self::AcpiNvs => "ACPI NVS",
            Self::Reserved => "reserved",
            Self::Unusable => "unusable",
        }
    }
}

impl fmt::Display for RegionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of the memory map: `[start, end)` of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte of the region.
    pub start: u64,
    /// One past the last byte of the region (exclusive).
    pub end: u64,
    /// What the region is.
    pub kind: RegionKind,
}

impl Region {
    /// Placeholder for unused storage slots.
    const EMPTY: Self = Self {
        start: 0,
        end: 0,
        kind: RegionKind::Reserved,
    };

    /// Length in bytes (0 if `end <= start`).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the region covers no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The region's extent, without its kind.
    pub const fn range(&self) -> PhysRange {
        PhysRange::new(self.start, self.end)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#014x}-{:#014x}) {}", self.start, self.end, self.kind)
    }
}

/// A half-open physical range [start, end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PhysRange {
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte of the range (exclusive).
    pub end: u64,
}

impl PhysRange {
    /// The range `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// The range `[start, start + len)`, clamped at `u64::MAX`.
    pub const fn from_start_len(start: u64, len: u64) -> Self {
        Self {
            start,
            end: start.saturating_add(len),
        }
    }

    /// Length in bytes (0 if `end <= start`).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range covers no byte.
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &Self) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    /// Whether `addr` lies inside the range.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether `other` lies entirely inside the range (an empty `other` always does).
    pub const fn contains_range(&self, other: &Self) -> bool {
        other.is_empty() || (self.start <= other.start && other.end <= self.end)
    }

    /// The range grown outwards to page boundaries (the end clamps at `u64::MAX`).
    pub const fn page_outer(&self) -> Self {
        if self.is_empty() {
            return Self::new(0, 0);
        }
        let end = match page_ceil(self.end) {
            Some(end) => end,
            None => u64::MAX,
        };
        Self::new(page_floor(self.start), end)
    }

    /// The range shrunk inwards to page boundaries (possibly empty).
    pub const fn page_inner(&self) -> Self {
        let Some(start) = page_ceil(self.start) else {
            return Self::new(0, 0);
        };
        let end = page_floor(self.end);
        if end <= start {
            Self::new(0, 0)
        } else {
            Self::new(start, end)
        }
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#014x}-{:#014x})", self.start, self.end)
    }
}

/// Why the memory map refused an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemMapError {
    /// More than [`MAX_REGIONS`] entries were added.
    TooManyRegions,
}

impl fmt::Display for MemMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRegions => {
                write!(f, "firmware memory map has more than {MAX_REGIONS} entries")
            }
        }
    }
}

impl core::error::Error for MemMapError {}

/// The physical memory map: raw firmware entries, then (after
/// [`normalize`](Self::normalize)) a sorted, non-overlapping list.
///
/// Storage is a fixed array of [`REGION_CAPACITY`] regions (6 KiB), so the map
/// works before any allocator exists; it is meant to live in a `static` or on
/// the boot stack. [`normalize`](Self::normalize) needs another 6 KiB of stack
/// for its working copy.
#[derive(Clone, Debug)]
pub struct MemoryMap {
    regions: [Region; REGION_CAPACITY],
    len: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> Self {
        Self {
            regions: [Region::EMPTY; REGION_CAPACITY],
            len: 0,
        }
    }

    /// Record one raw firmware entry `[start, start + len)`.
    ///
    /// Zero-length entries are dropped; an end past `u64::MAX` is clamped to
    /// it (the very last byte of the address space is thus never described,
    /// which is harmless: no RAM lives there). Refuses once the map holds
    /// [`MAX_REGIONS`] entries.
    pub fn add(&mut self, start: u64, len: u64, kind: RegionKind) -> Result<(), MemMapError> {
        let end = start.saturating_add(len);
        if end <= start {
            return Ok(());
        }
        if self.len >= MAX_REGIONS {
            return Err(MemMapError::TooManyRegions);
        }
        self.regions[self.len] = Region { start, end, kind };
        self.len += 1;
        Ok(())
    }

    /// Sort the map and resolve overlaps.
    ///
    /// Afterwards the regions are sorted by address, do not overlap, and no two
    /// neighbours that touch share a kind. Every byte keeps the greatest
    /// [`RegionKind`] of the entries that covered it, so a `Reserved` range
    /// inside a `Usable` one splits it into up to three pieces; bytes that no
    /// entry covered remain holes. Idempotent.
    ///
    /// The result always fits: see [`REGION_CAPACITY`]. (`add` stops at
    /// [`MAX_REGIONS`] raw entries; a normalised map with more regions than
    /// that accepts no further entries, and re-normalising it cannot grow it.)
    ///
    /// Cost: O(n²) for n regions, with n ≤ 256, once at boot.
    pub fn normalize(&mut self) {
        let input = &self.regions[..self.len];
        let mut out = [Region::EMPTY; REGION_CAPACITY];
        let mut out_len = 0;

        // Sweep the elementary intervals between consecutive boundaries.
        let Some(mut at) = input.iter().map(|r| r.start).min() else {
            return;
        };
        loop {
            // The next boundary strictly above `at`.
            let next = input
                .iter()
                .flat_map(|r| [r.start, r.end])
                .filter(|&b| b > at)
                .min();
            let Some(next) = next else { break };
            // No boundary lies inside (at, next), so a region covers the whole
            // interval exactly when it covers `at`.
            let kind = input
                .iter()
                .filter(|r| r.start <= at && at < r.end)
                .map(|r| r.kind)
                .max();
            if let Some(kind) = kind {
                match out[..out_len].last_mut() {
                    Some(last) if last.end == at && last.kind == kind => last.end = next,
                    _ if out_len < REGION_CAPACITY => {
                        out[out_len] = Region {
                            start: at,
                            end: next,
                            kind,
                        };
                        out_len += 1;
                    }
                    // Unreachable by the capacity argument above; dropping a
                    // piece only turns it into a hole, which nobody allocates.
                    _ => log::warn!(
                        "memmap: dropping {} (normalised map full)",
                        Region {
                            start: at,
                            end: next,
                            kind
                        }
                    ),
                }
            }
            at = next;
        }

        self.regions = out;
        self.len = out_len;
    }

    /// The regions: raw entries before [`normalize`](Self::normalize), the
    /// normalised list after.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.len]
    }

    /// Bytes of `Usable` memory (meaningful after [`normalize`](Self::normalize);
    /// before it, overlapping entries are counted twice). Saturates.
    pub fn total_usable_bytes(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .fold(0u64, |sum, r| sum.saturating_add(r.len()))
    }

    /// One past the last byte described by any region, of any kind (0 for an
    /// empty map).
    pub fn highest_address(&self) -> u64 {
        self.regions().iter().map(|r| r.end).max().unwrap_or(0)
    }

    /// Usable RAM, each range shrunk inwards to page boundaries, minus
    /// `exclusions` (each grown outwards to page boundaries), minus everything
    /// below `low_limit` (the kernel passes 1 MiB). Written into `out`, returns
    /// the count.
    ///
    /// Every range written is page-aligned at both ends and non-empty. After
    /// [`normalize`](Self::normalize) the ranges are sorted and disjoint.
    /// Independently of normalisation, every non-`Usable` region is subtracted
    /// as well (grown outwards to pages), so no byte that any firmware entry
    /// calls non-usable is ever returned. If `out` is too small the remaining
    /// ranges are dropped with a warning: that loses memory, never safety.
    pub fn free_ranges(&self, exclusions: &[PhysRange], low_limit: u64, out: &mut [PhysRange]) -> usize {
        let holes = || {
            self.regions()
                .iter()
                .filter(|r| r.kind != RegionKind::Usable)
                .map(|r| r.range().page_outer())
                .chain(exclusions.iter().map(|e| e.page_outer()))
                .chain(core::iter::once(PhysRange::new(0, low_limit).page_outer()))
                .filter(|h| !h.is_empty())
        };

        let mut count = 0;
        let mut dropped = 0u64;
        for region in self.regions().iter().filter(|r| r.kind == RegionKind::Usable) {
            let usable = region.range().page_inner();
            let mut at = usable.start;
            while at < usable.end {
                // Skip past every hole that covers `at` (they may chain).
                if let Some(hole_end) = holes().filter(|h| h.contains(at)).map(|h| h.end).max() {
                    at = hole_end;
                    continue;
                }
                // `at` is free; the piece runs to the next hole or the end.
                let stop = holes()
                    .map(|h| h.start)
                    .filter(|&s| s > at)
                    .min()
                    .map_or(usable.end, |s| s.min(usable.end));
                if let Some(slot) = out.get_mut(count) {
                    *slot = PhysRange::new(at, stop);
                    count += 1;
                } else {
                    dropped = dropped.saturating_add(stop - at);
                }
                at = stop;
            }
        }
        if dropped != 0 {
            log::warn!(
                "memmap: free-range buffer of {} full, {} KiB of RAM left unused",
                out.len(),
                dropped / 1024
            );
        }
        count
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::RegionKind::*;
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;

    fn map_of(entries: &[(u64, u64, RegionKind)]) -> MemoryMap {
        let mut map = MemoryMap::new();
        for &(start, len, kind) in entries {
            map.add(start, len, kind).expect("test maps are small");
        }
        map.normalize();
        map
    }

    fn r(start: u64, end: u64, kind: RegionKind) -> Region {
        Region { start, end, kind }
    }

    fn pr(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    fn free(map: &MemoryMap, excl: &[PhysRange], low: u64) -> Vec<PhysRange> {
        let mut out = [PhysRange::new(0, 0); 64];
        let n = map.free_ranges(excl, low, &mut out);
        out[..n].to_vec()
    }

    /// Sorted, disjoint, non-empty, and touching neighbours differ in kind.
    fn assert_normalised(map: &MemoryMap) {
        for region in map.regions() {
            assert!(region.start < region.end, "{region}");
        }
        for pair in map.regions().windows(2) {
            assert!(pair[0].end <= pair[1].start, "{} / {}", pair[0], pair[1]);
            if pair[0].end == pair[1].start {
                assert_ne!(pair[0].kind, pair[1].kind, "{} / {}", pair[0], pair[1]);
            }
        }
    }

    fn q35_5g() -> MemoryMap {
        map_of(&[
            (0, 0x9fc00, Usable),
            (0x9fc00, 0x400, Reserved),
            (0xf0000, 0x10000, Reserved),
            (0x100000, 0x7ffe0000 - 0x100000, Usable),
            (0x7ffe0000, 0x20000, Reserved),
            (0xfeffc000, 0x4000, Reserved),
            (0xfffc0000, 0x40000, Reserved),
            (0x1_0000_0000, 0x8000_0000, Usable),
        ])
    }

    #[test]
    fn e820_types() {
        assert_eq!(RegionKind::from_e820(1), Usable);
        assert_eq!(RegionKind::from_e820(2), Reserved);
        assert_eq!(RegionKind::from_e820(3), AcpiReclaimable);
        assert_eq!(RegionKind::from_e820(4), AcpiNvs);
        assert_eq!(RegionKind::from_e820(5), Unusable);
        assert_eq!(RegionKind::from_e820(7), Reserved);
        assert_eq!(RegionKind::from_e820(0), Reserved);
        assert_eq!(RegionKind::from_e820(u32::MAX), Reserved);
        assert!(Usable < AcpiReclaimable && AcpiNvs < Reserved && Reserved < Unusable);
        assert_eq!(Usable.name(), "usable");
    }

    #[test]
    fn page_rounding() {
        assert_eq!(page_floor(0x1fff), 0x1000);
        assert_eq!(page_ceil(0x1001), Some(0x2000));
        assert_eq!(page_ceil(0x2000), Some(0x2000));
        assert_eq!(page_ceil(u64::MAX), None);
        assert_eq!(page_ceil(u64::MAX - 4095), Some(u64::MAX - 4095));
        assert_eq!(pr(0x1001, 0x1fff).page_inner(), pr(0, 0));
        assert!(pr(0x1001, 0x1fff).page_inner().is_empty());
        assert_eq!(pr(0x1001, 0x1fff).page_outer(), pr(0x1000, 0x2000));
        assert_eq!(pr(0x1000, u64::MAX).page_outer(), pr(0x1000, u64::MAX));
    }

    #[test]
    fn phys_range_helpers() {
        let a = pr(0x1000, 0x3000);
        assert_eq!(a.len(), 0x2000);
        assert!(a.contains(0x1000) && a.contains(0x2fff) && !a.contains(0x3000));
        assert!(a.overlaps(&pr(0x2fff, 0x4000)));
        assert!(!a.overlaps(&pr(0x3000, 0x4000)));
        assert!(!a.overlaps(&pr(0x2000, 0x2000)));
        assert!(a.contains_range(&pr(0x1000, 0x3000)));
        assert!(!a.contains_range(&pr(0x1000, 0x3001)));
        assert!(pr(5, 5).is_empty() && pr(6, 5).is_empty());
        assert_eq!(pr(6, 5).len(), 0);
        assert_eq!(
            PhysRange::from_start_len(u64::MAX - 1, 10),
            pr(u64::MAX - 1, u64::MAX)
        );
    }

    #[test]
    fn empty_map() {
        let mut map = MemoryMap::new();
        map.normalize();
        assert!(map.regions().is_empty());
        assert_eq!(map.total_usable_bytes(), 0);
        assert_eq!(map.highest_address(), 0);
        assert!(free(&map, &[], 0).is_empty());
    }

    #[test]
    fn zero_length_entries_dropped() {
        let mut map = MemoryMap::new();
        map.add(0x1000, 0, Usable).unwrap();
        map.add(u64::MAX, 5, Reserved).unwrap(); // clamps to empty
        assert!(map.regions().is_empty());
        map.add(0x1000, 0x1000, Usable).unwrap();
        map.normalize();
        assert_eq!(map.regions(), &[r(0x1000, 0x2000, Usable)]);
    }

    #[test]
    fn too_many_regions() {
        let mut map = MemoryMap::new();
        for i in 0..MAX_REGIONS as u64 {
            map.add(i * 0x2000, 0x1000, Usable).unwrap();
        }
        assert_eq!(map.add(1 << 40, 0x1000, Usable), Err(MemMapError::TooManyRegions));
        // Zero-length entries never count.
        assert_eq!(map.add(1 << 40, 0, Usable), Ok(()));
        assert!(MemMapError::TooManyRegions.to_string().contains("128"));
    }

    #[test]
    fn worst_case_splitting_fits() {
        // One big usable region with 127 reserved islands inside: 255 pieces.
        let mut map = MemoryMap::new();
        map.add(0, 1 << 30, Usable).unwrap();
        for i in 0..(MAX_REGIONS as u64 - 1) {
            map.add(0x10_0000 * (i + 1), 0x1000, Reserved).unwrap();
        }
        map.normalize();
        assert_eq!(map.regions().len(), 2 * MAX_REGIONS - 1);
        assert_normalised(&map);
        assert_eq!(map.total_usable_bytes(), (1 << 30) - 127 * 0x1000);
        // Idempotent, and a normalised over-full map accepts nothing more.
        let before = map.regions().to_vec();
        map.normalize();
        assert_eq!(map.regions(), &before[..]);
        assert_eq!(map.add(1 << 40, 1, Usable), Err(MemMapError::TooManyRegions));
    }

    #[test]
    fn reserved_inside_usable_splits() {
        let map = map_of(&[(0, 0x10000, Usable), (0x4000, 0x1000, Reserved)]);
        assert_eq!(
            map.regions(),
            &[
                r(0, 0x4000, Usable),
                r(0x4000, 0x5000, Reserved),
                r(0x5000, 0x10000, Usable)
            ]
        );
        // Order of the entries does not matter.
        let map2 = map_of(&[(0x4000, 0x1000, Reserved), (0, 0x10000, Usable)]);
        assert_eq!(map.regions(), map2.regions());
    }

    #[test]
    fn overlapping_usable_and_reserved() {
        let map = map_of(&[
            (0, 0x8000, Usable),
            (0x6000, 0x4000, Reserved),
            (0x9000, 0x3000, Usable),
        ]);
        assert_eq!(
            map.regions(),
            &[
                r(0, 0x6000, Usable),
                r(0x6000, 0xa000, Reserved),
                r(0xa000, 0xc000, Usable)
            ]
        );
        assert_eq!(map.total_usable_bytes(), 0x8000);
    }

    #[test]
    fn precedence_over_all_kinds() {
        let map = map_of(&[
            (0, 0x10000, Usable),
            (0x1000, 0x8000, AcpiReclaimable),
            (0x2000, 0x6000, AcpiNvs),
            (0x3000, 0x4000, Reserved),
            (0x4000, 0x1000, Unusable),
            (0x4000, 0x1000, Usable),
        ]);
        assert_eq!(
            map.regions(),
            &[
                r(0, 0x1000, Usable),
                r(0x1000, 0x2000, AcpiReclaimable),
                r(0x2000, 0x3000, AcpiNvs),
                r(0x3000, 0x4000, Reserved),
                r(0x4000, 0x5000, Unusable),
                r(0x5000, 0x7000, Reserved),
                r(0x7000, 0x8000, AcpiNvs),
                r(0x8000, 0x9000, AcpiReclaimable),
                r(0x9000, 0x10000, Usable),
            ]
        );
    }

    #[test]
    fn unsorted_and_duplicate_entries() {
        let map = map_of(&[
            (0x20000, 0x10000, Usable),
            (0x0, 0x10000, Usable),
            (0x20000, 0x10000, Usable),
            (0x10000, 0x10000, Usable),
            (0x0, 0x10000, Usable),
            (0x40000, 0x1000, Reserved),
            (0x40000, 0x1000, Reserved),
        ]);
        assert_eq!(
            map.regions(),
            &[r(0, 0x30000, Usable), r(0x40000, 0x41000, Reserved)]
        );
        assert_eq!(map.total_usable_bytes(), 0x30000);
        assert_eq!(map.highest_address(), 0x41000);
    }

    #[test]
    fn adjacent_same_kind_merged_different_kept() {
        let map = map_of(&[
            (0, 0x1000, Reserved),
            (0x1000, 0x1000, Reserved),
            (0x2000, 0x1000, AcpiNvs),
        ]);
        assert_eq!(
            map.regions(),
            &[r(0, 0x2000, Reserved), r(0x2000, 0x3000, AcpiNvs)]
        );
    }

    #[test]
    fn holes_stay_holes() {
        let map = map_of(&[(0, 0x1000, Usable), (0x3000, 0x1000, Usable)]);
        assert_eq!(map.regions(), &[r(0, 0x1000, Usable), r(0x3000, 0x4000, Usable)]);
    }

    #[test]
    fn unaligned_entries() {
        let map = map_of(&[
            (0x1234, 0x5000, Usable),
            (0x8800, 0x100, Reserved),
            (0x9001, 0x3000, Usable),
        ]);
        assert_normalised(&map);
        assert_eq!(map.total_usable_bytes(), 0x5000 + 0x3000);
        // Usable shrinks inwards; the reserved sliver costs its whole page.
        assert_eq!(free(&map, &[], 0), vec![pr(0x2000, 0x6000), pr(0xa000, 0xc000)]);
        // A usable region smaller than a page after shrinking yields nothing.
        let tiny = map_of(&[(0x1001, 0x1ffe, Usable)]);
        assert!(free(&tiny, &[], 0).is_empty());
    }

    #[test]
    fn entry_ending_at_u64_max() {
        let map = map_of(&[(0, 0x10000, Usable), (0xffff_ffff_ffff_0000, u64::MAX, Reserved)]);
        assert_eq!(
            map.regions(),
            &[
                r(0, 0x10000, Usable),
                r(0xffff_ffff_ffff_0000, u64::MAX, Reserved)
            ]
        );
        assert_eq!(map.highest_address(), u64::MAX);
        // Usable right up to the top: the final partial page is dropped.
        let top = map_of(&[(u64::MAX - 0x3000, u64::MAX, Usable)]);
        assert_eq!(top.regions(), &[r(u64::MAX - 0x3000, u64::MAX, Usable)]);
        assert_eq!(free(&top, &[], 0), vec![pr(u64::MAX - 0x2fff, u64::MAX - 0xfff)]);
        // An exclusion running to u64::MAX removes everything above it.
        assert_eq!(
            free(&top, &[pr(u64::MAX - 0x1fff, u64::MAX)], 0),
            vec![pr(u64::MAX - 0x2fff, u64::MAX - 0x1fff)]
        );
    }

    #[test]
    fn low_limit_removes_low_memory() {
        let map = map_of(&[(0, 0x9fc00, Usable), (0x100000, 0x100000, Usable)]);
        assert_eq!(free(&map, &[], MIB), vec![pr(MIB, 2 * MIB)]);
        assert_eq!(
            free(&map, &[], 0x80000),
            vec![pr(0x80000, 0x9f000), pr(MIB, 2 * MIB)]
        );
        // An unaligned limit rounds up: the page holding it is not free.
        assert_eq!(free(&map, &[], 0x100001), vec![pr(0x101000, 2 * MIB)]);
        assert!(free(&map, &[], u64::MAX).is_empty());
    }

    #[test]
    fn exclusion_overlapping_several_regions() {
        let map = map_of(&[
            (0x100000, 0x100000, Usable),
            (0x200000, 0x1000, Reserved),
            (0x201000, 0xff000, Usable),
            (0x400000, 0x100000, Usable),
        ]);
        let excl = [pr(0x180000, 0x420000)];
        assert_eq!(
            free(&map, &excl, MIB),
            vec![pr(0x100000, 0x180000), pr(0x420000, 0x500000)]
        );
    }

    #[test]
    fn module_straddling_two_regions_and_a_hole() {
        // A boot module from inside one usable region, across a hole, into
        // the next; unaligned at both ends, so it grows outwards.
        let map = map_of(&[(0x100000, 0x100000, Usable), (0x300000, 0x100000, Usable)]);
        let module = pr(0x1f0800, 0x300801);
        assert_eq!(
            free(&map, &[module], MIB),
            vec![pr(0x100000, 0x1f0000), pr(0x301000, 0x400000)]
        );
    }

    #[test]
    fn chained_and_overlapping_exclusions() {
        let map = map_of(&[(0, 0x100000, Usable)]);
        let excl = [
            pr(0x3000, 0x5000),
            pr(0x1000, 0x4000),
            pr(0x5000, 0x6000),
            pr(0x9000, 0x9000),
        ];
        assert_eq!(free(&map, &excl, 0), vec![pr(0, 0x1000), pr(0x6000, 0x100000)]);
        // A backwards exclusion is empty and ignored.
        assert_eq!(free(&map, &[pr(0x8000, 0x4000)], 0), vec![pr(0, 0x100000)]);
    }

    #[test]
    fn free_ranges_respects_reserved_even_unnormalised() {
        let mut map = MemoryMap::new();
        map.add(0, 0x10000, Usable).unwrap();
        map.add(0x4800, 0x100, Reserved).unwrap();
        assert_eq!(free(&map, &[], 0), vec![pr(0, 0x4000), pr(0x5000, 0x10000)]);
    }

    #[test]
    fn free_ranges_output_too_small() {
        let map = q35_5g();
        let mut out = [pr(0, 0); 1];
        assert_eq!(map.free_ranges(&[], MIB, &mut out), 1);
        assert_eq!(out[0], pr(MIB, 0x7ffe0000));
        assert_eq!(map.free_ranges(&[], MIB, &mut []), 0);
    }

    #[test]
    fn q35_with_5_gib() {
        let map = q35_5g();
        assert_normalised(&map);
        assert_eq!(map.regions().len(), 8);
        assert_eq!(
            map.total_usable_bytes(),
            0x9fc00 + (0x7ffe0000 - 0x100000) + 2 * GIB
        );
        assert_eq!(map.highest_address(), 0x1_8000_0000);
        assert_eq!(
            free(&map, &[], MIB),
            vec![pr(MIB, 0x7ffe0000), pr(0x1_0000_0000, 0x1_8000_0000)]
        );
        // Kernel image at 2 MiB, a module at 16 MiB.
        let excl = [pr(0x200000, 0x4c3210), pr(0x1000000, 0x1234567)];
        assert_eq!(
            free(&map, &excl, MIB),
            vec![
                pr(MIB, 0x200000),
                pr(0x4c4000, 0x1000000),
                pr(0x1235000, 0x7ffe0000),
                pr(0x1_0000_0000, 0x1_8000_0000),
            ]
        );
        assert_eq!(free(&map, &[], 0)[0], pr(0, 0x9f000));
    }

    #[test]
    fn q35_as_multiboot2_reports_it_unsorted_and_overlapping() {
        // Same machine, but entries shuffled and a redundant usable entry
        // covering the PCI hole.
        let map = map_of(&[
            (0x1_0000_0000, 0x8000_0000, Usable),
            (0xfffc0000, 0x40000, Reserved),
            (0x80000000, 0x7ffc0000, Reserved),
            (0x100000, 0x7ffe0000 - 0x100000, Usable),
            (0x7ffe0000, 0x20000, Reserved),
            (0x7f000000, 0x81000000, Usable),
            (0, 0x9fc00, Usable),
        ]);
        assert_normalised(&map);
        assert_eq!(
            free(&map, &[], MIB),
            vec![pr(MIB, 0x7ffe0000), pr(0x1_0000_0000, 0x1_8000_0000)]
        );
    }

    #[test]
    fn microvm_64_mib() {
        let map = map_of(&[
            (0, 0x9fc00, Usable),
            (0x9fc00, 0x400, Reserved),
            (0x100000, 64 * MIB - 0x100000, Usable),
            (0xfec00000, 0x100000, Reserved),
        ]);
        assert_normalised(&map);
        assert_eq!(map.highest_address(), 0xfed00000);
        let ranges = free(&map, &[pr(MIB, 3 * MIB)], MIB);
        assert_eq!(ranges, vec![pr(3 * MIB, 64 * MIB)]);
        assert_eq!(ranges.iter().map(PhysRange::len).sum::<u64>(), 61 * MIB);
    }

    #[test]
    fn display() {
        assert_eq!(
            r(0x1000, 0x2000, AcpiNvs).to_string(),
            "[0x000000001000-0x000000002000) ACPI NVS"
        );
        assert_eq!(pr(0, 0x1000).to_string(), "[0x000000000000-0x000000001000)");
    }
}
