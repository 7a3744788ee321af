//! The life-cycle commands: `xm create` (find the config in the bundle,
//! apply `name=value` overrides, start the domain, print xm's two lines),
//! `destroy`, `shutdown` and `reboot` (with `-w`, a [`Wait`] the shell
//! follows until the domains have stopped: `Domain hello terminated`),
//! `pause`, `unpause`, `domid`, `domname`, and Oxen's own `poweroff`, which
//! ends dom0 (and, in test mode, the test run) once no domain is left.

use alloc::string::String;
use alloc::vec::Vec;

use dom0_abi::{DomId, ShutdownReason, Status, domstate};
use oxen_bundle::Archive;

use super::{Attach, Fail, Next, Xm, domains, hv_fail, is_dom0, name_of, resolve};
use crate::config::Config;
use crate::hv::Hv;
use crate::shell::commands::Target;
use crate::toolstack::{Start, create_domain, find_config};
use crate::watch::MemoryCheck;

/// `xm create CFG [-c] [-p] [key=value ...]`.
#[allow(clippy::too_many_arguments)] // one per part of the command line
pub fn create<H: Hv>(
    xm: &mut Xm<'_>,
    hv: &mut H,
    name: &str,
    console: bool,
    paused: bool,
    vars: &[String],
    now_ns: u64,
    out: &mut String,
) -> Result<Next, Fail> {
    let (bundle, mut config) = load_config(xm, name, out)?;
    for var in vars {
        config.apply_override(var).map_err(Fail::error)?;
    }
    let start = if paused { Start::Paused } else { Start::Running };
    let domid = create_domain(hv, &bundle, &config, xm.tsc_khz, start).map_err(|e| {
        Fail::error(alloc::format!(
            "Domain '{}' could not be created: {e}",
            config.name
        ))
    })?;
    say!(out, "Started domain {} (id={domid})", config.name);
    let name = config.name.clone();
    xm.watch.add(domid, config, now_ns);
    if console {
        return Attach::start(hv, domid, &name, out).map(Next::Attach);
    }
    Ok(Next::Prompt)
}

/// The config file `xm create NAME` means, from the boot bundle, parsed:
/// says which file it is and prints its warnings, as xm does.
pub fn load_config<'a>(xm: &Xm<'a>, name: &str, out: &mut String) -> Result<(Archive<'a>, Config), Fail> {
    let Some(bundle) = xm.bundle else {
        return Err(Fail::error(alloc::format!(
            "Unable to open config file: {name}: dom0 has no boot bundle"
        )));
    };
    let entry = find_config(&bundle, name).map_err(|tried| {
        Fail::error(alloc::format!(
            "Unable to open config file: {name} (the boot bundle has none of {})",
            tried.join(", ")
        ))
    })?;
    say!(out, "Using config file \"{}\".", entry.name);
    let parsed = Config::parse(entry.name, entry.data).map_err(Fail::error)?;
    for warning in &parsed.warnings {
        say!(out, "Warning: {warning}");
    }
    Ok((bundle, parsed.config))
}

/// `xm destroy DOM`.
pub fn destroy<H: Hv>(xm: &mut Xm<'_>, hv: &mut H, spec: &str) -> Result<Next, Fail> {
    let info = resolve(hv, spec)?;
    if is_dom0(&info) {
        return Err(Fail::error("Cannot destroy privileged domain Domain-0."));
    }
    hv.domctl_destroy(info.domid)
        .map_err(|s| hv_fail(alloc::format!("Destroying domain {}", name_of(&info)), s))?;
    xm.watch.forget(info.domid);
    Ok(Next::Prompt)
}

/// `xm pause DOM` (`pause`) and `xm unpause DOM`.
pub fn pause<H: Hv>(hv: &mut H, spec: &str, pause: bool) -> Result<Next, Fail> {
    let info = resolve(hv, spec)?;
    let verb = if pause { "pause" } else { "unpause" };
    if is_dom0(&info) {
        return Err(Fail::error(alloc::format!(
            "Cannot {verb} privileged domain Domain-0."
        )));
    }
    let result = if pause {
        hv.domctl_pause(info.domid)
    } else {
        hv.domctl_unpause(info.domid)
    };
    match result {
        Ok(()) => Ok(Next::Prompt),
        Err(Status::EINVAL) if info.state & (domstate::SHUTDOWN | domstate::CRASHED) != 0 => {
            Err(Fail::error(alloc::format!(
                "Cannot {verb} domain {}: it has shut down.",
                name_of(&info)
            )))
        }
        Err(s) => Err(hv_fail(
            alloc::format!("{}ing domain {}", capital(verb), name_of(&info)),
            s,
        )),
    }
}

/// `Pause` from `pause`.
fn capital(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(chars)
        .collect()
}

/// `xm shutdown` / `xm reboot`: ask, then (with `-w`) wait.
pub fn shutdown<H: Hv>(
    hv: &mut H,
    target: &Target,
    wait: bool,
    reason: ShutdownReason,
) -> Result<Next, Fail> {
    let verb = match reason {
        ShutdownReason::Reboot => "Rebooting",
        _ => "Shutting down",
    };
    let targets: Vec<(DomId, String)> = match target {
        Target::All => domains(hv)
            .map_err(|s| Fail::error(alloc::format!("Cannot list the domains: {s}")))?
            .iter()
            .filter(|d| !is_dom0(d) && d.state & (domstate::SHUTDOWN | domstate::CRASHED) == 0)
            .map(|d| (d.domid, String::from(name_of(d))))
            .collect(),
        Target::One(spec) => {
            let info = resolve(hv, spec)?;
            if is_dom0(&info) {
                return Err(Fail::error(
                    "Cannot shut down privileged domain Domain-0; 'xm poweroff' stops dom0.",
                ));
            }
            if info.state & (domstate::SHUTDOWN | domstate::CRASHED) != 0 {
                return Err(Fail::error(alloc::format!(
                    "Domain {} has already shut down.",
                    name_of(&info)
                )));
            }
            alloc::vec![(info.domid, String::from(name_of(&info)))]
        }
    };
    for (domid, name) in &targets {
        hv.domctl_shutdown(*domid, reason)
            .map_err(|s| hv_fail(alloc::format!("{verb} domain {name}"), s))?;
    }
    if !wait {
        return Ok(Next::Prompt);
    }
    Ok(Next::Wait(Wait {
        targets,
        all: *target == Target::All,
        reboot: reason == ShutdownReason::Reboot,
    }))
}

/// `xm shutdown -w`: the domains still to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    /// ID and name of each domain not yet seen to stop.
    pub targets: Vec<(DomId, String)>,
    /// `-a`: say `All domains terminated` at the end.
    pub all: bool,
    /// `xm reboot -w`: say `rebooted` rather than `terminated`.
    pub reboot: bool,
}

impl Wait {
    /// Look at the domains again; print a line for each that stopped (shut
    /// down, crashed, or gone). True once none is left to wait for.
    pub fn check<H: Hv>(&mut self, hv: &mut H, out: &mut String) -> bool {
        let word = if self.reboot { "rebooted" } else { "terminated" };
        self.targets.retain(|(domid, name)| {
            let stopped = match hv.domctl_getinfo(*domid) {
                Ok(info) if info.domid == *domid => {
                    info.state & (domstate::SHUTDOWN | domstate::CRASHED) != 0
                }
                // Gone (destroyed, or restarted under a new ID).
                Ok(_) | Err(Status::ESRCH) => true,
                // Ask again next time.
                Err(_) => false,
            };
            if stopped {
                say!(out, "Domain {name} {word}");
            }
            !stopped
        });
        if self.targets.is_empty() && self.all {
            say!(out, "All domains {word}");
        }
        self.targets.is_empty()
    }
}

/// `xm domid NAME`.
pub fn domid<H: Hv>(hv: &mut H, spec: &str, out: &mut String) -> Result<Next, Fail> {
    let info = resolve(hv, spec)?;
    say!(out, "{}", info.domid);
    Ok(Next::Prompt)
}

/// `xm domname ID`.
pub fn domname<H: Hv>(hv: &mut H, spec: &str, out: &mut String) -> Result<Next, Fail> {
    let info = resolve(hv, spec)?;
    say!(out, "{}", name_of(&info));
    Ok(Next::Prompt)
}

/// `xm poweroff`: shut dom0 down: `Poweroff` when no other domain exists
/// and the hypervisor has all the memory it had before dom0 started any,
/// `Crash` otherwise (which a test run reports as a failure).
pub fn poweroff<H: Hv>(xm: &mut Xm<'_>, hv: &mut H, out: &mut String) -> Result<Next, Fail> {
    let mut clean = true;
    match domains(hv) {
        Ok(all) => {
            for d in all.iter().filter(|d| !is_dom0(d)) {
                say!(
                    out,
                    "dom0: domain {} ('{}') still exists; it should have been destroyed first",
                    d.domid,
                    name_of(d)
                );
                clean = false;
            }
        }
        Err(s) => {
            say!(out, "Error: Cannot list the domains: {s}");
            clean = false;
        }
    }
    match (xm.boot_free_pages, hv.sysctl_physinfo()) {
        (Some(before_free), Ok(phys)) => {
            let check = MemoryCheck {
                before_free,
                after_free: phys.free_pages,
                preserved: 0,
            };
            say!(out, "{check}");
            clean &= check.leaked() == 0;
        }
        (None, _) => {
            say!(
                out,
                "dom0: the free memory at boot is not known; cannot check it came back"
            );
            clean = false;
        }
        (_, Err(s)) => {
            say!(out, "Error: Cannot read the machine's physinfo: {s}");
            clean = false;
        }
    }
    let (verdict, reason) = if clean {
        ("success", ShutdownReason::Poweroff)
    } else {
        ("failure", ShutdownReason::Crash)
    };
    if xm.test_mode {
        say!(
            out,
            "dom0: oxen_test=dom0: {verdict}; shutting down ({})",
            reason.name()
        );
    } else {
        say!(out, "dom0: shutting down ({})", reason.name());
    }
    Ok(Next::PowerOff(reason))
}
