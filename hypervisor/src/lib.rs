//! The Oxen hypervisor: a type-1 hypervisor for x86-64.
//!
//! Every module lives in this library. Pure logic (memory-map normalisation,
//! the frame allocator, page-table building, the command line) compiles on the
//! host and is unit-tested there; the modules that touch hardware compile only
//! for the bare-metal target (`target_os = "none"`), and `main.rs` is the thin
//! binary that links them into the bootable image.
#![cfg_attr(not(test), no_std)]

pub mod cmdline;
pub mod mm;
