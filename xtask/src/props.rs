//! The hostile-guest property suite, xtask's side: the list of properties
//! the `props` guest image declares (`guests/props/src/registry.rs`; a unit
//! test checks that the two lists agree), the per-scenario boot bundle whose
//! `auto/` starts one domain per property, and the verdict check.
//!
//! A scenario names the properties it runs with `props = [...]`: each word
//! is `all`, a group (`priv`, `hvmem`, `traps`, `entry`, `hypercalls`, `mmu`,
//! `isolation`, `evtchn`, `crash`, `fpu`, `storm`) or a property name. The
//! runner (`runner.rs`) then boots the default bundle with `auto/` holding
//! `NNN-p-NAME.cfg` for each (`name = "p-NAME"`, memory 8 MiB, kernel
//! `images/props.elf`, `extra = "prop=NAME"`), numbered in registry order
//! (dom0 starts them in file-name order), and after
//! the run [`judge`]s the serial output:
//!
//! - a SUCCESS property passes with its one line `prop NAME: SUCCESS`, or is
//!   skipped with `prop NAME: SKIP (why)`, and dom0 must report that its
//!   domain powered off;
//! - a CRASH property passes when it printed `prop NAME: expecting CRASH`
//!   and the hypervisor reported `domain N ('p-NAME') crashed: why`, with
//!   `why` readable text (a garbled report means the crash path ran amok);
//! - anything else fails: a FAILURE line, no verdict, two verdicts, a crash
//!   of a SUCCESS property, a verdict from an unknown property, and any
//!   `FATAL` or `NOT REFUSED` in the output.
//!
//! The result is the line `props: N passed, S skipped, F failed`, and one
//! failure reason per property that failed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::build::{self, BundleFile, Layout};
use crate::error::{Context, Result, error};
use crate::guests::{self, Package};

/// The guest package.
pub const PACKAGE: &str = "props";

/// Its image in the bundle, under `images/`.
pub const IMAGE: &str = "props.elf";

/// Memory of each property domain, MiB.
pub const MEMORY_MIB: u64 = 8;

/// The outcome a property expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The guest reports SUCCESS (or SKIP) and powers off.
    Success,
    /// The hypervisor crashes the domain.
    Crash,
}

/// One property of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prop {
    /// The name `prop=` selects.
    pub name: &'static str,
    /// The group scenarios select it by.
    pub group: &'static str,
    /// The outcome it expects.
    pub expect: Expect,
}

const fn ok(group: &'static str, name: &'static str) -> Prop {
    Prop {
        name,
        group,
        expect: Expect::Success,
    }
}

const fn crash(group: &'static str, name: &'static str) -> Prop {
    Prop {
        name,
        group,
        expect: Expect::Crash,
    }
}

/// Every property, in the guest's registry order.
pub const PROPS: &[Prop] = &[
    ok("priv", "priv-cli"),
    ok("priv", "priv-sti"),
    ok("priv", "priv-hlt"),
    ok("priv", "priv-read-cr3"),
    ok("priv", "priv-write-cr3"),
    ok("priv", "priv-read-cr0"),
    ok("priv", "priv-write-cr0"),
    ok("priv", "priv-read-dr7"),
    ok("priv", "priv-wrmsr"),
    ok("priv", "priv-rdmsr"),
    ok("priv", "priv-in"),
    ok("priv", "priv-out"),
    ok("priv", "priv-lgdt"),
    ok("priv", "priv-lidt"),
    ok("priv", "priv-ltr"),
    ok("priv", "priv-invlpg"),
    ok("priv", "priv-swapgs"),
    ok("priv", "priv-wbinvd"),
    ok("priv", "priv-clts"),
    ok("priv", "priv-xsetbv"),
    ok("priv", "iret-iopl"),
    ok("hvmem", "hv-image-read"),
    ok("hvmem", "hv-image-write"),
    ok("hvmem", "hv-image-exec"),
    ok("hvmem", "hv-directmap-read"),
    ok("hvmem", "hv-directmap-write"),
    ok("hvmem", "hv-directmap-exec"),
    ok("hvmem", "noncanonical-access"),
    ok("traps", "trap-frame"),
    ok("traps", "single-step"),
    ok("entry", "entry-df-fault"),
    ok("entry", "entry-df-interrupt"),
    crash("entry", "entry-df-crash"),
    ok("hypercalls", "efault-upper-half"),
    ok("hypercalls", "efault-noncanonical"),
    ok("hypercalls", "efault-straddle"),
    ok("hypercalls", "efault-unmapped"),
    ok("hypercalls", "efault-readonly"),
    ok("hypercalls", "enosys"),
    ok("hypercalls", "einval-mmu"),
    ok("hypercalls", "einval-trap-table"),
    ok("hypercalls", "einval-callbacks"),
    ok("hypercalls", "einval-shutdown"),
    ok("hypercalls", "counts-bounded"),
    ok("mmu", "mmu-unowned-gfn"),
    ok("mmu", "mmu-beyond-max"),
    ok("mmu", "mmu-wx"),
    ok("mmu", "mmu-overlap"),
    ok("mmu", "mmu-bad-va"),
    ok("mmu", "mmu-existing"),
    ok("mmu", "memory-decrease-bounds"),
    ok("isolation", "domctl-eperm"),
    ok("isolation", "console-ring-eperm"),
    ok("isolation", "foreign-frame-eperm"),
    ok("isolation", "foreign-space-eperm"),
    ok("evtchn", "evtchn-missing-domain"),
    ok("evtchn", "evtchn-port-range"),
    ok("evtchn", "evtchn-virq-twice"),
    ok("evtchn", "evtchn-send-closed"),
    ok("evtchn", "evtchn-peer-closed"),
    ok("evtchn", "evtchn-dom0-virqs"),
    ok("evtchn", "evtchn-not-offered"),
    ok("evtchn", "evtchn-exhaust"),
    ok("evtchn", "evtchn-poll-args"),
    crash("crash", "crash-no-handler"),
    crash("crash", "crash-iret-noncanonical-rip"),
    crash("crash", "crash-iret-upper-rip"),
    crash("crash", "crash-iret-upper-rsp"),
    crash("crash", "crash-iret-unmapped-frame"),
    crash("crash", "crash-iret-straddle"),
    crash("crash", "crash-handler-unmapped"),
    crash("crash", "crash-pf-recursion"),
    crash("crash", "crash-stack-unmapped"),
    crash("crash", "crash-stack-upper-half"),
    crash("crash", "crash-stack-noncanonical"),
    crash("crash", "crash-stack-readonly"),
    crash("crash", "crash-stack-overflow"),
    crash("crash", "crash-upcall-bad-stack"),
    crash("crash", "crash-callback-unmapped"),
    crash("crash", "crash-syscall-at-top"),
    ok("fpu", "fpu-leak-writer"),
    ok("fpu", "fpu-leak-reader"),
    ok("storm", "storm-timer"),
    ok("storm", "storm-event"),
    ok("storm", "liveness"),
];

/// The word that selects every property.
pub const ALL: &str = "all";

/// The properties `words` select (each `all`, a group or a name), in
/// registry order, each once; an unknown word is an error that lists the
/// groups.
pub fn select(words: &[String]) -> Result<Vec<&'static Prop>> {
    if words.is_empty() {
        return Err(error(
            "props lists nothing (use \"all\", a group or a property name)",
        ));
    }
    for word in words {
        let known = word == ALL || PROPS.iter().any(|p| p.name == word || p.group == word);
        if !known {
            return Err(error(format!(
                "props: '{word}' is neither \"all\", a group ({}) nor a property name",
                groups().join(", ")
            )));
        }
    }
    let wanted = |p: &Prop| words.iter().any(|w| w == ALL || w == p.group || w == p.name);
    Ok(PROPS.iter().filter(|p| wanted(p)).collect())
}

/// The groups, in registry order.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for p in PROPS {
        if !out.contains(&p.group) {
            out.push(p.group);
        }
    }
    out
}

/// The domain a property runs in.
pub fn domain_name(prop: &Prop) -> String {
    format!("p-{}", prop.name)
}

/// The `auto/` config that starts `prop`'s domain, the `index`th of its
/// scenario. dom0 starts `auto/` configs sorted by file name, so the file
/// name leads with the index: properties that must overlap (the FPU writer
/// before its reader, the storms before `liveness`) start in registry order.
pub fn config(index: usize, prop: &Prop) -> BundleFile {
    let name = domain_name(prop);
    let text = format!(
        "# {name}: property '{}' of the hostile-guest suite (generated by xtask/src/props.rs)\n\
         name   = \"{name}\"\n\
         memory = {MEMORY_MIB}\n\
         kernel = \"images/{IMAGE}\"\n\
         extra  = \"prop={}\"\n",
        prop.name, prop.name
    );
    (format!("{index:03}-{name}.cfg"), text.into_bytes())
}

/// A copy of the bundle `archive` whose `auto/` holds one config per
/// property of `props`, in that order. Every other entry stays; the
/// manifest is rewritten. The bundle must carry `images/props.elf`.
pub fn with_props(archive: &[u8], props: &[&Prop]) -> Result<Vec<u8>> {
    let parsed =
        oxen_bundle::Archive::parse(archive).map_err(|e| error(format!("cannot read the bundle: {e}")))?;
    let image = format!("images/{IMAGE}");
    if !parsed.find(&image).is_some_and(|e| e.is_file()) {
        return Err(error(format!(
            "the bundle has no {image} for the property domains"
        )));
    }
    let mut files: Vec<BundleFile> = parsed
        .entries()
        .filter(|e| e.is_file() && e.name != "manifest" && !e.name.starts_with("auto/"))
        .map(|e| (e.name.to_string(), e.data.to_vec()))
        .collect();
    files.extend(props.iter().enumerate().map(|(index, p)| {
        let (name, data) = config(index, p);
        (format!("auto/{name}"), data)
    }));
    build::pack_bundle(&files)
}

/// Writes the bundle for a scenario's `props` list into `dir`: its path.
pub fn write_bundle(default: &Path, words: &[String], dir: &Path) -> Result<PathBuf> {
    let props = select(words)?;
    let bundle = fs::read(default).with_context(|| format!("cannot read {}", default.display()))?;
    let own = with_props(&bundle, &props)?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("bundle.cpio");
    fs::write(&path, own).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The `props` guest package, for the guest build.
pub fn package(layout: &Layout) -> Result<Package> {
    guests::workspace_packages(&layout.root)?
        .into_iter()
        .find(|p| p.name == PACKAGE)
        .with_context(|| format!("guest crate '{PACKAGE}' (guests/props) not found in the workspace"))
}

/// What the output says about one property domain.
#[derive(Debug, Default)]
struct Seen {
    /// The text after `prop NAME: `, line by line.
    verdicts: Vec<String>,
    /// The hypervisor's reason, from `domain N ('p-NAME') crashed: why`.
    crashed: Option<String>,
    /// dom0 reported `domain N ('p-NAME') powered off`.
    powered_off: bool,
}

/// The verdict on a property run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Properties that held.
    pub passed: usize,
    /// Properties that could not be checked here.
    pub skipped: usize,
    /// One reason per failure.
    pub failures: Vec<String>,
}

impl Judgement {
    /// `props: N passed, S skipped, F failed`.
    pub fn summary(&self) -> String {
        format!(
            "props: {} passed, {} skipped, {} failed",
            self.passed,
            self.skipped,
            self.failures.len()
        )
    }
}

/// The text of a line after a domU's `(dN) ` console prefix, if it has one.
fn guest_text(line: &str) -> &str {
    line.strip_prefix("(d")
        .and_then(|rest| rest.split_once(") "))
        .filter(|(id, _)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .map_or(line, |(_, text)| text)
}

/// Read the serial output: what each `p-` domain printed and what happened
/// to it, by property name.
fn scan(serial: &str) -> BTreeMap<String, Seen> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for line in serial.lines() {
        let line = line.trim_end_matches('\r');
        if let Some((name, verdict)) = guest_text(line)
            .strip_prefix("prop ")
            .and_then(|rest| rest.split_once(": "))
        {
            seen.entry(name.to_string())
                .or_default()
                .verdicts
                .push(verdict.to_string());
            continue;
        }
        // Hypervisor and dom0 reports: "domain N ('p-NAME') crashed: why",
        // "dom0: domain N ('p-NAME') powered off".
        let Some((_, rest)) = line.split_once(" ('p-") else {
            continue;
        };
        let Some((name, what)) = rest.split_once("') ") else {
            continue;
        };
        let entry = seen.entry(name.to_string()).or_default();
        if let Some(why) = what.strip_prefix("crashed: ") {
            entry.crashed = Some(why.to_string());
        } else if what == "powered off" {
            entry.powered_off = true;
        }
    }
    seen
}

/// Judge the serial output of a run of `props`.
pub fn judge(props: &[&Prop], serial: &[u8]) -> Judgement {
    let text = String::from_utf8_lossy(serial);
    let seen = scan(&text);
    let mut j = Judgement::default();
    for prop in props {
        let empty = Seen::default();
        let s = seen.get(prop.name).unwrap_or(&empty);
        match judge_one(prop, s) {
            Ok(true) => j.passed += 1,
            Ok(false) => j.skipped += 1,
            Err(why) => j.failures.push(format!("prop {}: {why}", prop.name)),
        }
    }
    for (name, s) in &seen {
        if !s.verdicts.is_empty() && !props.iter().any(|p| p.name == name) {
            j.failures.push(format!(
                "prop {name}: a verdict from a property this scenario does not run: {:?}",
                s.verdicts
            ));
        }
    }
    for bad in ["FATAL", "NOT REFUSED"] {
        if text.contains(bad) {
            j.failures.push(format!("'{bad}' appeared in the output"));
        }
    }
    j
}

/// Judge a run of the scenario words `words` select (`runner.rs`).
pub fn judge_run(words: &[String], serial: &[u8]) -> Judgement {
    match select(words) {
        Ok(props) => judge(&props, serial),
        Err(e) => Judgement {
            failures: vec![e.to_string()],
            ..Judgement::default()
        },
    }
}

/// One property: `Ok(true)` passed, `Ok(false)` skipped, `Err(why)` failed.
fn judge_one(prop: &Prop, s: &Seen) -> std::result::Result<bool, String> {
    let crash_note = s
        .crashed
        .as_ref()
        .map(|why| format!("; the hypervisor crashed it: {why}"))
        .unwrap_or_default();
    if let Some(failure) = s.verdicts.iter().find(|v| v.starts_with("FAILURE")) {
        return Err(format!("{failure}{crash_note}"));
    }
    let skip = s
        .verdicts
        .iter()
        .find(|v| v.starts_with("SKIP (") && v.ends_with(')'));
    let ended_cleanly = |what: &str| {
        if s.crashed.is_some() {
            Err(format!("{what}, but then{}", &crash_note[1..]))
        } else if !s.powered_off {
            Err(format!("{what}, but dom0 never reported its domain powered off"))
        } else {
            Ok(())
        }
    };
    match (prop.expect, s.verdicts.as_slice()) {
        (_, [one]) if skip == Some(one) => ended_cleanly("skipped").map(|()| false),
        (Expect::Success, [one]) if one == "SUCCESS" => ended_cleanly("SUCCESS").map(|()| true),
        (Expect::Crash, [one]) if one == "expecting CRASH" => match &s.crashed {
            Some(why)
                if why
                    .chars()
                    .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER) =>
            {
                Err(format!(
                    "crashed, but the hypervisor's report is garbled: {:?}",
                    why.escape_debug().to_string()
                ))
            }
            Some(_) => Ok(true),
            None if s.powered_off => Err("expecting CRASH, but the domain powered off".to_string()),
            None => Err("expecting CRASH, but the hypervisor never reported the domain crashed".to_string()),
        },
        (_, []) => Err(format!("no verdict line{crash_note}")),
        (_, many) => Err(format!("unexpected verdict lines {many:?}{crash_note}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The `(name, expect)` pairs of the guest's registry, read from its
    /// source: one `Prop::success("name", ..)` or `Prop::crash("name", ..)`
    /// per entry.
    fn guest_registry() -> Vec<(String, Expect)> {
        let text = fs::read_to_string(root().join("guests/props/src/registry.rs"))
            .expect("guests/props/src/registry.rs is readable");
        let start = text.find("pub const PROPS").expect("registry.rs defines PROPS");
        let mut out = Vec::new();
        let mut rest = &text[start..];
        while let Some(at) = rest.find("Prop::") {
            rest = &rest[at + "Prop::".len()..];
            let expect = if rest.starts_with("success(") {
                Expect::Success
            } else if rest.starts_with("crash(") {
                Expect::Crash
            } else {
                continue;
            };
            let open = rest.find('(').expect("a call has a parenthesis") + 1;
            let args = rest[open..].trim_start();
            let name = args
                .strip_prefix('"')
                .and_then(|a| a.split_once('"'))
                .map(|(name, _)| name.to_string())
                .expect("each registry entry starts with the name as a string literal");
            out.push((name, expect));
        }
        out
    }

    #[test]
    fn the_list_matches_the_guest_registry() {
        let guest = guest_registry();
        let ours: Vec<(String, Expect)> = PROPS.iter().map(|p| (p.name.to_string(), p.expect)).collect();
        assert_eq!(
            ours, guest,
            "xtask/src/props.rs and guests/props/src/registry.rs disagree"
        );
        assert!(PROPS.len() >= 40, "{} properties", PROPS.len());
    }

    #[test]
    fn names_make_valid_domains_and_do_not_clash() {
        let mut names = BTreeSet::new();
        for p in PROPS {
            assert!(names.insert(p.name), "{} twice", p.name);
            let domain = domain_name(p);
            // The hypervisor's and dom0's rule: 1 to 31 of A-Z a-z 0-9 _ . -
            assert!(domain.len() <= 31, "{domain} is too long for a domain name");
            assert!(
                domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
                "{domain}"
            );
            assert!(!p.name.contains(": "), "{}", p.name);
        }
        for g in groups() {
            assert!(g != ALL && !names.contains(g), "group '{g}' clashes with a name");
        }
    }

    #[test]
    fn every_property_is_documented_in_the_guest() {
        let doc = fs::read_to_string(root().join("guests/props/src/main.rs"))
            .expect("guests/props/src/main.rs is readable");
        for p in PROPS {
            assert!(
                doc.contains(&format!("`{}`", p.name)),
                "guests/props/src/main.rs does not describe `{}`",
                p.name
            );
        }
    }

    #[test]
    fn every_property_runs_in_some_scenario() -> Result<()> {
        let scenarios = crate::scenario::load_all(&root().join("tests"), Some("props"))?;
        let mut run = BTreeSet::new();
        for s in &scenarios {
            if let Some(words) = &s.props {
                for p in select(words)? {
                    assert!(run.insert(p.name), "{} runs in two scenarios", p.name);
                }
            }
        }
        let missing: Vec<&str> = PROPS
            .iter()
            .map(|p| p.name)
            .filter(|n| !run.contains(n))
            .collect();
        assert!(missing.is_empty(), "no tests/props*.toml runs {missing:?}");
        Ok(())
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selections() -> Result<()> {
        assert_eq!(select(&words(&["all"]))?.len(), PROPS.len());
        let storm = select(&words(&["storm"]))?;
        let names: Vec<&str> = storm.iter().map(|p| p.name).collect();
        assert_eq!(names, ["storm-timer", "storm-event", "liveness"]);
        // Registry order, each once.
        let mixed = select(&words(&["liveness", "priv-cli", "storm"]))?;
        let names: Vec<&str> = mixed.iter().map(|p| p.name).collect();
        assert_eq!(names, ["priv-cli", "storm-timer", "storm-event", "liveness"]);
        let err = select(&words(&["nope"]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("'nope'") && err.contains("crash"), "{err}");
        assert!(select(&[]).is_err());
        Ok(())
    }

    #[test]
    fn configs_and_bundles() -> Result<()> {
        let cli = PROPS[0];
        let (name, text) = config(7, &cli);
        assert_eq!(name, "007-p-priv-cli.cfg");
        let text = String::from_utf8(text)?;
        assert!(text.contains("name   = \"p-priv-cli\"\n"), "{text}");
        assert!(text.contains("memory = 8\n") && text.contains("kernel = \"images/props.elf\"\n"));
        assert!(text.contains("extra  = \"prop=priv-cli\"\n"), "{text}");
        let files = [
            ("dom0".to_string(), b"dom0".to_vec()),
            ("images/props.elf".to_string(), b"elf".to_vec()),
            ("configs/hello.cfg".to_string(), b"name = \"hello\"\n".to_vec()),
            ("auto/hello.cfg".to_string(), b"name = \"hello\"\n".to_vec()),
        ];
        let bundle = build::pack_bundle(&files)?;
        let picked = select(&words(&["fpu"]))?;
        let own = with_props(&bundle, &picked)?;
        let own = oxen_bundle::Archive::parse(&own).map_err(|e| e.to_string())?;
        let names: Vec<&str> = own.entries().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "manifest",
                "dom0",
                "images/props.elf",
                "configs/hello.cfg",
                "auto/000-p-fpu-leak-writer.cfg",
                "auto/001-p-fpu-leak-reader.cfg"
            ]
        );
        let without = build::pack_bundle(&files[..1])?;
        let err = with_props(&without, &picked)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("images/props.elf"), "{err}");
        Ok(())
    }

    #[test]
    fn the_scenario_key_is_checked() -> Result<()> {
        let parse =
            |extra: &str| crate::scenario::Scenario::parse("p", &format!("description = \"d\"\n{extra}"));
        assert_eq!(
            parse("props = [\"storm\", \"priv-cli\"]")?.props,
            Some(words(&["storm", "priv-cli"]))
        );
        let rejected = |extra: &str| parse(extra).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(rejected("props = [\"bogus\"]").contains("'bogus'"));
        assert!(rejected("props = []").contains("lists nothing"));
        assert!(rejected("props = [\"all\"]\nauto = []").contains("cannot go with auto"));
        assert!(rejected("props = [\"all\"]\nbundle = \"none\"").contains("cannot go with auto"));
        Ok(())
    }

    fn pick(names: &[&str]) -> Vec<&'static Prop> {
        names
            .iter()
            .map(|n| PROPS.iter().find(|p| p.name == *n).expect("a known property"))
            .collect()
    }

    #[test]
    fn verdicts_are_judged() {
        let props = pick(&["priv-cli", "priv-sti", "crash-no-handler", "priv-xsetbv"]);
        let good = "\
[    0.1] cpu0 INFO  domain: domain 1 ('p-priv-cli') created: 2048 pages\r\n\
(d1) prop priv-cli: SUCCESS\r\n\
(d2) prop priv-sti: SUCCESS\n\
(d3) prop crash-no-handler: expecting CRASH\n\
[    0.2] cpu0 WARN  domain: domain 3 ('p-crash-no-handler') crashed: #UD (invalid opcode) at rip 0x401000\n\
(d4) prop priv-xsetbv: SKIP (CPU lacks XSAVE, so xsetbv is an undefined opcode)\n\
dom0: domain 1 ('p-priv-cli') powered off\n\
dom0: domain 2 ('p-priv-sti') powered off\n\
dom0: domain 3 ('p-crash-no-handler') crashed\n\
dom0: domain 4 ('p-priv-xsetbv') powered off\n";
        let j = judge(&props, good.as_bytes());
        assert_eq!(j.summary(), "props: 3 passed, 1 skipped, 0 failed", "{j:?}");

        let bad = "\
(d1) prop priv-cli: FAILURE (cli ran at CPL 3 without a fault)\n\
(d3) prop crash-no-handler: expecting CRASH\n\
(d3) prop crash-no-handler: FAILURE (still alive)\n\
(d5) prop priv-lgdt: SUCCESS\n\
[    0.2] cpu0 WARN  domain: domain 2 ('p-priv-sti') crashed: #GP at rip 0x401000: no handler registered\n\
(d4) prop priv-xsetbv: SUCCESS\n\
dom0: domain 1 ('p-priv-cli') powered off\n\
FATAL: exception #GP in hypervisor\n";
        let j = judge(&props, bad.as_bytes());
        assert_eq!(j.passed + j.skipped, 0, "{j:?}");
        let all = j.failures.join("\n");
        for want in [
            "prop priv-cli: FAILURE (cli ran at CPL 3 without a fault)",
            "prop priv-sti: no verdict line; the hypervisor crashed it: #GP at rip 0x401000",
            "prop crash-no-handler: FAILURE (still alive)",
            "prop priv-xsetbv: SUCCESS, but dom0 never reported its domain powered off",
            "prop priv-lgdt: a verdict from a property this scenario does not run",
            "'FATAL' appeared in the output",
        ] {
            assert!(all.contains(want), "missing '{want}' in:\n{all}");
        }

        let crash_only = pick(&["crash-no-handler"]);
        let j = judge(&crash_only, b"(d3) prop crash-no-handler: expecting CRASH\ndom0: domain 3 ('p-crash-no-handler') powered off\n");
        assert_eq!(
            j.failures,
            ["prop crash-no-handler: expecting CRASH, but the domain powered off"]
        );
        let j = judge(
            &crash_only,
            b"[ 1] domain 3 ('p-crash-no-handler') crashed: early\n",
        );
        assert_eq!(
            j.failures,
            ["prop crash-no-handler: no verdict line; the hypervisor crashed it: early"]
        );
        let j = judge(
            &crash_only,
            b"(d3) prop crash-no-handler: expecting CRASH\n[ 1] domain 3 ('p-crash-no-handler') crashed: #E\0\0inv\n",
        );
        assert_eq!(j.failures.len(), 1, "{j:?}");
        assert!(j.failures[0].contains("report is garbled"), "{j:?}");
        let twice = pick(&["priv-cli"]);
        let j = judge(
            &twice,
            b"(d1) prop priv-cli: SUCCESS\n(d1) prop priv-cli: SUCCESS\ndom0: domain 1 ('p-priv-cli') powered off\n",
        );
        assert_eq!(j.failures.len(), 1, "{j:?}");
        assert!(j.failures[0].contains("unexpected verdict lines"), "{j:?}");
    }
}
