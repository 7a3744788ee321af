//! `cargo xtask bench`: Oxen's benchmarks (docs/benchmarks.md).
//!
//! It builds everything as `cargo xtask build` does (the release
//! hypervisor, the guests, the bundle), then boots QEMU several times with
//! bundles whose `auto/` holds generated `bench` guest configs:
//!
//! 1. **path lengths** (`role=micro`, and `role=pong` + `role=ping`): under
//!    TCG with `-icount shift=0,align=off,sleep=off`, where the guest TSC
//!    ticks once per instruction, so the guest's `rdtsc` deltas are
//!    instruction counts; under KVM (hosts with vmx/svm) they are cycles.
//!    These two boots run side by side: icount results do not depend on
//!    host load.
//! 2. **lifecycle** (`role=hello`, 1 MiB and 64 MiB, several boots each):
//!    wall times under the accelerator without icount, taken from the
//!    arrival time of each serial line (`bench/session.rs`): QEMU start to
//!    dom0's first line (and to a shell prompt, once dom0 prints one),
//!    `domctl_create` to the guest's first console line, power-off to its
//!    frames freed; and the frames the hypervisor keeps per domain.
//! 3. **density**: 1 MiB idle guests started until memory runs out.
//!
//! The results go to the terminal (a table), `target/oxen/bench.json`,
//! `target/oxen/bench.svg` (`bench/svg.rs`), and the transcripts to
//! `target/oxen/bench/`. `--compare OLD.json` prints the change per figure
//! (`bench/report.rs`); the statistics are in `bench/stats.rs`.

mod json;
mod report;
mod session;
mod stats;
mod svg;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::build::{self, BundleFile, Layout};
use crate::error::{Context, Result, UsageError, error};
use crate::qemu::{self, Accel, Boot, Console, Machine};
use crate::{Options, tools};
use report::{Context as RunContext, Figure, Group, Report};
use session::{Line, Transcript};
use stats::Summary;

/// Options of `cargo xtask bench`.
#[derive(Debug, Default)]
pub struct BenchArgs {
    /// `--quick`: fewer samples and runs (under a minute).
    pub quick: bool,
    /// `--compare OLD.json [NEW.json]`.
    pub compare: Option<PathBuf>,
    /// A second file: compare the two without running anything.
    pub against: Option<PathBuf>,
    /// `--accel`.
    pub accel: Option<Accel>,
    /// `--no-build`: use what `target/oxen/` holds.
    pub no_build: bool,
}

impl BenchArgs {
    /// Parse `cargo xtask bench` arguments.
    pub fn parse(args: &[String]) -> Result<Self> {
        let spec = [
            ("--quick", false),
            ("--compare", true),
            ("--accel", true),
            ("--no-build", false),
        ];
        let opts = Options::parse(args, &spec)?;
        if !opts.rest.is_empty() {
            return Err(UsageError("bench takes no QEMU arguments".into()).into());
        }
        let compare = opts.value("--compare").map(PathBuf::from);
        let against = match opts.positional.as_slice() {
            [] => None,
            [one] if compare.is_some() => Some(PathBuf::from(one)),
            _ => {
                return Err(UsageError(
                    "bench takes no positional arguments but the NEW.json of --compare OLD.json NEW.json"
                        .into(),
                )
                .into());
            }
        };
        Ok(Self {
            quick: opts.has("--quick"),
            compare,
            against,
            accel: opts.accel()?,
            no_build: opts.has("--no-build"),
        })
    }
}

/// How much to measure.
#[derive(Clone, Copy, Debug)]
struct Plan {
    quick: bool,
    /// Samples per path-length benchmark.
    iters: usize,
    /// Samples of the slow ones (console output, 64-page batches).
    slow_iters: usize,
    /// Boots per lifecycle size.
    runs: usize,
    /// Idle guests the density boot offers (more than fit).
    density_domains: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                iters: 1000,
                slow_iters: 100,
                runs: 3,
                density_domains: DENSITY_DOMAINS,
            }
        } else {
            Plan {
                quick,
                iters: 10_000,
                slow_iters: 1000,
                runs: 11,
                density_domains: DENSITY_DOMAINS,
            }
        }
    }
}

/// Guests the density boot offers: more than 512 MiB can hold at 1 MiB each.
const DENSITY_DOMAINS: usize = 520;
/// QEMU's memory for every benchmark boot.
const MEMORY: &str = "512M";
/// QEMU's machine for every benchmark boot (`cargo xtask run`'s default).
const MACHINE: &str = "q35";
/// The icount arguments: one instruction per nanosecond of virtual time,
/// no throttling to real time, no sleeping while idle.
const ICOUNT: [&str; 2] = ["-icount", "shift=0,align=off,sleep=off"];

/// `cargo xtask bench`.
pub fn command(args: &[String]) -> Result<ExitCode> {
    let args = BenchArgs::parse(args)?;
    if let (Some(old), Some(new)) = (&args.compare, &args.against) {
        print!("{}", load(new)?.compare(&load(old)?));
        return Ok(ExitCode::SUCCESS);
    }
    let old = args.compare.as_deref().map(load).transpose()?;
    let layout = Layout::new()?;
    tools::ensure(tools::QEMU)?;
    if !args.no_build {
        build::build(
            &layout,
            &build::Plan {
                test_image: false,
                iso_cmdline: None,
            },
        )?;
    }
    let accel = crate::pick_accel(args.accel);
    let plan = Plan::new(args.quick);
    let report = run(&layout, accel, plan)?;
    println!();
    print!("{}", report.table());
    let json_path = layout.out.join("bench.json");
    fs::write(&json_path, report.to_json().pretty())
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let svg_path = layout.out.join("bench.svg");
    let title = format!(
        "Oxen path lengths ({}, {}{})",
        short_commit(&report.context.git_commit),
        report.context.accelerator,
        if report.context.icount { ", icount" } else { "" }
    );
    fs::write(&svg_path, svg::chart(&report.figures, &title))
        .with_context(|| format!("cannot write {}", svg_path.display()))?;
    println!(
        "\nxtask: bench took {:.1} s; wrote {} and {}; transcripts in {}",
        report.context.elapsed_s,
        layout.show(&json_path),
        layout.show(&svg_path),
        layout.show(&layout.out.join("bench"))
    );
    if let Some(old) = old {
        println!();
        print!("{}", report.compare(&old));
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &Path) -> Result<Report> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = json::parse(&text).map_err(|e| error(format!("{}: {e}", path.display())))?;
    Report::from_json(&value).map_err(|e| error(format!("{}: {e}", path.display())))
}

fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

// ---- Guest configs -------------------------------------------------------------

/// One generated `bench` guest config.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GuestConfig {
    /// File name under `auto/` (dom0 starts them in name order).
    file: String,
    /// Domain name.
    name: String,
    /// `memory`, MiB.
    memory_mib: u32,
    /// `extra`: the role and its options.
    extra: String,
    /// The comment line on top.
    about: String,
}

impl GuestConfig {
    fn new(name: &str, memory_mib: u32, extra: &str, about: &str) -> GuestConfig {
        GuestConfig {
            file: format!("{name}.cfg"),
            name: name.into(),
            memory_mib,
            extra: extra.into(),
            about: about.into(),
        }
    }

    /// The `xm` config text.
    fn text(&self) -> String {
        format!(
            "# {}: {}\n# Generated by `cargo xtask bench` (xtask/src/bench.rs), which checks\n# that this copy matches.\nname        = \"{}\"\nmemory      = {}\nkernel      = \"images/bench.elf\"\nextra       = \"{}\"\non_poweroff = \"destroy\"\n",
            self.name, self.about, self.name, self.memory_mib, self.extra
        )
    }

    fn bundle_file(&self) -> BundleFile {
        (self.file.clone(), self.text().into_bytes())
    }
}

/// The micro-benchmark guest.
fn micro_config(plan: &Plan) -> GuestConfig {
    let mut extra = String::from("role=micro");
    if plan.quick {
        extra.push_str(&format!(" iters={} slow_iters={}", plan.iters, plan.slow_iters));
    }
    GuestConfig::new(
        "bench-micro",
        8,
        &extra,
        "the single-domain path lengths (hypercalls, mmu batches, timer upcall)",
    )
}

/// The event-channel pair: pong first, so that ping's ID is pong's + 1.
fn evtchn_configs(plan: &Plan) -> [GuestConfig; 2] {
    let iters = if plan.quick {
        format!(" iters={}", plan.iters)
    } else {
        String::new()
    };
    [
        GuestConfig::new(
            "bench-evtchn-1-pong",
            4,
            &format!("role=pong{iters}"),
            "answers ping's events (started before ping: ping is its domain ID + 1)",
        ),
        GuestConfig::new(
            "bench-evtchn-2-ping",
            4,
            &format!("role=ping{iters}"),
            "times event-channel round trips to pong (its domain ID - 1)",
        ),
    ]
}

/// A tiny guest of `memory_mib` that prints and powers off.
fn hello_config(memory_mib: u32) -> GuestConfig {
    GuestConfig::new(
        &format!("bench-hello-{memory_mib}m"),
        memory_mib,
        "role=hello",
        "prints one line at once and powers off (domain create to first output)",
    )
}

/// Density guest `i`: 1 MiB, idle for good.
fn idle_config(i: usize) -> GuestConfig {
    GuestConfig::new(
        &format!("bench-fill-{i:03}"),
        1,
        "role=idle",
        "a 1 MiB guest that blocks for good (how many fit)",
    )
}

/// The configs kept in `configs/`: what a full run generates.
#[cfg(test)]
fn repository_configs() -> Vec<GuestConfig> {
    let plan = Plan::new(false);
    let mut all = vec![micro_config(&plan)];
    all.extend(evtchn_configs(&plan));
    all.push(hello_config(1));
    all.push(hello_config(64));
    all
}

// ---- Boots ---------------------------------------------------------------------

/// What every benchmark boot shares.
struct Env<'a> {
    layout: &'a Layout,
    accel: Accel,
    /// The default bundle, whose `auto/` each boot replaces.
    bundle: Vec<u8>,
    /// `target/oxen/bench/`.
    out: PathBuf,
}

impl Env<'_> {
    /// Boot with `auto` as the bundle's `auto/`; icount for path lengths.
    fn boot(
        &self,
        name: &str,
        auto: &[GuestConfig],
        icount: bool,
        timeout: Duration,
        done: impl FnMut(&Line) -> bool,
    ) -> Result<Transcript> {
        let files: Vec<BundleFile> = auto.iter().map(GuestConfig::bundle_file).collect();
        let bundle = bundle_with_auto(&self.bundle, &files)?;
        let path = self.out.join(format!("{name}.cpio"));
        fs::write(&path, bundle).with_context(|| format!("cannot write {}", path.display()))?;
        let machine = Machine {
            machine: MACHINE.into(),
            memory: MEMORY.into(),
            smp: 1,
        };
        let boot = Boot::Pvh {
            kernel: self.layout.hypervisor_elf(),
            initrd: Some(path),
            append: String::new(),
        };
        let mut args = qemu::command_line(Console::Piped, &machine, self.accel, &boot);
        if icount && self.accel == Accel::Tcg {
            args.extend(ICOUNT.iter().map(OsString::from));
        }
        let log = self.out.join(format!("{name}.log"));
        let t = session::run(qemu::QEMU_BINARY.as_ref(), &args, timeout, &log, done)?;
        let end = if t.stopped {
            "done"
        } else if t.timed_out {
            "TIMED OUT"
        } else {
            "QEMU exited early"
        };
        println!(
            "xtask: bench boot {name}: {end} after {:.2} s ({} lines)",
            t.lines.last().map_or(0.0, |l| l.at.as_secs_f64()),
            t.lines.len()
        );
        Ok(t)
    }
}

/// `archive` with its `auto/` replaced by `auto` (names are file names).
fn bundle_with_auto(archive: &[u8], auto: &[BundleFile]) -> Result<Vec<u8>> {
    let parsed =
        oxen_bundle::Archive::parse(archive).map_err(|e| error(format!("cannot read the bundle: {e}")))?;
    let mut files: Vec<BundleFile> = parsed
        .entries()
        .filter(|e| e.is_file() && e.name != "manifest" && !e.name.starts_with("auto/"))
        .map(|e| (e.name.to_string(), e.data.to_vec()))
        .collect();
    files.extend(
        auto.iter()
            .map(|(name, data)| (format!("auto/{name}"), data.clone())),
    );
    build::pack_bundle(&files)
}

/// Stop once every domain in `names` stopped (or failed to start).
fn all_stopped(names: &[&str]) -> impl FnMut(&Line) -> bool {
    let mut left: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    move |line: &Line| {
        left.retain(|name| !stopped_line(&line.text, name));
        left.is_empty()
    }
}

/// Whether `text` says domain `name` stopped: the hypervisor's shutdown or
/// crash line, or dom0's refusal to start it.
fn stopped_line(text: &str, name: &str) -> bool {
    let quoted = format!("('{name}')");
    (text.contains(&quoted) && (text.contains(" shut down") || text.contains(" crashed")))
        || text.contains(&format!("cannot start '{name}'"))
}

// ---- The run -------------------------------------------------------------------

fn run(layout: &Layout, accel: Accel, plan: Plan) -> Result<Report> {
    let started = Instant::now();
    let out = layout.out.join("bench");
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let bundle =
        fs::read(layout.bundle()).with_context(|| format!("cannot read {}", layout.bundle().display()))?;
    if !layout.guest_elf("bench").is_file() {
        return Err(error(
            "target/oxen/guests/bench.elf is missing: run without --no-build",
        ));
    }
    let env = Env {
        layout,
        accel,
        bundle,
        out,
    };
    let icount = accel == Accel::Tcg;
    let unit = match accel {
        Accel::Tcg => "instructions",
        Accel::Kvm => "cycles",
    };
    println!(
        "xtask: bench: {} path lengths in {unit}{}, then lifecycle wall times ({} boots per size) and density",
        if plan.quick { "quick run:" } else { "full run:" },
        if icount { " (TCG -icount shift=0)" } else { "" },
        plan.runs
    );

    // 1. Path lengths: two boots side by side.
    let micro = micro_config(&plan);
    let pair = evtchn_configs(&plan);
    let path_timeout = Duration::from_secs(if plan.quick { 40 } else { 150 });
    let (micro_t, pair_t) = std::thread::scope(|s| {
        let m = s.spawn(|| {
            env.boot(
                "micro",
                std::slice::from_ref(&micro),
                true,
                path_timeout,
                all_stopped(&[&micro.name]),
            )
        });
        let p = env.boot(
            "evtchn",
            &pair,
            true,
            path_timeout,
            all_stopped(&[&pair[0].name, &pair[1].name]),
        );
        (m.join(), p)
    });
    let micro_t = micro_t.map_err(|_| error("the micro-benchmark thread panicked"))??;
    let pair_t = pair_t?;
    let mut figures = path_figures(&micro_t, &pair_t, unit);

    // 2. Lifecycle: one boot per run and size, alone on the host.
    let mut boots: Vec<(u32, Transcript)> = Vec::new();
    for run in 0..plan.runs {
        for size in [1u32, 64] {
            let config = hello_config(size);
            let name = format!("hello-{size}m-{run}");
            let destroyed = format!("('{}') destroyed", config.name);
            let t = env.boot(
                &name,
                std::slice::from_ref(&config),
                false,
                Duration::from_secs(60),
                move |l: &Line| l.text.contains(&destroyed),
            )?;
            boots.push((size, t));
        }
    }
    figures.extend(lifecycle_figures(&boots));

    // 3. Density.
    let fill: Vec<GuestConfig> = (0..plan.density_domains).map(idle_config).collect();
    let density_t = env.boot(
        "density",
        &fill,
        false,
        Duration::from_secs(if plan.quick { 40 } else { 120 }),
        |l: &Line| l.text.contains("cannot start 'bench-fill-"),
    )?;
    figures.push(density_figure(&density_t, plan.density_domains));
    figures.extend(reference_figures());

    let (git_commit, git_dirty) = git_state(&layout.root);
    let context = RunContext {
        hostname: hostname(),
        cpu_model: cpu_model(),
        host_cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        qemu_version: qemu_version(),
        accelerator: accel.to_string(),
        icount,
        git_commit,
        git_dirty,
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        quick: plan.quick,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    Ok(Report { context, figures })
}

// ---- Reading the transcripts ------------------------------------------------------

/// One `bench: NAME median=.. p99=.. min=.. max=.. n=..` line, or an error.
#[derive(Clone, Debug, PartialEq)]
struct GuestResult {
    name: String,
    value: std::result::Result<Summary, String>,
}

/// Parse a console line carrying a guest result.
fn guest_result(text: &str) -> Option<GuestResult> {
    let rest = &text[text.find("bench: ")? + "bench: ".len()..];
    let mut words = rest.split_whitespace();
    let name = words.next()?.to_string();
    let get = |key: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    if let Some(e) = get("error") {
        return Some(GuestResult {
            name,
            value: Err(format!("the guest reported {e}")),
        });
    }
    let num = |v: Option<String>| v.and_then(|v| v.parse::<f64>().ok());
    let summary = Summary {
        median: num(get("median"))?,
        p99: num(get("p99"))?,
        min: num(get("min"))?,
        max: num(get("max"))?,
        n: stats::count(num(get("n"))?),
    };
    Some(GuestResult {
        name,
        value: Ok(summary),
    })
}

/// Every guest result in a transcript, by name (the last one wins).
fn guest_results(t: &Transcript) -> Vec<GuestResult> {
    let mut out: Vec<GuestResult> = Vec::new();
    for r in t.lines.iter().filter_map(|l| guest_result(&l.text)) {
        out.retain(|o| o.name != r.name);
        out.push(r);
    }
    out
}

/// Why a benchmark boot produced no result for `name`.
fn missing_reason(t: &Transcript, what: &str) -> String {
    if t.timed_out {
        format!("{what}: the boot timed out before the guest reported it")
    } else {
        format!("{what}: the guest never reported it (see target/oxen/bench/*.log)")
    }
}

/// The path-length figures, in table order.
const PATH_FIGURES: &[(&str, Option<f64>, &str)] = &[
    (
        "null_hypercall",
        Some(60.0),
        "version(): syscall, dispatch, sysret; the floor",
    ),
    ("unknown_hypercall", None, "number 0x3ff: decode fails, ENOSYS"),
    ("memory_info", None, "32-byte struct copied out"),
    ("evtchn_status", None, "port lookup, 32-byte struct copied out"),
    (
        "console_write_64",
        None,
        "64 bytes in, to the ring and the serial line (printed)",
    ),
    ("evtchn_send", None, "loopback port, upcalls masked: marking only"),
    (
        "mmu_map_unmap_1",
        None,
        "mmu batch mapping 1 page, then the batch unmapping it",
    ),
    ("mmu_map_unmap_64", None, "the same with 64 pages per batch"),
    (
        "timer_upcall",
        None,
        "set_timer(past deadline) to the VIRQ_TIMER handler's first instruction",
    ),
    (
        "timer_upcall_iret",
        None,
        "the same, back through the handler's iret",
    ),
    (
        "evtchn_roundtrip",
        Some(800.0),
        "ping send, pong wakes and sends, ping wakes (2 domain switches)",
    ),
    (
        "domain_switch",
        None,
        "derived: (ping's call spanning pong's turn - pong's turn) / 2",
    ),
    (
        "evtchn_ping_span",
        None,
        "ping's send or block that pong's whole turn ran inside",
    ),
    (
        "evtchn_pong_turn",
        None,
        "pong between the two calls ping's turns ran inside: wait check, send",
    ),
];

/// From a guest's note `... ran inside WHO's send in X of N`: X and N,
/// how often the other domain's turn ran inside a send (a woken domain
/// preempting the sender) rather than inside a block.
fn inside_send(t: &Transcript, who: &str) -> Option<(u64, u64)> {
    let line = t.find(&format!("ran inside {who}'s send in "))?;
    let rest = &line.text[line.text.find(" send in ")? + " send in ".len()..];
    let mut words = rest.split_whitespace();
    let hits = words.next()?.parse().ok()?;
    let total = words.nth(1)?.parse().ok()?;
    Some((hits, total))
}

fn path_figures(micro: &Transcript, pair: &Transcript, unit: &str) -> Vec<Figure> {
    let mut results = guest_results(micro);
    results.extend(guest_results(pair));
    let find = |name: &str| results.iter().find(|r| r.name == name);
    let mut figures = Vec::new();
    for &(name, target, note) in PATH_FIGURES {
        let source =
            if name.starts_with("evtchn_round") || name.starts_with("evtchn_p") || name == "domain_switch" {
                pair
            } else {
                micro
            };
        let figure = if name == "domain_switch" {
            match (find("evtchn_ping_span"), find("evtchn_pong_turn")) {
                (Some(block), Some(busy)) => match (&block.value, &busy.value) {
                    (Ok(b), Ok(w)) => {
                        let switch = |v: f64| ((v - w.median) / 2.0).max(0.0);
                        Figure::new(
                            name,
                            Group::Path,
                            unit,
                            Summary {
                                median: switch(b.median),
                                p99: switch(b.p99),
                                min: switch(b.min),
                                max: switch(b.max),
                                n: b.n.min(w.n),
                            },
                            1,
                            note,
                        )
                    }
                    (Err(e), _) | (_, Err(e)) => Figure::na(name, Group::Path, unit, e, note),
                },
                _ => Figure::na(name, Group::Path, unit, &missing_reason(pair, "ping/pong"), note),
            }
        } else {
            match find(name) {
                Some(GuestResult { value: Ok(s), .. }) => Figure::new(name, Group::Path, unit, *s, 1, note),
                Some(GuestResult { value: Err(e), .. }) => Figure::na(name, Group::Path, unit, e, note),
                None => Figure::na(name, Group::Path, unit, &missing_reason(source, name), note),
            }
        };
        figures.push(figure.with_target(target));
    }
    if let Some(rt) = figures.iter_mut().find(|f| f.name == "evtchn_roundtrip") {
        for who in ["ping", "pong"] {
            if let Some((hits, total)) = inside_send(pair, who) {
                rt.note
                    .push_str(&format!("; switch inside {who}'s send {hits}/{total}"));
            }
        }
    }
    figures
}

/// The domain ID in a hypervisor line `... domain N ('NAME') created ...`.
fn created_domid(text: &str, name: &str) -> Option<u32> {
    let end = text.find(&format!(" ('{name}') created"))?;
    let head = &text[..end];
    head[head.rfind("domain ")? + "domain ".len()..]
        .trim()
        .parse()
        .ok()
}

/// What one lifecycle boot showed, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Lifecycle {
    boot_to_dom0: Option<f64>,
    boot_to_prompt: Option<f64>,
    create_to_output: Option<f64>,
    poweroff_to_freed: Option<f64>,
    /// Frames the hypervisor keeps: page tables + shared info + FPU areas.
    overhead_pages: Option<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn lifecycle(t: &Transcript, name: &str) -> Lifecycle {
    let at = |needle: &str| t.find(needle).map(|l| l.at);
    let dom0 = t.lines.iter().find(|l| l.text.starts_with("dom0")).map(|l| l.at);
    let created = t
        .lines
        .iter()
        .find_map(|l| created_domid(&l.text, name).map(|id| (id, l.at)));
    let first_output = created.and_then(|(id, _)| at(&format!("(d{id}) ")));
    let shut = at(&format!("('{name}') shut down"));
    let freed = at(&format!("('{name}') destroyed"));
    let overhead_pages = t
        .lines
        .iter()
        .find(|l| l.text.contains("bench: memory ") && l.text.contains("pt_pages="))
        .and_then(|l| {
            let get = |key: &str| {
                l.text
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse::<f64>().ok())
            };
            // As `Domain::overhead_pages` counts: page tables, the
            // shared-info page, one FPU area per vCPU.
            Some(get("pt_pages")? + 1.0 + get("vcpus")?)
        });
    let since = |a: Option<Duration>, b: Option<Duration>| Some(ms(b?.checked_sub(a?)?));
    Lifecycle {
        boot_to_dom0: dom0.map(ms),
        boot_to_prompt: t.prompt_at.map(ms),
        create_to_output: since(created.map(|(_, at)| at), first_output),
        poweroff_to_freed: since(shut, freed),
        overhead_pages,
    }
}

fn lifecycle_figures(boots: &[(u32, Transcript)]) -> Vec<Figure> {
    let runs: Vec<(u32, Lifecycle)> = boots
        .iter()
        .map(|(size, t)| (*size, lifecycle(t, &hello_config(*size).name)))
        .collect();
    let collect = |size: Option<u32>, pick: fn(&Lifecycle) -> Option<f64>| -> Vec<f64> {
        runs.iter()
            .filter(|(s, _)| size.is_none_or(|want| *s == want))
            .filter_map(|(_, l)| pick(l))
            .collect()
    };
    let figure = |name: &str, unit: &str, values: Vec<f64>, target: Option<f64>, note: &str, why: &str| {
        match Summary::of(&values) {
            Some(s) => Figure::new(name, Group::Lifecycle, unit, s, s.n, note),
            None => Figure::na(name, Group::Lifecycle, unit, why, note),
        }
        .with_target(target)
    };
    let no_boot = "no boot reached this point (see target/oxen/bench/hello-*.log)";
    let mut out = vec![
        figure(
            "boot_to_dom0_ms",
            "ms",
            collect(None, |l| l.boot_to_dom0),
            Some(150.0),
            "QEMU start to dom0's first console line",
            no_boot,
        ),
        figure(
            "boot_to_prompt_ms",
            "ms",
            collect(None, |l| l.boot_to_prompt),
            Some(150.0),
            "QEMU start to dom0's shell prompt",
            "dom0 printed no shell prompt ('# ') in these boots",
        ),
    ];
    for size in [1u32, 64] {
        out.push(figure(
            &format!("create_to_output_{size}m_ms"),
            "ms",
            collect(Some(size), |l| l.create_to_output),
            (size == 1).then_some(5.0),
            &format!("domctl_create of a {size} MiB guest to its first console line (build included)"),
            no_boot,
        ));
    }
    for size in [1u32, 64] {
        out.push(figure(
            &format!("poweroff_to_freed_{size}m_ms"),
            "ms",
            collect(Some(size), |l| l.poweroff_to_freed),
            None,
            &format!("a {size} MiB guest's poweroff to its frames freed (dom0 notices, destroys)"),
            no_boot,
        ));
    }
    for size in [1u32, 64] {
        let kib: Vec<f64> = collect(Some(size), |l| l.overhead_pages)
            .into_iter()
            .map(|pages| pages * 4.0)
            .collect();
        out.push(figure(
            &format!("overhead_{size}m_kib"),
            "KiB",
            kib,
            (size == 1).then_some(64.0),
            &format!("frames the hypervisor keeps for a {size} MiB domain (page tables, shared info, FPU)"),
            "the guest did not report its page-table frames",
        ));
    }
    out
}

fn density_figure(t: &Transcript, offered: usize) -> Figure {
    let note = "1 MiB idle domUs running at once in 512 MiB";
    let started = t.count("started 'bench-fill-");
    let refusal = t.find("cannot start 'bench-fill-");
    match refusal {
        Some(line) if started > 0 => {
            // The status word (ENOMEM ...) if the refusal names one.
            let why = line
                .text
                .split(|c: char| !c.is_ascii_alphanumeric())
                .find(|w| w.len() > 2 && w.starts_with('E') && w.chars().all(|c| c.is_ascii_uppercase()))
                .unwrap_or("refused");
            let s = Summary::of(&[started as f64]).expect("one value");
            Figure::new(
                "density_1m",
                Group::Lifecycle,
                "domains",
                s,
                1,
                &format!("{note}; the next one: {why}"),
            )
        }
        _ if started >= offered => Figure::na(
            "density_1m",
            Group::Lifecycle,
            "domains",
            &format!("all {offered} offered domains fit; offer more"),
            note,
        ),
        _ => Figure::na(
            "density_1m",
            Group::Lifecycle,
            "domains",
            &format!(
                "{started} started, then {} (see target/oxen/bench/density.log)",
                if t.timed_out {
                    "the boot timed out"
                } else {
                    "no refusal was seen"
                }
            ),
            note,
        ),
    }
}

/// Xen 4.17's numbers from the benchmark issue, measured on these machines
/// (ARCHITECTURE.md §7): fixed rows, not measured by this run.
fn reference_figures() -> Vec<Figure> {
    let range = |low: f64, high: f64| Summary {
        median: (low + high) / 2.0,
        p99: high,
        min: low,
        max: high,
        n: 0,
    };
    let fixed = |v: f64| range(v, v);
    vec![
        Figure::new(
            "xen_null_hypercall",
            Group::Reference,
            "instructions",
            fixed(332.0),
            0,
            "Xen 4.17 PV64 null hypercall (278 with mitigations off)",
        ),
        Figure::new(
            "xen_unknown_hypercall",
            Group::Reference,
            "instructions",
            fixed(264.0),
            0,
            "Xen 4.17 PV64 unknown hypercall",
        ),
        Figure::new(
            "xen_evtchn_send",
            Group::Reference,
            "instructions",
            fixed(422.0),
            0,
            "Xen 4.17 EVTCHNOP_send",
        ),
        Figure::new(
            "xen_boot_to_dom0_shell_ms",
            Group::Reference,
            "ms",
            range(8500.0, 8900.0),
            0,
            "Xen 4.17 under TCG: QEMU start to dom0 shell, 8.5-8.9 s",
        ),
        Figure::new(
            "xen_xl_create_tiny_ms",
            Group::Reference,
            "ms",
            range(5600.0, 6000.0),
            0,
            "Xen 4.17 under TCG: xl create of a tiny PV guest, 5.6-6.0 s",
        ),
    ]
}

// ---- Where the run was made -------------------------------------------------------

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == "model name")
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn qemu_version() -> String {
    Command::new(qemu::QEMU_BINARY)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// `git rev-parse HEAD` and whether `git status --porcelain` shows changes.
fn git_state(root: &Path) -> (String, bool) {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
    };
    let commit = git(&["rev-parse", "HEAD"]).map_or_else(|| "unknown".into(), |c| c.trim().to_string());
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.trim().is_empty());
    (commit, dirty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() -> Result<()> {
        let a = BenchArgs::parse(&strings(&["--quick", "--compare", "old.json", "--accel=tcg"]))?;
        assert!(a.quick && !a.no_build);
        assert_eq!(a.compare.as_deref(), Some(Path::new("old.json")));
        assert_eq!(a.against, None);
        assert_eq!(a.accel, Some(Accel::Tcg));
        let two = BenchArgs::parse(&strings(&["--compare", "a.json", "b.json"]))?;
        assert_eq!(two.against.as_deref(), Some(Path::new("b.json")));
        assert!(BenchArgs::parse(&strings(&["b.json"])).is_err());
        assert!(BenchArgs::parse(&strings(&["--runs", "3"])).is_err());
        Ok(())
    }

    #[test]
    fn guest_lines_parse() {
        let line =
            "(d1) bench: null_hypercall median=1234 p99=1400 min=1200 max=9000 n=10000 unit=tsc overhead=12";
        let r = guest_result(line).expect("a result line");
        assert_eq!(r.name, "null_hypercall");
        assert_eq!(
            r.value,
            Ok(Summary {
                median: 1234.0,
                p99: 1400.0,
                min: 1200.0,
                max: 9000.0,
                n: 10_000
            })
        );
        let e = guest_result("(d2) bench: timer_upcall error=EINVAL").expect("an error line");
        assert_eq!(e.value, Err("the guest reported EINVAL".into()));
        assert_eq!(guest_result("(d1) bench: micro start (domain 1)"), None);
        let note = "(d2) bench: ping note: pong's turn ran inside ping's send in 350 of 1000";
        assert_eq!(guest_result(note), None);
        let t = Transcript {
            lines: vec![Line {
                at: Duration::ZERO,
                text: note.into(),
            }],
            ..Transcript::default()
        };
        assert_eq!(inside_send(&t, "ping"), Some((350, 1000)));
        assert_eq!(inside_send(&t, "pong"), None);
        assert_eq!(guest_result("dom0: started 'bench-micro'"), None);
    }

    fn line(ms: u64, text: &str) -> Line {
        Line {
            at: Duration::from_millis(ms),
            text: text.into(),
        }
    }

    #[test]
    fn lifecycle_from_a_transcript() {
        let t = Transcript {
            lines: vec![
                line(90, "Oxen 0.1.0 hypervisor (boot protocol: PVH)"),
                line(180, "dom0: Oxen ABI 1.1 (hypervisor ABI 1.1)"),
                line(
                    200,
                    "[    0.18] cpu0 INFO  domain: domain 3 ('bench-hello-1m') created: 256 pages",
                ),
                line(207, "(d3) bench: hello from domain 3"),
                line(
                    208,
                    "(d3) bench: memory tot_pages=256 max_pages=256 pt_pages=9 vcpus=1",
                ),
                line(
                    209,
                    "[    0.19] cpu0 INFO  domain: domain 3 ('bench-hello-1m') shut down: poweroff",
                ),
                line(
                    212,
                    "[    0.20] cpu0 INFO  domain: domain 3 ('bench-hello-1m') destroyed: 256 pages returned",
                ),
            ],
            prompt_at: Some(Duration::from_millis(185)),
            ..Transcript::default()
        };
        let l = lifecycle(&t, "bench-hello-1m");
        assert_eq!(l.boot_to_dom0, Some(180.0));
        assert_eq!(l.boot_to_prompt, Some(185.0));
        assert_eq!(l.create_to_output, Some(7.0));
        assert_eq!(l.poweroff_to_freed, Some(3.0));
        assert_eq!(l.overhead_pages, Some(11.0));
        let boots = vec![(1, t)];
        let figures = lifecycle_figures(&boots);
        let get = |n: &str| figures.iter().find(|f| f.name == n).expect("figure exists");
        assert_eq!(get("overhead_1m_kib").median(), Some(44.0));
        assert_eq!(get("overhead_1m_kib").meets_target(), Some(true));
        assert!(get("create_to_output_64m_ms").value.is_err());
        assert_eq!(created_domid("domain 12 ('x') created: 1 pages", "x"), Some(12));
    }

    #[test]
    fn stop_conditions() {
        let mut stop = all_stopped(&["a", "b"]);
        assert!(!stop(&line(1, "domain 1 ('a') shut down: poweroff")));
        assert!(!stop(&line(2, "domain 3 ('c') crashed: oops")));
        assert!(stop(&line(3, "Error: cannot start 'b': no memory")));
    }

    #[test]
    fn density_counts_until_the_first_refusal() {
        let mut lines: Vec<Line> = (0..3)
            .map(|i| {
                line(
                    i,
                    &format!("dom0: started 'bench-fill-{i:03}' as domain {} (1 MiB)", i + 1),
                )
            })
            .collect();
        lines.push(line(9, "Error: cannot start 'bench-fill-003': the hypervisor has not enough free memory for 1 MiB: ENOMEM"));
        let t = Transcript {
            lines,
            ..Transcript::default()
        };
        let f = density_figure(&t, 10);
        assert_eq!(f.median(), Some(3.0));
        assert!(f.note.contains("ENOMEM"), "{}", f.note);
        let none = density_figure(&Transcript::default(), 10);
        assert!(none.value.is_err());
    }

    #[test]
    fn the_repository_configs_are_what_a_full_run_generates() -> Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        for config in repository_configs() {
            let path = dir.join(&config.file);
            let text =
                fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            assert_eq!(
                text,
                config.text(),
                "{} differs from what bench generates",
                path.display()
            );
        }
        Ok(())
    }

    #[test]
    fn bundles_get_a_new_auto() -> Result<()> {
        let base = build::pack_bundle(&[
            ("images/bench.elf".into(), b"elf".to_vec()),
            ("auto/hello.cfg".into(), b"old".to_vec()),
        ])?;
        let new = bundle_with_auto(&base, &[micro_config(&Plan::new(true)).bundle_file()])?;
        let parsed = oxen_bundle::Archive::parse(&new).map_err(|e| error(e.to_string()))?;
        let names: Vec<&str> = parsed.entries().map(|e| e.name).collect();
        assert_eq!(names, ["manifest", "images/bench.elf", "auto/bench-micro.cfg"]);
        let text = std::str::from_utf8(parsed.find("auto/bench-micro.cfg").map_or(&[][..], |e| e.data))?;
        assert!(
            text.contains("extra       = \"role=micro iters=1000 slow_iters=100\""),
            "{text}"
        );
        Ok(())
    }
}
