//! `cargo xtask fuzz`: the hypercall fuzzer (`guests/fuzz`) beside a
//! canary, under the test hypervisor, with the invariants checked from
//! outside.
//!
//! Each run boots `oxen_test=dom0` with a bundle whose `auto/` holds the
//! fuzzer (`configs/fuzz.cfg` with `extra = "seed=S calls=N"`) and the
//! canary (`configs/canary.cfg`, the same image with `mode=canary`), and
//! passes when:
//!
//! - the hypervisor never panics (`FATAL`) and logs no error (` ERROR `);
//! - the fuzzer made its N calls (`fuzz: seed S: N calls done`), printed
//!   the checksum of its sequence and found no broken promise (`fuzz: BUG`
//!   lines, which its guard prints when the hypervisor answers against
//!   the ABI);
//! - the canary is alive at the end and was told so by the fuzzer
//!   (`canary: alive at end (the fuzzer signalled it is done)`), its memory
//!   untouched (`canary: CORRUPTED` otherwise);
//! - dom0 saw every domain stop and got every frame back (`restored`), and
//!   QEMU exits with the success status.
//!
//! The time limit scales with N (`BASE_SECS` plus N at `MIN_CALLS_PER_SEC`;
//! under TCG the fuzzer makes 50 000 - 80 000 calls/s). The rate the guest
//! measured is printed after each run.
//!
//! **A failing seed** prints the command that reproduces it and is saved
//! as a regression: `configs/fuzz-seed-S.cfg` (the fuzzer's config with
//! that seed and count) and `tests/fuzz-regressions/seed-S.toml` (a
//! scenario that boots it beside the canary with the checks above).
//! `cargo xtask fuzz --regressions` runs every saved one; moving one to
//! `tests/fuzz-regression-seed-S.toml` puts it in `cargo xtask test`
//! (`tests/fuzz-regressions/README.md`). Runs are deterministic: the same
//! seed makes the same calls, which the checksum line shows.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use oxen_bundle::Archive;

use crate::build::{self, BundleFile, Layout};
use crate::error::{Context, Result, UsageError, error};
use crate::guests::{self, Package};
use crate::qemu::{self, Accel};
use crate::runner::{self, Report};
use crate::scenario::{self, Scenario};
use crate::{Options, tools};

/// The fuzzer's guest package; the bundle holds it as [`IMAGE`].
const PACKAGE: &str = "fuzz";
/// The fuzzer's image in the bundle.
const IMAGE: &str = "images/fuzz.elf";
/// The config the fuzzer's run config is made from (`configs/`).
const TEMPLATE: &str = "fuzz.cfg";
/// The canary's config (`configs/`).
const CANARY: &str = "canary.cfg";
/// The name of a run's own config in its bundle.
const RUN_CONFIG: &str = "fuzz-run.cfg";
/// Calls when `--calls` is not given.
const DEFAULT_CALLS: u64 = 100_000;
/// Time for the boot, the start of both domains and the end.
const BASE_SECS: u64 = 90;
/// The slowest rate the time limit allows for (a loaded TCG host).
const MIN_CALLS_PER_SEC: u64 = 15_000;
/// Longest time limit (the scenario format's).
const MAX_SECS: u64 = 3600;

/// Options of `cargo xtask fuzz`.
#[derive(Debug, PartialEq, Eq)]
struct FuzzArgs {
    calls: u64,
    seed: u64,
    runs: u64,
    keep_going: bool,
    allow: Option<String>,
    regressions: bool,
    no_build: bool,
    accel: Option<Accel>,
}

impl FuzzArgs {
    fn parse(args: &[String]) -> Result<Self> {
        let spec = [
            ("--calls", true),
            ("--seed", true),
            ("--runs", true),
            ("--keep-going", false),
            ("--allow", true),
            ("--regressions", false),
            ("--no-build", false),
            ("--accel", true),
        ];
        let opts = Options::parse(args, &spec)?;
        if let Some(word) = opts.positional.first().or(opts.rest.first()) {
            return Err(UsageError(format!("fuzz takes no argument '{word}'")).into());
        }
        let big = |flag: &str, default: u64, zero_ok: bool| -> Result<u64> {
            match opts.value(flag) {
                None => Ok(default),
                Some(v) => match v.replace('_', "").parse::<u64>() {
                    Ok(n) if n > 0 || zero_ok => Ok(n),
                    _ => Err(UsageError(format!("{flag} needs a number, not '{v}'")).into()),
                },
            }
        };
        let allow = opts.value("--allow").map(str::to_string);
        if let Some(list) = &allow
            && !list.split(',').all(|w| w == "shx")
        {
            return Err(UsageError(format!("--allow takes shx, not '{list}'")).into());
        }
        Ok(Self {
            calls: big("--calls", DEFAULT_CALLS, false)?,
            seed: big("--seed", 1, true)?,
            runs: big("--runs", 1, false)?,
            keep_going: opts.has("--keep-going"),
            allow,
            regressions: opts.has("--regressions"),
            no_build: opts.has("--no-build"),
            accel: opts.accel()?,
        })
    }

    /// The command that repeats run `seed`.
    fn reproduce(&self, seed: u64) -> String {
        let mut cmd = format!("cargo xtask fuzz --calls {} --seed {seed}", self.calls);
        if let Some(allow) = &self.allow {
            cmd.push_str(&format!(" --allow {allow}"));
        }
        cmd
    }
}

/// The `extra` of the fuzzer's config for one run.
fn extra(seed: u64, calls: u64, allow: Option<&str>) -> String {
    let mut extra = format!("seed={seed} calls={calls}");
    if let Some(allow) = allow {
        extra.push_str(&format!(" allow={allow}"));
    }
    extra
}

/// `template` (an `xm` config) with its `extra` line replaced.
fn with_extra(template: &str, extra: &str) -> Result<String> {
    let mut found = false;
    let mut out = String::new();
    for line in template.lines() {
        let is_extra = line
            .trim_start()
            .strip_prefix("extra")
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if is_extra {
            out.push_str(&format!("extra    = \"{extra}\"\n"));
            found = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !found {
        return Err(error(format!(
            "configs/{TEMPLATE} has no extra line to put the seed in"
        )));
    }
    Ok(out)
}

/// The time limit of a run of `calls` calls.
fn time_limit(calls: u64) -> u64 {
    (BASE_SECS + calls / MIN_CALLS_PER_SEC).min(MAX_SECS)
}

/// A TOML string (basic, escaped).
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The scenario text of a fuzz run: with `auto`, a self-contained regression
/// scenario; without, a run whose bundle already holds its `auto/`.
fn scenario_text(seed: u64, calls: u64, auto: Option<&str>, keep_going: bool) -> String {
    let expect = [
        "dom0: started 'fuzz' as domain".to_string(),
        format!("fuzz: seed {seed}: {calls} calls done"),
        "fuzz: sequence checksum 0x".to_string(),
        "fuzz: no broken promises".to_string(),
        "canary: alive at end (the fuzzer signalled it is done)".to_string(),
        "dom0: all domains stopped".to_string(),
        "restored".to_string(),
    ];
    // With --keep-going only a panic stops the run early; the rest is
    // judged from the whole transcript.
    let forbid: &[&str] = if keep_going {
        &["FATAL"]
    } else {
        &["FATAL", " ERROR ", "fuzz: BUG", "canary: CORRUPTED", "LEAKED"]
    };
    let list = |items: &mut dyn Iterator<Item = String>| {
        items
            .map(|s| format!("    {},\n", toml_string(&s)))
            .collect::<String>()
    };
    let mut text = format!(
        "description = {}\nboot = \"pvh\"\nmachine = \"q35\"\nmemory = \"256M\"\nappend = \"oxen_test=dom0\"\n\
         image = \"test\"\ntimeout_secs = {}\nexit = \"success\"\n",
        toml_string(&format!(
            "the hypercall fuzzer (seed {seed}, {calls} calls) beside a canary: no hypervisor panic or error, \
             no broken promise, the canary alive at the end, every frame back"
        )),
        time_limit(calls),
    );
    if let Some(config) = auto {
        text.push_str(&format!(
            "auto = [{}, {}]\n",
            toml_string(config),
            toml_string(CANARY)
        ));
    }
    text.push_str(&format!("expect = [\n{}]\n", list(&mut expect.into_iter())));
    text.push_str(&format!(
        "forbid = [\n{}]\n",
        list(&mut forbid.iter().map(|s| s.to_string()))
    ));
    text
}

/// What a run's transcript says, beyond the scenario's checks.
#[derive(Debug, Default, PartialEq)]
struct Findings {
    /// The fuzzer's broken-promise lines.
    bugs: Vec<String>,
    /// Hypervisor log lines at ERROR level, and panics.
    errors: Vec<String>,
    /// The checksum line's value.
    checksum: Option<String>,
    /// Calls per second, as the fuzzer measured them.
    rate: Option<u64>,
    /// The fuzzer's own total of broken promises (`fuzz: FAILED: K ...`).
    failed: Option<u64>,
}

/// Reads the fuzzer's, the canary's and the hypervisor's lines of a run.
fn findings(transcript: &str) -> Findings {
    let domain = |name: &str| {
        let marker = format!("dom0: started '{name}' as domain ");
        transcript
            .lines()
            .find_map(|l| l.split_once(&marker).map(|(_, rest)| rest))
            .and_then(|rest| rest.split_whitespace().next())
            .map(|id| format!("(d{id}) "))
    };
    let fuzz = domain("fuzz").unwrap_or_else(|| "(d?) ".to_string());
    let mut f = Findings::default();
    for line in transcript.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(own) = line.strip_prefix(fuzz.as_str()) {
            if own.starts_with("fuzz: BUG") {
                f.bugs.push(own.to_string());
            } else if let Some(sum) = own.strip_prefix("fuzz: sequence checksum ") {
                f.checksum = Some(sum.to_string());
            } else if let Some(rest) = own.strip_prefix("fuzz: FAILED: ") {
                f.failed = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            } else if own.starts_with("fuzz: ") && own.contains(" calls/s)") {
                f.rate = own
                    .rsplit_once(" calls/s)")
                    .and_then(|(head, _)| head.rsplit_once('(').map(|(_, n)| n))
                    .and_then(|n| n.parse().ok());
            }
        } else if (line.starts_with('[') && line.contains(" ERROR ")) || line.contains("FATAL") {
            f.errors.push(line.to_string());
        }
    }
    f
}

/// The default bundle with the fuzzer's image in it (it is there when the
/// guest list builds it; otherwise it is added), written to `dir`.
fn base_bundle(layout: &Layout, dir: &Path) -> Result<PathBuf> {
    let bytes =
        fs::read(layout.bundle()).with_context(|| format!("cannot read {}", layout.bundle().display()))?;
    let archive = Archive::parse(&bytes).map_err(|e| error(format!("cannot read the bundle: {e}")))?;
    let mut files: Vec<BundleFile> = archive
        .entries()
        .filter(|e| e.is_file() && e.name != "manifest")
        .map(|e| (e.name.to_string(), e.data.to_vec()))
        .collect();
    if !files.iter().any(|(name, _)| name == IMAGE) {
        let elf = layout.guest_elf(PACKAGE);
        let image =
            fs::read(&elf).with_context(|| format!("cannot read {} (build it first)", elf.display()))?;
        files.push((IMAGE.to_string(), image));
    }
    // The fuzzer's and the canary's configs as they are now: a regression
    // saved since the last build is there too.
    let configs = layout.configs();
    for entry in fs::read_dir(&configs).with_context(|| format!("cannot list {}", configs.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", configs.display()))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !(name.starts_with("fuzz") || name == CANARY) || !name.ends_with(".cfg") {
            continue;
        }
        let data = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let entry_name = format!("configs/{name}");
        files.retain(|(n, _)| *n != entry_name);
        files.push((entry_name, data));
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("bundle.cpio");
    fs::write(&path, build::pack_bundle(&files)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `base` with the run's own config and `auto/` holding it and the canary.
fn run_bundle(base: &Path, config: &str, dir: &Path) -> Result<PathBuf> {
    let bytes = fs::read(base).with_context(|| format!("cannot read {}", base.display()))?;
    let archive = Archive::parse(&bytes).map_err(|e| error(format!("cannot read the bundle: {e}")))?;
    let mut files: Vec<BundleFile> = archive
        .entries()
        .filter(|e| e.is_file() && e.name != "manifest")
        .map(|e| (e.name.to_string(), e.data.to_vec()))
        .collect();
    files.push((format!("configs/{RUN_CONFIG}"), config.as_bytes().to_vec()));
    let with_config = build::pack_bundle(&files)?;
    let own = build::with_auto(&with_config, &[RUN_CONFIG.to_string(), CANARY.to_string()])?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("bundle.cpio");
    fs::write(&path, own).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Where a run's files go.
fn out_dir(layout: &Layout) -> PathBuf {
    layout.out.join("fuzz")
}

/// The runner's settings for a bundle.
fn runner_config(layout: &Layout, bundle: PathBuf, accel: Accel) -> runner::Config {
    runner::Config {
        test_elf: layout.hypervisor_test_elf(),
        release_elf: layout.hypervisor_elf(),
        bundle,
        out_dir: out_dir(layout),
        accel,
        qemu: qemu::QEMU_BINARY.into(),
    }
}

/// Runs `scenario` and judges its transcript; the reasons it failed.
fn judge_run(
    layout: &Layout,
    scenario: &Scenario,
    config: &runner::Config,
) -> (Report, Findings, Vec<String>) {
    let report = runner::run_all(std::slice::from_ref(scenario), config, 1, |_| {})
        .pop()
        .unwrap_or_else(|| Report {
            name: scenario.name.clone(),
            reasons: vec!["the runner returned no report".to_string()],
            elapsed: std::time::Duration::ZERO,
            transcript: PathBuf::new(),
            tail: Vec::new(),
            summary: None,
        });
    let text = fs::read(&report.transcript)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let found = findings(&text);
    let mut reasons = report.reasons.clone();
    if !found.bugs.is_empty() {
        let total = found.failed.unwrap_or(found.bugs.len() as u64);
        reasons.push(format!("{total} broken promise(s); first: {}", found.bugs[0]));
    }
    for line in found.errors.iter().take(3) {
        reasons.push(format!("hypervisor: {line}"));
    }
    reasons.dedup();
    let _ = layout;
    (report, found, reasons)
}

/// Saves a failing seed as a regression scenario: its config and its
/// scenario file; the paths written.
fn save_regression(layout: &Layout, seed: u64, calls: u64, config: &str) -> Result<(PathBuf, PathBuf)> {
    let cfg_name = format!("fuzz-seed-{seed}.cfg");
    let cfg = layout.configs().join(&cfg_name);
    let header = format!(
        "# A failing seed `cargo xtask fuzz` found: tests/fuzz-regressions/seed-{seed}.toml boots it.\n"
    );
    fs::write(&cfg, format!("{header}{config}"))
        .with_context(|| format!("cannot write {}", cfg.display()))?;
    let dir = layout.scenarios().join("fuzz-regressions");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let toml = dir.join(format!("seed-{seed}.toml"));
    fs::write(&toml, scenario_text(seed, calls, Some(&cfg_name), false))
        .with_context(|| format!("cannot write {}", toml.display()))?;
    Ok((cfg, toml))
}

/// Prints a failed run's report.
fn show_failure(layout: &Layout, report: &Report, reasons: &[String]) {
    println!("xtask: FAILED: {}", reasons.join("; "));
    println!("last {} transcript lines:", runner::TAIL_LINES);
    for line in &report.tail {
        println!("    {line}");
    }
    println!("transcript: {}", layout.show(&report.transcript));
}

/// Runs the saved regressions; whether all passed.
fn run_regressions(layout: &Layout, base: &Path, accel: Accel) -> Result<bool> {
    let dir = layout.scenarios().join("fuzz-regressions");
    if !dir.is_dir() {
        println!(
            "xtask: no saved regressions ({} does not exist)",
            layout.show(&dir)
        );
        return Ok(true);
    }
    let scenarios = scenario::load_all(&dir, None)?;
    let config = runner_config(layout, base.to_path_buf(), accel);
    let mut ok = true;
    for s in &scenarios {
        let (report, found, reasons) = judge_run(layout, s, &config);
        if reasons.is_empty() {
            println!(
                "regression {} ... ok ({:.1} s, checksum {})",
                s.name,
                report.elapsed.as_secs_f64(),
                found.checksum.as_deref().unwrap_or("?")
            );
        } else {
            ok = false;
            println!("regression {} ... FAILED", s.name);
            show_failure(layout, &report, &reasons);
        }
    }
    println!("xtask: {} regression(s) run", scenarios.len());
    Ok(ok)
}

/// `cargo xtask fuzz [--calls N] [--seed S] [--runs K] [--keep-going]
/// [--allow LIST] [--regressions] [--no-build] [--accel kvm|tcg]`.
pub fn command(args: &[String]) -> Result<ExitCode> {
    let args = FuzzArgs::parse(args)?;
    let layout = Layout::new()?;
    tools::ensure(tools::QEMU)?;
    if !args.no_build {
        build::build(
            &layout,
            &build::Plan {
                test_image: true,
                iso_cmdline: None,
            },
        )?;
        if !guests::DOMU.contains(&PACKAGE) {
            let package = guests::workspace_packages(&layout.root)?
                .into_iter()
                .find(|p| p.name == PACKAGE)
                .unwrap_or(Package {
                    name: PACKAGE.to_string(),
                    bins: vec![PACKAGE.to_string()],
                });
            guests::build(&layout, &[package])?;
        }
    }
    let accel = crate::pick_accel(args.accel);
    let dir = out_dir(&layout);
    let base = base_bundle(&layout, &dir)?;
    if args.regressions {
        return Ok(if run_regressions(&layout, &base, accel)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let template_path = layout.configs().join(TEMPLATE);
    let template = fs::read_to_string(&template_path)
        .with_context(|| format!("cannot read {}", template_path.display()))?;
    let mut failed = Vec::new();
    for seed in (0..args.runs).map(|i| args.seed.wrapping_add(i)) {
        let config = with_extra(&template, &extra(seed, args.calls, args.allow.as_deref()))?;
        let bundle = run_bundle(&base, &config, &dir.join(format!("seed-{seed}")))?;
        let name = format!("fuzz-seed-{seed}");
        let scenario = Scenario::parse(&name, &scenario_text(seed, args.calls, None, args.keep_going))?;
        println!(
            "xtask: fuzz seed {seed}: {} calls, time limit {} s",
            args.calls,
            time_limit(args.calls)
        );
        let started = Instant::now();
        let (report, found, reasons) = judge_run(&layout, &scenario, &runner_config(&layout, bundle, accel));
        let wall = started.elapsed().as_secs_f64();
        let rate = found.rate.map_or_else(|| "?".to_string(), |r| r.to_string());
        println!(
            "xtask: fuzz seed {seed}: {} calls/s in the guest; {wall:.1} s in all ({:.0} calls/s of wall time); checksum {}",
            rate,
            args.calls as f64 / wall.max(0.001),
            found.checksum.as_deref().unwrap_or("?")
        );
        if reasons.is_empty() {
            println!("xtask: fuzz seed {seed} ... ok");
            continue;
        }
        show_failure(&layout, &report, &reasons);
        println!("xtask: reproduce with: {}", args.reproduce(seed));
        match save_regression(&layout, seed, args.calls, &config) {
            Ok((cfg, toml)) => println!(
                "xtask: saved as a regression: {} and {} (cargo xtask fuzz --regressions runs it)",
                layout.show(&cfg),
                layout.show(&toml)
            ),
            Err(e) => println!("xtask: cannot save the regression: {e}"),
        }
        failed.push(seed);
        if !args.keep_going {
            break;
        }
    }
    if failed.is_empty() {
        println!("xtask: fuzz: {} run(s) passed", args.runs);
        Ok(ExitCode::SUCCESS)
    } else {
        let seeds: Vec<String> = failed.iter().map(u64::to_string).collect();
        println!("xtask: fuzz: failing seed(s): {}", seeds.join(" "));
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() -> Result<()> {
        let a = FuzzArgs::parse(&strings(&[
            "--calls",
            "10_000_000",
            "--seed=0",
            "--runs",
            "3",
            "--keep-going",
            "--allow",
            "shx",
        ]))?;
        assert_eq!((a.calls, a.seed, a.runs, a.keep_going), (10_000_000, 0, 3, true));
        assert_eq!(
            a.reproduce(7),
            "cargo xtask fuzz --calls 10000000 --seed 7 --allow shx"
        );
        let d = FuzzArgs::parse(&[])?;
        assert_eq!(
            (d.calls, d.seed, d.runs, d.keep_going, d.regressions),
            (DEFAULT_CALLS, 1, 1, false, false)
        );
        assert!(FuzzArgs::parse(&strings(&["--calls", "0"])).is_err());
        assert!(FuzzArgs::parse(&strings(&["--allow", "all"])).is_err());
        assert!(FuzzArgs::parse(&strings(&["seed"])).is_err());
        Ok(())
    }

    #[test]
    fn the_template_gets_the_seed() -> Result<()> {
        let template = "# the fuzzer\nname = \"fuzz\"\nextra    = \"seed=1 calls=100000\"\nmemory = 16\n";
        let cfg = with_extra(template, &extra(42, 500, Some("shx")))?;
        assert_eq!(
            cfg,
            "# the fuzzer\nname = \"fuzz\"\nextra    = \"seed=42 calls=500 allow=shx\"\nmemory = 16\n"
        );
        assert!(with_extra("name = \"fuzz\"\n", "x").is_err());
        // The repository's template works.
        let real = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(TEMPLATE);
        let real = fs::read_to_string(real)?;
        assert!(with_extra(&real, &extra(1, 2, None))?.contains("extra    = \"seed=1 calls=2\"\n"));
        Ok(())
    }

    #[test]
    fn scenarios_parse_and_scale() -> Result<()> {
        let s = Scenario::parse("r", &scenario_text(9, 10_000_000, Some("fuzz-seed-9.cfg"), false))?;
        assert_eq!(s.auto, Some(strings(&["fuzz-seed-9.cfg", CANARY])));
        assert_eq!(s.timeout_secs, 90 + 666);
        assert!(
            s.expect
                .contains(&"fuzz: seed 9: 10000000 calls done".to_string())
        );
        assert!(s.forbid.contains(&"fuzz: BUG".to_string()));
        let k = Scenario::parse("k", &scenario_text(9, 100, None, true))?;
        assert_eq!(
            (k.auto, k.forbid, k.timeout_secs),
            (None, strings(&["FATAL"]), 90)
        );
        assert_eq!(time_limit(u64::MAX), MAX_SECS);
        Ok(())
    }

    #[test]
    fn transcripts_are_read() {
        let t = "dom0: started 'canary' as domain 1 (4 MiB)\r\n\
                 dom0: started 'fuzz' as domain 2 (16 MiB)\r\n\
                 (d2) fuzz: BUG: step 7 (iret): came back with rsp 0xbb8\r\n\
                 (d1) fuzz: BUG: not the fuzzer's line\r\n\
                 (d2) fuzz: sequence checksum 0x00ff\r\n\
                 (d2) fuzz: 1000 calls in 0.020 s (50000 calls/s), 3 probes\r\n\
                 (d2) fuzz: FAILED: 4 broken promises\r\n\
                 [    1.000000] cpu0 ERROR mmu: undoing a failed batch failed\r\n\
                 (d2) junk with  ERROR  in it\r\n\
                 FATAL: hypervisor panic on cpu0\r\n";
        let f = findings(t);
        assert_eq!(f.bugs, ["fuzz: BUG: step 7 (iret): came back with rsp 0xbb8"]);
        assert_eq!(f.checksum.as_deref(), Some("0x00ff"));
        assert_eq!(f.rate, Some(50_000));
        assert_eq!(f.failed, Some(4));
        assert_eq!(f.errors.len(), 2);
        assert!(f.errors[0].contains("undoing"));
    }
}
