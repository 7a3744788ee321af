//! The Oxen hypercall ABI shared by the hypervisor and every guest.
//!
//! This crate is the one definition of what crosses the guest/hypervisor
//! boundary. It starts small (the version and the status codes) and grows with
//! the PV domains issue; `docs/abi.md` is its reference and changelog.
#![no_std]
#![forbid(unsafe_code)]

/// Major ABI version: bumped by any incompatible change.
pub const ABI_VERSION_MAJOR: u16 = 0;
/// Minor ABI version: bumped by every compatible addition.
pub const ABI_VERSION_MINOR: u16 = 1;

/// The ABI version packed as `major << 16 | minor`, as the `version` hypercall returns it.
pub const fn abi_version_packed() -> u32 {
    ((ABI_VERSION_MAJOR as u32) << 16) | ABI_VERSION_MINOR as u32
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
}
