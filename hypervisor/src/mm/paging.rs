//! x86-64 4-level page tables, built and inspected over a memory trait.
//!
//! The kernel builds its own address space with this module: the direct map
//! sized from `super::memmap`, the image with per-section rights, all in
//! table frames taken from `super::frame`. It never touches memory itself:
//! every table access goes through [`TableMemory`], which the kernel
//! implements over the direct map and the host tests over a fake. Nothing here
//! flushes the TLB or loads CR3; that is the caller's business (in
//! `arch::x86_64`).
//!
//! Levels are numbered as the manuals do: 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT
//! (Intel SDM Vol. 3A 4.5 "4-Level Paging"; AMD APM Vol. 2 5.3 "Long-Mode
//! Page Translation").

#![deny(unsafe_code)]

use core::fmt;

use bitflags::bitflags;

/// Bits 51:12 of an entry: the physical address of the next table or of a 4 KiB
/// page (Intel SDM Vol. 3A 4.5, Tables 4-14 to 4-19; MAXPHYADDR at most 52).
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Entries per table: 4 KiB / 8 bytes (Intel SDM Vol. 3A 4.5).
pub const ENTRIES: usize = 512;

/// One past the highest physical address an entry can hold (2^52).
const PHYS_LIMIT: u64 = 1 << 52;

/// Sign-extension applied to bits 63:48 of an upper-half virtual address.
const UPPER_HALF: u64 = 0xffff_0000_0000_0000;

bitflags! {
    /// Page-table entry flag bits, common to all four levels unless noted
    /// (Intel SDM Vol. 3A 4.5, Tables 4-14 to 4-19; AMD APM Vol. 2 5.4.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PteFlags: u64 {
        /// P, bit 0: the entry is valid.
        const PRESENT = 1 << 0;
        /// R/W, bit 1: writes allowed (SDM 4.6: effective only if set at every level).
        const WRITABLE = 1 << 1;
        /// U/S, bit 2: user-mode access allowed (SDM 4.6: every level).
        const USER = 1 << 2;
        /// PWT, bit 3: page-level write-through.
        const WRITE_THROUGH = 1 << 3;
        /// PCD, bit 4: page-level cache disable.
        const NO_CACHE = 1 << 4;
        /// A, bit 5: set by the CPU on access.
        const ACCESSED = 1 << 5;
        /// D, bit 6 (leaves only): set by the CPU on write.
        const DIRTY = 1 << 6;
        /// PS, bit 7 in a PDPTE or PDE: the entry maps a 1 GiB / 2 MiB page.
        /// (Reserved in a PML4E; in a PTE the same bit is PAT, never set here.)
        const HUGE = 1 << 7;
        /// G, bit 8 (leaves only): global translation, kept across CR3 loads.
        const GLOBAL = 1 << 8;
        /// XD/NX, bit 63: instruction fetch forbidden (needs IA32_EFER.NXE;
        /// SDM 4.6: effective if set at any level).
        const NO_EXECUTE = 1 << 63;
    }
}

/// The page sizes of 4-level paging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    /// 4 KiB, mapped by a PTE.
    Size4K,
    /// 2 MiB, mapped by a PDE with PS set.
    Size2M,
    /// 1 GiB, mapped by a PDPTE with PS set (needs CPUID.80000001H:EDX.Page1GB, bit 26).
    Size1G,
}

impl PageSize {
    /// The page size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 1 << 12,
            Self::Size2M => 1 << 21,
            Self::Size1G => 1 << 30,
        }
    }

    /// The level whose entry maps a page of this size.
    const fn level(self) -> u8 {
        match self {
            Self::Size4K => 1,
            Self::Size2M => 2,
            Self::Size1G => 3,
        }
    }

    /// The size a leaf at `level` maps (1..=3).
    const fn of_level(level: u8) -> Self {
        match level {
            3 => Self::Size1G,
            2 => Self::Size2M,
            _ => Self::Size4K,
        }
    }
}

/// Why a page-table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// An address or length is not a multiple of the page size it needs.
    Misaligned,
    /// A virtual address is not canonical (bits 63:47 not all equal), or a
    /// range crosses the non-canonical hole.
    NonCanonical,
    /// A physical address does not fit in 52 bits.
    PhysTooLarge,
    /// A present entry is in the way at `va`: a page already mapped there, a
    /// huge page covering it, or a table where a huge leaf should go.
    AlreadyMapped {
        /// The virtual address that was to be mapped.
        va: u64,
    },
    /// Nothing is mapped at `va`.
    NotMapped {
        /// The virtual address looked up.
        va: u64,
    },
    /// [`TableMemory::alloc_table`] failed.
    OutOfMemory,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned => f.write_str("address or length not aligned to the page size"),
            Self::NonCanonical => f.write_str("virtual address not canonical"),
            Self::PhysTooLarge => f.write_str("physical address above 2^52"),
            Self::AlreadyMapped { va } => write!(f, "virtual address {va:#x} already mapped"),
            Self::NotMapped { va } => write!(f, "virtual address {va:#x} not mapped"),
            Self::OutOfMemory => f.write_str("out of memory for page tables"),
        }
    }
}

impl core::error::Error for MapError {}

/// Access to page-table frames by physical address.
pub trait TableMemory {
    /// Allocate a zeroed 4 KiB page-table frame; its physical address.
    fn alloc_table(&mut self) -> Option<u64>;
    /// Read entry `index` of the table at physical `table`.
    fn read(&self, table: u64, index: usize) -> u64;
    /// Write entry `index` of the table at physical `table`.
    fn write(&mut self, table: u64, index: usize, value: u64);
}

/// One present leaf, as [`walk`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Canonical virtual address of the page's first byte.
    pub va: u64,
    /// Physical address of the page's first byte.
    pub pa: u64,
    /// Page size.
    pub size: PageSize,
    /// Effective flags: the leaf's, except that WRITABLE and USER are set only
    /// if set at every level and NO_EXECUTE is set if set at any level.
    pub flags: PteFlags,
}

impl Mapping {
    /// Whether the page is effectively both writable and executable.
    pub fn is_writable_executable(&self) -> bool {
        self.flags.contains(PteFlags::WRITABLE) && !self.flags.contains(PteFlags::NO_EXECUTE)
    }
}

/// Whether bits 63:47 of `va` are all equal (SDM Vol. 3A 3.3.7.1).
pub const fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == (1 << 17) - 1
}

/// The index into the level-`level` table for `va`: 9 bits from bit
/// 12 + 9 * (level - 1) (SDM Vol. 3A Figure 4-8).
#[allow(clippy::cast_possible_truncation)] // masked to 9 bits
const fn index(va: u64, level: u8) -> usize {
    ((va >> (12 + 9 * (level as u32 - 1))) & 0x1ff) as usize
}

/// Bytes one entry at `level` covers.
const fn entry_span(level: u8) -> u64 {
    1 << (12 + 9 * (level as u32 - 1))
}

/// Whether `entry` at `level` is a leaf (a PTE, or a PDPTE / PDE with PS).
const fn is_leaf(entry: u64, level: u8) -> bool {
    level == 1 || ((level == 2 || level == 3) && entry & PteFlags::HUGE.bits() != 0)
}

/// Whether `entry` is present and well-formed enough to follow. A PML4E with
/// bit 7 set is malformed (reserved bit, SDM Table 4-14) and treated as absent.
const fn is_usable(entry: u64, level: u8) -> bool {
    entry & PteFlags::PRESENT.bits() != 0 && !(level == 4 && entry & PteFlags::HUGE.bits() != 0)
}

/// The physical address in a leaf at `level`: bits 51:12, 51:21 or 51:30
/// (for huge pages bit 12 is PAT, not address).
const fn leaf_addr(entry: u64, level: u8) -> u64 {
    entry & ADDR_MASK & !(PageSize::of_level(level).bytes() - 1)
}

/// Rights that must hold at every level (SDM Vol. 3A 4.6).
const AND_RIGHTS: PteFlags = PteFlags::WRITABLE.union(PteFlags::USER);

/// The effective flags of `leaf`, given the AND of WRITABLE/USER above it and
/// whether NO_EXECUTE was set above it.
fn effective(leaf: u64, rights_above: PteFlags, nx_above: bool) -> PteFlags {
    let mut flags = PteFlags::from_bits_truncate(leaf);
    flags = flags.difference(AND_RIGHTS) | (flags & rights_above & AND_RIGHTS);
    if nx_above {
        flags |= PteFlags::NO_EXECUTE;
    }
    flags
}

/// Map one page. Intermediate tables are created PRESENT|WRITABLE (plus USER
/// if `flags` has USER) so the leaf decides the rights. Refuses to overwrite a
/// present entry, or to descend through a huge page.
///
/// PRESENT is implied; HUGE in `flags` is ignored (`size` decides it). An
/// existing intermediate entry gains USER when the leaf asks for it (it grants
/// nothing by itself: the leaf still decides), but WRITABLE and NO_EXECUTE of
/// existing entries are never changed, so a restrictive one still wins.
/// On `OutOfMemory`, tables created on the way stay (empty) in place.
pub fn map(
    mem: &mut impl TableMemory,
    root: u64,
    va: u64,
    pa: u64,
    size: PageSize,
    flags: PteFlags,
) -> Result<(), MapError> {
    if !is_canonical(va) {
        return Err(MapError::NonCanonical);
    }
    if !va.is_multiple_of(size.bytes()) || !pa.is_multiple_of(size.bytes()) {
        return Err(MapError::Misaligned);
    }
    if pa >= PHYS_LIMIT {
        return Err(MapError::PhysTooLarge);
    }

    let user = flags.contains(PteFlags::USER);
    let mut table = root & ADDR_MASK;
    for level in (size.level() + 1..=4).rev() {
        let i = index(va, level);
        let entry = mem.read(table, i);
        if entry & PteFlags::PRESENT.bits() == 0 {
            let next = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
            let mut link = PteFlags::PRESENT | PteFlags::WRITABLE;
            link.set(PteFlags::USER, user);
            mem.write(table, i, (next & ADDR_MASK) | link.bits());
            table = next & ADDR_MASK;
        } else if is_leaf(entry, level) || !is_usable(entry, level) {
            return Err(MapError::AlreadyMapped { va });
        } else {
            if user && entry & PteFlags::USER.bits() == 0 {
                mem.write(table, i, entry | PteFlags::USER.bits());
            }
            table = entry & ADDR_MASK;
        }
    }

    let i = index(va, size.level());
    if mem.read(table, i) & PteFlags::PRESENT.bits() != 0 {
        return Err(MapError::AlreadyMapped { va });
    }
    let mut leaf = (flags - PteFlags::HUGE) | PteFlags::PRESENT;
    leaf.set(PteFlags::HUGE, size != PageSize::Size4K);
    mem.write(table, i, pa | leaf.bits());
    Ok(())
}

/// Map [va, va+len) -> [pa, ..) with the largest page sizes alignment allows,
/// never above `max_size` (the kernel passes Size1G only when CPUID has 1 GiB
/// pages).
///
/// `va`, `pa` and `len` must be 4 KiB aligned; `len` 0 maps nothing. The
/// range must not cross the non-canonical hole. All or nothing: if any page
/// fails (typically `AlreadyMapped`), the pages this call mapped are unmapped
/// again before the error returns (tables it created stay, empty).
pub fn map_range(
    mem: &mut impl TableMemory,
    root: u64,
    va: u64,
    pa: u64,
    len: u64,
    flags: PteFlags,
    max_size: PageSize,
) -> Result<(), MapError> {
    let small = PageSize::Size4K.bytes();
    if !va.is_multiple_of(small) || !pa.is_multiple_of(small) || !len.is_multiple_of(small) {
        return Err(MapError::Misaligned);
    }
    if len == 0 {
        return Ok(());
    }
    let va_last = va.checked_add(len - 1).ok_or(MapError::NonCanonical)?;
    if !is_canonical(va) || !is_canonical(va_last) || va >> 47 != va_last >> 47 {
        return Err(MapError::NonCanonical);
    }
    let pa_last = pa.checked_add(len - 1).ok_or(MapError::PhysTooLarge)?;
    if pa_last >= PHYS_LIMIT {
        return Err(MapError::PhysTooLarge);
    }

    let mut done = 0;
    while done < len {
        let (v, p, left) = (va + done, pa + done, len - done);
        let size = [PageSize::Size1G, PageSize::Size2M, PageSize::Size4K]
            .into_iter()
            .find(|s| {
                *s <= max_size
                    && v.is_multiple_of(s.bytes())
                    && p.is_multiple_of(s.bytes())
                    && left >= s.bytes()
            })
            .unwrap_or(PageSize::Size4K);
        if let Err(err) = map(mem, root, v, p, size, flags) {
            // Roll back exactly what this call mapped.
            let mut undone = 0;
            while undone < done {
                match unmap(mem, root, va + undone) {
                    Ok((size, _)) => undone += size.bytes(),
                    Err(_) => undone += small, // cannot happen: we just mapped it
                }
            }
            return Err(err);
        }
        done += size.bytes();
    }
    Ok(())
}

/// Remove the leaf that maps `va`, which must be the first byte of its page.
/// Returns the page's size and physical address. Tables are not freed and the
/// TLB is not flushed.
pub fn unmap(mem: &mut impl TableMemory, root: u64, va: u64) -> Result<(PageSize, u64), MapError> {
    if !is_canonical(va) {
        return Err(MapError::NonCanonical);
    }
    let mut table = root & ADDR_MASK;
    for level in (1..=4).rev() {
        let i = index(va, level);
        let entry = mem.read(table, i);
        if !is_usable(entry, level) {
            return Err(MapError::NotMapped { va });
        }
        if is_leaf(entry, level) {
            let size = PageSize::of_level(level);
            if !va.is_multiple_of(size.bytes()) {
                return Err(MapError::Misaligned);
            }
            mem.write(table, i, 0);
            return Ok((size, leaf_addr(entry, level)));
        }
        table = entry & ADDR_MASK;
    }
    // Level 1 entries are always leaves, so the loop returns.
    Err(MapError::NotMapped { va })
}

/// Translate `va`: the physical address it maps to, the size of the page that
/// maps it, and the effective flags (see [`Mapping::flags`]). `None` if not
/// mapped or not canonical.
pub fn translate(mem: &impl TableMemory, root: u64, va: u64) -> Option<(u64, PageSize, PteFlags)> {
    if !is_canonical(va) {
        return None;
    }
    let mut table = root & ADDR_MASK;
    let mut rights = AND_RIGHTS;
    let mut nx = false;
    for level in (1..=4).rev() {
        let entry = mem.read(table, index(va, level));
        if !is_usable(entry, level) {
            return None;
        }
        if is_leaf(entry, level) {
            let size = PageSize::of_level(level);
            let pa = leaf_addr(entry, level) + (va & (size.bytes() - 1));
            return Some((pa, size, effective(entry, rights, nx)));
        }
        rights &= PteFlags::from_bits_truncate(entry);
        nx |= entry & PteFlags::NO_EXECUTE.bits() != 0;
        table = entry & ADDR_MASK;
    }
    None
}

/// Visit every present leaf in address order (canonical va: sign-extend bit 47).
pub fn walk(mem: &impl TableMemory, root: u64, mut f: impl FnMut(Mapping)) {
    walk_table(mem, root & ADDR_MASK, 4, 0, AND_RIGHTS, false, &mut f);
}

/// [`walk`] below one table at `level`, whose first entry maps `base`.
fn walk_table<M: TableMemory, F: FnMut(Mapping)>(
    mem: &M,
    table: u64,
    level: u8,
    base: u64,
    rights: PteFlags,
    nx: bool,
    f: &mut F,
) {
    for i in 0..ENTRIES {
        let entry = mem.read(table, i);
        if !is_usable(entry, level) {
            continue;
        }
        // `i` < 512, so the product stays below 2^48.
        let mut va = base + i as u64 * entry_span(level);
        if va & (1 << 47) != 0 {
            va |= UPPER_HALF;
        }
        if is_leaf(entry, level) {
            f(Mapping {
                va,
                pa: leaf_addr(entry, level),
                size: PageSize::of_level(level),
                flags: effective(entry, rights, nx),
            });
        } else {
            let rights = rights & PteFlags::from_bits_truncate(entry);
            let nx = nx || entry & PteFlags::NO_EXECUTE.bits() != 0;
            walk_table(mem, entry & ADDR_MASK, level - 1, va, rights, nx, f);
        }
    }
}

/// Convenience used by the boot self-check: count of leaves that are
/// effectively writable AND executable, and the first such mapping.
pub fn find_writable_executable(mem: &impl TableMemory, root: u64) -> (u64, Option<Mapping>) {
    let mut count = 0;
    let mut first = None;
    walk(mem, root, |m| {
        if m.is_writable_executable() {
            count += 1;
            first = first.or(Some(m));
        }
    });
    (count, first)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use std::collections::HashMap;

    use super::PageSize::*;
    use super::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const RW: PteFlags = PteFlags::WRITABLE;
    const NX: PteFlags = PteFlags::NO_EXECUTE;

    /// Page tables in a hash map, at made-up physical addresses.
    struct FakeMem {
        tables: HashMap<u64, Box<[u64; ENTRIES]>>,
        next: u64,
        budget: usize,
    }

    impl FakeMem {
        fn new() -> (Self, u64) {
            let mut mem = Self {
                tables: HashMap::new(),
                next: 0x10_0000,
                budget: usize::MAX,
            };
            let root = mem.alloc_table().unwrap();
            (mem, root)
        }
    }

    impl TableMemory for FakeMem {
        fn alloc_table(&mut self) -> Option<u64> {
            self.budget = self.budget.checked_sub(1)?;
            let pa = self.next;
            self.next += 0x1000;
            self.tables.insert(pa, Box::new([0; ENTRIES]));
            Some(pa)
        }
        fn read(&self, table: u64, index: usize) -> u64 {
            self.tables.get(&table).expect("read of a non-table")[index]
        }
        fn write(&mut self, table: u64, index: usize, value: u64) {
            self.tables.get_mut(&table).expect("write to a non-table")[index] = value;
        }
    }

    fn all(mem: &FakeMem, root: u64) -> Vec<Mapping> {
        let mut out = Vec::new();
        walk(mem, root, |m| out.push(m));
        out
    }

    fn sizes(mem: &FakeMem, root: u64) -> Vec<(u64, u64, PageSize)> {
        all(mem, root).iter().map(|m| (m.va, m.pa, m.size)).collect()
    }

    #[test]
    fn round_trip_every_size() {
        let (mut mem, root) = FakeMem::new();
        map(&mut mem, root, 0x40_0000_1000, 0x5000, Size4K, RW | NX).unwrap();
        map(&mut mem, root, 0x40_0020_0000, 0x20_0000, Size2M, RW).unwrap();
        map(
            &mut mem,
            root,
            0x80_0000_0000,
            0x4000_0000,
            Size1G,
            PteFlags::GLOBAL,
        )
        .unwrap();
        map(&mut mem, root, 0xffff_ffff_8000_0000, 0x1_0000_0000, Size2M, NX).unwrap();

        let t = |va| translate(&mem, root, va);
        let p = PteFlags::PRESENT;
        assert_eq!(t(0x40_0000_1234), Some((0x5234, Size4K, p | RW | NX)));
        assert_eq!(
            t(0x40_0021_2345),
            Some((0x21_2345, Size2M, p | RW | PteFlags::HUGE))
        );
        assert_eq!(
            t(0x80_1234_5678),
            Some((0x5234_5678, Size1G, p | PteFlags::GLOBAL | PteFlags::HUGE))
        );
        assert_eq!(
            t(0xffff_ffff_8010_0000),
            Some((0x1_0010_0000, Size2M, p | NX | PteFlags::HUGE))
        );
        assert_eq!(t(0x40_0000_0000), None);
        assert_eq!(t(0x40_0040_0000), None);
        assert_eq!(t(0x8000_0000_0000), None); // non-canonical
    }

    #[test]
    fn misaligned_rejected() {
        let (mut mem, root) = FakeMem::new();
        assert_eq!(
            map(&mut mem, root, 0x1001, 0x1000, Size4K, RW),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            map(&mut mem, root, 0x1000, 0x1800, Size4K, RW),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            map(&mut mem, root, 0x1000, 0, Size2M, RW),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            map(&mut mem, root, 0x20_0000, 0x1000, Size2M, RW),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            map(&mut mem, root, 0x20_0000, 0, Size1G, RW),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            map(&mut mem, root, 0, 1 << 52, Size4K, RW),
            Err(MapError::PhysTooLarge)
        );
        assert_eq!(
            map_range(&mut mem, root, 0, 0, 0x1800, RW, Size1G),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            map_range(&mut mem, root, 0, (1 << 52) - 0x1000, 0x2000, RW, Size1G),
            Err(MapError::PhysTooLarge)
        );
        assert!(all(&mem, root).is_empty());
    }

    #[test]
    fn non_canonical_rejected() {
        let (mut mem, root) = FakeMem::new();
        for va in [0x8000_0000_0000, 0xffff_7fff_ffff_f000, 0x0001_0000_0000_0000] {
            assert_eq!(
                map(&mut mem, root, va, 0, Size4K, RW),
                Err(MapError::NonCanonical)
            );
            assert_eq!(unmap(&mut mem, root, va), Err(MapError::NonCanonical));
        }
        // A range running off the top of the lower half.
        assert_eq!(
            map_range(&mut mem, root, 0x7fff_ffff_f000, 0, 0x2000, RW, Size4K),
            Err(MapError::NonCanonical)
        );
        // ... or off the top of the address space.
        assert_eq!(
            map_range(&mut mem, root, 0xffff_ffff_ffff_f000, 0, 0x2000, RW, Size4K),
            Err(MapError::NonCanonical)
        );
        assert!(all(&mem, root).is_empty());
        // The very last page is fine.
        map_range(&mut mem, root, 0xffff_ffff_ffff_f000, 0x3000, 0x1000, RW, Size4K).unwrap();
        assert_eq!(sizes(&mem, root), vec![(0xffff_ffff_ffff_f000, 0x3000, Size4K)]);
    }

    #[test]
    fn overlapping_map_refused() {
        let (mut mem, root) = FakeMem::new();
        map(&mut mem, root, 0x20_0000, 0x20_0000, Size2M, RW).unwrap();
        // A 4K page inside the 2M page: cannot descend through a huge page.
        assert_eq!(
            map(&mut mem, root, 0x20_1000, 0x1000, Size4K, RW),
            Err(MapError::AlreadyMapped { va: 0x20_1000 })
        );
        // The same 2M page again.
        assert_eq!(
            map(&mut mem, root, 0x20_0000, 0x40_0000, Size2M, RW),
            Err(MapError::AlreadyMapped { va: 0x20_0000 })
        );
        // A 1G page over a PD that exists.
        assert_eq!(
            map(&mut mem, root, 0, 0, Size1G, RW),
            Err(MapError::AlreadyMapped { va: 0 })
        );
        // A 2M page over a PT that exists.
        map(&mut mem, root, 0x60_0000, 0x1000, Size4K, RW).unwrap();
        assert_eq!(
            map(&mut mem, root, 0x60_0000, 0x60_0000, Size2M, RW),
            Err(MapError::AlreadyMapped { va: 0x60_0000 })
        );
        assert_eq!(
            map(&mut mem, root, 0x60_0000, 0x2000, Size4K, RW),
            Err(MapError::AlreadyMapped { va: 0x60_0000 })
        );
        // Nothing changed.
        assert_eq!(translate(&mem, root, 0x60_0000).map(|t| t.0), Some(0x1000));
        assert_eq!(translate(&mem, root, 0x20_1000).map(|t| t.0), Some(0x20_1000));
    }

    #[test]
    fn map_range_picks_page_sizes() {
        let (mut mem, root) = FakeMem::new();
        // [1G - 8K, 3G + 2M + 12K): 4K x2, 1G x2, 2M x1, 4K x3.
        let va = GIB - 8 * KIB;
        let len = 2 * GIB + 2 * MIB + 20 * KIB;
        map_range(&mut mem, root, va, va, len, RW, Size1G).unwrap();
        let got = sizes(&mem, root);
        let want = vec![
            (GIB - 8 * KIB, GIB - 8 * KIB, Size4K),
            (GIB - 4 * KIB, GIB - 4 * KIB, Size4K),
            (GIB, GIB, Size1G),
            (2 * GIB, 2 * GIB, Size1G),
            (3 * GIB, 3 * GIB, Size2M),
            (3 * GIB + 2 * MIB, 3 * GIB + 2 * MIB, Size4K),
            (3 * GIB + 2 * MIB + 4 * KIB, 3 * GIB + 2 * MIB + 4 * KIB, Size4K),
            (3 * GIB + 2 * MIB + 8 * KIB, 3 * GIB + 2 * MIB + 8 * KIB, Size4K),
        ];
        assert_eq!(got, want);
        let covered: u64 = all(&mem, root).iter().map(|m| m.size.bytes()).sum();
        assert_eq!(covered, len);
    }

    #[test]
    fn map_range_respects_max_size_and_pa_alignment() {
        let (mut mem, root) = FakeMem::new();
        map_range(&mut mem, root, 0, 0, 2 * GIB, RW, Size2M).unwrap();
        let got = sizes(&mem, root);
        assert_eq!(got.len(), 1024);
        assert!(got.iter().all(|&(_, _, s)| s == Size2M));

        // va 2M-aligned but pa only 4K-aligned: all 4K.
        let (mut mem, root) = FakeMem::new();
        map_range(&mut mem, root, 0x4000_0000, 0x1000, 4 * MIB, RW, Size1G).unwrap();
        assert_eq!(all(&mem, root).len(), 1024);
        assert_eq!(
            translate(&mem, root, 0x4000_0000 + 3 * MIB),
            Some((3 * MIB + 0x1000, Size4K, PteFlags::PRESENT | RW))
        );

        let (mut mem, root) = FakeMem::new();
        map_range(&mut mem, root, 0, 0, 4 * MIB, RW, Size4K).unwrap();
        assert_eq!(all(&mem, root).len(), 1024);
        map_range(&mut mem, root, 8 * MIB, 0, 0, RW, Size4K).unwrap();
        assert_eq!(all(&mem, root).len(), 1024);
    }

    #[test]
    fn map_range_rolls_back() {
        let (mut mem, root) = FakeMem::new();
        map(&mut mem, root, 0x30_0000, 0x9000, Size4K, RW).unwrap();
        let err = map_range(&mut mem, root, 0, 0, 4 * MIB, RW, Size2M);
        assert_eq!(err, Err(MapError::AlreadyMapped { va: 0x20_0000 }));
        assert_eq!(sizes(&mem, root), vec![(0x30_0000, 0x9000, Size4K)]);

        // Out of table memory half-way.
        let (mut mem, root) = FakeMem::new();
        mem.budget = 3; // PDPT, PD, one PT
        let err = map_range(&mut mem, root, 0x1f_f000, 0, 0x2000, RW, Size4K);
        assert_eq!(err, Err(MapError::OutOfMemory));
        assert!(all(&mem, root).is_empty());
    }

    #[test]
    fn walk_yields_sorted_effective_flags() {
        let (mut mem, root) = FakeMem::new();
        map(
            &mut mem,
            root,
            0xffff_8000_0000_0000,
            0,
            Size1G,
            RW | NX | PteFlags::GLOBAL,
        )
        .unwrap();
        map(
            &mut mem,
            root,
            0xffff_ffff_8020_0000,
            0x20_0000,
            Size4K,
            PteFlags::empty(),
        )
        .unwrap();
        map(&mut mem, root, 0x5000, 0x5000, Size4K, RW | PteFlags::USER).unwrap();
        map(&mut mem, root, 0x1000, 0x1000, Size4K, RW).unwrap();
        let got = all(&mem, root);
        let vas: Vec<u64> = got.iter().map(|m| m.va).collect();
        assert_eq!(
            vas,
            vec![0x1000, 0x5000, 0xffff_8000_0000_0000, 0xffff_ffff_8020_0000]
        );
        let p = PteFlags::PRESENT;
        assert_eq!(got[0].flags, p | RW);
        // USER was added to the shared intermediate entries when 0x5000 asked.
        assert_eq!(got[1].flags, p | RW | PteFlags::USER);
        assert_eq!(got[2].flags, p | RW | NX | PteFlags::GLOBAL | PteFlags::HUGE);
        assert_eq!(got[3].flags, p);
        assert_eq!(got[2].size, Size1G);
        // 0x1000 is still supervisor-only: the leaf decides.
        assert!(!translate(&mem, root, 0x1000).unwrap().2.contains(PteFlags::USER));
    }

    #[test]
    fn effective_flags_combine_levels() {
        let (mut mem, root) = FakeMem::new();
        map(&mut mem, root, 0x4000_0000, 0x1000, Size4K, RW).unwrap();
        map(&mut mem, root, 0x4000_2000, 0x2000, Size4K, RW | PteFlags::USER).unwrap();
        // Make the PDPTE read-only and NX, by hand.
        let pml4e = mem.read(root, 0);
        let pdpt = pml4e & ADDR_MASK;
        let pdpte = mem.read(pdpt, 1);
        mem.write(pdpt, 1, (pdpte & !RW.bits()) | NX.bits());
        let (_, _, f) = translate(&mem, root, 0x4000_0000).unwrap();
        assert!(!f.contains(RW), "writable leaf under a read-only PDPTE");
        assert!(f.contains(NX));
        // A leaf without USER under user tables is not user.
        assert!(!f.contains(PteFlags::USER));
        let (_, _, f) = translate(&mem, root, 0x4000_2000).unwrap();
        assert!(f.contains(PteFlags::USER) && !f.contains(RW) && f.contains(NX));
        // Walk agrees with translate.
        for m in all(&mem, root) {
            assert_eq!(translate(&mem, root, m.va).map(|t| t.2), Some(m.flags));
        }
        // A USER leaf under a supervisor PML4E is not user.
        mem.write(root, 0, pml4e & !PteFlags::USER.bits());
        assert!(
            !translate(&mem, root, 0x4000_2000)
                .unwrap()
                .2
                .contains(PteFlags::USER)
        );
    }

    #[test]
    fn find_planted_writable_executable_page() {
        let (mut mem, root) = FakeMem::new();
        // A sane image: text RX, rodata R NX, data RW NX, direct map RW NX.
        map_range(
            &mut mem,
            root,
            0xffff_ffff_8000_0000,
            0x20_0000,
            0x10_0000,
            PteFlags::empty(),
            Size2M,
        )
        .unwrap();
        map_range(
            &mut mem,
            root,
            0xffff_ffff_8010_0000,
            0x30_0000,
            0x8000,
            NX,
            Size2M,
        )
        .unwrap();
        map_range(
            &mut mem,
            root,
            0xffff_ffff_8010_8000,
            0x30_8000,
            0x8000,
            RW | NX,
            Size2M,
        )
        .unwrap();
        map_range(&mut mem, root, 0xffff_8000_0000_0000, 0, 4 * GIB, RW | NX, Size1G).unwrap();
        assert_eq!(find_writable_executable(&mem, root), (0, None));
        // A W+X page made safe by an NX intermediate entry does not count.
        map(&mut mem, root, 0x7000_0000_0000, 0x1000, Size4K, RW).unwrap();
        let pdpt = mem.read(root, index(0x7000_0000_0000, 4));
        mem.write(root, index(0x7000_0000_0000, 4), pdpt | NX.bits());
        assert_eq!(find_writable_executable(&mem, root), (0, None));
        // Plant two.
        map(&mut mem, root, 0xffff_ffff_8011_0000, 0x40_0000, Size4K, RW).unwrap();
        map(&mut mem, root, 0xffff_ffff_c000_0000, 0x4000_0000, Size1G, RW).unwrap();
        let (count, first) = find_writable_executable(&mem, root);
        assert_eq!(count, 2);
        let first = first.unwrap();
        assert_eq!(
            (first.va, first.pa, first.size),
            (0xffff_ffff_8011_0000, 0x40_0000, Size4K)
        );
        assert!(first.is_writable_executable());
    }

    #[test]
    fn unmap_pages() {
        let (mut mem, root) = FakeMem::new();
        map(&mut mem, root, 0x20_0000, 0x40_0000, Size2M, RW).unwrap();
        map(&mut mem, root, 0x1000, 0x7000, Size4K, RW).unwrap();
        map(&mut mem, root, 0x40_0000_0000, 0x4000_0000, Size1G, RW).unwrap();
        assert_eq!(unmap(&mut mem, root, 0x20_1000), Err(MapError::Misaligned));
        assert_eq!(unmap(&mut mem, root, 0x20_0000), Ok((Size2M, 0x40_0000)));
        assert_eq!(
            unmap(&mut mem, root, 0x20_0000),
            Err(MapError::NotMapped { va: 0x20_0000 })
        );
        assert_eq!(unmap(&mut mem, root, 0x1000), Ok((Size4K, 0x7000)));
        assert_eq!(
            unmap(&mut mem, root, 0x2000),
            Err(MapError::NotMapped { va: 0x2000 })
        );
        assert_eq!(unmap(&mut mem, root, 0x40_0000_0000), Ok((Size1G, 0x4000_0000)));
        assert_eq!(
            unmap(&mut mem, root, 0x1234_0000_0000),
            Err(MapError::NotMapped { va: 0x1234_0000_0000 })
        );
        assert!(all(&mem, root).is_empty());
        assert_eq!(translate(&mem, root, 0x1000), None);
        // The hole can be mapped again, at another size.
        map(&mut mem, root, 0x20_0000, 0x20_0000, Size4K, RW).unwrap();
        assert_eq!(translate(&mem, root, 0x20_0000).map(|t| t.1), Some(Size4K));
    }

    #[test]
    fn huge_flag_in_request_is_ignored_and_pat_bit_kept_out() {
        let (mut mem, root) = FakeMem::new();
        map(&mut mem, root, 0x1000, 0x1000, Size4K, RW | PteFlags::HUGE).unwrap();
        assert_eq!(
            translate(&mem, root, 0x1000),
            Some((0x1000, Size4K, PteFlags::PRESENT | RW))
        );
        // A PAT bit (12) in a 2M leaf is not part of the address.
        map(&mut mem, root, 0x20_0000, 0x20_0000, Size2M, RW).unwrap();
        let pd = mem.read(mem.read(root, 0) & ADDR_MASK, 0) & ADDR_MASK;
        let pde = mem.read(pd, 1);
        mem.write(pd, 1, pde | 1 << 12);
        assert_eq!(translate(&mem, root, 0x20_0000).map(|t| t.0), Some(0x20_0000));
        // A malformed PML4E (PS set) maps nothing and blocks mapping.
        mem.write(root, 5, 0x9000 | 0x83);
        assert_eq!(translate(&mem, root, 5 << 39), None);
        assert_eq!(
            map(&mut mem, root, 5 << 39, 0, Size4K, RW),
            Err(MapError::AlreadyMapped { va: 5 << 39 })
        );
        assert_eq!(all(&mem, root).len(), 2);
    }

    #[test]
    fn out_of_memory() {
        let (mut mem, root) = FakeMem::new();
        mem.budget = 1;
        assert_eq!(
            map(&mut mem, root, 0x1000, 0, Size4K, RW),
            Err(MapError::OutOfMemory)
        );
        assert_eq!(translate(&mem, root, 0x1000), None);
        assert!(MapError::OutOfMemory.to_string().contains("memory"));
    }
}

/// Release every page-table frame below PML4 slot `first_upper_slot`
/// (the lower half when 256): `free` gets each PDPT, PD and PT frame reached
/// from those slots, and the slots are cleared. Leaf frames are not touched;
/// they belong to whoever mapped them. Used to tear down a guest address
/// space whose upper half is shared with the hypervisor.
pub fn free_lower_tables(
    mem: &mut impl TableMemory,
    root: u64,
    first_upper_slot: usize,
    mut free: impl FnMut(u64),
) {
    let root = root & ADDR_MASK;
    for i in 0..first_upper_slot.min(ENTRIES) {
        let entry = mem.read(root, i);
        if is_usable(entry, 4) && !is_leaf(entry, 4) {
            free_subtree(mem, entry & ADDR_MASK, 3, &mut free);
        }
        mem.write(root, i, 0);
    }
}

fn free_subtree<M: TableMemory, F: FnMut(u64)>(mem: &mut M, table: u64, level: u8, free: &mut F) {
    if level > 1 {
        for i in 0..ENTRIES {
            let entry = mem.read(table, i);
            if is_usable(entry, level) && !is_leaf(entry, level) {
                free_subtree(mem, entry & ADDR_MASK, level - 1, free);
            }
        }
    }
    free(table);
}

#[cfg(test)]
mod free_tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        tables: HashMap<u64, [u64; ENTRIES]>,
        next: u64,
    }

    impl TableMemory for Fake {
        fn alloc_table(&mut self) -> Option<u64> {
            self.next += 0x1000;
            self.tables.insert(self.next, [0; ENTRIES]);
            Some(self.next)
        }
        fn read(&self, table: u64, index: usize) -> u64 {
            self.tables[&table][index]
        }
        fn write(&mut self, table: u64, index: usize, value: u64) {
            self.tables.get_mut(&table).expect("table exists")[index] = value;
        }
    }

    #[test]
    fn frees_every_lower_table_and_keeps_the_upper_half() {
        let mut mem = Fake::default();
        let root = mem.alloc_table().expect("root");
        let rw = PteFlags::WRITABLE | PteFlags::USER;
        map(&mut mem, root, 0x40_0000, 0x100_0000, PageSize::Size4K, rw).expect("map");
        map(
            &mut mem,
            root,
            0x0000_1000_0000_0000,
            0x200_0000,
            PageSize::Size4K,
            rw,
        )
        .expect("map");
        map(
            &mut mem,
            root,
            0x0000_1000_0020_0000,
            0x400_0000,
            PageSize::Size2M,
            rw,
        )
        .expect("map");
        map(
            &mut mem,
            root,
            0xffff_8000_0000_0000,
            0,
            PageSize::Size2M,
            PteFlags::WRITABLE,
        )
        .expect("map");
        let tables_before = mem.tables.len();
        let mut freed = Vec::new();
        free_lower_tables(&mut mem, root, 256, |t| freed.push(t));
        // 0x40_0000: PDPT + PD + PT; the physmap: PDPT + PD + PT (the 2 MiB page shares the PD).
        assert_eq!(freed.len(), 6);
        assert!(!freed.contains(&root));
        assert_eq!(translate(&mem, root, 0x40_0000), None);
        assert!(translate(&mem, root, 0xffff_8000_0000_0000).is_some());
        assert_eq!(tables_before, mem.tables.len());
    }
}
