//! `fuzz`: the hypercall fuzzer guest (`seed=S calls=N`), and with
//! `mode=canary` the domain that runs beside it and must survive. The
//! logic lives in the `fuzz` library (host-tested); `guest/` issues the
//! steps and runs the canary.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod guest;

#[cfg(target_os = "none")]
oxen_guest_sdk::entry!(guest::main);

/// Host stand-in: the fuzzer only runs under Oxen.
#[cfg(not(target_os = "none"))]
fn main() {}
