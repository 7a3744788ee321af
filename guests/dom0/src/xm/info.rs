//! `xm info`: the host in xm's `key : value` layout (keys padded to 23
//! columns, `print "%-23s:" % key, value`), in xend's order. Values come
//! from `sysctl_physinfo` (CPUs, memory, TSC, versions) and from how this
//! dom0 was built (`build.rs`: the compiler, who built it and when);
//! what Oxen does not know is shown as `unavailable` rather than guessed.

use alloc::string::String;
use alloc::vec::Vec;

use dom0_abi::{GUEST_VA_LIMIT, PAGE_SIZE, Physinfo};

use super::{Fail, Next, hv_fail, mib};
use crate::hv::Hv;

/// Width of the key column.
const KEY_WIDTH: usize = 23;
/// What is shown for a value Oxen does not know.
pub const UNAVAILABLE: &str = "unavailable";

/// The compiler this dom0 was built with (`rustc -V` at build time).
pub const RUSTC: &str = env!("OXEN_RUSTC_VERSION");
/// Who built it.
pub const BUILT_BY: &str = env!("OXEN_BUILD_USER");
/// When (UTC; `SOURCE_DATE_EPOCH` when set, for reproducible builds).
pub const BUILT_ON: &str = env!("OXEN_BUILD_DATE");

/// `xm info`.
pub fn info<H: Hv>(hv: &mut H, out: &mut String) -> Result<Next, Fail> {
    let phys = hv
        .sysctl_physinfo()
        .map_err(|s| hv_fail("Reading the machine's physinfo", s))?;
    for (key, value) in lines(&phys, hw_caps()) {
        say!(out, "{key:<KEY_WIDTH$}: {value}");
    }
    Ok(Next::Prompt)
}

/// The keys and values, in order.
pub fn lines(phys: &Physinfo, hw_caps: Option<[u32; 8]>) -> Vec<(&'static str, String)> {
    let s = |v: &dyn core::fmt::Display| alloc::format!("{v}");
    let caps = match hw_caps {
        Some(words) => words
            .iter()
            .map(|w| alloc::format!("{w:08x}"))
            .collect::<Vec<_>>()
            .join(":"),
        None => UNAVAILABLE.into(),
    };
    alloc::vec![
        ("host", s(&"oxen")),
        ("release", s(&env!("CARGO_PKG_VERSION"))),
        (
            "version",
            alloc::format!("Oxen dom0 (ABI {}.{})", phys.abi_major, phys.abi_minor)
        ),
        ("machine", s(&"x86_64")),
        ("nr_cpus", s(&phys.nr_cpus)),
        // Oxen keeps no NUMA or topology information: one node, and the
        // rest unknown.
        ("nr_nodes", s(&1)),
        ("cores_per_socket", s(&UNAVAILABLE)),
        ("threads_per_core", s(&UNAVAILABLE)),
        ("cpu_mhz", s(&(phys.tsc_khz / 1000))),
        ("hw_caps", caps),
        ("total_memory", s(&mib(phys.total_pages))),
        ("free_memory", s(&mib(phys.free_pages))),
        ("xen_major", s(&phys.hv_major)),
        ("xen_minor", s(&phys.hv_minor)),
        ("xen_extra", alloc::format!(".{}", phys.hv_patch)),
        (
            "xen_caps",
            alloc::format!("oxen-{}.{}-x86_64", phys.abi_major, phys.abi_minor)
        ),
        ("xen_scheduler", s(&"credit")),
        ("xen_pagesize", s(&PAGE_SIZE)),
        (
            "platform_params",
            alloc::format!("guest_va_limit={GUEST_VA_LIMIT:#x}")
        ),
        ("xen_changeset", s(&UNAVAILABLE)),
        ("cc_compiler", s(&RUSTC)),
        ("cc_compile_by", s(&BUILT_BY)),
        ("cc_compile_date", s(&BUILT_ON)),
        ("xend_config_format", s(&4)),
    ]
}

/// The CPU's feature words as Xen's `hw_caps` lists them: CPUID 1 EDX and
/// ECX, 0x8000_0001 EDX and ECX, 7.0 EBX, ECX and EDX, 0xd.1 EAX (Intel SDM
/// Vol. 2A, "CPUID"; AMD APM Vol. 3, appendix E). CPUID runs unprivileged,
/// so dom0 reads them itself.
#[cfg(target_arch = "x86_64")]
fn hw_caps() -> Option<[u32; 8]> {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let max = __cpuid(0).eax;
    let max_ext = __cpuid(0x8000_0000).eax;
    let leaf1 = __cpuid(1);
    let ext1 = (max_ext >= 0x8000_0001).then(|| __cpuid(0x8000_0001));
    let leaf7 = (max >= 7).then(|| __cpuid_count(7, 0));
    let leafd = (max >= 0xd).then(|| __cpuid_count(0xd, 1));
    Some([
        leaf1.edx,
        leaf1.ecx,
        ext1.map_or(0, |r| r.edx),
        ext1.map_or(0, |r| r.ecx),
        leaf7.map_or(0, |r| r.ebx),
        leaf7.map_or(0, |r| r.ecx),
        leaf7.map_or(0, |r| r.edx),
        leafd.map_or(0, |r| r.eax),
    ])
}

/// No CPUID elsewhere.
#[cfg(not(target_arch = "x86_64"))]
fn hw_caps() -> Option<[u32; 8]> {
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::fake::FakeHv;

    #[test]
    fn every_key_in_xms_order_and_layout() {
        let mut hv = FakeHv::with_dom0(10_000);
        let mut out = String::new();
        info(&mut hv, &mut out).unwrap();
        let keys: Vec<&str> = out.lines().map(|l| l[..KEY_WIDTH].trim_end()).collect();
        assert_eq!(
            keys,
            [
                "host",
                "release",
                "version",
                "machine",
                "nr_cpus",
                "nr_nodes",
                "cores_per_socket",
                "threads_per_core",
                "cpu_mhz",
                "hw_caps",
                "total_memory",
                "free_memory",
                "xen_major",
                "xen_minor",
                "xen_extra",
                "xen_caps",
                "xen_scheduler",
                "xen_pagesize",
                "platform_params",
                "xen_changeset",
                "cc_compiler",
                "cc_compile_by",
                "cc_compile_date",
                "xend_config_format",
            ]
        );
        assert!(out.lines().all(|l| &l[KEY_WIDTH..KEY_WIDTH + 2] == ": "));
        for line in [
            "host                   : oxen",
            "nr_cpus                : 1",
            "cpu_mhz                : 2000",
            "total_memory           : 71",
            "free_memory            : 39",
            "xen_major              : 0",
            "xen_minor              : 1",
            "xen_extra              : .0",
            "xen_scheduler          : credit",
            "xen_pagesize           : 4096",
            "xend_config_format     : 4",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        assert!(out.contains("cc_compiler            : rustc "), "{out}");
        let caps = out.lines().find(|l| l.starts_with("hw_caps")).unwrap();
        assert_eq!(caps.len(), KEY_WIDTH + 2 + 8 * 9 - 1, "{caps}");
    }

    #[test]
    fn no_physinfo_is_an_error() {
        let mut hv = FakeHv::with_dom0(10_000);
        let phys = hv.sysctl_physinfo().unwrap();
        let shown = lines(&phys, None);
        assert!(shown.iter().any(|(k, v)| *k == "hw_caps" && v == UNAVAILABLE));
    }
}
