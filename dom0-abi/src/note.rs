//! The ELF note by which a guest image states the ABI it was built for. The
//! domain builder refuses an image without it, or with another major
//! version, naming both versions. The SDK emits it in section `.note.oxen`.

/// Note name (with its NUL, `namesz` = 5).
pub const NOTE_NAME: &[u8; 5] = b"Oxen\0";
/// Note type of the ABI version note; the descriptor is four bytes:
/// major (`u16` LE), minor (`u16` LE).
pub const NOTE_TYPE_ABI_VERSION: u32 = 1;
/// Descriptor size of the ABI version note.
pub const NOTE_ABI_DESC_SIZE: u32 = 4;

/// The descriptor bytes of the ABI note for this crate's version.
pub const fn abi_note_desc() -> [u8; 4] {
    let major = crate::ABI_VERSION_MAJOR.to_le_bytes();
    let minor = crate::ABI_VERSION_MINOR.to_le_bytes();
    [major[0], major[1], minor[0], minor[1]]
}
