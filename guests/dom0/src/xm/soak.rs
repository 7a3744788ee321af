//! `xm soak N [CFG]`, Oxen's own command for tests and maintenance: create
//! the domain `CFG` describes (`hello` by default) `N` times over, each time
//! through the path `xm create` takes ([`load_config`], then
//! [`create_domain`]: builder, registers, unpause), wait for it to stop by
//! itself (hello powers off) or destroy it once it has run for
//! [`RUN_LIMIT_NS`] (a guest that never stops, such as spin), and make sure
//! it has gone before the next cycle. Every [`PROGRESS_EVERY`] cycles, and
//! after the last, it prints the hypervisor's free frames; the last line
//! compares them with the count before the first cycle:
//!
//! ```text
//! soak: 1000 cycles, 57082 frames free (start 57082)
//! soak: 1000 cycles of 'hello' in 61.2 s (16.3 cycles/s): 1000 powered off
//! soak: 1000 cycles done, free frames 57082 == start 57082: restored
//! ```
//!
//! (`LEAKED k frames` instead of `restored` when frames are missing;
//! `stopped after i of N cycles` when a cycle failed or Ctrl-C ended it.)
//! `cargo xtask soak` and `tests/soak-short.toml` check that line, and the
//! heap figure in the hypervisor's `destroyed after ...` log lines.
//!
//! The shell drives a [`Soak`] from its tick (`shell/mod.rs`), one step per
//! wake-up: dom0 sleeps while the domain runs, and `VIRQ_DOM_EXC` wakes it
//! when the domain stops. The soak's domains are not in the shell's
//! [`crate::watch::Watch`]: the soak destroys them itself, whatever their
//! config's `on_*` actions say.

use alloc::string::String;

use dom0_abi::{DomId, ShutdownReason, Status};
use oxen_bundle::Archive;

use super::domain::load_config;
use super::{Fail, Next, Xm, hv_fail, tenths};
use crate::config::Config;
use crate::hv::Hv;
use crate::toolstack::{Start, create_domain};
use crate::watch::{Stop, stopped};

/// The config `xm soak N` uses when none is named.
pub const DEFAULT_CONFIG: &str = "hello";
/// A progress line every this many cycles.
pub const PROGRESS_EVERY: u32 = 1000;
/// A domain still running this long after it was started (dom0's clock)
/// is destroyed: it has started, and the soak is about creating and
/// destroying, not about what the guest does.
pub const RUN_LIMIT_NS: u64 = 1_000_000_000;
/// How long dom0 sleeps at most while a soak domain runs (`VIRQ_DOM_EXC`
/// usually wakes it sooner).
pub const POLL_NS: u64 = 100_000_000;

/// The domain of the cycle under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Current {
    /// Its ID.
    domid: DomId,
    /// dom0's clock when it was started.
    started_ns: u64,
}

/// How the cycles' domains ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Shut down with `Poweroff`.
    powered_off: u32,
    /// Shut down with `Reboot`.
    rebooted: u32,
    /// Crashed, or shut down with `Crash` or an unknown reason.
    crashed: u32,
    /// Still running after [`RUN_LIMIT_NS`]: destroyed.
    destroyed_running: u32,
    /// Gone before the soak looked (someone else destroyed it).
    vanished: u32,
}

/// How a cycle's domain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// It stopped by itself.
    Stopped(Stop),
    /// It ran past the limit.
    Running,
    /// It no longer exists.
    Gone,
}

impl Tally {
    /// Count one ending.
    fn count(&mut self, ended: Ended) {
        let counter = match ended {
            Ended::Stopped(Stop::Shutdown(ShutdownReason::Poweroff)) => &mut self.powered_off,
            Ended::Stopped(Stop::Shutdown(ShutdownReason::Reboot)) => &mut self.rebooted,
            Ended::Stopped(
                Stop::Shutdown(ShutdownReason::Crash) | Stop::UnknownReason(_) | Stop::Crashed,
            ) => &mut self.crashed,
            Ended::Running => &mut self.destroyed_running,
            Ended::Gone => &mut self.vanished,
        };
        *counter = counter.saturating_add(1);
    }

    /// `1000 powered off, 2 crashed` (the counts that are not 0).
    fn describe(&self) -> String {
        let parts = [
            (self.powered_off, "powered off"),
            (self.rebooted, "rebooted"),
            (self.crashed, "crashed"),
            (self.destroyed_running, "destroyed while running"),
            (self.vanished, "gone before the soak destroyed them"),
        ];
        let mut out = String::new();
        for (n, what) in parts.iter().filter(|(n, _)| *n > 0) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&alloc::format!("{n} {what}"));
        }
        if out.is_empty() {
            out.push_str("no domain ran");
        }
        out
    }
}

/// An `xm soak` under way.
#[derive(Debug)]
pub struct Soak {
    /// The config every cycle starts.
    config: Config,
    /// Cycles asked for.
    cycles: u32,
    /// Cycles finished (the domain destroyed and gone).
    done: u32,
    /// The hypervisor's free frames before the first cycle.
    start_free: u64,
    /// dom0's clock when the soak started.
    started_ns: u64,
    /// The domain of the cycle under way.
    current: Option<Current>,
    /// How the domains ended.
    tally: Tally,
}

/// `xm soak N [CFG]`: read the config and the free frames, then let the
/// shell drive the cycles ([`Next::Soak`]).
pub fn start<H: Hv>(
    xm: &Xm<'_>,
    hv: &mut H,
    cycles: u32,
    name: &str,
    now_ns: u64,
    out: &mut String,
) -> Result<Next, Fail> {
    let (_, config) = load_config(xm, name, out)?;
    let start_free = hv
        .sysctl_physinfo()
        .map_err(|s| hv_fail("Reading the machine's physinfo", s))?
        .free_pages;
    say!(
        out,
        "soak: {cycles} cycles of '{}' ({} MiB each), {start_free} frames free at the start; Ctrl-C stops",
        config.name,
        config.memory_mib
    );
    Ok(Next::Soak(Soak {
        config,
        cycles,
        done: 0,
        start_free,
        started_ns: now_ns,
        current: None,
        tally: Tally::default(),
    }))
}

impl Soak {
    /// How long dom0 may sleep before the next [`Soak::step`].
    pub fn timeout_ns(&self) -> u64 {
        POLL_NS
    }

    /// Move on: finish the cycle under way if its domain stopped (or ran
    /// past [`RUN_LIMIT_NS`]), then start the next one. True once the soak
    /// is over (its last lines are in `out`).
    pub fn step<H: Hv>(
        &mut self,
        hv: &mut H,
        bundle: Option<&Archive<'_>>,
        tsc_khz: u64,
        now_ns: u64,
        out: &mut String,
    ) -> bool {
        if let Some(current) = self.current {
            let ended = match stopped(hv, current.domid) {
                Ok(None) if now_ns.saturating_sub(current.started_ns) < RUN_LIMIT_NS => return false,
                Ok(None) => Ended::Running,
                Ok(Some(stop)) => Ended::Stopped(stop),
                Err(Status::ESRCH) => Ended::Gone,
                Err(status) => {
                    return self.fail(
                        hv,
                        now_ns,
                        alloc::format!("cannot get the state of domain {}: {status}", current.domid),
                        out,
                    );
                }
            };
            if let Err(why) = destroy(hv, current.domid, ended) {
                return self.fail(hv, now_ns, why, out);
            }
            self.current = None;
            self.tally.count(ended);
            self.done = self.done.saturating_add(1);
            if self.done.is_multiple_of(PROGRESS_EVERY) || self.done == self.cycles {
                match hv.sysctl_physinfo() {
                    Ok(phys) => say!(
                        out,
                        "soak: {} cycles, {} frames free (start {})",
                        self.done,
                        phys.free_pages,
                        self.start_free
                    ),
                    Err(s) => say!(out, "Error: soak: cannot read the machine's physinfo: {s}"),
                }
            }
        }
        if self.done >= self.cycles {
            self.end(hv, now_ns, out);
            return true;
        }
        let Some(bundle) = bundle else {
            return self.fail(hv, now_ns, "dom0 has no boot bundle".into(), out);
        };
        match create_domain(hv, bundle, &self.config, tsc_khz, Start::Running) {
            Ok(domid) => {
                self.current = Some(Current {
                    domid,
                    started_ns: now_ns,
                });
                false
            }
            Err(e) => self.fail(
                hv,
                now_ns,
                alloc::format!(
                    "cycle {}: domain '{}' could not be created: {e}",
                    self.done.saturating_add(1),
                    self.config.name
                ),
                out,
            ),
        }
    }

    /// Ctrl-C: destroy the domain under way and report.
    pub fn interrupt<H: Hv>(&mut self, hv: &mut H, now_ns: u64, out: &mut String) {
        say!(out, "^C");
        self.abandon(hv, out);
        self.end(hv, now_ns, out);
    }

    /// A cycle failed: say why, destroy its domain, report; true (over).
    fn fail<H: Hv>(&mut self, hv: &mut H, now_ns: u64, why: String, out: &mut String) -> bool {
        say!(out, "Error: soak: {why}");
        self.abandon(hv, out);
        self.end(hv, now_ns, out);
        true
    }

    /// Destroy the domain of the cycle under way, if it still exists.
    fn abandon<H: Hv>(&mut self, hv: &mut H, out: &mut String) {
        if let Some(current) = self.current.take() {
            match hv.domctl_destroy(current.domid) {
                Ok(()) | Err(Status::ESRCH) => {}
                Err(s) => say!(out, "Error: soak: cannot destroy domain {}: {s}", current.domid),
            }
        }
    }

    /// The last two lines: what the domains did and how fast, then the
    /// free frames against the start.
    fn end<H: Hv>(&mut self, hv: &mut H, now_ns: u64, out: &mut String) {
        let elapsed_ns = now_ns.saturating_sub(self.started_ns).max(1);
        let rate_tenths = u128::from(self.done) * 10_000_000_000 / u128::from(elapsed_ns);
        say!(
            out,
            "soak: {} cycles of '{}' in {} s ({}.{} cycles/s): {}",
            self.done,
            self.config.name,
            tenths(elapsed_ns),
            rate_tenths / 10,
            rate_tenths % 10,
            self.tally.describe()
        );
        let head = if self.done >= self.cycles {
            alloc::format!("soak: {} cycles done", self.cycles)
        } else {
            alloc::format!("soak: stopped after {} of {} cycles", self.done, self.cycles)
        };
        let start = self.start_free;
        match hv.sysctl_physinfo() {
            Ok(phys) => {
                let free = phys.free_pages;
                if free == start {
                    say!(out, "{head}, free frames {free} == start {start}: restored");
                } else if free < start {
                    say!(
                        out,
                        "{head}, free frames {free} != start {start}: LEAKED {} frames",
                        start - free
                    );
                } else {
                    say!(
                        out,
                        "{head}, free frames {free} != start {start}: {} more frames free than at the start",
                        free - start
                    );
                }
            }
            Err(s) => say!(
                out,
                "{head}, free frames unknown (physinfo failed: {s}), start {start}: not checked"
            ),
        }
    }
}

/// Destroy a cycle's domain (unless it is gone) and make sure it has gone.
fn destroy<H: Hv>(hv: &mut H, domid: DomId, ended: Ended) -> Result<(), String> {
    if ended != Ended::Gone {
        hv.domctl_destroy(domid)
            .map_err(|s| alloc::format!("cannot destroy domain {domid}: {s}"))?;
    }
    match hv.domctl_getinfo(domid) {
        Ok(info) if info.domid == domid => Err(alloc::format!(
            "domain {domid} still exists after it was destroyed (state {:#x}): something still maps it",
            info.state
        )),
        Ok(_) | Err(Status::ESRCH) => Ok(()),
        Err(s) => Err(alloc::format!("cannot tell whether domain {domid} has gone: {s}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn the_tally_names_what_happened() {
        let mut t = Tally::default();
        assert_eq!(t.describe(), "no domain ran");
        t.count(Ended::Stopped(Stop::Shutdown(ShutdownReason::Poweroff)));
        t.count(Ended::Stopped(Stop::Shutdown(ShutdownReason::Poweroff)));
        assert_eq!(t.describe(), "2 powered off");
        t.count(Ended::Stopped(Stop::Crashed));
        t.count(Ended::Stopped(Stop::UnknownReason(9)));
        t.count(Ended::Running);
        t.count(Ended::Gone);
        t.count(Ended::Stopped(Stop::Shutdown(ShutdownReason::Reboot)));
        assert_eq!(
            t.describe(),
            "2 powered off, 1 rebooted, 2 crashed, 1 destroyed while running, \
             1 gone before the soak destroyed them"
        );
    }
}
