//! dom0's kernel: the privileged guest the hypervisor builds at boot from
//! the boot bundle. It reports the machine, starts the domains whose configs
//! sit under `auto/` in the bundle, acts on their `on_*` settings when they
//! stop, and runs the `xm` shell on the console (in test mode only when
//! asked for: see `guest/mod.rs`).
//!
//! The logic lives in the `dom0` library (host-tested); `guest/` is the thin
//! layer over the guest SDK: the boot flow and the console loop
//! (`guest/mod.rs`), the hypercall implementation of `dom0::Hv`
//! (`guest/hv.rs`) and sleeping on event channels (`guest/wake.rs`). On the host the
//! binary is an empty stub, so that `cargo build --workspace` works.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod guest;

#[cfg(target_os = "none")]
oxen_guest_sdk::entry!(guest::main);

/// Host stand-in: dom0 only runs under Oxen.
#[cfg(not(target_os = "none"))]
fn main() {}
