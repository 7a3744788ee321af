//! Following the domains dom0 started (`toolstack.rs`) until they stop: each
//! time dom0 wakes, [`Watch::poll`] asks the hypervisor about every domain it
//! watches, and for one that shut down or crashed applies the config's
//! `on_poweroff` / `on_reboot` / `on_crash` action (`destroy`, `preserve`,
//! or `restart`: destroy it and start it again from the same config, as
//! xend did, refusing a second restart within [`MIN_RESTART_NS`]) and
//! reports [`Event`]s, whose `Display` is the console line. The owner of the
//! watch supplies a [`Reaper`]: how to start a domain again, dom0's clock,
//! and a last look at a stopped domain before it is destroyed (the `xm
//! console` of it reads its last output there). [`MemoryCheck`] is the line
//! printed once every domain has gone: whether all their memory came back.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use dom0_abi::{DomId, ShutdownReason, Status, domstate};
use oxen_bundle::Archive;

use crate::config::{Action, Config};
use crate::hv::Hv;
use crate::toolstack::{StartError, start_domain};

/// A domain that restarts sooner than this after its last restart is not
/// restarted again (xend's `MINIMUM_RESTART_TIME`, 10 s): a guest that
/// stops at once would otherwise loop forever.
pub const MIN_RESTART_NS: u64 = 10_000_000_000;

/// A domain dom0 started and watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Its ID.
    pub domid: DomId,
    /// The config it was started from (with the `xm create` overrides).
    pub config: Config,
    /// dom0's clock when it was started, in nanoseconds.
    pub started_ns: u64,
    /// dom0's clock at its last restart (`on_* = restart`), if any.
    pub restarted_ns: Option<u64>,
}

/// What [`Watch::poll`] needs from the owner of the watch.
pub trait Reaper<H: Hv> {
    /// dom0's clock now, in nanoseconds.
    fn now_ns(&self) -> u64;

    /// `domid` stopped and is about to be destroyed (or restarted): the
    /// last chance to read what it wrote to its console.
    fn stopping(&mut self, hv: &mut H, domid: DomId);

    /// Start a new domain from `config` (`on_* = restart`).
    fn restart(&mut self, hv: &mut H, config: &Config) -> Result<DomId, StartError>;
}

/// The plain [`Reaper`]: restarts domains from the boot bundle and has no
/// console to drain.
pub struct BundleReaper<'a> {
    /// Where kernels come from; `None`: restarting fails.
    pub bundle: Option<Archive<'a>>,
    /// The TSC frequency for new domains' `StartInfo`.
    pub tsc_khz: u64,
    /// dom0's clock now.
    pub now_ns: u64,
}

impl<H: Hv> Reaper<H> for BundleReaper<'_> {
    fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn stopping(&mut self, _hv: &mut H, _domid: DomId) {}

    fn restart(&mut self, hv: &mut H, config: &Config) -> Result<DomId, StartError> {
        match &self.bundle {
            Some(bundle) => start_domain(hv, bundle, config, self.tsc_khz),
            None => Err(StartError::no_bundle(config)),
        }
    }
}

/// How a domain stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It shut down with a [`ShutdownReason`].
    Shutdown(ShutdownReason),
    /// It shut down with a reason number the ABI does not define.
    UnknownReason(u32),
    /// The hypervisor crashed it (an exception it could not deliver, say).
    Crashed,
}

impl Stop {
    /// The config key whose action applies.
    pub fn key(self) -> &'static str {
        match self {
            Stop::Shutdown(ShutdownReason::Poweroff) => "on_poweroff",
            Stop::Shutdown(ShutdownReason::Reboot) => "on_reboot",
            Stop::Shutdown(ShutdownReason::Crash) | Stop::UnknownReason(_) | Stop::Crashed => "on_crash",
        }
    }

    /// The action `config` gives for this stop.
    pub fn action(self, config: &Config) -> Action {
        match self {
            Stop::Shutdown(ShutdownReason::Poweroff) => config.on_poweroff,
            Stop::Shutdown(ShutdownReason::Reboot) => config.on_reboot,
            Stop::Shutdown(ShutdownReason::Crash) | Stop::UnknownReason(_) | Stop::Crashed => config.on_crash,
        }
    }
}

/// Something that happened to a watched domain, printed as one console line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The domain stopped.
    Stopped {
        /// Its ID.
        domid: DomId,
        /// Its name.
        name: String,
        /// How.
        stop: Stop,
    },
    /// The domain was destroyed and started again from its config.
    Restarted {
        /// Its old ID.
        domid: DomId,
        /// Its name.
        name: String,
        /// `on_poweroff`, `on_reboot` or `on_crash`.
        key: &'static str,
        /// The new domain's ID.
        new_domid: DomId,
    },
    /// Starting the domain again failed.
    RestartFailed {
        /// Its old ID.
        domid: DomId,
        /// Its name.
        name: String,
        /// Why.
        error: String,
    },
    /// The domain stopped again too soon after its last restart; it is not
    /// restarted.
    RestartTooFast {
        /// Its ID.
        domid: DomId,
        /// Its name.
        name: String,
        /// Tenths of a second since the last restart.
        tenths: u64,
    },
    /// The action asked for is not implemented yet; the domain is destroyed instead.
    NotYet {
        /// Its ID.
        domid: DomId,
        /// `on_poweroff`, `on_reboot` or `on_crash`.
        key: &'static str,
        /// The action asked for.
        action: Action,
    },
    /// The domain was destroyed and its memory freed.
    Destroyed {
        /// Its ID.
        domid: DomId,
    },
    /// Destroying the domain failed; it is no longer watched.
    DestroyFailed {
        /// Its ID.
        domid: DomId,
        /// Its name.
        name: String,
        /// What the hypervisor said.
        status: Status,
    },
    /// The domain was kept, stopped (`preserve`).
    Preserved {
        /// Its ID.
        domid: DomId,
        /// `on_poweroff`, `on_reboot` or `on_crash`.
        key: &'static str,
    },
    /// The domain no longer exists (someone else destroyed it).
    Vanished {
        /// Its ID.
        domid: DomId,
        /// Its name.
        name: String,
    },
    /// Asking about the domain failed; it is asked again next time.
    QueryFailed {
        /// Its ID.
        domid: DomId,
        /// What the hypervisor said.
        status: Status,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Stopped { domid, name, stop } => {
                write!(f, "dom0: domain {domid} ('{name}') ")?;
                match stop {
                    Stop::Shutdown(ShutdownReason::Poweroff) => f.write_str("powered off"),
                    Stop::Shutdown(ShutdownReason::Reboot) => f.write_str("rebooted"),
                    Stop::Shutdown(ShutdownReason::Crash) | Stop::Crashed => f.write_str("crashed"),
                    Stop::UnknownReason(reason) => write!(f, "shut down with unknown reason {reason}"),
                }
            }
            Event::Restarted {
                domid,
                name,
                key,
                new_domid,
            } => write!(
                f,
                "dom0: domain {domid} ('{name}'): {key} = restart; started again as domain {new_domid}"
            ),
            Event::RestartFailed { domid, name, error } => {
                write!(f, "Error: cannot restart domain {domid} ('{name}'): {error}")
            }
            Event::RestartTooFast { domid, name, tenths } => write!(
                f,
                "dom0: domain {domid} ('{name}') is restarting too fast ({}.{} s since its last restart); \
                 refusing to restart it to avoid a loop",
                tenths / 10,
                tenths % 10
            ),
            Event::NotYet { domid, key, action } => {
                let missing = match action {
                    Action::CoredumpDestroy | Action::CoredumpRestart => "core dumps are not written yet",
                    _ => "dom0 cannot rename domains yet",
                };
                write!(
                    f,
                    "dom0: domain {domid}: {key} = {action}, but {missing}; destroying it"
                )
            }
            Event::Destroyed { domid } => write!(f, "dom0: domain {domid} destroyed"),
            Event::DestroyFailed { domid, name, status } => {
                write!(f, "Error: cannot destroy domain {domid} ('{name}'): {status}")
            }
            Event::Preserved { domid, key } => write!(
                f,
                "dom0: domain {domid} kept as it is ({key} = preserve); it holds its memory until destroyed"
            ),
            Event::Vanished { domid, name } => {
                write!(
                    f,
                    "dom0: domain {domid} ('{name}') has gone (destroyed by someone else)"
                )
            }
            Event::QueryFailed { domid, status } => {
                write!(f, "Error: cannot get the state of domain {domid}: {status}")
            }
        }
    }
}

/// The domains dom0 watches.
#[derive(Debug, Default)]
pub struct Watch {
    /// Domains that run (or at least have not been seen to stop).
    running: Vec<Domain>,
    /// Domains stopped and kept (`preserve`).
    preserved: Vec<Domain>,
}

impl Watch {
    /// Watch nothing yet.
    pub fn new() -> Self {
        Watch::default()
    }

    /// Watch `domid`, started from `config` at `started_ns` on dom0's clock.
    pub fn add(&mut self, domid: DomId, config: Config, started_ns: u64) {
        self.running.push(Domain {
            domid,
            config,
            started_ns,
            restarted_ns: None,
        });
    }

    /// The watched domain `domid` (running or preserved).
    pub fn find(&self, domid: DomId) -> Option<&Domain> {
        self.running
            .iter()
            .chain(&self.preserved)
            .find(|d| d.domid == domid)
    }

    /// Stop watching `domid` (`xm destroy` destroyed it): its record.
    pub fn forget(&mut self, domid: DomId) -> Option<Domain> {
        for list in [&mut self.running, &mut self.preserved] {
            if let Some(i) = list.iter().position(|d| d.domid == domid) {
                return Some(list.remove(i));
            }
        }
        None
    }

    /// Whether no watched domain is left running.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// The domains still running.
    pub fn running(&self) -> &[Domain] {
        &self.running
    }

    /// The stopped domains kept by `preserve`.
    pub fn preserved(&self) -> &[Domain] {
        &self.preserved
    }

    /// Ask the hypervisor about every running domain and deal with those
    /// that stopped; returns what happened, in order.
    pub fn poll<H: Hv, R: Reaper<H>>(&mut self, hv: &mut H, reaper: &mut R) -> Vec<Event> {
        let mut events = Vec::new();
        let mut still = Vec::with_capacity(self.running.len());
        for d in core::mem::take(&mut self.running) {
            match stopped(hv, d.domid) {
                Ok(None) => still.push(d),
                Ok(Some(stop)) => {
                    if let Some(again) = self.reap(hv, reaper, d, stop, &mut events) {
                        still.push(again);
                    }
                }
                Err(Status::ESRCH) => events.push(Event::Vanished {
                    domid: d.domid,
                    name: d.config.name,
                }),
                Err(status) => {
                    events.push(Event::QueryFailed {
                        domid: d.domid,
                        status,
                    });
                    still.push(d);
                }
            }
        }
        self.running = still;
        events
    }

    /// Apply the config's action to `d`, which stopped; the domain to
    /// watch from now on when it was restarted.
    fn reap<H: Hv, R: Reaper<H>>(
        &mut self,
        hv: &mut H,
        reaper: &mut R,
        d: Domain,
        stop: Stop,
        events: &mut Vec<Event>,
    ) -> Option<Domain> {
        events.push(Event::Stopped {
            domid: d.domid,
            name: d.config.name.clone(),
            stop,
        });
        reaper.stopping(hv, d.domid);
        let key = stop.key();
        let now = reaper.now_ns();
        let mut restart = false;
        match stop.action(&d.config) {
            Action::Preserve => {
                events.push(Event::Preserved { domid: d.domid, key });
                self.preserved.push(d);
                return None;
            }
            Action::Destroy => {}
            Action::Restart => match d.restarted_ns {
                Some(last) if now.saturating_sub(last) < MIN_RESTART_NS => {
                    events.push(Event::RestartTooFast {
                        domid: d.domid,
                        name: d.config.name.clone(),
                        tenths: now.saturating_sub(last) / 100_000_000,
                    });
                }
                _ => restart = true,
            },
            action @ (Action::RenameRestart | Action::CoredumpDestroy | Action::CoredumpRestart) => {
                events.push(Event::NotYet {
                    domid: d.domid,
                    key,
                    action,
                });
            }
        }
        if let Err(status) = hv.domctl_destroy(d.domid) {
            events.push(Event::DestroyFailed {
                domid: d.domid,
                name: d.config.name,
                status,
            });
            return None;
        }
        events.push(Event::Destroyed { domid: d.domid });
        if !restart {
            return None;
        }
        match reaper.restart(hv, &d.config) {
            Ok(new_domid) => {
                events.push(Event::Restarted {
                    domid: d.domid,
                    name: d.config.name.clone(),
                    key,
                    new_domid,
                });
                Some(Domain {
                    domid: new_domid,
                    config: d.config,
                    started_ns: now,
                    restarted_ns: Some(now),
                })
            }
            Err(e) => {
                events.push(Event::RestartFailed {
                    domid: d.domid,
                    name: d.config.name,
                    error: e.to_string(),
                });
                None
            }
        }
    }
}

/// How `domid` stopped, or `None` while it has not; `ESRCH` if it is gone.
pub fn stopped<H: Hv>(hv: &mut H, domid: DomId) -> Result<Option<Stop>, Status> {
    let info = hv.domctl_getinfo(domid)?;
    // `getinfo` describes the first domain with an ID >= domid.
    if info.domid != domid {
        return Err(Status::ESRCH);
    }
    Ok(if info.state & domstate::CRASHED != 0 {
        Some(Stop::Crashed)
    } else if info.state & domstate::SHUTDOWN != 0 {
        Some(match ShutdownReason::try_from(u64::from(info.shutdown_reason)) {
            Ok(reason) => Stop::Shutdown(reason),
            Err(_) => Stop::UnknownReason(info.shutdown_reason),
        })
    } else {
        None
    })
}

/// The free memory after every domain stopped against before the first
/// started, printed as one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryCheck {
    /// Free frames before the first domain started.
    pub before_free: u64,
    /// Free frames now.
    pub after_free: u64,
    /// Stopped domains kept by `preserve`, which still hold memory.
    pub preserved: usize,
}

impl MemoryCheck {
    /// Frames missing, 0 when all came back (or a preserved domain holds some).
    pub fn leaked(&self) -> u64 {
        if self.preserved > 0 {
            return 0;
        }
        self.before_free.saturating_sub(self.after_free)
    }
}

impl fmt::Display for MemoryCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (after, before) = (self.after_free, self.before_free);
        if self.preserved > 0 {
            return write!(
                f,
                "dom0: all domains stopped; free memory {after} frames, {before} before; {} preserved \
                 domain(s) still hold memory",
                self.preserved
            );
        }
        write!(
            f,
            "dom0: all domains stopped; free memory {after} frames, {before} before: "
        )?;
        match self.leaked() {
            0 => f.write_str("restored"),
            k => write!(f, "LEAKED {k} frames"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::fake::{Fail, FakeHv, bundle, test_image};
    use crate::toolstack::start_domain;
    use alloc::string::ToString;
    use alloc::vec;
    use oxen_bundle::Archive;

    /// Start one domain per (name, config extra lines) and watch them all.
    fn started(hv: &mut FakeHv, domains: &[(&str, &str)]) -> Watch {
        let image = test_image(4096, (1, 0));
        let bytes = bundle(&[("images/g.elf", &image)]);
        let archive = Archive::parse(&bytes).unwrap();
        let mut watch = Watch::new();
        for (name, more) in domains {
            let text = alloc::format!("name = '{name}'\nmemory = 1\nkernel = 'images/g.elf'\n{more}");
            let config = Config::parse("t.cfg", text.as_bytes()).unwrap().config;
            let domid = start_domain(hv, &archive, &config, 1000).unwrap();
            watch.add(domid, config, 0);
        }
        watch
    }

    /// A reaper without a bundle, at time 0.
    fn no_restart() -> BundleReaper<'static> {
        BundleReaper {
            bundle: None,
            tsc_khz: 1000,
            now_ns: 0,
        }
    }

    fn lines(events: &[Event]) -> Vec<String> {
        events.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn nothing_happens_while_domains_run() {
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(&mut hv, &[("a", ""), ("b", "")]);
        assert_eq!(watch.poll(&mut hv, &mut no_restart()), []);
        assert_eq!(watch.running().len(), 2);
    }

    #[test]
    fn stopped_domains_are_destroyed_and_memory_returns() {
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(&mut hv, &[("a", ""), ("b", ""), ("c", "")]);
        let before = 10_000;
        hv.shut_down(1, 0);
        hv.crash(3);
        assert_eq!(
            lines(&watch.poll(&mut hv, &mut no_restart())),
            [
                "dom0: domain 1 ('a') powered off",
                "dom0: domain 1 destroyed",
                "dom0: domain 3 ('c') crashed",
                "dom0: domain 3 destroyed",
            ]
        );
        assert!(!watch.is_empty());
        hv.shut_down(2, 2);
        assert_eq!(
            lines(&watch.poll(&mut hv, &mut no_restart())),
            ["dom0: domain 2 ('b') crashed", "dom0: domain 2 destroyed"]
        );
        assert!(watch.is_empty());
        assert_eq!(hv.destroyed, [1, 3, 2]);
        let check = MemoryCheck {
            before_free: before,
            after_free: hv.free_pages,
            preserved: watch.preserved().len(),
        };
        assert_eq!(
            check.to_string(),
            "dom0: all domains stopped; free memory 10000 frames, 10000 before: restored"
        );
    }

    #[test]
    fn restart_starts_the_domain_again_but_not_in_a_loop() {
        let image = test_image(4096, (1, 0));
        let bytes = bundle(&[("images/g.elf", &image)]);
        let archive = Archive::parse(&bytes).unwrap();
        let mut reaper = BundleReaper {
            bundle: Some(archive),
            tsc_khz: 1000,
            now_ns: 5_000_000_000,
        };
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(
            &mut hv,
            &[("a", "on_reboot = 'restart'\nmemory = 2\nextra = 'x=1'")],
        );
        hv.shut_down(1, 1);
        assert_eq!(
            lines(&watch.poll(&mut hv, &mut reaper)),
            [
                "dom0: domain 1 ('a') rebooted",
                "dom0: domain 1 destroyed",
                "dom0: domain 1 ('a'): on_reboot = restart; started again as domain 2",
            ]
        );
        let again = watch.find(2).unwrap();
        assert_eq!(
            (again.started_ns, again.restarted_ns),
            (5_000_000_000, Some(5_000_000_000))
        );
        assert_eq!(again.config.extra, "x=1", "the same config, overrides and all");
        assert_eq!(hv.domain(2).config.initial_pages, 512);
        assert_eq!(hv.free_pages, 10_000 - 512, "the old domain's memory came back");

        // Rebooting again 3.2 s later is a loop: destroyed, not restarted.
        reaper.now_ns += 3_200_000_000;
        hv.shut_down(2, 1);
        assert_eq!(
            lines(&watch.poll(&mut hv, &mut reaper)),
            [
                "dom0: domain 2 ('a') rebooted",
                "dom0: domain 2 ('a') is restarting too fast (3.2 s since its last restart); \
                 refusing to restart it to avoid a loop",
                "dom0: domain 2 destroyed",
            ]
        );
        assert!(watch.is_empty());
        assert_eq!(hv.free_pages, 10_000);
    }

    #[test]
    fn a_failed_restart_and_unsupported_actions() {
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(
            &mut hv,
            &[
                ("a", "on_poweroff = 'restart'"),
                ("b", "on_crash = 'coredump-destroy'"),
                ("c", "on_reboot = 'rename-restart'"),
            ],
        );
        hv.shut_down(1, 0);
        hv.shut_down(2, 2);
        hv.shut_down(3, 1);
        assert_eq!(
            lines(&watch.poll(&mut hv, &mut no_restart())),
            [
                "dom0: domain 1 ('a') powered off",
                "dom0: domain 1 destroyed",
                "Error: cannot restart domain 1 ('a'): dom0 has no boot bundle to take kernel \
                 'images/g.elf' from",
                "dom0: domain 2 ('b') crashed",
                "dom0: domain 2: on_crash = coredump-destroy, but core dumps are not written yet; destroying it",
                "dom0: domain 2 destroyed",
                "dom0: domain 3 ('c') rebooted",
                "dom0: domain 3: on_reboot = rename-restart, but dom0 cannot rename domains yet; destroying it",
                "dom0: domain 3 destroyed",
            ]
        );
        assert!(hv.domains.is_empty());
    }

    /// A reaper that records the domains it was shown before destroying.
    struct Recorder(Vec<(DomId, bool)>);

    impl Reaper<FakeHv> for Recorder {
        fn now_ns(&self) -> u64 {
            0
        }

        fn stopping(&mut self, hv: &mut FakeHv, domid: DomId) {
            self.0.push((domid, hv.domains.contains_key(&domid)));
        }

        fn restart(&mut self, _hv: &mut FakeHv, config: &Config) -> Result<DomId, StartError> {
            Err(StartError::no_bundle(config))
        }
    }

    #[test]
    fn the_reaper_sees_a_stopped_domain_before_it_is_destroyed() {
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(&mut hv, &[("a", ""), ("b", "on_crash = 'preserve'")]);
        hv.shut_down(1, 0);
        hv.crash(2);
        let mut recorder = Recorder(Vec::new());
        watch.poll(&mut hv, &mut recorder);
        assert_eq!(recorder.0, [(1, true), (2, true)]);
        assert_eq!(watch.forget(2).map(|d| d.domid), Some(2));
        assert!(watch.find(2).is_none() && watch.forget(2).is_none());
    }

    #[test]
    fn preserve_keeps_the_domain() {
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(&mut hv, &[("a", "on_poweroff = 'preserve'")]);
        hv.shut_down(1, 0);
        assert_eq!(
            lines(&watch.poll(&mut hv, &mut no_restart())),
            [
                "dom0: domain 1 ('a') powered off",
                "dom0: domain 1 kept as it is (on_poweroff = preserve); it holds its memory until destroyed",
            ]
        );
        assert!(watch.is_empty());
        assert_eq!(watch.preserved().len(), 1);
        assert!(hv.domains.contains_key(&1));
        let check = MemoryCheck {
            before_free: 10_000,
            after_free: hv.free_pages,
            preserved: 1,
        };
        assert_eq!(check.leaked(), 0);
        assert!(
            check
                .to_string()
                .ends_with("1 preserved domain(s) still hold memory")
        );
    }

    #[test]
    fn odd_states_and_failures() {
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(&mut hv, &[("a", ""), ("b", ""), ("c", "")]);
        // Domain 1 destroyed behind dom0's back: getinfo describes domain 2.
        hv.domctl_destroy(1).unwrap();
        hv.shut_down(2, 7);
        hv.fail = vec![Fail::Destroy(Status::EBUSY)];
        assert_eq!(
            lines(&watch.poll(&mut hv, &mut no_restart())),
            [
                "dom0: domain 1 ('a') has gone (destroyed by someone else)",
                "dom0: domain 2 ('b') shut down with unknown reason 7",
                "Error: cannot destroy domain 2 ('b'): EBUSY (busy)",
            ]
        );
        hv.fail = vec![Fail::Getinfo(Status::EINVAL)];
        assert_eq!(
            lines(&watch.poll(&mut hv, &mut no_restart())),
            ["Error: cannot get the state of domain 3: EINVAL (invalid argument)"]
        );
        assert_eq!(watch.running().len(), 1, "asked again next time");
        // The last domain destroyed: getinfo is ESRCH past the last.
        hv.domctl_destroy(3).unwrap();
        assert_eq!(
            lines(&watch.poll(&mut hv, &mut no_restart())),
            ["dom0: domain 3 ('c') has gone (destroyed by someone else)"]
        );
        assert!(watch.is_empty());
    }

    #[test]
    fn a_leak_is_reported() {
        let check = MemoryCheck {
            before_free: 5000,
            after_free: 4990,
            preserved: 0,
        };
        assert_eq!(check.leaked(), 10);
        assert_eq!(
            check.to_string(),
            "dom0: all domains stopped; free memory 4990 frames, 5000 before: LEAKED 10 frames"
        );
    }
}
