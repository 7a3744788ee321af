//! Following the domains dom0 started (`toolstack.rs`) until they stop: each
//! time dom0 wakes, [`Watch::poll`] asks the hypervisor about every domain it
//! watches, and for one that shut down or crashed applies the config's
//! `on_poweroff` / `on_reboot` / `on_crash` action and reports [`Event`]s,
//! whose `Display` is the console line. [`MemoryCheck`] is the line printed
//! once every domain has gone: whether all their memory came back.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use dom0_abi::{DomId, ShutdownReason, Status, domstate};

use crate::config::{Action, Config};
use crate::hv::Hv;

/// A domain dom0 started and watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// Its ID.
    pub domid: DomId,
    /// The config it was started from.
    pub config: Config,
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
            Event::NotYet { domid, key, action } => {
                let missing = match action {
                    Action::CoredumpDestroy => "core dumps are not written yet",
                    _ => "dom0 cannot restart domains yet",
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

    /// Watch `domid`, started from `config`.
    pub fn add(&mut self, domid: DomId, config: Config) {
        self.running.push(Domain { domid, config });
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
    pub fn poll<H: Hv>(&mut self, hv: &mut H) -> Vec<Event> {
        let mut events = Vec::new();
        let mut still = Vec::with_capacity(self.running.len());
        for d in core::mem::take(&mut self.running) {
            match stopped(hv, d.domid) {
                Ok(None) => still.push(d),
                Ok(Some(stop)) => self.reap(hv, d, stop, &mut events),
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

    /// Apply the config's action to `d`, which stopped.
    fn reap<H: Hv>(&mut self, hv: &mut H, d: Domain, stop: Stop, events: &mut Vec<Event>) {
        events.push(Event::Stopped {
            domid: d.domid,
            name: d.config.name.clone(),
            stop,
        });
        let key = stop.key();
        match stop.action(&d.config) {
            Action::Preserve => {
                events.push(Event::Preserved { domid: d.domid, key });
                self.preserved.push(d);
                return;
            }
            Action::Destroy => {}
            // Restarting is the `xm` toolstack's job (a later issue).
            action @ (Action::Restart
            | Action::RenameRestart
            | Action::CoredumpDestroy
            | Action::CoredumpRestart) => events.push(Event::NotYet {
                domid: d.domid,
                key,
                action,
            }),
        }
        events.push(match hv.domctl_destroy(d.domid) {
            Ok(()) => Event::Destroyed { domid: d.domid },
            Err(status) => Event::DestroyFailed {
                domid: d.domid,
                name: d.config.name,
                status,
            },
        });
    }
}

/// How `domid` stopped, or `None` while it has not; `ESRCH` if it is gone.
fn stopped<H: Hv>(hv: &mut H, domid: DomId) -> Result<Option<Stop>, Status> {
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
            watch.add(domid, config);
        }
        watch
    }

    fn lines(events: &[Event]) -> Vec<String> {
        events.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn nothing_happens_while_domains_run() {
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(&mut hv, &[("a", ""), ("b", "")]);
        assert_eq!(watch.poll(&mut hv), []);
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
            lines(&watch.poll(&mut hv)),
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
            lines(&watch.poll(&mut hv)),
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
    fn reboot_with_restart_is_destroyed_with_a_note() {
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(&mut hv, &[("a", ""), ("b", "on_crash = 'coredump-destroy'")]);
        hv.shut_down(1, 1);
        hv.shut_down(2, 2);
        assert_eq!(
            lines(&watch.poll(&mut hv)),
            [
                "dom0: domain 1 ('a') rebooted",
                "dom0: domain 1: on_reboot = restart, but dom0 cannot restart domains yet; destroying it",
                "dom0: domain 1 destroyed",
                "dom0: domain 2 ('b') crashed",
                "dom0: domain 2: on_crash = coredump-destroy, but core dumps are not written yet; destroying it",
                "dom0: domain 2 destroyed",
            ]
        );
        assert!(hv.domains.is_empty());
    }

    #[test]
    fn preserve_keeps_the_domain() {
        let mut hv = FakeHv::new(10_000);
        let mut watch = started(&mut hv, &[("a", "on_poweroff = 'preserve'")]);
        hv.shut_down(1, 0);
        assert_eq!(
            lines(&watch.poll(&mut hv)),
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
            lines(&watch.poll(&mut hv)),
            [
                "dom0: domain 1 ('a') has gone (destroyed by someone else)",
                "dom0: domain 2 ('b') shut down with unknown reason 7",
                "Error: cannot destroy domain 2 ('b'): EBUSY (busy)",
            ]
        );
        hv.fail = vec![Fail::Getinfo(Status::EINVAL)];
        assert_eq!(
            lines(&watch.poll(&mut hv)),
            ["Error: cannot get the state of domain 3: EINVAL (invalid argument)"]
        );
        assert_eq!(watch.running().len(), 1, "asked again next time");
        // The last domain destroyed: getinfo is ESRCH past the last.
        hv.domctl_destroy(3).unwrap();
        assert_eq!(
            lines(&watch.poll(&mut hv)),
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
