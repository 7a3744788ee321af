//! The Oxen guest SDK: the runtime every ring-3 PV guest image links with.
//!
//! A guest is a `no_std`, `no_main` binary for `x86_64-unknown-none` that
//! names its main function with [`entry!`] and links with `guest.ld`:
//!
//! ```text
//! #![cfg_attr(target_os = "none", no_std)]
//! #![no_main]
//! use oxen_guest_sdk::{println, ShutdownReason};
//! oxen_guest_sdk::entry!(main);
//! fn main() -> ShutdownReason {
//!     println!("hello from {}", oxen_guest_sdk::name());
//!     ShutdownReason::Poweroff
//! }
//! ```
//!
//! What happens at entry (`rt.rs`): the builder enters `_start` with `rsp` at
//! [`GUEST_STACK_TOP`](dom0_abi::GUEST_STACK_TOP) and `rdi` pointing at the
//! [`StartInfo`]; the SDK checks its magic and ABI major (a mismatch prints a
//! message and shuts down with `Crash`), keeps a copy ([`start_info`]), puts
//! the heap and the frame pool over the free frames ([`mem`]), calls the
//! guest's main and shuts down with the reason it returns. Just before main
//! it binds `VIRQ_CONTROL`, so that a toolstack's shutdown request ends the
//! guest with the reason asked for ([`event::on_control`] changes that); an
//! ABI 1.0 hypervisor has no event channels and the step is skipped.
//!
//! The modules: [`hypercall`] (one safe wrapper per hypercall over the raw
//! `syscall`), `console` (the [`print!`] / [`println!`] line buffer), [`mem`]
//! (physmap addresses and the frame pool), [`traps`] (exception handlers
//! behind an assembly trampoline), [`probe`] (fault probes for test guests),
//! [`event`] (event channels: the upcall, handlers, waits with timeouts,
//! `VIRQ_CONTROL`) and [`time`] (system time from the shared-info time
//! record, sleeping on `VIRQ_TIMER`, the wall clock).
//!
//! The library also builds on the host, where only the pure logic is used (by
//! unit tests): the runtime proper is compiled for `target_os = "none"` only.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod console;
pub mod event;
#[cfg(target_os = "none")]
mod heap;
pub mod hypercall;
mod info;
pub mod mem;
pub mod probe;
#[cfg(target_os = "none")]
mod rt;
pub mod time;
pub mod traps;

pub use dom0_abi;
pub use dom0_abi::{DomId, MemoryInfo, ShutdownReason, StartInfo, Status, TrapFrame};
pub use info::{cmdline, cmdline_value, domid, module, name, start_info};
pub use time::{now_ns, sleep_ms, sleep_ns, wallclock};

#[doc(hidden)]
pub use console::_print;

/// Print to the Oxen console, line-buffered: one `console_write` per line
/// (or per 256 bytes when a line is longer).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::_print(::core::format_args!($($arg)*))
    };
}

/// Print a line to the Oxen console (see [`print!`]).
#[macro_export]
macro_rules! println {
    () => {
        $crate::print!("\n")
    };
    ($($arg:tt)*) => {
        $crate::_print(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}

/// Names the guest's main function: `oxen_guest_sdk::entry!(main);` with
/// `fn main() -> ShutdownReason`. The SDK calls it once the runtime is up
/// and shuts the domain down with the reason it returns.
///
/// Use it at the crate root of a `#![no_main]` binary. On the host (where a
/// guest binary only needs to build, for `cargo build --workspace` and
/// clippy) it also defines a C `main` that says the image is for Oxen and
/// exits with status 1.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The guest's main, called by the SDK runtime (`sdk_start`).
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "Rust" fn __oxen_guest_main() -> $crate::ShutdownReason {
            let main: fn() -> $crate::ShutdownReason = $main;
            main()
        }

        #[cfg(not(target_os = "none"))]
        const _: () = {
            /// Host stand-in: guest images only run under Oxen.
            #[unsafe(no_mangle)]
            extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
                1
            }
        };
    };
}
