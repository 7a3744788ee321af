//! dom0's boot flow, over the guest SDK: report the machine and the
//! bundle, start every domain under `auto/`, then wait for them to stop and
//! check that their memory came back. The decisions are the `dom0`
//! library's (`toolstack.rs`, `watch.rs`); this file prints and waits.
//!
//! **Test mode.** With `oxen_test=dom0` on its command line (the hypervisor
//! passes it on from its own) dom0 does not idle at the end: it powers off
//! when every domain's memory came back and crashes otherwise, and the
//! hypervisor ends QEMU with that verdict. A domain that fails to start or
//! crashes is not a failure in itself: scenarios provoke both on purpose.

mod hv;

use dom0::config::PAGES_PER_MIB;
use dom0::{Config, MemoryCheck, Watch, auto_configs, foreign, start_domain};
use dom0_abi::{ABI_VERSION_MAJOR, ABI_VERSION_MINOR, CONSOLE_IO_MAX, ShutdownReason};
use oxen_bundle::{Archive, Entry};
use oxen_guest_sdk::{cmdline_value, hypercall, module, println};

use self::hv::SdkHv;

/// dom0's main: idles once its work is done, except in test mode.
pub fn main() -> ShutdownReason {
    let test_mode = cmdline_value("oxen_test") == Some("dom0");
    let (hv_major, hv_minor) = hypercall::version();
    println!("dom0: Oxen ABI {ABI_VERSION_MAJOR}.{ABI_VERSION_MINOR} (hypervisor ABI {hv_major}.{hv_minor})");
    let phys = match hypercall::physinfo() {
        Ok(phys) => phys,
        Err(status) => {
            println!("Error: cannot read the machine's physinfo: {status}");
            return finish(test_mode, false);
        }
    };
    println!(
        "dom0: {} MiB total, {} MiB free, TSC {} kHz",
        phys.total_pages / PAGES_PER_MIB,
        phys.free_pages / PAGES_PER_MIB,
        phys.tsc_khz
    );

    let Some(bytes) = module() else {
        println!("Error: the hypervisor gave dom0 no boot bundle");
        return finish(test_mode, false);
    };
    let bundle = match Archive::parse(bytes) {
        Ok(bundle) => bundle,
        Err(e) => {
            println!("Error: the boot bundle cannot be read: {e}");
            return finish(test_mode, false);
        }
    };
    for entry in bundle.entries() {
        if entry.is_dir() {
            println!("dom0: bundle: {}/ (directory)", entry.name);
        } else {
            println!("dom0: bundle: {} ({} bytes)", entry.name, entry.data.len());
        }
    }

    let configs = auto_configs(&bundle);
    if configs.is_empty() {
        println!("dom0: no domains in auto/");
        return finish(test_mode, true);
    }

    let mut hv = SdkHv::new();
    if let Err(status) = foreign::warm_up(&mut hv) {
        // Only the leak check below can suffer: it may count the scratch
        // window's page tables as missing.
        println!("Warning: cannot prepare dom0's scratch mappings: {status}");
    }
    let before_free = free_pages().unwrap_or(phys.free_pages);

    let mut watch = Watch::new();
    for entry in &configs {
        start(&mut hv, &bundle, entry, phys.tsc_khz, &mut watch);
    }

    loop {
        for event in watch.poll(&mut hv) {
            println!("{event}");
        }
        if watch.is_empty() {
            break;
        }
        block();
    }
    let restored = match free_pages() {
        Some(after_free) => {
            let check = MemoryCheck {
                before_free,
                after_free,
                preserved: watch.preserved().len(),
            };
            println!("{check}");
            check.leaked() == 0
        }
        None => {
            println!("dom0: all domains stopped");
            false
        }
    };
    finish(test_mode, restored)
}

/// The end of the boot flow: in test mode, stop with the verdict (`ok`:
/// nothing went wrong that a scenario did not ask for); otherwise idle,
/// as the `xm` shell that will run here comes in a later issue.
fn finish(test_mode: bool, ok: bool) -> ShutdownReason {
    if !test_mode {
        idle()
    }
    let (verdict, reason) = if ok {
        ("success", ShutdownReason::Poweroff)
    } else {
        ("failure", ShutdownReason::Crash)
    };
    println!(
        "dom0: oxen_test=dom0: {verdict}; shutting down ({})",
        reason.name()
    );
    reason
}

/// Parse the config in `entry` and start its domain, reporting either way.
fn start(hv: &mut SdkHv, bundle: &Archive<'_>, entry: &Entry<'_>, tsc_khz: u64, watch: &mut Watch) {
    let parsed = match Config::parse(entry.name, entry.data) {
        Ok(parsed) => parsed,
        Err(e) => {
            println!("Error: {e}");
            return;
        }
    };
    for warning in &parsed.warnings {
        println!("Warning: {warning}");
    }
    let config = parsed.config;
    match start_domain(hv, bundle, &config, tsc_khz) {
        Ok(domid) => {
            println!(
                "dom0: started '{}' as domain {domid} ({} MiB)",
                config.name, config.memory_mib
            );
            watch.add(domid, config);
        }
        Err(e) => println!("Error: cannot start '{}': {e}", config.name),
    }
}

/// The hypervisor's free frames now, reporting a failure.
fn free_pages() -> Option<u64> {
    match hypercall::physinfo() {
        Ok(phys) => Some(phys.free_pages),
        Err(status) => {
            println!("Error: cannot read the machine's physinfo: {status}");
            None
        }
    }
}

/// Sleep until something happens: a domain changed state, or console input.
fn block() {
    hypercall::sched_block();
    discard_input();
}

/// Read and drop pending console input: nothing reads it until the `xm`
/// shell lands, and unread input could keep `sched_block` from sleeping.
fn discard_input() {
    let mut buf = [0u8; 128];
    const _: () = assert!(128 <= CONSOLE_IO_MAX);
    while let Ok(n) = hypercall::console_read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// Idle for good.
fn idle() -> ! {
    loop {
        block();
    }
}
