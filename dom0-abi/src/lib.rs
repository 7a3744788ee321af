//! The Oxen hypercall ABI, shared by the hypervisor and every guest.
//!
//! This crate is the one definition of what crosses the guest/hypervisor
//! boundary: the version, the hypercall numbers, the status codes, and every
//! structure that either side reads from the other's memory. It has no
//! `unsafe`; the raw `syscall` wrapper lives in the guest SDK. `docs/abi.md`
//! is its reference (register table, one row per hypercall) and
//! `docs/abi-changelog.md` its history.
//!
//! **Calling convention** (x86-64, `syscall` from ring 3): `rax` holds the
//! [`Hypercall`] number, `rdi rsi rdx r10 r8 r9` the arguments. On return
//! `rax` is a result `>= 0` or a negative [`Status`]; `rcx` and `r11` are
//! clobbered (by `syscall` itself), every other register is preserved.
//!
//! **Versioning**: an incompatible change bumps [`ABI_VERSION_MAJOR`] and
//! resets the minor; a compatible addition bumps [`ABI_VERSION_MINOR`].
//! Numbers are never reused: a removed hypercall leaves a comment behind.
//! Every structure here is `#[repr(C)]` with fixed-width fields, explicit
//! padding that must be zero, byte offsets in comments, a compile-time size
//! assert, and a row in the golden layout test.
#![no_std]
#![forbid(unsafe_code)]

mod domctl;
mod event;
mod hypercall;
mod note;
mod shared;
mod status;
mod trap;

pub use domctl::*;
pub use event::*;
pub use hypercall::*;
pub use note::*;
pub use shared::*;
pub use status::*;
pub use trap::*;

/// Major ABI version: bumped by any incompatible change.
pub const ABI_VERSION_MAJOR: u16 = 1;
/// Minor ABI version: bumped by every compatible addition.
pub const ABI_VERSION_MINOR: u16 = 1;

/// The ABI version packed as `major << 16 | minor`, as [`Hypercall::Version`] returns it.
pub const fn abi_version_packed() -> u32 {
    ((ABI_VERSION_MAJOR as u32) << 16) | ABI_VERSION_MINOR as u32
}

/// Size of a guest page.
pub const PAGE_SIZE: u64 = 4096;

/// A domain ID. Domain 0 is dom0.
pub type DomId = u16;
/// "The calling domain", wherever a [`DomId`] is taken.
pub const DOMID_SELF: DomId = 0x7ff0;
/// The largest domain ID the hypervisor hands out.
pub const DOMID_MAX: DomId = 0x7fef;

/// Copy `s` into a fixed, NUL-padded name field, cutting at `N` bytes.
pub fn name_field<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// The text of a NUL-padded name field (up to the first NUL; invalid UTF-8
/// is cut at the first bad byte).
pub fn field_str(field: &[u8]) -> &str {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let bytes = &field[..end];
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_version_holds_both_halves() {
        let v = abi_version_packed();
        assert_eq!(v >> 16, u32::from(ABI_VERSION_MAJOR));
        assert_eq!(v & 0xffff, u32::from(ABI_VERSION_MINOR));
    }

    #[test]
    fn name_fields_round_trip() {
        let f: [u8; 8] = name_field("hello");
        assert_eq!(field_str(&f), "hello");
        let f: [u8; 4] = name_field("toolong");
        assert_eq!(field_str(&f), "tool");
        assert_eq!(field_str(b"ab\xffcd"), "ab");
    }
}
