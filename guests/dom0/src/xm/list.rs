//! `xm list [-l] [Domain ...]`: the one-line-per-domain table in xm's
//! exact layout (`xm_brief_list` in xm's `main.py`: header
//! `'%-40s %5s %5s %5s %10s %9s'`, rows `'%-40s %5s %5d %5d %10s %8.1f'`),
//! and with `-l` the s-expression detail xm printed (`(domain (domid 1)
//! (name hello) ...)`, one field a line).
//!
//! VCPUs is the number of vCPUs up (`domctl_vcpu_info`), or the domain's
//! vCPU count when the hypervisor cannot say; Mem is `tot_pages * 4 / 1024`;
//! State is the six flags `r b p s c d`, a `-` for each that is off.

use alloc::string::String;
use alloc::vec::Vec;

use dom0_abi::{DomainInfo, SchedParams, ShutdownReason, domstate};

use super::{Fail, Next, Xm, domains, find, mib, name_of, no_such, tenths};
use crate::config::Config;
use crate::hv::Hv;

/// One row of `xm list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Name.
    pub name: String,
    /// ID.
    pub domid: u16,
    /// Memory, MiB.
    pub mem_mib: u64,
    /// vCPUs up.
    pub vcpus: u32,
    /// `domstate` bits.
    pub state: u32,
    /// CPU time, ns.
    pub cpu_ns: u64,
}

/// The header line.
pub fn header() -> String {
    alloc::format!(
        "{:<40} {:>5} {:>5} {:>5} {:>10} {:>9}",
        "Name",
        "ID",
        "Mem",
        "VCPUs",
        "State",
        "Time(s)"
    )
}

/// One row.
pub fn row(r: &Row) -> String {
    alloc::format!(
        "{:<40} {:>5} {:>5} {:>5} {:>10} {:>8}",
        r.name,
        r.domid,
        r.mem_mib,
        r.vcpus,
        state_flags(r.state),
        tenths(r.cpu_ns)
    )
}

/// `r b p s c d`, with `-` for each flag that is off.
pub fn state_flags(state: u32) -> String {
    [
        (domstate::RUNNING, 'r'),
        (domstate::BLOCKED, 'b'),
        (domstate::PAUSED, 'p'),
        (domstate::SHUTDOWN, 's'),
        (domstate::CRASHED, 'c'),
        (domstate::DYING, 'd'),
    ]
    .iter()
    .map(|&(bit, c)| if state & bit != 0 { c } else { '-' })
    .collect()
}

/// vCPUs of `info` that are up, as far as the hypervisor says.
pub fn online_vcpus<H: Hv>(hv: &mut H, info: &DomainInfo) -> u32 {
    let mut up = 0;
    for v in 0..info.vcpus.min(crate::config::MAX_VCPUS) {
        match hv.domctl_vcpu_info(info.domid, v) {
            Ok(rec) => up += u32::from(rec.online != 0),
            // No vCPU records (a 1.0 hypervisor): the count it has.
            Err(_) => return info.vcpus,
        }
    }
    up
}

/// `xm list`.
pub fn list<H: Hv>(
    xm: &Xm<'_>,
    hv: &mut H,
    long: bool,
    names: &[String],
    out: &mut String,
) -> Result<Next, Fail> {
    let all = domains(hv).map_err(|s| Fail::error(alloc::format!("Cannot list the domains: {s}")))?;
    let chosen: Vec<DomainInfo> = if names.is_empty() {
        all
    } else {
        // xm stops at the first name it does not know, before printing.
        let mut chosen = Vec::new();
        for name in names {
            chosen.push(find(&all, name).ok_or_else(|| no_such(name))?);
        }
        chosen
    };
    if long {
        for info in &chosen {
            let sched = hv.domctl_sched_get(info.domid).ok();
            let vcpus = online_vcpus(hv, info);
            let config = xm.watch.find(info.domid).map(|d| &d.config);
            out.push_str(&long_form(info, vcpus, sched, config));
        }
        return Ok(Next::Prompt);
    }
    say!(out, "{}", header());
    for info in &chosen {
        let r = Row {
            name: name_of(info).into(),
            domid: info.domid,
            mem_mib: mib(info.tot_pages),
            vcpus: online_vcpus(hv, info),
            state: info.state,
            cpu_ns: info.cpu_time_ns,
        };
        say!(out, "{}", row(&r));
    }
    Ok(Next::Prompt)
}

/// The `xm list -l` block of one domain, ending with a newline.
pub fn long_form(
    info: &DomainInfo,
    vcpus: u32,
    sched: Option<SchedParams>,
    config: Option<&Config>,
) -> String {
    let mut out = String::from("(domain\n");
    let mut field = |key: &str, value: &str| say!(out, "    ({key} {})", sxp_atom(value));
    field("domid", &alloc::format!("{}", info.domid));
    field("name", name_of(info));
    field("memory", &alloc::format!("{}", mib(info.tot_pages)));
    field("maxmem", &alloc::format!("{}", mib(info.max_pages)));
    field("vcpus", &alloc::format!("{}", info.vcpus));
    field("online_vcpus", &alloc::format!("{vcpus}"));
    field("state", &state_flags(info.state));
    if info.state & (domstate::SHUTDOWN | domstate::CRASHED) != 0 {
        let reason =
            ShutdownReason::try_from(u64::from(info.shutdown_reason)).map_or("unknown", |r| r.name());
        field("shutdown_reason", reason);
    }
    field("cpu_time", &seconds(info.cpu_time_ns));
    if let Some(p) = sched {
        field("weight", &alloc::format!("{}", p.weight));
        field("cap", &alloc::format!("{}", p.cap));
    }
    if let Some(c) = config {
        field("on_poweroff", c.on_poweroff.name());
        field("on_reboot", c.on_reboot.name());
        field("on_crash", c.on_crash.name());
        say!(
            out,
            "    (image (linux (kernel {}) (args {})))",
            sxp_atom(&c.kernel),
            sxp_atom(&c.extra)
        );
    }
    out.push_str(")\n");
    out
}

/// Seconds with up to three decimals, as Python prints a float (`0.12`, `3.0`).
fn seconds(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let mut text = alloc::format!("{}.{:03}", ms / 1000, ms % 1000);
    while text.ends_with('0') && !text.ends_with(".0") {
        text.pop();
    }
    text
}

/// A value as an s-expression atom: bare when it is a plain word, else in
/// single quotes with `\` before quotes and backslashes.
pub fn sxp_atom(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\'' | '"' | '\\'));
    if plain {
        return value.into();
    }
    let mut out = String::from("'");
    for c in value.chars() {
        if matches!(c, '\'' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn the_header_and_the_domain_0_row_are_xms() {
        assert_eq!(
            header(),
            "Name                                        ID   Mem VCPUs      State   Time(s)"
        );
        let dom0 = Row {
            name: "Domain-0".into(),
            domid: 0,
            mem_mib: 32,
            vcpus: 1,
            state: domstate::RUNNING,
            cpu_ns: 123_000_000,
        };
        assert_eq!(
            row(&dom0),
            "Domain-0                                     0    32     1     r-----      0.1"
        );
        // The columns line up with the header's.
        assert_eq!(row(&dom0).len(), header().len() - 1);
    }

    #[test]
    fn widths_hold_for_long_values() {
        let r = Row {
            name: "a-name-of-thirty-one-characters".into(),
            domid: 32751,
            mem_mib: 123_456,
            vcpus: 8,
            state: domstate::PAUSED | domstate::SHUTDOWN | domstate::CRASHED | domstate::DYING,
            cpu_ns: 98_765_432_100_000,
        };
        assert_eq!(
            row(&r),
            "a-name-of-thirty-one-characters          32751 123456     8     --pscd  98765.4"
        );
    }

    #[test]
    fn state_flags_and_tenths() {
        assert_eq!(state_flags(0), "------");
        assert_eq!(state_flags(domstate::BLOCKED), "-b----");
        assert_eq!(state_flags(domstate::PAUSED), "--p---");
        assert_eq!(state_flags(0x3f), "rbpscd");
        assert_eq!(state_flags(u32::MAX), "rbpscd", "unknown bits are ignored");
        assert_eq!(tenths(0), "0.0");
        assert_eq!(tenths(49_999_999), "0.0");
        assert_eq!(tenths(50_000_000), "0.1");
        assert_eq!(tenths(1_250_000_000), "1.3");
        assert_eq!(tenths(u64::MAX), "18446744073.7");
    }

    #[test]
    fn long_form() {
        let info = DomainInfo {
            domid: 1,
            pad0: 0,
            state: domstate::BLOCKED,
            flags: 0,
            vcpus: 2,
            shutdown_reason: 0,
            pad1: 0,
            tot_pages: 1024,
            max_pages: 2048,
            cpu_time_ns: 120_000_000,
            name: dom0_abi::name_field("hello"),
            overhead_pages: 0,
            reserved: 0,
        };
        let config = Config::parse(
            "hello.cfg",
            b"name='hello'\nmemory=4\nkernel='images/hello.elf'\nextra=\"greeting=it's me\"\n",
        )
        .unwrap()
        .config;
        let sched = SchedParams {
            weight: 256,
            cap: 0,
            reserved: 0,
        };
        assert_eq!(
            super::long_form(&info, 1, Some(sched), Some(&config)),
            "(domain\n    (domid 1)\n    (name hello)\n    (memory 4)\n    (maxmem 8)\n    (vcpus 2)\n    \
             (online_vcpus 1)\n    (state -b----)\n    (cpu_time 0.12)\n    (weight 256)\n    (cap 0)\n    \
             (on_poweroff destroy)\n    (on_reboot restart)\n    (on_crash destroy)\n    \
             (image (linux (kernel images/hello.elf) (args 'greeting=it\\'s me')))\n)\n"
        );
        let mut stopped = info;
        stopped.state = domstate::SHUTDOWN;
        let text = super::long_form(&stopped, 0, None, None);
        assert!(text.contains("(shutdown_reason poweroff)"), "{text}");
        assert!(!text.contains("weight") && !text.contains("image"));
        assert_eq!(seconds(3_000_000_000), "3.0");
        assert_eq!(seconds(1_234_567_890), "1.234");
        assert_eq!(sxp_atom(""), "''");
    }
}
