//! The Oxen hypervisor: a type-1 hypervisor for x86-64.
//!
//! Every module lives in this library. Pure logic (memory-map normalisation,
//! the frame allocator, page-table building, the command line, the PVH boot
//! information) compiles on the host and is unit-tested there; the modules
//! that touch hardware compile only for the bare-metal target
//! (`target_os = "none"`), and `main.rs` is the thin binary that links them
//! into the bootable image. `unsafe` is denied everywhere except in `arch/`
//! and the few modules that state why they need it.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod boot;
pub mod clock;
pub mod cmdline;
#[cfg(not(target_os = "none"))]
#[path = "sched/credit.rs"]
pub mod credit;
pub mod mm;
#[cfg(not(target_os = "none"))]
#[path = "domain/p2m.rs"]
pub mod p2m;
pub mod ring;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod bundle;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod domain;
#[cfg(target_os = "none")]
pub mod event;
#[cfg(target_os = "none")]
pub mod fatal;
#[cfg(target_os = "none")]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod init;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod logger;
#[cfg(target_os = "none")]
pub mod platform;
#[cfg(target_os = "none")]
pub mod sched;
#[cfg(target_os = "none")]
pub mod time;
