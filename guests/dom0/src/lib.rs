//! dom0, the Oxen management domain: the logic of its toolstack, kept apart
//! from the guest binary (`main.rs`) so that the host tests it.
//!
//! `config/` reads `xm` domain configs, `hv.rs` is the one door to the
//! hypervisor (a trait the guest implements with hypercalls and the tests
//! with a fake), `foreign.rs` is the domain builder's target (writes through
//! foreign mappings in a scratch window, mappings through `mmu_batch`),
//! `toolstack.rs` creates, builds and starts a domain from a config and the
//! boot bundle, and `watch.rs` follows started domains until they stop and
//! acts on their `on_*` settings. `xm/` is the `xm` toolstack proper (one
//! file per group of commands, each printing what Xen's `xm` prints), and
//! `shell/` the management shell on dom0's console: the line editor, the
//! command line parser and the loop that ties them to `xm/`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

/// Append one formatted line to a `String` (writing to a `String` cannot
/// fail, so the `fmt::Result` is dropped here, once).
macro_rules! say {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

pub mod config;
pub mod foreign;
pub mod hv;
pub mod shell;
pub mod toolstack;
pub mod watch;
pub mod xm;

#[cfg(test)]
mod fake;

pub use config::{Action, Config, ConfigError, Parsed, Warning};
pub use hv::Hv;
pub use shell::Shell;
pub use toolstack::{StartError, auto_configs, start_domain};
pub use watch::{Event, MemoryCheck, Watch};
pub use xm::Xm;
