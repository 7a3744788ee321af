//! `hello`: the smallest useful Oxen guest. It greets with its name, domain
//! ID and the hypervisor's ABI version, echoes `greeting=` from its command
//! line, reports its memory, allocates and frees a vector on the heap and
//! powers off. Boot tests look for its lines on the serial console.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use oxen_guest_sdk::{ShutdownReason, cmdline_value, domid, hypercall, mem, name, println};

oxen_guest_sdk::entry!(main);

/// Elements in the heap check's vector.
const VEC_LEN: u64 = 1000;

fn main() -> ShutdownReason {
    let (major, minor) = hypercall::version();
    println!(
        "hello from {} (domain {}), Oxen ABI {major}.{minor}",
        name(),
        domid()
    );
    if let Some(greeting) = cmdline_value("greeting") {
        println!("hello: greeting: {greeting}");
    }
    match hypercall::memory_info() {
        Ok(mi) => println!(
            "hello: memory: {} pages ({} KiB), max {} pages, {} page-table pages, {} frames in the pool",
            mi.tot_pages,
            mi.tot_pages * 4,
            mi.max_pages,
            mi.pt_pages,
            mem::free_frames(),
        ),
        Err(e) => println!("hello: memory_info failed: {e}"),
    }
    let v: Vec<u64> = (1..=VEC_LEN).collect();
    let sum: u64 = v.iter().sum();
    let at = v.as_ptr();
    drop(v);
    if sum != VEC_LEN * (VEC_LEN + 1) / 2 {
        println!("hello: heap: wrong sum {sum}");
        return ShutdownReason::Crash;
    }
    println!("hello: heap: allocated and freed {VEC_LEN} u64s at {at:p} (sum {sum})");
    println!("hello: goodbye");
    ShutdownReason::Poweroff
}
