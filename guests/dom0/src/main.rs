//! dom0's kernel: the privileged guest the hypervisor builds at boot from
//! the boot bundle. It reports the machine, starts the domains whose configs
//! sit under `auto/` in the bundle, and destroys each one when it stops.
//!
//! The logic lives in the `dom0` library (host-tested); `guest/` is the thin
//! layer over the guest SDK: the boot flow (`guest/mod.rs`) and the
//! hypercall implementation of `dom0::Hv` (`guest/hv.rs`). On the host the
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
