//! `xm uptime [-s] [Domain ...]` in xl's layout (`print_uptime` in
//! `tools/xl/xl_info.c`: header `%-33s %4s %s`, rows `%-33s %4d %s` with
//! `[D day(s), ]%2d:%02d:%02d`). Uptimes come from dom0's own clock:
//! Domain-0's is the time since boot, a domU's the time since dom0 started
//! it (a domain dom0 did not start has no known start and is left out, as
//! xl leaves out one without a start time). `-s` prints xl's short line
//! without the time of day, which Oxen's dom0 does not know.

use alloc::string::String;

use super::{Fail, Next, Xm, domains, find, is_dom0, name_of, no_such};
use crate::hv::Hv;

/// The header line.
pub fn header() -> String {
    alloc::format!("{:<33} {:>4} {}", "Name", "ID", "Uptime")
}

/// One row.
pub fn row(name: &str, domid: u16, secs: u64) -> String {
    alloc::format!("{name:<33} {domid:>4} {}", duration(secs, false))
}

/// `secs` as xl writes an uptime: `H:MM:SS` with the hours padded to two
/// columns, days in front when there are any; `short` drops the seconds.
pub fn duration(secs: u64, short: bool) -> String {
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let mut out = match days {
        0 => String::new(),
        1 => String::from("1 day, "),
        d => alloc::format!("{d} days, "),
    };
    out.push_str(&alloc::format!("{h:2}:{m:02}"));
    if !short {
        out.push_str(&alloc::format!(":{s:02}"));
    }
    out
}

/// `xm uptime`.
pub fn uptime<H: Hv>(
    xm: &Xm<'_>,
    hv: &mut H,
    short: bool,
    names: &[String],
    now_ns: u64,
    out: &mut String,
) -> Result<Next, Fail> {
    let all = domains(hv).map_err(|s| Fail::error(alloc::format!("Cannot list the domains: {s}")))?;
    let mut chosen = alloc::vec::Vec::new();
    if names.is_empty() {
        chosen = all;
    } else {
        for name in names {
            chosen.push(find(&all, name).ok_or_else(|| no_such(name))?);
        }
    }
    if !short {
        say!(out, "{}", header());
    }
    for d in &chosen {
        let started = if is_dom0(d) {
            Some(0)
        } else {
            xm.watch.find(d.domid).map(|w| w.started_ns)
        };
        let Some(started) = started else { continue };
        let secs = now_ns.saturating_sub(started) / 1_000_000_000;
        if short {
            say!(out, " up {}, {} ({})", duration(secs, true), name_of(d), d.domid);
        } else {
            say!(out, "{}", row(name_of(d), d.domid, secs));
        }
    }
    Ok(Next::Prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_layout() {
        assert_eq!(header(), "Name                                ID Uptime");
        assert_eq!(
            row("Domain-0", 0, 5),
            "Domain-0                             0  0:00:05"
        );
        assert_eq!(
            row("hello", 12, 3723),
            "hello                               12  1:02:03"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0, false), " 0:00:00");
        assert_eq!(duration(59, false), " 0:00:59");
        assert_eq!(duration(60, false), " 0:01:00");
        assert_eq!(duration(36_000, false), "10:00:00");
        assert_eq!(duration(86_399, false), "23:59:59");
        assert_eq!(duration(86_400, false), "1 day,  0:00:00");
        assert_eq!(duration(2 * 86_400 + 61, false), "2 days,  0:01:01");
        assert_eq!(duration(2 * 86_400 + 61, true), "2 days,  0:01");
        assert_eq!(duration(u64::MAX, false), "213503982334601 days,  7:00:15");
    }
}
