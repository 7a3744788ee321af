//! A validating ELF64 parser over a byte slice: the first thing the domain
//! builder (`domain.rs`) does with a guest image, and where the ABI note that
//! `abi.rs` checks is found.
//!
//! The image is untrusted. [`Image::parse`] accepts only what the builder can
//! load safely and refuses everything else with an [`ElfError`] that says
//! what is wrong and where: a little-endian x86-64 `ET_EXEC` image, statically
//! linked (no `PT_INTERP`, no `PT_DYNAMIC`), with 1 to [`MAX_SEGMENTS`]
//! non-empty `PT_LOAD` segments that lie in `[GUEST_IMAGE_MIN,
//! GUEST_IMAGE_MAX)`, are never both writable and executable, and never share
//! a 4 KiB page with each other (the builder maps whole pages with one set of
//! rights each). A loadable segment's file bytes must be congruent with its
//! address modulo the page size (`p_vaddr % 4096 == p_offset % 4096`, the
//! ELF rule for loadable segments, which every linker follows); its address
//! itself need not be page-aligned. The entry point must lie in an
//! executable segment. `PT_NOTE` segments are scanned for the Oxen ABI note;
//! a malformed note is refused. Empty `PT_LOAD` segments (`p_memsz == 0`) and
//! other program header types (`PT_GNU_STACK`, `PT_PHDR`, …) are ignored.
//! Section headers are never read.
//!
//! Segment numbers in errors are program header indices, as `readelf -l`
//! numbers them. All arithmetic on image fields is checked.

use core::fmt;

use dom0_abi::{GUEST_IMAGE_MAX, GUEST_IMAGE_MIN, NOTE_NAME, NOTE_TYPE_ABI_VERSION, PAGE_SIZE};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// Most `PT_LOAD` segments an image may have.
pub const MAX_SEGMENTS: usize = 16;

/// `e_ident[EI_MAG0..4]`.
const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
/// `e_ident[EI_CLASS]`: 64-bit objects.
const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]`: two's complement, little-endian.
const ELFDATA2LSB: u8 = 1;
/// `e_ident[EI_VERSION]` and `e_version`: the current (only) version.
const EV_CURRENT: u32 = 1;
/// `e_type`: an executable file (fixed addresses).
const ET_EXEC: u16 = 2;
/// `e_type`: a shared object (position-independent), named in the error.
const ET_DYN: u16 = 3;
/// `e_machine`: AMD x86-64.
const EM_X86_64: u16 = 62;
/// `p_type`: a loadable segment.
const PT_LOAD: u32 = 1;
/// `p_type`: dynamic linking information.
const PT_DYNAMIC: u32 = 2;
/// `p_type`: the path of a program interpreter.
const PT_INTERP: u32 = 3;
/// `p_type`: auxiliary information (notes).
const PT_NOTE: u32 = 4;
/// `p_flags`: execute.
const PF_X: u32 = 1 << 0;
/// `p_flags`: write.
const PF_W: u32 = 1 << 1;
/// `p_flags`: read.
const PF_R: u32 = 1 << 2;
/// Size of a note header: `namesz`, `descsz`, `type`, each a `u32`.
const NOTE_HEADER_SIZE: usize = 12;
/// Byte offset of the page inside an address (`PAGE_SIZE - 1`).
const PAGE_MASK: u64 = PAGE_SIZE - 1;

/// The ELF64 file header (System V gABI, "ELF Header").
#[repr(C)]
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
struct Ehdr {
    /// Magic, class, data encoding, version, OS ABI, padding.      @0
    ident: [u8; 16],
    /// Object file type.                                           @16
    e_type: U16,
    /// Architecture.                                               @18
    machine: U16,
    /// Object file version.                                        @20
    version: U32,
    /// Entry point virtual address.                                @24
    entry: U64,
    /// Program header table file offset.                           @32
    phoff: U64,
    /// Section header table file offset (unused).                  @40
    shoff: U64,
    /// Processor flags (unused).                                   @48
    flags: U32,
    /// ELF header size (unused).                                   @52
    ehsize: U16,
    /// Size of one program header.                                 @54
    phentsize: U16,
    /// Number of program headers.                                  @56
    phnum: U16,
    /// Size of one section header (unused).                        @58
    shentsize: U16,
    /// Number of section headers (unused).                         @60
    shnum: U16,
    /// Section name string table index (unused).                   @62
    shstrndx: U16,
}
const _: () = assert!(core::mem::size_of::<Ehdr>() == 64);

/// One ELF64 program header (System V gABI, "Program Header").
#[repr(C)]
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
struct Phdr {
    /// Segment type.                                               @0
    p_type: U32,
    /// `PF_*` rights.                                              @4
    flags: U32,
    /// File offset of the segment's bytes.                         @8
    offset: U64,
    /// Virtual address.                                            @16
    vaddr: U64,
    /// Physical address (unused).                                  @24
    paddr: U64,
    /// Bytes in the file.                                          @32
    filesz: U64,
    /// Bytes in memory (the rest is zero-filled: bss).             @40
    memsz: U64,
    /// Alignment (notes: 4 or 8).                                  @48
    align: U64,
}
/// `e_phentsize` of an ELF64 image.
const PHDR_SIZE: usize = core::mem::size_of::<Phdr>();
const _: () = assert!(PHDR_SIZE == 56);

/// The rights of a loadable segment, from its `p_flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegFlags {
    /// `PF_R` (x86 cannot map a page without read access; informative).
    pub read: bool,
    /// `PF_W`.
    pub write: bool,
    /// `PF_X`.
    pub exec: bool,
}

/// One validated `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First virtual address (not necessarily page-aligned).
    pub vaddr: u64,
    /// Bytes in memory, `> 0`; `[vaddr, vaddr + mem_size)` lies in the image area.
    pub mem_size: u64,
    /// File offset of the bytes loaded at `vaddr`.
    pub file_offset: u64,
    /// Bytes taken from the file, `<= mem_size`; the rest is zero (bss).
    pub file_size: u64,
    /// The rights the segment is mapped with.
    pub flags: SegFlags,
}

impl Segment {
    /// A placeholder for the unused slots of [`Image`]'s segment array.
    const EMPTY: Segment = Segment {
        vaddr: 0,
        mem_size: 0,
        file_offset: 0,
        file_size: 0,
        flags: SegFlags {
            read: false,
            write: false,
            exec: false,
        },
    };

    /// One past the last byte in memory, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.vaddr.checked_add(self.mem_size)
    }

    /// The page-aligned address of the first page the segment touches and
    /// the number of pages it spans, or `None` on overflow (never for a
    /// segment that [`Image::parse`] returned).
    pub fn pages(&self) -> Option<(u64, u64)> {
        let first = self.vaddr & !PAGE_MASK;
        let end = self.end()?.checked_add(PAGE_MASK)? & !PAGE_MASK;
        Some((first, (end - first) / PAGE_SIZE))
    }
}

/// A parsed and validated ELF64 guest image, borrowing its bytes.
#[derive(Clone, Copy)]
pub struct Image<'a> {
    /// The whole image.
    data: &'a [u8],
    /// `e_entry`.
    entry: u64,
    /// The `PT_LOAD` segments in ascending address order; `count` are used.
    segments: [Segment; MAX_SEGMENTS],
    /// Segments in use.
    count: usize,
    /// The ABI note's (major, minor), if the image has one.
    abi: Option<(u16, u16)>,
}

impl fmt::Debug for Image<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("len", &self.data.len())
            .field("entry", &format_args!("{:#x}", self.entry))
            .field("segments", &self.segments())
            .field("abi", &self.abi)
            .finish()
    }
}

impl<'a> Image<'a> {
    /// Parse and validate `data` as a guest image (see the module docs for
    /// what is accepted).
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        let (ehdr, _) = Ehdr::ref_from_prefix(data).map_err(|_| ElfError::TooShort { len: data.len() })?;
        check_header(ehdr)?;

        let phoff = ehdr.phoff.get();
        let phnum = ehdr.phnum.get();
        let table = phdr_table(data, phoff, phnum).ok_or(ElfError::PhdrsOutsideFile {
            offset: phoff,
            count: phnum,
            len: data.len(),
        })?;

        let mut image = Image {
            data,
            entry: ehdr.entry.get(),
            segments: [Segment::EMPTY; MAX_SEGMENTS],
            count: 0,
            abi: None,
        };
        // The program header index of each stored segment, for error messages.
        let mut indices = [0usize; MAX_SEGMENTS];

        for (index, ph) in table.iter().enumerate() {
            match ph.p_type.get() {
                PT_LOAD => image.add_load(&mut indices, index, ph)?,
                PT_NOTE => image.scan_notes(index, ph)?,
                PT_INTERP => return Err(ElfError::Interpreter { index }),
                PT_DYNAMIC => return Err(ElfError::Dynamic { index }),
                _ => {}
            }
        }

        if image.count == 0 {
            return Err(ElfError::NoLoadSegments);
        }
        let entry = image.entry;
        let in_text = image
            .segments()
            .iter()
            .any(|s| s.flags.exec && entry >= s.vaddr && s.end().is_some_and(|end| entry < end));
        if !in_text {
            return Err(ElfError::EntryNotExecutable { entry });
        }
        Ok(image)
    }

    /// The entry point (inside an executable segment).
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The loadable segments, in ascending address order, none sharing a page.
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.count).unwrap_or(&[])
    }

    /// The file bytes of `s` (`file_size` of them), or an empty slice if `s`
    /// does not describe bytes of this image.
    pub fn segment_bytes(&self, s: &Segment) -> &'a [u8] {
        file_range(self.data, s.file_offset, s.file_size).unwrap_or(&[])
    }

    /// The ABI version the image's Oxen note states, as (major, minor).
    pub fn abi_version(&self) -> Option<(u16, u16)> {
        self.abi
    }

    /// Validate one `PT_LOAD` header and insert it in address order.
    fn add_load(
        &mut self,
        indices: &mut [usize; MAX_SEGMENTS],
        index: usize,
        ph: &Phdr,
    ) -> Result<(), ElfError> {
        let flags = ph.flags.get();
        let seg = Segment {
            vaddr: ph.vaddr.get(),
            mem_size: ph.memsz.get(),
            file_offset: ph.offset.get(),
            file_size: ph.filesz.get(),
            flags: SegFlags {
                read: flags & PF_R != 0,
                write: flags & PF_W != 0,
                exec: flags & PF_X != 0,
            },
        };

        if seg.file_size > seg.mem_size {
            return Err(ElfError::FileSizeExceedsMemSize {
                index,
                file_size: seg.file_size,
                mem_size: seg.mem_size,
            });
        }
        if seg.file_size > 0 && file_range(self.data, seg.file_offset, seg.file_size).is_none() {
            return Err(ElfError::SegmentOutsideFile {
                index,
                offset: seg.file_offset,
                size: seg.file_size,
                len: self.data.len(),
            });
        }
        let Some(end) = seg.end() else {
            return Err(ElfError::AddressOverflow {
                index,
                vaddr: seg.vaddr,
                mem_size: seg.mem_size,
            });
        };
        if seg.mem_size == 0 {
            // Nothing to load or map.
            return Ok(());
        }
        if seg.vaddr < GUEST_IMAGE_MIN || end > GUEST_IMAGE_MAX {
            return Err(ElfError::OutsideImageArea {
                index,
                start: seg.vaddr,
                end,
            });
        }
        if seg.flags.write && seg.flags.exec {
            return Err(ElfError::WritableAndExecutable {
                index,
                start: seg.vaddr,
                end,
            });
        }
        if seg.file_size > 0 && seg.vaddr & PAGE_MASK != seg.file_offset & PAGE_MASK {
            return Err(ElfError::Misaligned {
                index,
                vaddr: seg.vaddr,
                offset: seg.file_offset,
            });
        }
        if self.count >= MAX_SEGMENTS {
            return Err(ElfError::TooManySegments { max: MAX_SEGMENTS });
        }

        // Both ranges lie below GUEST_IMAGE_MAX, so rounding up cannot overflow.
        let first_page = seg.vaddr & !PAGE_MASK;
        let end_page = end.saturating_add(PAGE_MASK) & !PAGE_MASK;
        for (other, &other_index) in self.segments().iter().zip(indices.iter()) {
            let other_end = other.vaddr.saturating_add(other.mem_size);
            let overlap = ElfError::Overlap {
                index,
                start: seg.vaddr,
                end,
                other: other_index,
                other_start: other.vaddr,
                other_end,
            };
            if seg.vaddr < other_end && other.vaddr < end {
                return Err(overlap);
            }
            let other_first = other.vaddr & !PAGE_MASK;
            let other_end_page = other_end.saturating_add(PAGE_MASK) & !PAGE_MASK;
            if first_page < other_end_page && other_first < end_page {
                // The ranges are disjoint, so the shared page is the one
                // where the lower segment ends and the higher one starts.
                let page = seg.vaddr.max(other.vaddr) & !PAGE_MASK;
                return Err(ElfError::SharedPage {
                    index,
                    start: seg.vaddr,
                    end,
                    other: other_index,
                    other_start: other.vaddr,
                    other_end,
                    page,
                });
            }
        }

        // Insert in ascending address order (at most MAX_SEGMENTS moves).
        let mut at = self.count;
        while at > 0 {
            let prev = at - 1;
            let (Some(p), Some(pi)) = (self.segments.get(prev).copied(), indices.get(prev).copied()) else {
                break;
            };
            if p.vaddr < seg.vaddr {
                break;
            }
            if let (Some(s), Some(i)) = (self.segments.get_mut(at), indices.get_mut(at)) {
                *s = p;
                *i = pi;
            }
            at = prev;
        }
        if let (Some(s), Some(i)) = (self.segments.get_mut(at), indices.get_mut(at)) {
            *s = seg;
            *i = index;
        }
        self.count += 1;
        Ok(())
    }

    /// Scan one `PT_NOTE` segment for the Oxen ABI note.
    ///
    /// Each note is a 12-byte header (`namesz`, `descsz`, `type`), the name
    /// padded to the note alignment, then the descriptor padded the same way.
    /// The alignment is 8 when the segment says so (`p_align == 8`, as for
    /// `.note.gnu.property`) and 4 otherwise. The last note's trailing
    /// padding may be missing.
    fn scan_notes(&mut self, index: usize, ph: &Phdr) -> Result<(), ElfError> {
        let offset = ph.offset.get();
        let size = ph.filesz.get();
        let notes = file_range(self.data, offset, size).ok_or(ElfError::SegmentOutsideFile {
            index,
            offset,
            size,
            len: self.data.len(),
        })?;
        let align = if ph.align.get() == 8 { 8 } else { 4 };

        let mut pos = 0usize;
        while pos < notes.len() {
            let bad = ElfError::BadNote {
                index,
                offset: offset.saturating_add(u64::try_from(pos).unwrap_or(u64::MAX)),
            };
            let note = parse_note(notes, pos, align).ok_or(bad)?;
            if note.name == NOTE_NAME.as_slice() && note.n_type == NOTE_TYPE_ABI_VERSION {
                let &[a, b, c, d] = note.desc else {
                    return Err(ElfError::BadAbiNote {
                        index,
                        desc_size: u32::try_from(note.desc.len()).unwrap_or(u32::MAX),
                    });
                };
                if self.abi.is_some() {
                    return Err(ElfError::DuplicateAbiNote { index });
                }
                self.abi = Some((u16::from_le_bytes([a, b]), u16::from_le_bytes([c, d])));
            }
            pos = note.next;
        }
        Ok(())
    }
}

/// Check the fixed fields of the ELF header.
fn check_header(ehdr: &Ehdr) -> Result<(), ElfError> {
    let [m0, m1, m2, m3, class, encoding, ident_version, ..] = ehdr.ident;
    if [m0, m1, m2, m3] != ELF_MAGIC {
        return Err(ElfError::BadMagic {
            found: [m0, m1, m2, m3],
        });
    }
    if class != ELFCLASS64 {
        return Err(ElfError::NotElf64 { class });
    }
    if encoding != ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian { encoding });
    }
    if u32::from(ident_version) != EV_CURRENT {
        return Err(ElfError::BadVersion {
            version: u32::from(ident_version),
        });
    }
    if ehdr.version.get() != EV_CURRENT {
        return Err(ElfError::BadVersion {
            version: ehdr.version.get(),
        });
    }
    if ehdr.e_type.get() != ET_EXEC {
        return Err(ElfError::NotExecutable {
            e_type: ehdr.e_type.get(),
        });
    }
    if ehdr.machine.get() != EM_X86_64 {
        return Err(ElfError::WrongMachine {
            machine: ehdr.machine.get(),
        });
    }
    if usize::from(ehdr.phentsize.get()) != PHDR_SIZE {
        return Err(ElfError::BadPhentsize {
            size: ehdr.phentsize.get(),
        });
    }
    Ok(())
}

/// The program header table, if it lies inside `data`.
fn phdr_table(data: &[u8], phoff: u64, phnum: u16) -> Option<&[Phdr]> {
    let bytes = u64::try_from(PHDR_SIZE).ok()?.checked_mul(u64::from(phnum))?;
    let table = file_range(data, phoff, bytes)?;
    <[Phdr]>::ref_from_bytes(table).ok()
}

/// `data[offset .. offset + size]`, if it lies inside `data`.
fn file_range(data: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    data.get(start..end)
}

/// `value` rounded up to a multiple of `align` (a power of two).
fn align_up(value: usize, align: usize) -> Option<usize> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

/// One note of a note segment.
struct Note<'n> {
    /// The name, including its NUL.
    name: &'n [u8],
    /// The note type.
    n_type: u32,
    /// The descriptor.
    desc: &'n [u8],
    /// Where the next note starts (at most `notes.len()`).
    next: usize,
}

/// The note at `pos` of `notes`, or `None` if it runs past the segment.
fn parse_note(notes: &[u8], pos: usize, align: usize) -> Option<Note<'_>> {
    let header_end = pos.checked_add(NOTE_HEADER_SIZE)?;
    let header: &[u8; NOTE_HEADER_SIZE] = notes.get(pos..header_end)?.try_into().ok()?;
    let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3] = *header;
    let namesz = usize::try_from(u32::from_le_bytes([a0, a1, a2, a3])).ok()?;
    let descsz = usize::try_from(u32::from_le_bytes([b0, b1, b2, b3])).ok()?;
    let n_type = u32::from_le_bytes([c0, c1, c2, c3]);

    let name_end = header_end.checked_add(namesz)?;
    let desc_start = align_up(name_end, align)?;
    let desc_end = desc_start.checked_add(descsz)?;
    let name = notes.get(header_end..name_end)?;
    let desc = notes.get(desc_start..desc_end)?;
    let next = align_up(desc_end, align)?.min(notes.len());
    Some(Note {
        name,
        n_type,
        desc,
        next,
    })
}

/// Why [`Image::parse`] refused an image. `index` fields are program header
/// indices; address ranges are half-open `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The image is shorter than the 64-byte ELF header.
    TooShort {
        /// Bytes in the image.
        len: usize,
    },
    /// The image does not start with `\x7fELF`.
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// `EI_CLASS` is not `ELFCLASS64`.
    NotElf64 {
        /// The class found.
        class: u8,
    },
    /// `EI_DATA` is not `ELFDATA2LSB`.
    NotLittleEndian {
        /// The data encoding found.
        encoding: u8,
    },
    /// `EI_VERSION` or `e_version` is not `EV_CURRENT` (1).
    BadVersion {
        /// The version found.
        version: u32,
    },
    /// `e_type` is not `ET_EXEC`.
    NotExecutable {
        /// The type found.
        e_type: u16,
    },
    /// `e_machine` is not `EM_X86_64`.
    WrongMachine {
        /// The machine found.
        machine: u16,
    },
    /// `e_phentsize` is not 56.
    BadPhentsize {
        /// The size found.
        size: u16,
    },
    /// The program header table does not lie inside the image.
    PhdrsOutsideFile {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
        /// Bytes in the image.
        len: usize,
    },
    /// More than [`MAX_SEGMENTS`] non-empty `PT_LOAD` segments.
    TooManySegments {
        /// The limit.
        max: usize,
    },
    /// A segment's file bytes do not lie inside the image.
    SegmentOutsideFile {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        size: u64,
        /// Bytes in the image.
        len: usize,
    },
    /// A segment has more bytes in the file than in memory.
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        file_size: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// `p_vaddr + p_memsz` overflows.
    AddressOverflow {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// A segment lies (partly) outside `[GUEST_IMAGE_MIN, GUEST_IMAGE_MAX)`.
    OutsideImageArea {
        /// Program header index.
        index: usize,
        /// First address.
        start: u64,
        /// One past the last address.
        end: u64,
    },
    /// A segment is both writable and executable (W^X).
    WritableAndExecutable {
        /// Program header index.
        index: usize,
        /// First address.
        start: u64,
        /// One past the last address.
        end: u64,
    },
    /// `p_vaddr` and `p_offset` differ modulo the page size.
    Misaligned {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_offset`.
        offset: u64,
    },
    /// Two segments overlap.
    Overlap {
        /// Program header index of the later segment.
        index: usize,
        /// Its first address.
        start: u64,
        /// One past its last address.
        end: u64,
        /// Program header index of the earlier segment.
        other: usize,
        /// Its first address.
        other_start: u64,
        /// One past its last address.
        other_end: u64,
    },
    /// Two segments do not overlap but share a 4 KiB page.
    SharedPage {
        /// Program header index of the later segment.
        index: usize,
        /// Its first address.
        start: u64,
        /// One past its last address.
        end: u64,
        /// Program header index of the earlier segment.
        other: usize,
        /// Its first address.
        other_start: u64,
        /// One past its last address.
        other_end: u64,
        /// The shared page.
        page: u64,
    },
    /// The image has no non-empty `PT_LOAD` segment.
    NoLoadSegments,
    /// The entry point is not inside an executable segment.
    EntryNotExecutable {
        /// `e_entry`.
        entry: u64,
    },
    /// The image asks for a program interpreter (`PT_INTERP`).
    Interpreter {
        /// Program header index.
        index: usize,
    },
    /// The image is dynamically linked (`PT_DYNAMIC`).
    Dynamic {
        /// Program header index.
        index: usize,
    },
    /// A note runs past the end of its `PT_NOTE` segment.
    BadNote {
        /// Program header index.
        index: usize,
        /// File offset of the note.
        offset: u64,
    },
    /// The Oxen ABI note's descriptor is not 4 bytes.
    BadAbiNote {
        /// Program header index.
        index: usize,
        /// The descriptor size found.
        desc_size: u32,
    },
    /// The image has more than one Oxen ABI note.
    DuplicateAbiNote {
        /// Program header index of the segment holding the second one.
        index: usize,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ElfError::TooShort { len } => {
                write!(
                    f,
                    "truncated ELF image: the image has {len} bytes, less than the 64-byte ELF header"
                )
            }
            ElfError::BadMagic { found } => {
                write!(
                    f,
                    "not an ELF image: it starts with {found:02x?} instead of 7f 45 4c 46 (\\x7fELF)"
                )
            }
            ElfError::NotElf64 { class } => {
                write!(
                    f,
                    "not a 64-bit ELF image: EI_CLASS is {class}, expected 2 (ELFCLASS64)"
                )
            }
            ElfError::NotLittleEndian { encoding } => write!(
                f,
                "not a little-endian ELF image: EI_DATA is {encoding}, expected 1 (ELFDATA2LSB)"
            ),
            ElfError::BadVersion { version } => {
                write!(f, "unsupported ELF version {version}, expected 1 (EV_CURRENT)")
            }
            ElfError::NotExecutable { e_type } if e_type == ET_DYN => write!(
                f,
                "the image is position-independent (e_type 3, ET_DYN); link it as a static executable \
                 at a fixed address (ET_EXEC)"
            ),
            ElfError::NotExecutable { e_type } => {
                write!(
                    f,
                    "the image is not an executable: e_type is {e_type}, expected 2 (ET_EXEC)"
                )
            }
            ElfError::WrongMachine { machine } => {
                write!(
                    f,
                    "the image is not for x86-64: e_machine is {machine}, expected 62 (EM_X86_64)"
                )
            }
            ElfError::BadPhentsize { size } => {
                write!(f, "bad ELF program header size {size}, expected 56 (e_phentsize)")
            }
            ElfError::PhdrsOutsideFile { offset, count, len } => {
                // u128 cannot overflow: u64 + 16-bit * 56.
                let end = u128::from(offset) + u128::from(count) * 56;
                write!(
                    f,
                    "truncated ELF image: the program headers ({count} of 56 bytes at offset {offset:#x}) \
                     end at byte {end} but the image has {len} bytes"
                )
            }
            ElfError::TooManySegments { max } => {
                write!(f, "the image has more than {max} loadable (PT_LOAD) segments")
            }
            ElfError::SegmentOutsideFile {
                index,
                offset,
                size,
                len,
            } => {
                let end = u128::from(offset) + u128::from(size);
                write!(
                    f,
                    "truncated ELF image: segment {index} ({size} bytes at offset {offset:#x}) ends at \
                     byte {end} but the image has {len} bytes"
                )
            }
            ElfError::FileSizeExceedsMemSize {
                index,
                file_size,
                mem_size,
            } => write!(
                f,
                "segment {index} has more bytes in the file ({file_size:#x}) than in memory ({mem_size:#x})"
            ),
            ElfError::AddressOverflow {
                index,
                vaddr,
                mem_size,
            } => write!(
                f,
                "segment {index} at {vaddr:#x} with {mem_size:#x} bytes wraps around the address space"
            ),
            ElfError::OutsideImageArea { index, start, end } => write!(
                f,
                "segment {index} [{start:#x}, {end:#x}) lies outside the guest image area \
                 [{GUEST_IMAGE_MIN:#x}, {GUEST_IMAGE_MAX:#x})"
            ),
            ElfError::WritableAndExecutable { index, start, end } => write!(
                f,
                "segment {index} [{start:#x}, {end:#x}) is both writable and executable (W^X is enforced)"
            ),
            ElfError::Misaligned { index, vaddr, offset } => write!(
                f,
                "segment {index} at {vaddr:#x} has file offset {offset:#x}: address and offset must be \
                 equal modulo the 4 KiB page size"
            ),
            ElfError::Overlap {
                index,
                start,
                end,
                other,
                other_start,
                other_end,
            } => write!(
                f,
                "segment {index} [{start:#x}, {end:#x}) overlaps segment {other} \
                 [{other_start:#x}, {other_end:#x})"
            ),
            ElfError::SharedPage {
                index,
                start,
                end,
                other,
                other_start,
                other_end,
                page,
            } => write!(
                f,
                "segment {index} [{start:#x}, {end:#x}) shares the page at {page:#x} with segment {other} \
                 [{other_start:#x}, {other_end:#x}); segments must not share a 4 KiB page because each \
                 page is mapped with one set of rights"
            ),
            ElfError::NoLoadSegments => write!(f, "the image has no loadable (PT_LOAD) segment"),
            ElfError::EntryNotExecutable { entry } => {
                write!(
                    f,
                    "the entry point {entry:#x} is not inside an executable segment"
                )
            }
            ElfError::Interpreter { index } => write!(
                f,
                "segment {index} is PT_INTERP: the image asks for a dynamic loader; link it statically"
            ),
            ElfError::Dynamic { index } => write!(
                f,
                "segment {index} is PT_DYNAMIC: the image is dynamically linked; link it statically"
            ),
            ElfError::BadNote { index, offset } => write!(
                f,
                "malformed ELF note at byte {offset:#x} of segment {index}: it runs past the end of the \
                 note segment"
            ),
            ElfError::BadAbiNote { index, desc_size } => write!(
                f,
                "the Oxen ABI note in segment {index} has a {desc_size}-byte descriptor, expected 4 \
                 (major, minor)"
            ),
            ElfError::DuplicateAbiNote { index } => {
                write!(f, "the image has a second Oxen ABI note (in segment {index})")
            }
        }
    }
}

impl core::error::Error for ElfError {}
