//! The `xm` toolstack: what each command does and prints, over the [`Hv`]
//! door, with the words and layouts of Xen's `xm` (and `xl` where the issue
//! asks for them). [`Xm`] keeps the state that outlives one command: the
//! domains dom0 started ([`Watch`]), where `xm dmesg -c` left the log, the
//! free memory at boot (for `xm poweroff`).
//!
//! One file per group of commands: `domain.rs` (create, destroy, shutdown,
//! reboot, pause, unpause, domid, domname, poweroff), `list.rs` (list),
//! `console.rs` (console, dmesg), `info.rs` (info), `uptime.rs`,
//! `sched.rs` (sched-credit), `memory.rs` (mem-set, mem-max), `vcpu.rs`
//! (vcpu-list, vcpu-set, vcpu-pin), `soak.rs` (Oxen's `soak`, which the
//! shell drives over many wake-ups). Each command writes its output into a
//! `String` and returns what the shell does next ([`Next`]) or why it
//! failed ([`Fail`]); `shell/` prints and waits.

pub mod console;
pub mod domain;
pub mod info;
pub mod list;
pub mod memory;
pub mod sched;
pub mod soak;
pub mod uptime;
pub mod vcpu;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use dom0_abi::{DomId, DomainInfo, Status, field_str};
use oxen_bundle::Archive;

use crate::hv::Hv;
use crate::shell::commands::Command;
use crate::watch::Watch;

pub use console::Attach;
pub use domain::Wait;

/// What the shell does once a command has run.
#[derive(Debug)]
pub enum Next {
    /// Show the prompt.
    Prompt,
    /// Follow a domain's console until Ctrl-] (`xm console`, `create -c`).
    Attach(Attach),
    /// Wait for domains to stop (`xm shutdown -w`).
    Wait(Wait),
    /// Shut dom0 down with this reason (`xm poweroff`).
    PowerOff(dom0_abi::ShutdownReason),
    /// Create and destroy domains until the soak is over (`xm soak`).
    Soak(soak::Soak),
}

/// Why a command failed; the shell prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fail {
    /// `Error: ` and the sentence.
    Error(String),
    /// `Error: ` and the sentence, then the usage of the command named.
    Usage(&'static str, String),
    /// Nothing to print (`xm console -q` of a missing domain).
    Quiet,
}

impl Fail {
    /// `Error: {what}`.
    pub fn error(what: impl fmt::Display) -> Fail {
        Fail::Error(alloc::format!("{what}"))
    }
}

/// The `xm` toolstack's state.
#[derive(Debug)]
pub struct Xm<'a> {
    /// The boot bundle: configs and kernels.
    pub bundle: Option<Archive<'a>>,
    /// The TSC frequency new domains are told.
    pub tsc_khz: u64,
    /// The domains dom0 started.
    pub watch: Watch,
    /// Where `xm dmesg` starts reading the hypervisor log.
    pub dmesg_from: u64,
    /// Free frames before dom0 started any domain (for `xm poweroff`).
    pub boot_free_pages: Option<u64>,
    /// dom0 runs with `oxen_test=dom0`.
    pub test_mode: bool,
    /// The `auto/` domains started at boot have not all stopped yet: once
    /// they have, the shell reports whether memory came back.
    pub auto_pending: bool,
}

impl<'a> Xm<'a> {
    /// The toolstack over `bundle`, with `watch` holding the domains started
    /// at boot.
    pub fn new(bundle: Option<Archive<'a>>, tsc_khz: u64, watch: Watch) -> Self {
        Xm {
            bundle,
            tsc_khz,
            watch,
            dmesg_from: 0,
            boot_free_pages: None,
            test_mode: false,
            auto_pending: false,
        }
    }

    /// Run `command`; its output goes to `out`.
    pub fn run<H: Hv>(
        &mut self,
        hv: &mut H,
        command: Command,
        now_ns: u64,
        out: &mut String,
    ) -> Result<Next, Fail> {
        match command {
            Command::List { long, domains } => list::list(self, hv, long, &domains, out),
            Command::Create {
                config,
                console,
                paused,
                vars,
            } => domain::create(self, hv, &config, console, paused, &vars, now_ns, out),
            Command::Destroy { domain } => domain::destroy(self, hv, &domain),
            Command::Shutdown { target, wait, reason } => domain::shutdown(hv, &target, wait, reason),
            Command::Pause { domain } => domain::pause(hv, &domain, true),
            Command::Unpause { domain } => domain::pause(hv, &domain, false),
            Command::Console { domain, quiet } => console::attach(hv, &domain, quiet, out),
            Command::Dmesg { clear } => console::dmesg(self, hv, clear, out),
            Command::Info => info::info(hv, out),
            Command::Uptime { short, domains } => uptime::uptime(self, hv, short, &domains, now_ns, out),
            Command::SchedCredit { domain, weight, cap } => {
                sched::sched_credit(hv, domain.as_deref(), weight, cap, out)
            }
            Command::MemSet { domain, mib } => memory::mem_set(hv, &domain, mib),
            Command::MemMax { domain, mib } => memory::mem_max(hv, &domain, mib),
            Command::VcpuList { domains } => vcpu::vcpu_list(hv, &domains, out),
            Command::VcpuSet { domain, count } => vcpu::vcpu_set(hv, &domain, count),
            Command::VcpuPin { domain, vcpu, cpus } => vcpu::vcpu_pin(hv, &domain, &vcpu, &cpus, out),
            Command::Domid { name } => domain::domid(hv, &name, out),
            Command::Domname { id } => domain::domname(hv, &id, out),
            Command::Poweroff => domain::poweroff(self, hv, out),
            Command::Soak { cycles, config } => soak::start(self, hv, cycles, &config, now_ns, out),
            // The shell answers these itself.
            Command::Help { .. } => Ok(Next::Prompt),
        }
    }
}

/// Every domain, in ID order (`domctl_getinfo` from 0, then from each ID + 1).
pub fn domains<H: Hv>(hv: &mut H) -> Result<Vec<DomainInfo>, Status> {
    let mut out = Vec::new();
    let mut next: DomId = 0;
    loop {
        let info = match hv.domctl_getinfo(next) {
            Ok(info) => info,
            Err(Status::ESRCH) => return Ok(out),
            Err(e) => return Err(e),
        };
        // A hypervisor that answered with an older domain would loop us.
        if info.domid < next {
            return Ok(out);
        }
        let Some(after) = info.domid.checked_add(1) else {
            out.push(info);
            return Ok(out);
        };
        next = after;
        out.push(info);
    }
}

/// The domain `spec` names: an ID when it is a number, else a name.
pub fn resolve<H: Hv>(hv: &mut H, spec: &str) -> Result<DomainInfo, Fail> {
    let all = domains(hv).map_err(|s| Fail::error(alloc::format!("Cannot list the domains: {s}")))?;
    find(&all, spec).ok_or_else(|| no_such(spec))
}

/// The domain `spec` names among `all`.
pub fn find(all: &[DomainInfo], spec: &str) -> Option<DomainInfo> {
    let by_id = spec
        .parse::<DomId>()
        .ok()
        .filter(|_| spec.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|id| all.iter().find(|d| d.domid == id));
    by_id.or_else(|| all.iter().find(|d| name_of(d) == spec)).copied()
}

/// `Domain 'X' does not exist.`
pub fn no_such(spec: &str) -> Fail {
    Fail::error(alloc::format!("Domain '{spec}' does not exist."))
}

/// A domain's name.
pub fn name_of(info: &DomainInfo) -> &str {
    field_str(&info.name)
}

/// Whether the domain is dom0.
pub fn is_dom0(info: &DomainInfo) -> bool {
    info.domid == 0 || info.flags & dom0_abi::DOMINFO_PRIVILEGED != 0
}

/// Nanoseconds as seconds with one decimal, rounded (`%.1f`).
pub fn tenths(ns: u64) -> String {
    let t = ns.saturating_add(50_000_000) / 100_000_000;
    alloc::format!("{}.{}", t / 10, t % 10)
}

/// MiB in `pages` 4 KiB frames (rounded down, as `tot_pages * 4 / 1024`).
pub fn mib(pages: u64) -> u64 {
    pages / crate::config::PAGES_PER_MIB
}

/// A hypercall failure as a sentence: what was being done, and the status,
/// with a word on `ENOSYS` (a hypervisor older than ABI 1.1).
pub fn hv_fail(doing: impl fmt::Display, status: Status) -> Fail {
    if status == Status::ENOSYS {
        Fail::error(alloc::format!(
            "{doing} failed: {status}; this hypervisor does not offer it (Oxen ABI 1.1 does)"
        ))
    } else {
        Fail::error(alloc::format!("{doing} failed: {status}"))
    }
}
