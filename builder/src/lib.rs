//! The Oxen domain builder: the logic that turns a guest ELF image into a
//! runnable domain, written once and used twice, as in Xen. The hypervisor
//! runs it at boot to build dom0 (its target writes frames and page tables
//! directly); dom0 runs it to build every domU (its target issues `mmu_batch`
//! hypercalls naming the new domain's frames).
//!
//! `elf.rs` parses and validates the image (the image is untrusted: every
//! field is checked, no input panics or overflows), `abi.rs` checks the ABI
//! note against this crate's `dom0-abi` version, and `domain.rs` lays the
//! domain out (image, start_info, stack, shared info, physmap) over the
//! [`BuildTarget`] trait. The crate is `no_std`, allocation-free and has no
//! `unsafe`; the host tests in `tests/` drive it with a fake target.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod abi;
mod domain;
mod elf;

// A failed unwrap in a test is a failed assertion; the tests' casts wrap
// patterns and fuzz values on purpose, or convert small lengths they chose.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cast_possible_truncation)]
mod tests;

pub use abi::{AbiError, OUR_ABI, check_abi, check_version};
pub use domain::{
    BATCH_OPS, BuildError, BuildParams, BuildResult, BuildTarget, MAX_CMDLINE_LEN, MAX_NAME_LEN,
    PHYSMAP_MAX_PAGES, build, pages_needed,
};
pub use elf::{ElfError, Image, MAX_SEGMENTS, SegFlags, Segment};
