//! dom0's boot flow, over the guest SDK: report the machine and the
//! bundle, start every domain under `auto/`, then either run the `xm`
//! shell on the console or (in test mode) wait for the domains to stop and
//! check that their memory came back. The decisions are the `dom0`
//! library's (`toolstack.rs`, `watch.rs`, `shell/`, `xm/`); this file
//! prints, reads the console and sleeps (`wake.rs`). Times come from the
//! SDK's clock (`now_ns`: system time since the hypervisor booted).
//!
//! **When the shell runs.** Always, unless dom0 is in test mode (`oxen_test=dom0`
//! on its command line, which the hypervisor passes on from its own). In
//! test mode it runs when the bundle's `auto/` folder is empty (a scenario
//! with `auto = []`) or when the bundle has an entry `etc/shell` (any
//! content), so that scenarios can drive the shell over the serial line and
//! end the run with `xm poweroff`.
//!
//! **Test mode without the shell** keeps the verdict of the first dom0:
//! it powers off when every `auto/` domain has stopped and all their memory
//! came back, and crashes otherwise; the hypervisor ends QEMU with that
//! verdict. A domain that fails to start or crashes is not a failure in
//! itself: scenarios provoke both on purpose. `xm poweroff` gives the same
//! verdict from the shell.

mod hv;
mod wake;

use dom0::config::PAGES_PER_MIB;
use dom0::watch::BundleReaper;
use dom0::{Config, MemoryCheck, Shell, Watch, Xm, auto_configs, foreign, start_domain};
use dom0_abi::{ABI_VERSION_MAJOR, ABI_VERSION_MINOR, CONSOLE_IO_MAX, ShutdownReason};
use oxen_bundle::{Archive, Entry};
use oxen_guest_sdk::{cmdline_value, hypercall, module, now_ns, println};

use self::hv::SdkHv;
use self::wake::Waker;

/// The bundle entry that asks for the shell in test mode.
const SHELL_MARKER: &str = "etc/shell";
/// Console reads per round at most, so that a flood of input cannot keep
/// dom0 from looking at its domains.
const READS_PER_ROUND: usize = 64;

/// dom0's main.
pub fn main() -> ShutdownReason {
    let test_mode = cmdline_value("oxen_test") == Some("dom0");
    let (hv_major, hv_minor) = hypercall::version();
    println!("dom0: Oxen ABI {ABI_VERSION_MAJOR}.{ABI_VERSION_MINOR} (hypervisor ABI {hv_major}.{hv_minor})");
    let phys = match hypercall::physinfo() {
        Ok(phys) => Some(phys),
        Err(status) => {
            println!("Error: cannot read the machine's physinfo: {status}");
            None
        }
    };
    if let Some(phys) = &phys {
        println!(
            "dom0: {} MiB total, {} MiB free, TSC {} kHz",
            phys.total_pages / PAGES_PER_MIB,
            phys.free_pages / PAGES_PER_MIB,
            phys.tsc_khz
        );
    }
    let tsc_khz = phys.map_or(oxen_guest_sdk::start_info().tsc_khz, |p| p.tsc_khz);

    let bundle = match module() {
        None => {
            println!("Error: the hypervisor gave dom0 no boot bundle");
            None
        }
        Some(bytes) => match Archive::parse(bytes) {
            Ok(bundle) => Some(bundle),
            Err(e) => {
                println!("Error: the boot bundle cannot be read: {e}");
                None
            }
        },
    };
    if test_mode && (phys.is_none() || bundle.is_none()) {
        return verdict(test_mode, false);
    }
    if let Some(bundle) = &bundle {
        for entry in bundle.entries() {
            if entry.is_dir() {
                println!("dom0: bundle: {}/ (directory)", entry.name);
            } else {
                println!("dom0: bundle: {} ({} bytes)", entry.name, entry.data.len());
            }
        }
    }

    let mut hv = SdkHv::new();
    if let Err(status) = foreign::warm_up(&mut hv) {
        // Only the memory check can suffer: it may count the scratch
        // window's page tables as missing.
        println!("Warning: cannot prepare dom0's scratch mappings: {status}");
    }
    let (mut waker, no_events) = Waker::new();
    if let Some(status) = no_events {
        println!("dom0: no event channels ({status}); waiting with sched_block");
    }
    let before_free = free_pages();

    let configs = bundle.as_ref().map(auto_configs).unwrap_or_default();
    let shell =
        !test_mode || configs.is_empty() || bundle.as_ref().is_some_and(|b| b.find(SHELL_MARKER).is_some());
    if configs.is_empty() {
        println!("dom0: no domains in auto/");
    }
    let mut watch = Watch::new();
    if let Some(bundle) = &bundle {
        for entry in &configs {
            start(&mut hv, bundle, entry, tsc_khz, &mut watch, now_ns());
        }
    }

    if shell {
        let mut xm = Xm::new(bundle, tsc_khz, watch);
        xm.boot_free_pages = before_free;
        xm.test_mode = test_mode;
        xm.auto_pending = !xm.watch.is_empty();
        return run_shell(&mut hv, &mut waker, xm);
    }

    loop {
        waker.arm();
        discard_input();
        let mut reaper = BundleReaper {
            bundle,
            tsc_khz,
            now_ns: now_ns(),
        };
        for event in watch.poll(&mut hv, &mut reaper) {
            println!("{event}");
        }
        if watch.is_empty() {
            break;
        }
        waker.wait(None);
    }
    let restored = match (before_free, free_pages()) {
        (Some(before_free), Some(after_free)) => {
            let check = MemoryCheck {
                before_free,
                after_free,
                preserved: watch.preserved().len(),
            };
            println!("{check}");
            check.leaked() == 0
        }
        _ => {
            println!("dom0: all domains stopped");
            false
        }
    };
    verdict(test_mode, restored)
}

/// The `xm` shell on the console, until `xm poweroff`.
fn run_shell(hv: &mut SdkHv, waker: &mut Waker, xm: Xm<'_>) -> ShutdownReason {
    let mut shell = Shell::new(xm);
    shell.start();
    flush(&mut shell);
    let mut buf = [0u8; 256];
    const _: () = assert!(256 <= CONSOLE_IO_MAX);
    loop {
        waker.arm();
        for _ in 0..READS_PER_ROUND {
            let n = match hypercall::console_read(&mut buf) {
                Ok(n) if n > 0 => n.min(buf.len()),
                _ => break,
            };
            // A line runs once its echo is out, so that what the command
            // makes the hypervisor print comes after it.
            let mut rest = &buf[..n];
            while !rest.is_empty() && shell.finished().is_none() {
                let used = shell.input(hv, rest, now_ns());
                flush(&mut shell);
                shell.run_pending(hv, now_ns());
                flush(&mut shell);
                rest = &rest[used.min(rest.len())..];
            }
            if shell.finished().is_some() {
                break;
            }
        }
        shell.tick(hv, now_ns());
        flush(&mut shell);
        if let Some(reason) = shell.finished() {
            return reason;
        }
        waker.wait(shell.timeout_ns());
    }
}

/// Write what the shell has to show.
fn flush(shell: &mut Shell<'_>) {
    let text = shell.take_output();
    if !text.is_empty() {
        // Nowhere to report a failing console.
        let _ = hypercall::console_write(text.as_bytes());
    }
}

/// The end of test mode without the shell: stop with the verdict (`ok`:
/// nothing went wrong that a scenario did not ask for). Outside test mode
/// dom0 only gets here when it cannot run at all; it idles.
fn verdict(test_mode: bool, ok: bool) -> ShutdownReason {
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
fn start(
    hv: &mut SdkHv,
    bundle: &Archive<'_>,
    entry: &Entry<'_>,
    tsc_khz: u64,
    watch: &mut Watch,
    now_ns: u64,
) {
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
            watch.add(domid, config, now_ns);
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

/// Read and drop pending console input (test mode without the shell):
/// unread input would keep waking dom0.
fn discard_input() {
    let mut buf = [0u8; 128];
    const _: () = assert!(128 <= CONSOLE_IO_MAX);
    for _ in 0..READS_PER_ROUND {
        match hypercall::console_read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Idle for good.
fn idle() -> ! {
    loop {
        hypercall::sched_block();
        discard_input();
    }
}
