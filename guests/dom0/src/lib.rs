//! dom0, the Oxen management domain: the logic of its toolstack, kept apart
//! from the guest binary (`main.rs`) so that the host tests it.
//!
//! `config/` reads `xm` domain configs, `hv.rs` is the one door to the
//! hypervisor (a trait the guest implements with hypercalls and the tests
//! with a fake), `foreign.rs` is the domain builder's target (writes through
//! foreign mappings in a scratch window, mappings through `mmu_batch`),
//! `toolstack.rs` creates, builds and starts a domain from a config and the
//! boot bundle, and `watch.rs` follows started domains until they stop and
//! cleans up after them.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod foreign;
pub mod hv;
pub mod toolstack;
pub mod watch;

#[cfg(test)]
mod fake;

pub use config::{Action, Config, ConfigError, Parsed, Warning};
pub use hv::Hv;
pub use toolstack::{StartError, auto_configs, start_domain};
pub use watch::{Event, MemoryCheck, Watch};
