//! The vCPU commands: `xm vcpu-list [Domain ...]` in xl's layout
//! (`print_vcpuinfo` in `tools/xl/xl_vcpu.c`, including its column quirk:
//! the CPU number follows the VCPU number without a space), `xm vcpu-set
//! DOM N` (vCPUs `0..N` may be up, within the domain's count), and `xm
//! vcpu-pin DOM VCPU|all CPUS|all` with CPU lists such as `0-1,3` or
//! `all,^2` ([`parse_cpus`]) turned into the affinity mask the hypervisor
//! keeps.

use alloc::string::String;
use alloc::vec::Vec;

use dom0_abi::{DomainInfo, VcpuRecord};

use super::{Fail, Next, domains, find, hv_fail, is_dom0, name_of, no_such, resolve, tenths};
use crate::hv::Hv;
use crate::shell::commands::VcpuSel;

/// CPUs an affinity mask can name.
pub const MASK_CPUS: u32 = u64::BITS;

/// The header line.
pub fn header() -> String {
    alloc::format!(
        "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} {}",
        "Name",
        "ID",
        "VCPU",
        "CPU",
        "State",
        "Time(s)",
        "Affinity"
    )
}

/// One row: vCPU `vcpu` of domain `domid` on a machine of `nr_cpus`.
pub fn row(name: &str, domid: u16, vcpu: u32, rec: &VcpuRecord, nr_cpus: u32) -> String {
    let mut out = alloc::format!("{name:<32} {domid:>5} {vcpu:>5}");
    if rec.online == 0 {
        out.push_str(&alloc::format!("{:>5} {:>3}{}p ", '-', '-', '-'));
    } else {
        let running = if rec.running != 0 { 'r' } else { '-' };
        let blocked = if rec.blocked != 0 { 'b' } else { '-' };
        out.push_str(&alloc::format!("{:>5} {running:>3}{blocked}- ", rec.cpu));
    }
    out.push_str(&alloc::format!("{:>9}  ", tenths(rec.cpu_time_ns)));
    out.push_str(&affinity(rec.affinity, nr_cpus));
    out
}

/// A CPU mask as xl prints one (`print_bitmap`): `all` when it holds
/// every CPU of the host (`nr_cpus`) and says the same of every CPU the
/// host lacks, `none` when it is empty, else ranges (`0-1,3`) over all the
/// CPUs a mask can name, so that a kept affinity naming CPUs the host does
/// not have (yet) shows as it is.
pub fn affinity(mask: u64, nr_cpus: u32) -> String {
    let host = host_mask(nr_cpus);
    if mask & host == host && (mask & !host == 0 || mask | host == u64::MAX) {
        return "all".into();
    }
    let bit = |i: u32| mask & (1u64 << i) != 0;
    let mut ranges: Vec<String> = Vec::new();
    let mut i = 0;
    while i < MASK_CPUS {
        if !bit(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < MASK_CPUS && bit(i + 1) {
            i += 1;
        }
        ranges.push(if i > start {
            alloc::format!("{start}-{i}")
        } else {
            alloc::format!("{start}")
        });
        i += 1;
    }
    if ranges.is_empty() {
        "none".into()
    } else {
        ranges.join(",")
    }
}

/// The mask of a host's `nr_cpus` CPUs.
pub fn host_mask(nr_cpus: u32) -> u64 {
    match nr_cpus.clamp(1, MASK_CPUS) {
        MASK_CPUS => u64::MAX,
        n => (1u64 << n) - 1,
    }
}

/// A CPU list as xm and xl take it, as a mask: `all` (every CPU, present
/// or to come), or comma-separated items `N`, `N-M`, `^N`, `^N-M` (`^`
/// takes CPUs out again), each naming CPUs 0 to 63.
pub fn parse_cpus(text: &str) -> Result<u64, String> {
    let bad = || alloc::format!("'{text}' is not a CPU list such as 0-1,3 or all.");
    let mut mask = 0u64;
    for item in text.split(',') {
        let (remove, item) = match item.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        let range = if item == "all" {
            u64::MAX
        } else {
            let number = |s: &str| -> Result<u32, String> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let cpu: u32 = s.parse().map_err(|_| bad())?;
                if cpu >= MASK_CPUS {
                    return Err(alloc::format!(
                        "CPU {cpu} is out of range: an affinity names CPUs 0 to {}.",
                        MASK_CPUS - 1
                    ));
                }
                Ok(cpu)
            };
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let c = number(item)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(bad());
            }
            (lo..=hi).fold(0u64, |m, c| m | (1u64 << c))
        };
        if remove {
            mask &= !range;
        } else {
            mask |= range;
        }
    }
    if mask == 0 {
        return Err(alloc::format!("The CPU list '{text}' names no CPU."));
    }
    Ok(mask)
}

/// The machine's CPU count (1 when the hypervisor cannot say).
fn nr_cpus<H: Hv>(hv: &mut H) -> u32 {
    hv.sysctl_physinfo().map_or(1, |p| p.nr_cpus.max(1))
}

/// `xm vcpu-list`.
pub fn vcpu_list<H: Hv>(hv: &mut H, names: &[String], out: &mut String) -> Result<Next, Fail> {
    let all = domains(hv).map_err(|s| Fail::error(alloc::format!("Cannot list the domains: {s}")))?;
    let chosen: Vec<DomainInfo> = if names.is_empty() {
        all
    } else {
        let mut chosen = Vec::new();
        for name in names {
            chosen.push(find(&all, name).ok_or_else(|| no_such(name))?);
        }
        chosen
    };
    let cpus = nr_cpus(hv);
    say!(out, "{}", header());
    for d in &chosen {
        for v in 0..d.vcpus.min(crate::config::MAX_VCPUS) {
            let rec = hv
                .domctl_vcpu_info(d.domid, v)
                .map_err(|s| hv_fail(alloc::format!("Reading vCPU {v} of {}", name_of(d)), s))?;
            say!(out, "{}", row(name_of(d), d.domid, v, &rec, cpus));
        }
    }
    Ok(Next::Prompt)
}

/// `xm vcpu-set DOM N`.
pub fn vcpu_set<H: Hv>(hv: &mut H, spec: &str, count: u32) -> Result<Next, Fail> {
    let info = resolve(hv, spec)?;
    if is_dom0(&info) {
        return Err(Fail::error(
            "Cannot change the vCPUs of privileged domain Domain-0.",
        ));
    }
    if count == 0 || count > info.vcpus {
        let range = match info.vcpus {
            1 => String::from("it has only 1 vCPU"),
            n => alloc::format!("it may have 1 to {n}"),
        };
        return Err(Fail::error(alloc::format!(
            "Cannot set {} to {count} vCPUs: {range} (vcpus = {} in its config).",
            name_of(&info),
            info.vcpus
        )));
    }
    hv.domctl_set_vcpus(info.domid, count)
        .map_err(|s| hv_fail(alloc::format!("Setting the vCPUs of {}", name_of(&info)), s))?;
    Ok(Next::Prompt)
}

/// `xm vcpu-pin DOM VCPU|all CPUS`: the mask is kept as given; CPUs the
/// host does not have count once it has them (the hypervisor honours
/// affinity once SMP lands), but at least one must exist now.
pub fn vcpu_pin<H: Hv>(
    hv: &mut H,
    spec: &str,
    vcpu: &VcpuSel,
    cpus: &str,
    out: &mut String,
) -> Result<Next, Fail> {
    let info = resolve(hv, spec)?;
    let mask = parse_cpus(cpus).map_err(Fail::Error)?;
    let n = nr_cpus(hv);
    let host = host_mask(n);
    let plural = if n == 1 { "" } else { "s" };
    if mask & host == 0 {
        return Err(Fail::error(alloc::format!(
            "None of the CPUs in '{cpus}' exists: this host has {n} CPU{plural} ({}).",
            affinity(host, MASK_CPUS)
        )));
    }
    let vcpus: Vec<u32> = match *vcpu {
        VcpuSel::All => (0..info.vcpus).collect(),
        VcpuSel::One(v) if v < info.vcpus => alloc::vec![v],
        VcpuSel::One(v) => {
            return Err(Fail::error(alloc::format!(
                "Domain {} has no vCPU {v} (its vCPUs are 0 to {}).",
                name_of(&info),
                info.vcpus.saturating_sub(1)
            )));
        }
    };
    for v in vcpus {
        hv.domctl_vcpu_pin(info.domid, v, mask)
            .map_err(|s| hv_fail(alloc::format!("Pinning vCPU {v} of {}", name_of(&info)), s))?;
    }
    if mask & !host != 0 && mask != u64::MAX {
        say!(
            out,
            "Warning: this host has {n} CPU{plural} ({}); CPUs {} are kept in the affinity for later.",
            affinity(host, MASK_CPUS),
            affinity(mask & !host, MASK_CPUS)
        );
    }
    Ok(Next::Prompt)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::fake::FakeHv;
    use dom0_abi::DomainConfig;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("all"), Ok(u64::MAX));
        assert_eq!(parse_cpus("0-1,3"), Ok(0b1011));
        assert_eq!(parse_cpus("3,0-1"), Ok(0b1011));
        assert_eq!(parse_cpus("0-3,^2"), Ok(0b1011));
        assert_eq!(parse_cpus("all,^2-63"), Ok(0b11));
        assert_eq!(parse_cpus("0-7,^2-5"), Ok(0b1100_0011));
        assert_eq!(parse_cpus("63"), Ok(1 << 63));
        assert_eq!(
            parse_cpus("64"),
            Err("CPU 64 is out of range: an affinity names CPUs 0 to 63.".into())
        );
        assert_eq!(parse_cpus("^0"), Err("The CPU list '^0' names no CPU.".into()));
        assert_eq!(
            parse_cpus("1,^all"),
            Err("The CPU list '1,^all' names no CPU.".into())
        );
        for bad in [
            "",
            ",",
            "1-",
            "-1",
            "3-1",
            "x",
            "1,,2",
            "0x1",
            "1 2",
            "99999999999",
            "^",
            "all-2",
        ] {
            assert_eq!(
                parse_cpus(bad),
                Err(alloc::format!("'{bad}' is not a CPU list such as 0-1,3 or all.")),
                "{bad}"
            );
        }
    }

    #[test]
    fn affinity_as_xl_prints_it() {
        assert_eq!(affinity(u64::MAX, 1), "all");
        assert_eq!(affinity(1, 1), "all");
        assert_eq!(affinity(0b1111, 4), "all");
        assert_eq!(affinity(0b1011, 4), "0-1,3");
        assert_eq!(affinity(0b1011, 1), "0-1,3", "a kept mask shows as it is");
        assert_eq!(affinity(0b0110, 8), "1-2");
        assert_eq!(affinity(0, 4), "none");
        assert_eq!(affinity(1 << 63, 64), "63");
        assert_eq!(affinity(!4u64, 4), "0-1,3-63");
        assert_eq!(host_mask(1), 1);
        assert_eq!(host_mask(0), 1);
        assert_eq!(host_mask(64), u64::MAX);
        assert_eq!(host_mask(100), u64::MAX);
    }

    #[test]
    fn rows_in_xls_layout() {
        assert_eq!(
            header(),
            "Name                                ID  VCPU   CPU State   Time(s) Affinity"
        );
        let rec = VcpuRecord {
            online: 1,
            blocked: 0,
            running: 1,
            pad: 0,
            cpu: 0,
            affinity: u64::MAX,
            cpu_time_ns: 31_200_000_000,
            reserved: 0,
        };
        assert_eq!(
            row("Domain-0", 0, 0, &rec, 1),
            "Domain-0                             0     0    0   r--      31.2  all"
        );
        let off = VcpuRecord { online: 0, ..rec };
        assert_eq!(
            row("web", 3, 1, &off, 1),
            "web                                  3     1    -   --p      31.2  all"
        );
    }

    #[test]
    fn set_pin_and_list() {
        let mut hv = FakeHv::with_dom0(100_000);
        hv.nr_cpus = 4;
        let config = DomainConfig {
            max_pages: 256,
            initial_pages: 256,
            vcpus: 2,
            flags: 0,
            name: dom0_abi::name_field("web"),
            reserved: 0,
        };
        hv.domctl_create(&config).unwrap();
        vcpu_set(&mut hv, "web", 1).unwrap();
        assert_eq!(hv.domain(1).online_vcpus, 1);
        assert!(
            matches!(vcpu_set(&mut hv, "web", 3), Err(Fail::Error(e)) if e.contains("it may have 1 to 2 (vcpus = 2 in its config)"))
        );
        assert!(vcpu_set(&mut hv, "web", 0).is_err());
        assert!(vcpu_set(&mut hv, "0", 1).is_err());
        let mut out = String::new();
        vcpu_pin(&mut hv, "web", &VcpuSel::All, "0-1,3", &mut out).unwrap();
        assert_eq!(&hv.domain(1).affinity[..2], &[0b1011, 0b1011]);
        vcpu_pin(&mut hv, "web", &VcpuSel::One(1), "2", &mut out).unwrap();
        assert_eq!(&hv.domain(1).affinity[..2], &[0b1011, 0b100]);
        assert_eq!(out, "", "every CPU named exists");
        assert!(matches!(
            vcpu_pin(&mut hv, "web", &VcpuSel::One(2), "all", &mut out),
            Err(Fail::Error(e)) if e == "Domain web has no vCPU 2 (its vCPUs are 0 to 1)."
        ));
        assert_eq!(
            vcpu_pin(&mut hv, "web", &VcpuSel::One(0), "7", &mut out).unwrap_err(),
            Fail::Error("None of the CPUs in '7' exists: this host has 4 CPUs (0-3).".into())
        );
        hv.nr_cpus = 1;
        vcpu_pin(&mut hv, "web", &VcpuSel::One(0), "0-1,3", &mut out).unwrap();
        assert_eq!(
            out,
            "Warning: this host has 1 CPU (0); CPUs 1,3 are kept in the affinity for later.\n"
        );
        assert_eq!(hv.domain(1).affinity[0], 0b1011);
        hv.nr_cpus = 4;
        vcpu_pin(&mut hv, "web", &VcpuSel::One(0), "0-1,3", &mut out).unwrap();
        let mut out = String::new();
        vcpu_list(&mut hv, &["web".into()], &mut out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].ends_with("0-1,3"), "{}", lines[1]);
        assert!(lines[2].ends_with(" 2"), "{}", lines[2]);
        let mut out = String::new();
        vcpu_list(&mut hv, &[], &mut out).unwrap();
        assert_eq!(out.lines().count(), 4);
        assert!(vcpu_list(&mut hv, &["nosuch".into()], &mut out).is_err());
    }
}
