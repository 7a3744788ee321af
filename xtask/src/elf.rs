//! Just enough ELF for the boot bundle's test images: find the Oxen ABI note
//! of a guest image (name `Oxen\0`, type 1, descriptor `major: u16 LE, minor:
//! u16 LE`, see `dom0_abi::NOTE_NAME`) and patch its major version, over plain
//! bytes. Only 64-bit little-endian images are accepted, the only kind the
//! guest SDK makes.
//!
//! The note is looked for in every `PT_NOTE` segment and every `SHT_NOTE`
//! section (the SDK puts it in `.note.oxen`, inside a `PT_NOTE` segment, so both
//! usually name the same bytes); each note found is patched once.

use dom0_abi::{NOTE_ABI_DESC_SIZE, NOTE_NAME, NOTE_TYPE_ABI_VERSION};

use crate::error::{Context, Result, error};

/// `p_type` of a note segment.
const PT_NOTE: u32 = 4;
/// `sh_type` of a note section.
const SHT_NOTE: u32 = 7;

/// Reads a little-endian integer of `N` bytes at `at`.
fn read<const N: usize>(bytes: &[u8], at: usize, what: &str) -> Result<u64> {
    let field: [u8; N] = at
        .checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("truncated ELF: {what} at offset {at:#x} lies past the end"))?;
    let mut value = [0u8; 8];
    value[..N].copy_from_slice(&field);
    Ok(u64::from_le_bytes(value))
}

fn u16_at(bytes: &[u8], at: usize, what: &str) -> Result<usize> {
    to_usize(read::<2>(bytes, at, what)?)
}

fn u32_at(bytes: &[u8], at: usize, what: &str) -> Result<u64> {
    read::<4>(bytes, at, what)
}

fn u64_at(bytes: &[u8], at: usize, what: &str) -> Result<usize> {
    to_usize(read::<8>(bytes, at, what)?)
}

fn to_usize(value: u64) -> Result<usize> {
    usize::try_from(value).context("ELF offset does not fit in usize")
}

/// A file range `[offset, offset + size)` that holds notes, and their alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NoteArea {
    offset: usize,
    size: usize,
    align: usize,
}

/// Entry `index` of a table of `entsize`-byte entries at `offset`, at least
/// `min_size` bytes long.
fn table_entry<'a>(
    elf: &'a [u8],
    offset: usize,
    index: usize,
    entsize: usize,
    min_size: usize,
    what: &str,
) -> Result<&'a [u8]> {
    if entsize < min_size {
        return Err(error(format!("bad ELF {what} size {entsize}")));
    }
    index
        .checked_mul(entsize)
        .and_then(|at| at.checked_add(offset))
        .and_then(|at| elf.get(at..at.checked_add(entsize)?))
        .with_context(|| format!("truncated ELF: {what} {index} lies past the end"))
}

/// The note segments and note sections of a 64-bit little-endian ELF image.
fn note_areas(elf: &[u8]) -> Result<Vec<NoteArea>> {
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err(error("not an ELF image (bad magic)"));
    }
    if elf.get(4..6) != Some(&[2, 1]) {
        return Err(error("not a 64-bit little-endian ELF image"));
    }
    // Notes are 4-byte aligned, or 8-byte aligned in an area aligned to 8.
    let note_align = |align: usize| if align == 8 { 8 } else { 4 };
    let mut areas = Vec::new();
    let phoff = u64_at(elf, 0x20, "e_phoff")?;
    let phentsize = u16_at(elf, 0x36, "e_phentsize")?;
    let phnum = u16_at(elf, 0x38, "e_phnum")?;
    for index in 0..phnum {
        let ph = table_entry(elf, phoff, index, phentsize, 56, "program header")?;
        if u32_at(ph, 0, "p_type")? == u64::from(PT_NOTE) {
            areas.push(NoteArea {
                offset: u64_at(ph, 0x08, "p_offset")?,
                size: u64_at(ph, 0x20, "p_filesz")?,
                align: note_align(u64_at(ph, 0x30, "p_align")?),
            });
        }
    }
    let shoff = u64_at(elf, 0x28, "e_shoff")?;
    let shentsize = u16_at(elf, 0x3a, "e_shentsize")?;
    let shnum = if shoff == 0 {
        0
    } else {
        u16_at(elf, 0x3c, "e_shnum")?
    };
    for index in 0..shnum {
        let sh = table_entry(elf, shoff, index, shentsize, 64, "section header")?;
        if u32_at(sh, 0x04, "sh_type")? == u64::from(SHT_NOTE) {
            areas.push(NoteArea {
                offset: u64_at(sh, 0x18, "sh_offset")?,
                size: u64_at(sh, 0x20, "sh_size")?,
                align: note_align(u64_at(sh, 0x30, "sh_addralign")?),
            });
        }
    }
    Ok(areas)
}

/// One note: its name (with the NUL), type, and where its descriptor lies in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Note {
    name: Vec<u8>,
    kind: u32,
    desc_offset: usize,
    desc_len: usize,
}

/// The notes of one area.
fn notes_in(elf: &[u8], area: NoteArea) -> Result<Vec<Note>> {
    let end = area
        .offset
        .checked_add(area.size)
        .filter(|&end| end <= elf.len())
        .with_context(|| {
            format!(
                "truncated ELF: notes at {:#x}+{:#x} lie past the end ({:#x} bytes)",
                area.offset,
                area.size,
                elf.len()
            )
        })?;
    let pad = |n: usize| n.checked_next_multiple_of(area.align).context("bad note size");
    let mut notes = Vec::new();
    let mut at = area.offset;
    while end - at >= 12 {
        let namesz = to_usize(u32_at(elf, at, "n_namesz")?)?;
        let descsz = to_usize(u32_at(elf, at + 4, "n_descsz")?)?;
        let kind = u32::try_from(u32_at(elf, at + 8, "n_type")?).context("bad note type")?;
        let name_offset = at + 12;
        let desc_offset = name_offset.checked_add(pad(namesz)?).context("bad note size")?;
        let next = desc_offset.checked_add(pad(descsz)?).context("bad note size")?;
        if desc_offset + descsz > end {
            return Err(error(format!("malformed note at offset {at:#x}")));
        }
        notes.push(Note {
            name: elf[name_offset..name_offset + namesz].to_vec(),
            kind,
            desc_offset,
            desc_len: descsz,
        });
        at = next.min(end);
    }
    Ok(notes)
}

/// File offsets of the descriptors of every Oxen ABI note in `elf`, each once.
pub fn abi_note_descs(elf: &[u8]) -> Result<Vec<usize>> {
    let mut offsets = Vec::new();
    for area in note_areas(elf)? {
        for note in notes_in(elf, area)? {
            if note.name == NOTE_NAME && note.kind == NOTE_TYPE_ABI_VERSION {
                if note.desc_len != NOTE_ABI_DESC_SIZE as usize {
                    return Err(error(format!(
                        "the Oxen ABI note at offset {:#x} has a {}-byte descriptor, not {NOTE_ABI_DESC_SIZE}",
                        note.desc_offset, note.desc_len
                    )));
                }
                offsets.push(note.desc_offset);
            }
        }
    }
    offsets.sort_unstable();
    offsets.dedup();
    if offsets.is_empty() {
        return Err(error(
            "no Oxen ABI note (name \"Oxen\", type 1) in a PT_NOTE segment or note section",
        ));
    }
    Ok(offsets)
}

/// The ABI version `(major, minor)` that `elf`'s note states. Several notes
/// must agree.
pub fn abi_version(elf: &[u8]) -> Result<(u16, u16)> {
    let mut version = None;
    for at in abi_note_descs(elf)? {
        let major = u16::from_le_bytes([elf[at], elf[at + 1]]);
        let minor = u16::from_le_bytes([elf[at + 2], elf[at + 3]]);
        if version.is_some_and(|v| v != (major, minor)) {
            return Err(error("the image's Oxen ABI notes disagree"));
        }
        version = Some((major, minor));
    }
    version.context("no Oxen ABI note")
}

/// A copy of `elf` whose Oxen ABI note(s) state major version `major`; the
/// minor and every other byte are unchanged.
pub fn patch_abi_major(elf: &[u8], major: u16) -> Result<Vec<u8>> {
    let mut copy = elf.to_vec();
    for at in abi_note_descs(elf)? {
        copy[at..at + 2].copy_from_slice(&major.to_le_bytes());
    }
    Ok(copy)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Appends a note (4-byte aligned) to `out`.
    fn note(out: &mut Vec<u8>, name: &[u8], kind: u32, desc: &[u8]) {
        for v in [name.len(), desc.len()] {
            out.extend_from_slice(&u32::try_from(v).expect("small").to_le_bytes());
        }
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(name);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(desc);
        out.resize(out.len().next_multiple_of(4), 0);
    }

    /// A synthetic 64-bit ELF executable: a header, one PT_LOAD and one
    /// PT_NOTE program header, a GNU build-id note then the Oxen ABI note
    /// stating `major.minor`, and a code-like tail; with `sections`, a
    /// section table with one SHT_NOTE section over the same notes.
    pub fn synthetic_elf(major: u16, minor: u16, sections: bool) -> Vec<u8> {
        const PHOFF: usize = 64;
        const NOTES: usize = PHOFF + 2 * 56;
        let mut notes = Vec::new();
        note(&mut notes, b"GNU\0", 3, &[0xab; 20]);
        let mut desc = major.to_le_bytes().to_vec();
        desc.extend_from_slice(&minor.to_le_bytes());
        note(&mut notes, NOTE_NAME, NOTE_TYPE_ABI_VERSION, &desc);
        let mut elf = vec![0u8; NOTES];
        elf.extend_from_slice(&notes);
        elf.extend_from_slice(&[0x90; 100]);
        let shoff = elf.len();
        let q = |v: usize| u64::try_from(v).expect("small").to_le_bytes();
        let put = |elf: &mut Vec<u8>, at: usize, bytes: &[u8]| {
            elf[at..at + bytes.len()].copy_from_slice(bytes);
        };
        put(&mut elf, 0, &[0x7f, b'E', b'L', b'F', 2, 1, 1]);
        put(&mut elf, 16, &[2, 0, 0x3e, 0, 1, 0, 0, 0]); // ET_EXEC, EM_X86_64, EV_CURRENT
        put(&mut elf, 0x20, &q(PHOFF));
        put(&mut elf, 0x34, &[64, 0, 56, 0, 2, 0]); // ehsize, phentsize, phnum
        // PT_LOAD of the whole file, then PT_NOTE of the notes.
        let len = elf.len();
        let mut ph = vec![1, 0, 0, 0, 5, 0, 0, 0];
        for v in [0, 0x40_0000, 0x40_0000, len, len, 0x1000] {
            ph.extend_from_slice(&q(v));
        }
        ph.extend_from_slice(&[4, 0, 0, 0, 4, 0, 0, 0]);
        let at = 0x40_0000 + NOTES;
        for v in [NOTES, at, at, notes.len(), notes.len(), 4] {
            ph.extend_from_slice(&q(v));
        }
        put(&mut elf, PHOFF, &ph);
        if sections {
            put(&mut elf, 0x28, &q(shoff));
            put(&mut elf, 0x3a, &[64, 0, 2, 0]); // shentsize, shnum
            elf.extend_from_slice(&[0; 64]); // the null section
            let mut sh = vec![1, 0, 0, 0, 7, 0, 0, 0]; // sh_name, SHT_NOTE
            for v in [2, at, NOTES, notes.len(), 0, 4, 0] {
                sh.extend_from_slice(&q(v));
            }
            // sh_link and sh_info are two u32s: the 0 above stands for both.
            elf.extend_from_slice(&sh);
        }
        elf
    }

    #[test]
    fn finds_the_abi_note_after_another_note() -> Result<()> {
        let elf = synthetic_elf(1, 0, false);
        let descs = abi_note_descs(&elf)?;
        // GNU note: 12 + 4 + 20 bytes; Oxen note: 12 + 8 (name padded).
        assert_eq!(descs, [64 + 2 * 56 + 36 + 20]);
        assert_eq!(abi_version(&elf)?, (1, 0));
        assert_eq!(abi_version(&synthetic_elf(3, 7, false))?, (3, 7));
        Ok(())
    }

    #[test]
    fn patch_changes_only_the_major() -> Result<()> {
        for sections in [false, true] {
            let elf = synthetic_elf(1, 5, sections);
            assert_eq!(
                abi_note_descs(&elf)?.len(),
                1,
                "segment and section share the note"
            );
            let patched = patch_abi_major(&elf, 2)?;
            assert_eq!(patched.len(), elf.len());
            let diffs: Vec<usize> = (0..elf.len()).filter(|&i| elf[i] != patched[i]).collect();
            assert_eq!(diffs, [abi_note_descs(&elf)?[0]]);
            assert_eq!(abi_version(&patched)?, (2, 5));
        }
        Ok(())
    }

    #[test]
    fn the_note_is_found_through_sections_alone() -> Result<()> {
        let mut elf = synthetic_elf(1, 0, true);
        // Turn the PT_NOTE into PT_NULL: only the section is left.
        elf[64 + 56] = 0;
        assert_eq!(abi_version(&patch_abi_major(&elf, 9)?)?, (9, 0));
        Ok(())
    }

    fn rejected(elf: &[u8]) -> String {
        match patch_abi_major(elf, 2) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_images_are_refused() {
        let elf = synthetic_elf(1, 0, false);
        assert!(rejected(b"MZ\x90\0").contains("not an ELF"));
        let mut elf32 = elf.clone();
        elf32[4] = 1;
        assert!(rejected(&elf32).contains("64-bit"));
        // Cut inside the notes, as the bundle's truncated.elf would be.
        assert!(rejected(&elf[..200]).contains("truncated ELF"));
        assert!(rejected(&elf[..0x30]).contains("truncated ELF"));
        let mut no_note = elf.clone();
        let name = find(&no_note, b"Oxen\0");
        no_note[name] = b'X';
        assert!(rejected(&no_note).contains("no Oxen ABI note"));
        let mut wrong_type = elf.clone();
        wrong_type[name - 4] = 2;
        assert!(rejected(&wrong_type).contains("no Oxen ABI note"));
        let mut huge = elf;
        huge[name - 8] = 0xff; // descsz
        assert!(rejected(&huge).contains("malformed note"));
    }

    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .expect("present")
    }
}
