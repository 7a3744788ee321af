//! `xm sched-credit [-d DOM [-w WEIGHT] [-c CAP]]`: without `-w` or `-c`,
//! the table of every domain's (or one domain's) credit-scheduler
//! parameters in xl's layout (`sched_credit_domain_output` in
//! `tools/xl/xl_sched.c`: `%-33s %4s %6s %4s`); with them, set the
//! parameters of `DOM`, keeping the one not given.

use alloc::string::String;
use alloc::vec::Vec;

use dom0_abi::{DomainInfo, SCHED_WEIGHT_MAX, SchedParams};

use super::{Fail, Next, domains, find, hv_fail, name_of, no_such};
use crate::hv::Hv;

/// Largest cap Oxen takes: 100% of its one CPU.
pub const CAP_MAX: u32 = 100;

/// The header line.
pub fn header() -> String {
    alloc::format!("{:<33} {:>4} {:>6} {:>4}", "Name", "ID", "Weight", "Cap")
}

/// One row.
pub fn row(name: &str, domid: u16, p: &SchedParams) -> String {
    alloc::format!("{name:<33} {domid:>4} {:>6} {:>4}", p.weight, p.cap)
}

/// `xm sched-credit`.
pub fn sched_credit<H: Hv>(
    hv: &mut H,
    spec: Option<&str>,
    weight: Option<u32>,
    cap: Option<u32>,
    out: &mut String,
) -> Result<Next, Fail> {
    let all = domains(hv).map_err(|s| Fail::error(alloc::format!("Cannot list the domains: {s}")))?;
    let chosen: Vec<DomainInfo> = match spec {
        None => all,
        Some(spec) => alloc::vec![find(&all, spec).ok_or_else(|| no_such(spec))?],
    };
    if weight.is_none() && cap.is_none() {
        say!(out, "{}", header());
        for d in &chosen {
            let p = hv.domctl_sched_get(d.domid).map_err(|s| {
                hv_fail(
                    alloc::format!("Reading the scheduler parameters of {}", name_of(d)),
                    s,
                )
            })?;
            say!(out, "{}", row(name_of(d), d.domid, &p));
        }
        return Ok(Next::Prompt);
    }
    if let Some(w) = weight
        && !(1..=SCHED_WEIGHT_MAX).contains(&w)
    {
        return Err(Fail::error(alloc::format!(
            "Invalid weight {w}: the credit scheduler takes 1 to {SCHED_WEIGHT_MAX}."
        )));
    }
    if let Some(c) = cap
        && c > CAP_MAX
    {
        return Err(Fail::error(alloc::format!(
            "Invalid cap {c}: 0 (no cap) to {CAP_MAX} (percent of one CPU)."
        )));
    }
    // `spec` is set whenever a weight or cap is (the parser checks).
    let Some(d) = chosen.first() else {
        return Err(Fail::Usage("sched-credit", "No domain given.".into()));
    };
    let now = hv.domctl_sched_get(d.domid).map_err(|s| {
        hv_fail(
            alloc::format!("Reading the scheduler parameters of {}", name_of(d)),
            s,
        )
    })?;
    let params = SchedParams {
        weight: weight.unwrap_or(now.weight),
        cap: cap.unwrap_or(now.cap),
        reserved: 0,
    };
    hv.domctl_sched_set(d.domid, &params).map_err(|s| {
        hv_fail(
            alloc::format!("Setting the scheduler parameters of {}", name_of(d)),
            s,
        )
    })?;
    Ok(Next::Prompt)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::fake::FakeHv;

    #[test]
    fn table_set_and_errors() {
        let mut hv = FakeHv::with_dom0(10_000);
        let mut out = String::new();
        sched_credit(&mut hv, None, None, None, &mut out).unwrap();
        assert_eq!(
            out,
            "Name                                ID Weight  Cap\n\
             Domain-0                             0    256    0\n"
        );
        sched_credit(&mut hv, Some("Domain-0"), Some(512), None, &mut out).unwrap();
        sched_credit(&mut hv, Some("0"), None, Some(50), &mut out).unwrap();
        let mut out = String::new();
        sched_credit(&mut hv, Some("Domain-0"), None, None, &mut out).unwrap();
        assert!(
            out.ends_with("Domain-0                             0    512   50\n"),
            "{out}"
        );
        assert_eq!(
            sched_credit(&mut hv, Some("0"), Some(0), None, &mut out).unwrap_err(),
            Fail::Error("Invalid weight 0: the credit scheduler takes 1 to 65535.".into())
        );
        assert!(sched_credit(&mut hv, Some("0"), Some(70_000), None, &mut out).is_err());
        assert_eq!(
            sched_credit(&mut hv, Some("0"), None, Some(101), &mut out).unwrap_err(),
            Fail::Error("Invalid cap 101: 0 (no cap) to 100 (percent of one CPU).".into())
        );
        assert_eq!(
            sched_credit(&mut hv, Some("web"), Some(5), None, &mut out).unwrap_err(),
            Fail::Error("Domain 'web' does not exist.".into())
        );
        hv.fail.push(crate::fake::Fail::SchedSet(dom0_abi::Status::EPERM));
        assert_eq!(
            sched_credit(&mut hv, Some("0"), Some(5), None, &mut out).unwrap_err(),
            Fail::Error(
                "Setting the scheduler parameters of Domain-0 failed: EPERM (operation not permitted)".into()
            )
        );
    }
}
