//! The scenario runner: boots each scenario (`scenario.rs`) under QEMU with the
//! serial console on pipes, matches the output against the scenario's
//! expectations with a hard timeout, checks the `isa-debug-exit` status, and
//! keeps the transcript in `target/oxen/tests/NAME.log`. [`run_all`] runs a
//! list of scenarios on a small pool of threads.
//!
//! One run: two reader threads copy QEMU's stdout (the serial port) and stderr
//! into a shared [`Console`]; the scenario's thread waits on it, string by
//! string, with a condition variable, and writes `send` text to QEMU's stdin.
//! When the output shows a forbidden string the run stops early (after a short
//! grace period for the rest of the report), because a kernel that printed
//! `FATAL` may hang instead of exiting. Once QEMU is gone the scenario's
//! `[[ratio]]` checks read their numbers from the whole serial output, and
//! `heap_stable` applies `soak.rs`'s heap rule to it.
//!
//! The serial reader stamps every chunk with the time it arrived, so that a
//! timed step (`within_ms`) can tell how long after its `send` its `expect`
//! appeared; each timed step leaves a `# timed step` line in the transcript,
//! and the report a `timed steps: ... min/median/max` summary.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crate::build;
use crate::error::{Context, Result};
use crate::qemu::{self, Accel, Boot, Console as ConsoleKind, Outcome};
use crate::qmp;
use crate::scenario::{BootKind, BundleKind, ImageKind, Scenario};

/// How long a run may go on after a forbidden string appeared, so that the
/// rest of the report reaches the transcript.
const FORBIDDEN_GRACE: Duration = Duration::from_secs(2);

/// How many transcript lines a failure report shows.
pub const TAIL_LINES: usize = 30;

/// Prefix of QEMU's own stderr lines in a transcript.
const STDERR_PREFIX: &str = "qemu stderr: ";

/// The images and paths every scenario run needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// `hypervisor-test.elf`.
    pub test_elf: PathBuf,
    /// `hypervisor.elf`.
    pub release_elf: PathBuf,
    /// `bundle.cpio`.
    pub bundle: PathBuf,
    /// Where transcripts (`NAME.log`) and per-scenario files (`NAME/`) go.
    pub out_dir: PathBuf,
    /// The accelerator.
    pub accel: Accel,
    /// The QEMU binary.
    pub qemu: OsString,
}

/// The result of one scenario.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// Why it failed; empty when it passed.
    pub reasons: Vec<String>,
    /// Wall time of the run, setup included.
    pub elapsed: Duration,
    /// The transcript file.
    pub transcript: PathBuf,
    /// The last [`TAIL_LINES`] lines of the transcript.
    pub tail: Vec<String>,
    /// A `props` scenario's `props: N passed, S skipped, F failed`.
    pub summary: Option<String>,
}

impl Report {
    /// Whether the scenario passed.
    pub fn passed(&self) -> bool {
        self.reasons.is_empty()
    }

    /// All reasons in one line.
    pub fn reason(&self) -> String {
        self.reasons.join("; ")
    }

    /// The one-line status `cargo xtask test` prints.
    pub fn status_line(&self) -> String {
        let status = if self.passed() {
            format!(
                "scenario {} ... ok ({:.2} s)",
                self.name,
                self.elapsed.as_secs_f64()
            )
        } else {
            format!("scenario {} ... FAILED ({})", self.name, self.reason())
        };
        match &self.summary {
            Some(summary) => format!("{status}\n    {summary}"),
            None => status,
        }
    }
}

/// Runs `scenarios` on `jobs` threads and calls `on_done` with each report as
/// it finishes; returns the reports in the order they finished.
pub fn run_all(
    scenarios: &[Scenario],
    config: &Config,
    jobs: usize,
    mut on_done: impl FnMut(&Report),
) -> Vec<Report> {
    let next = AtomicUsize::new(0);
    let mut reports = Vec::with_capacity(scenarios.len());
    thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..jobs.clamp(1, scenarios.len().max(1)) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                while let Some(scenario) = scenarios.get(next.fetch_add(1, Ordering::SeqCst)) {
                    if tx.send(run_one(scenario, config)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for report in rx {
            on_done(&report);
            reports.push(report);
        }
    });
    reports
}

/// The console output of one run, shared between the reader threads and the
/// scenario's thread.
#[derive(Default)]
struct Console {
    state: Mutex<Output>,
    changed: Condvar,
}

#[derive(Default)]
struct Output {
    /// What the hypervisor wrote to the serial port.
    serial: Vec<u8>,
    /// The serial output with QEMU's stderr lines mixed in: the transcript.
    log: Vec<u8>,
    /// False once QEMU closed its stdout (it exited).
    closed: bool,
    /// When serial output arrived: the length of `serial` after each chunk,
    /// and the time the reader got it.
    arrivals: Vec<(usize, Instant)>,
}

impl Output {
    /// When the serial byte before offset `end` arrived.
    fn arrival(&self, end: usize) -> Option<Instant> {
        let at = self.arrivals.partition_point(|&(len, _)| len < end);
        self.arrivals.get(at).map(|&(_, when)| when)
    }
}

impl Console {
    fn lock(&self) -> MutexGuard<'_, Output> {
        // A reader thread that panicked leaves valid bytes behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies QEMU's stdout (the serial port) until it closes.
    fn read_serial(&self, mut stdout: impl Read) {
        let mut buf = [0u8; 4096];
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let arrived = Instant::now();
            let chunk = buf.get(..n).unwrap_or_default();
            let mut out = self.lock();
            out.serial.extend_from_slice(chunk);
            out.log.extend_from_slice(chunk);
            let len = out.serial.len();
            out.arrivals.push((len, arrived));
            drop(out);
            self.changed.notify_all();
        }
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Puts one line of the harness's own into the transcript.
    fn note(&self, line: &str) {
        let mut out = self.lock();
        if out.log.last().is_some_and(|&b| b != b'\n') {
            out.log.push(b'\n');
        }
        out.log.extend_from_slice(line.as_bytes());
        out.log.push(b'\n');
    }

    /// Copies QEMU's stderr into the transcript, one prefixed line at a time.
    fn read_stderr(&self, stderr: impl Read) {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let mut out = self.lock();
            if out.log.last().is_some_and(|&b| b != b'\n') {
                out.log.push(b'\n');
            }
            out.log.extend_from_slice(STDERR_PREFIX.as_bytes());
            out.log.extend_from_slice(&line);
            if line.last() != Some(&b'\n') {
                out.log.push(b'\n');
            }
            line.clear();
        }
    }
}

/// The first position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where a wait ended.
#[derive(Debug, PartialEq, Eq)]
enum Wait {
    /// Found; the match ends at this serial offset.
    Found(usize),
    /// QEMU exited first.
    Closed,
    /// The deadline passed.
    TimedOut,
    /// A forbidden string appeared.
    Forbidden,
}

/// Waits on a [`Console`] for strings, watching for forbidden ones.
struct Watcher<'a> {
    console: &'a Console,
    forbid: &'a [String],
    /// Serial bytes already checked for forbidden strings (less an overlap).
    forbid_checked: usize,
}

impl Watcher<'_> {
    fn saw_forbidden(&mut self, serial: &[u8]) -> bool {
        let longest = self.forbid.iter().map(String::len).max().unwrap_or(0);
        let from = self.forbid_checked.saturating_sub(longest.saturating_sub(1));
        let new = serial.get(from..).unwrap_or_default();
        self.forbid_checked = serial.len();
        self.forbid.iter().any(|f| find(new, f.as_bytes()).is_some())
    }

    /// Waits until `needle` appears at or after serial offset `from`
    /// (`None`: until QEMU exits).
    fn wait_for(&mut self, needle: Option<&str>, from: usize, deadline: Instant) -> Wait {
        let console = self.console;
        let mut out = console.lock();
        let mut searched = from;
        loop {
            if let Some(needle) = needle {
                let start = searched.saturating_sub(needle.len().saturating_sub(1)).max(from);
                let hay = out.serial.get(start..).unwrap_or_default();
                if let Some(at) = find(hay, needle.as_bytes()) {
                    return Wait::Found(start + at + needle.len());
                }
                searched = out.serial.len();
            }
            if self.saw_forbidden(&out.serial) {
                return Wait::Forbidden;
            }
            if out.closed {
                return Wait::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Wait::TimedOut;
            }
            out = console
                .changed
                .wait_timeout(out, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// Resolved inputs of one run.
struct Prepared {
    boot: Boot,
}

/// Picks the image and bundle and builds the per-scenario ISO, `auto/` bundle
/// or corrupt bundle.
fn prepare(scenario: &Scenario, config: &Config) -> Result<Prepared> {
    let scratch = config.out_dir.join(&scenario.name);
    let elf = match scenario.image {
        ImageKind::Test => &config.test_elf,
        ImageKind::Release => &config.release_elf,
    };
    if !elf.is_file() {
        return Err(format!("no hypervisor image at {}", elf.display()).into());
    }
    let base = match (&scenario.auto, scenario.bundle) {
        (Some(auto), BundleKind::Default | BundleKind::Corrupt) => {
            let default = fs::read(&config.bundle)
                .with_context(|| format!("cannot read {}", config.bundle.display()))?;
            let own = build::with_auto(&default, auto)?;
            fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
            let path = scratch.join("bundle.cpio");
            fs::write(&path, own).with_context(|| format!("cannot write {}", path.display()))?;
            path
        }
        _ => config.bundle.clone(),
    };
    let base = match &scenario.props {
        Some(words) => crate::props::write_bundle(&config.bundle, words, &scratch)?,
        None => base,
    };
    let bundle = match scenario.bundle {
        BundleKind::Default => Some(base),
        BundleKind::None => None,
        BundleKind::Corrupt => {
            let good = fs::read(&base).with_context(|| format!("cannot read {}", base.display()))?;
            let bad = build::corrupt_bundle(&good).context("cannot corrupt the bundle")?;
            fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
            let path = scratch.join("bundle-corrupt.cpio");
            fs::write(&path, bad).with_context(|| format!("cannot write {}", path.display()))?;
            Some(path)
        }
    };
    let boot = match scenario.boot {
        BootKind::Pvh => Boot::Pvh {
            kernel: elf.clone(),
            initrd: bundle,
            append: scenario.append.clone(),
        },
        BootKind::Iso => {
            fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
            let iso = scratch.join("oxen.iso");
            build::make_iso(elf, bundle.as_deref(), &scenario.append, &iso)?;
            Boot::Iso { iso }
        }
    };
    Ok(Prepared { boot })
}

/// Waits for `child` to exit; kills it at `deadline`. Returns its status and
/// whether it had to be killed.
fn reap(child: &mut Child, deadline: Instant) -> (Option<ExitStatus>, bool) {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                // Kill errors only mean it is already gone; `wait` tells.
                let _ = child.kill();
                return (child.wait().ok(), true);
            }
        }
    }
}

/// Shows a transcript line on a terminal: control characters (GRUB's screen
/// handling, for one) are escaped.
fn printable(line: &str) -> String {
    line.trim_end_matches('\r')
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The last `count` lines of `log`.
fn tail(log: &[u8], count: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(count);
    lines.iter().skip(skip).map(|l| printable(l)).collect()
}

/// What happened while a run was driven through its expects and steps.
struct Drive {
    /// Failures found while waiting (timeouts, a failed send).
    reasons: Vec<String>,
    /// QEMU exited while the run waited for this string.
    early_exit_for: Option<String>,
    /// A forbidden string appeared; the run was waiting for this (`None`: for the exit).
    forbidden: Option<Option<String>>,
    /// The answer times of the timed steps (`judge` fails the slow ones).
    timings: Vec<Timing>,
}

/// How long a timed step (`within_ms`) took to be answered.
#[derive(Clone, Debug, PartialEq)]
struct Timing {
    /// The step's number (from 1).
    step: usize,
    /// What it typed.
    send: String,
    /// What it waited for.
    expect: String,
    /// When it typed it, seconds from the start of the run.
    sent_s: f64,
    /// When the serial reader got the end of `expect`, seconds from the start.
    appeared_s: f64,
    /// Its `within_ms`.
    limit_ms: u64,
}

impl Timing {
    /// From `send` to `expect`, in milliseconds.
    fn latency_ms(&self) -> f64 {
        (self.appeared_s - self.sent_s) * 1000.0
    }

    /// The transcript line.
    fn line(&self) -> String {
        format!(
            "# timed step {}: sent {:?} at {:.3} s, '{}' appeared at {:.3} s: {:.1} ms (within_ms = {})",
            self.step,
            self.send,
            self.sent_s,
            self.expect,
            self.appeared_s,
            self.latency_ms(),
            self.limit_ms
        )
    }

    /// Why the step fails, if it took too long.
    fn failure(&self) -> Option<String> {
        // Compared in whole microseconds, so that the bound is exact.
        let limit_us = u128::from(self.limit_ms) * 1000;
        let took_us = Duration::from_secs_f64((self.appeared_s - self.sent_s).max(0.0)).as_micros();
        (took_us > limit_us).then(|| {
            format!(
                "step {}: '{}' appeared {:.1} ms after {:?} was sent (sent at {:.3} s, appeared at {:.3} s), \
                 more than within_ms = {}",
                self.step,
                self.expect,
                self.latency_ms(),
                self.send,
                self.sent_s,
                self.appeared_s,
                self.limit_ms
            )
        })
    }
}

/// `timed steps: N, answered in min A ms, median B ms, max C ms` (`None`
/// without timed steps).
fn timing_summary(timings: &[Timing]) -> Option<String> {
    let mut ms: Vec<f64> = timings.iter().map(Timing::latency_ms).collect();
    ms.sort_by(f64::total_cmp);
    let (&min, &max) = (ms.first()?, ms.last()?);
    let mid = ms.len() / 2;
    let median = if ms.len() % 2 == 1 {
        ms[mid]
    } else {
        (ms[mid - 1] + ms[mid]) / 2.0
    };
    let limits: Vec<u64> = timings.iter().map(|t| t.limit_ms).collect();
    let limit = match limits.iter().min() == limits.iter().max() {
        true => format!(" (within_ms = {})", limits[0]),
        false => String::new(),
    };
    Some(format!(
        "timed steps: {}, answered in min {min:.1} ms, median {median:.1} ms, max {max:.1} ms{limit}",
        ms.len()
    ))
}

/// Types `text` on the serial console.
fn send_text(stdin: &mut Option<ChildStdin>, text: &str) -> std::result::Result<(), String> {
    let sent = match stdin.as_mut() {
        Some(pipe) => pipe.write_all(text.as_bytes()).and_then(|()| pipe.flush()),
        None => Ok(()),
    };
    sent.map_err(|e| format!("cannot send {text:?} to the console: {e}"))
}

fn drive(scenario: &Scenario, console: &Console, stdin: &mut Option<ChildStdin>, start: Instant) -> Drive {
    let deadline = start + Duration::from_secs(scenario.timeout_secs);
    let mut watcher = Watcher {
        console,
        forbid: &scenario.forbid,
        forbid_checked: 0,
    };
    let mut drive = Drive {
        reasons: Vec::new(),
        early_exit_for: None,
        forbidden: None,
        timings: Vec::new(),
    };
    let mut cursor = 0;
    let waits = scenario
        .expect
        .iter()
        .map(|e| (0, Some(e.as_str()), None, None, None))
        .chain(scenario.steps.iter().enumerate().map(|(i, s)| {
            (
                i + 1,
                s.expect.as_deref(),
                s.timeout_secs,
                s.send.as_deref(),
                s.within_ms,
            )
        }));
    for (step, expect, step_secs, send, within_ms) in waits {
        // A timed step sends first; only what arrives after counts.
        let mut sent_at = None;
        if let (Some(_), Some(text)) = (within_ms, send) {
            cursor = cursor.max(console.lock().serial.len());
            sent_at = Some(Instant::now());
            if let Err(reason) = send_text(stdin, text) {
                drive.reasons.push(reason);
                return drive;
            }
        }
        if let Some(expect) = expect {
            let step_deadline = step_secs
                .map(|secs| (Instant::now() + Duration::from_secs(secs)).min(deadline))
                .unwrap_or(deadline);
            match watcher.wait_for(Some(expect), cursor, step_deadline) {
                Wait::Found(end) => {
                    cursor = end;
                    if let (Some(limit_ms), Some(sent)) = (within_ms, sent_at) {
                        let appeared = console.lock().arrival(end).unwrap_or_else(Instant::now);
                        let timing = Timing {
                            step,
                            send: send.unwrap_or_default().to_string(),
                            expect: expect.to_string(),
                            sent_s: (sent - start).as_secs_f64(),
                            appeared_s: appeared.saturating_duration_since(start).as_secs_f64(),
                            limit_ms,
                        };
                        // Judged with the rest (`judge`): a slow answer
                        // does not stop the run.
                        console.note(&timing.line());
                        drive.timings.push(timing);
                    }
                }
                Wait::TimedOut => {
                    let secs = match step_secs {
                        Some(secs) if step_deadline < deadline => secs,
                        _ => scenario.timeout_secs,
                    };
                    drive
                        .reasons
                        .push(format!("timeout after {secs} s waiting for '{expect}'"));
                    return drive;
                }
                Wait::Closed => {
                    drive.early_exit_for = Some(expect.to_string());
                    return drive;
                }
                Wait::Forbidden => {
                    drive.forbidden = Some(Some(expect.to_string()));
                    return drive;
                }
            }
        }
        if let (None, Some(text)) = (sent_at, send)
            && let Err(reason) = send_text(stdin, text)
        {
            drive.reasons.push(reason);
            return drive;
        }
    }
    match watcher.wait_for(None, cursor, deadline) {
        Wait::TimedOut => drive.reasons.push(format!(
            "timeout after {} s waiting for QEMU to exit",
            scenario.timeout_secs
        )),
        Wait::Forbidden => drive.forbidden = Some(None),
        Wait::Found(_) | Wait::Closed => {}
    }
    drive
}

/// Runs one scenario and writes its transcript.
pub fn run_one(scenario: &Scenario, config: &Config) -> Report {
    let start = Instant::now();
    let transcript = config.out_dir.join(format!("{}.log", scenario.name));
    let console = Console::default();
    let mut command_text = String::new();
    let mut summary = None;
    let reasons = match prepare(scenario, config) {
        Err(e) => vec![format!("setup failed: {e}")],
        Ok(prepared) => {
            let mut args = qemu::command_line(
                ConsoleKind::Piped,
                &scenario.machine,
                config.accel,
                &prepared.boot,
            );
            if scenario.icount && config.accel == qemu::Accel::Tcg {
                args.push("-icount".into());
                args.push("shift=0,align=off,sleep=off".into());
            }
            // The W^X check (`qmp.rs`): QMP and gdbstub sockets, CPU held.
            let monitor = scenario.qmp_check_after.as_ref().map(|_| qmp::Monitor::new());
            let args: Vec<OsString> = match &monitor {
                Some(Ok(m)) => args.into_iter().chain(m.qemu_args()).collect(),
                _ => args,
            };
            command_text = qemu::shell_words(&config.qemu.to_string_lossy(), &args);
            let (mut reasons, timings) = boot(scenario, config, &args, &console, start, monitor.as_ref());
            summary = timings;
            if let Some(words) = &scenario.props {
                let verdict = crate::props::judge_run(words, &console.lock().serial);
                reasons.extend(verdict.failures.iter().cloned());
                summary = Some(match summary {
                    Some(timings) => format!("{}; {timings}", verdict.summary()),
                    None => verdict.summary(),
                });
            }
            reasons
        }
    };
    let elapsed = start.elapsed();
    let log = std::mem::take(&mut console.lock().log);
    let mut report = Report {
        name: scenario.name.clone(),
        reasons,
        elapsed,
        transcript: transcript.clone(),
        tail: tail(&log, TAIL_LINES),
        summary,
    };
    if let Err(e) = write_transcript(&transcript, scenario, &command_text, &log, &report) {
        report.reasons.push(format!("cannot write the transcript: {e}"));
    }
    report
}

/// Starts QEMU, drives it, and judges the run: the failures, and the
/// summary of the timed steps' answer times, if it had any.
fn boot(
    scenario: &Scenario,
    config: &Config,
    args: &[OsString],
    console: &Console,
    start: Instant,
    monitor: Option<&Result<qmp::Monitor>>,
) -> (Vec<String>, Option<String>) {
    let spawned = Command::new(&config.qemu)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return (
                vec![format!("cannot start {}: {e}", config.qemu.to_string_lossy())],
                None,
            );
        }
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut stdin = child.stdin.take();
    let deadline = start + Duration::from_secs(scenario.timeout_secs);
    let (drive, status, killed, qmp_verdict) = thread::scope(|scope| {
        if let Some(stdout) = stdout {
            scope.spawn(|| console.read_serial(stdout));
        }
        if let Some(stderr) = stderr {
            scope.spawn(|| console.read_stderr(stderr));
        }
        let checker = monitor.map(|m| scope.spawn(move || qmp_check(scenario, config, m, console, deadline)));
        let drive = drive(scenario, console, &mut stdin, start);
        let reap_deadline = if drive.forbidden.is_some() {
            (Instant::now() + FORBIDDEN_GRACE).min(deadline)
        } else if drive.reasons.is_empty() {
            // QEMU closed its console, so it is exiting; the deadline only
            // guards against one that closes stdout and lingers.
            deadline
        } else {
            Instant::now()
        };
        let (status, killed) = reap(&mut child, reap_deadline);
        let qmp_verdict = checker.map(|c| {
            c.join()
                .unwrap_or_else(|_| Err("the checker panicked".to_string()))
        });
        drop(stdin);
        (drive, status, killed, qmp_verdict)
    });
    let qmp_reasons = qmp_reasons(qmp_verdict, console);
    let timings = timing_summary(&drive.timings);
    (
        judge(scenario, drive, status, killed, &console.lock().serial)
            .into_iter()
            .chain(qmp_reasons)
            .collect(),
        timings,
    )
}

/// The W^X check of a `qmp_check_after` scenario (`qmp.rs`), beside the
/// drive: waits for the text on the console, holds the machine, judges
/// its page tables, lets it run on.
fn qmp_check(
    scenario: &Scenario,
    config: &Config,
    monitor: &Result<qmp::Monitor>,
    console: &Console,
    deadline: Instant,
) -> qmp::Verdict {
    let monitor = monitor
        .as_ref()
        .map_err(|e| format!("cannot make the QMP sockets: {e}"))?;
    let trigger = scenario.qmp_check_after.as_deref().unwrap_or_default();
    let elf_path = match scenario.image {
        ImageKind::Test => &config.test_elf,
        ImageKind::Release => &config.release_elf,
    };
    let elf = fs::read(elf_path).map_err(|e| format!("cannot read {}: {e}", elf_path.display()))?;
    // Search only what arrived since the last look; once seen, seen for good.
    let (searched, hit) = (std::cell::Cell::new(0usize), std::cell::Cell::new(false));
    let seen = || {
        if !hit.get() {
            let out = console.lock();
            let from = searched.get().saturating_sub(trigger.len());
            hit.set(find(out.serial.get(from..).unwrap_or_default(), trigger.as_bytes()).is_some());
            searched.set(out.serial.len());
        }
        hit.get()
    };
    let alive = || !console.lock().closed;
    qmp::check(monitor, &elf, trigger, &seen, &alive, deadline)
}

/// The W^X check's verdict as failure reasons; the transcript gets a line
/// either way.
fn qmp_reasons(verdict: Option<qmp::Verdict>, console: &Console) -> Vec<String> {
    let Some(verdict) = verdict else {
        return Vec::new();
    };
    let line = match &verdict {
        Ok(summary) => format!("qmp check: {summary}\n"),
        Err(why) => format!("qmp check: FAILED: {why}\n"),
    };
    let mut out = console.lock();
    if out.log.last().is_some_and(|&b| b != b'\n') {
        out.log.push(b'\n');
    }
    out.log.extend_from_slice(line.as_bytes());
    verdict
        .err()
        .map(|why| format!("W^X check through QMP: {why}"))
        .into_iter()
        .collect()
}

/// Turns what happened into failure reasons (none: passed).
fn judge(
    scenario: &Scenario,
    drive: Drive,
    status: Option<ExitStatus>,
    killed: bool,
    serial: &[u8],
) -> Vec<String> {
    let mut reasons = drive.reasons;
    let outcome = status.map(Outcome::from_status);
    let shown = outcome.map_or_else(|| "unknown exit status".to_string(), |o| o.to_string());
    if let Some(expect) = drive.early_exit_for {
        reasons.push(format!("QEMU exited before '{expect}' appeared: {shown}"));
    } else if !killed && reasons.is_empty() {
        let code = status.and_then(|s| s.code());
        if code != Some(scenario.exit.status()) {
            reasons.push(format!(
                "expected exit {} (status {}), got: {shown}",
                scenario.exit,
                scenario.exit.status()
            ));
        }
    }
    for forbidden in &scenario.forbid {
        if find(serial, forbidden.as_bytes()).is_some() {
            reasons.push(format!("forbidden '{forbidden}' appeared in the output"));
        }
    }
    match drive.forbidden {
        Some(Some(expect)) => reasons.push(format!("stopped waiting for '{expect}'")),
        Some(None) if killed => reasons.push("QEMU did not exit after it".to_string()),
        Some(None) | None => {}
    }
    reasons.extend(drive.timings.iter().filter_map(Timing::failure));
    reasons.extend(check_ratios(scenario, serial));
    if scenario.heap_stable
        && let Err(e) = crate::soak::check_heap(&String::from_utf8_lossy(serial))
    {
        reasons.push(e);
    }
    reasons
}

/// The scenario's `[[ratio]]` checks over the serial output: one reason per
/// failed check.
fn check_ratios(scenario: &Scenario, serial: &[u8]) -> Vec<String> {
    if scenario.ratios.is_empty() {
        return Vec::new();
    }
    let output = String::from_utf8_lossy(serial);
    scenario
        .ratios
        .iter()
        .filter_map(|ratio| ratio.check(&output).err())
        .collect()
}

fn write_transcript(
    path: &Path,
    scenario: &Scenario,
    command: &str,
    log: &[u8],
    report: &Report,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut text = format!(
        "# scenario {}: {}\n# {}\n",
        scenario.name,
        scenario.description,
        if command.is_empty() {
            "(QEMU not started)"
        } else {
            command
        }
    )
    .into_bytes();
    text.extend_from_slice(log);
    if text.last() != Some(&b'\n') {
        text.push(b'\n');
    }
    if let Some(summary) = &report.summary {
        text.extend_from_slice(format!("# {summary}\n").as_bytes());
    }
    let result = if report.passed() {
        format!("# result: ok ({:.2} s)\n", report.elapsed.as_secs_f64())
    } else {
        format!("# result: FAILED ({})\n", report.reason())
    };
    text.extend_from_slice(result.as_bytes());
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::{DEBUG_EXIT_FAILURE, DEBUG_EXIT_SUCCESS};

    #[test]
    fn find_and_tail() {
        assert_eq!(find(b"hello world", b"world"), Some(6));
        assert_eq!(find(b"hello", b"world"), None);
        assert_eq!(find(b"ab", b"abc"), None);
        let log = b"one\r\ntwo\n\x1b[2Jthree";
        assert_eq!(tail(log, 2), ["two", "\\u{1b}[2Jthree"]);
        assert_eq!(tail(log, 10).len(), 3);
    }

    #[test]
    fn ratios_are_judged_on_the_serial_output() {
        let s = scenario(
            "ratios",
            "description = \"d\"\n[[ratio]]\nnumerator = \"fast {} it/s\"\n\
             denominator = \"slow {} it/s\"\nexpect = 2.0\ntolerance = 0.05\n",
        );
        assert!(check_ratios(&s, b"slow 100 it/s\r\nfast 198 it/s\r\n").is_empty());
        let reasons = check_ratios(&s, b"slow 100 it/s\r\nfast 150 it/s\r\n");
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].contains("is 1.500, expected 2"), "{reasons:?}");
        let reasons = check_ratios(&s, b"fast 150 it/s\r\n");
        assert_eq!(reasons, ["'slow {} it/s' did not appear in the output"]);
        // Judged with the rest: a run that passed otherwise fails on a ratio.
        let drive = Drive {
            reasons: Vec::new(),
            early_exit_for: None,
            forbidden: None,
            timings: Vec::new(),
        };
        let reasons = judge(&s, drive, None, true, b"fast 1 it/s slow 1 it/s");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with("ratio 'fast {} it/s' / 'slow {} it/s' is 1.000"),
            "{reasons:?}"
        );
    }

    fn timing(step: usize, sent_s: f64, appeared_s: f64) -> Timing {
        Timing {
            step,
            send: "xm list\r".into(),
            expect: "# ".into(),
            sent_s,
            appeared_s,
            limit_ms: 50,
        }
    }

    #[test]
    fn timed_steps_are_judged_on_arrival_times() {
        let t0 = Instant::now();
        let mut out = Output::default();
        for (len, ms) in [(10, 5), (25, 40), (26, 90)] {
            out.serial.resize(len, b'x');
            out.arrivals.push((len, t0 + Duration::from_millis(ms)));
        }
        // A match ending at byte 11..=25 came with the second chunk.
        assert_eq!(out.arrival(10), Some(t0 + Duration::from_millis(5)));
        assert_eq!(out.arrival(11), Some(t0 + Duration::from_millis(40)));
        assert_eq!(out.arrival(25), Some(t0 + Duration::from_millis(40)));
        assert_eq!(out.arrival(26), Some(t0 + Duration::from_millis(90)));
        assert_eq!(out.arrival(27), None);

        let fast = timing(3, 12.0, 12.05);
        assert_eq!(fast.failure(), None, "exactly the limit passes");
        assert_eq!(
            fast.line(),
            "# timed step 3: sent \"xm list\\r\" at 12.000 s, '# ' appeared at 12.050 s: 50.0 ms (within_ms = 50)"
        );
        let slow = timing(4, 12.25, 12.32);
        assert_eq!(
            slow.failure().as_deref(),
            Some(
                "step 4: '# ' appeared 70.0 ms after \"xm list\\r\" was sent (sent at 12.250 s, appeared at \
                 12.320 s), more than within_ms = 50"
            )
        );
        assert_eq!(timing_summary(&[]), None);
        assert_eq!(
            timing_summary(&[slow.clone(), fast.clone(), timing(5, 1.0, 1.003)]).as_deref(),
            Some("timed steps: 3, answered in min 3.0 ms, median 50.0 ms, max 70.0 ms (within_ms = 50)")
        );
        let mut other = timing(6, 1.0, 1.010);
        other.limit_ms = 20;
        assert_eq!(
            timing_summary(&[fast, other]).as_deref(),
            Some("timed steps: 2, answered in min 10.0 ms, median 30.0 ms, max 50.0 ms")
        );

        // Judged with the rest: a slow answer fails a run that passed otherwise.
        let s = scenario(
            "timed",
            "description = \"d\"\n[[step]]\nsend = \"x\"\nexpect = \"# \"\nwithin_ms = 50\n",
        );
        let drive = Drive {
            reasons: Vec::new(),
            early_exit_for: None,
            forbidden: None,
            timings: vec![slow],
        };
        let reasons = judge(&s, drive, None, true, b"");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with("step 4: '# ' appeared 70.0 ms after"),
            "{reasons:?}"
        );
    }

    #[test]
    fn heap_stable_applies_the_soak_rule() {
        let s = scenario("heap", "description = \"d\"\nheap_stable = true\n");
        let destroyed = |domid: u64, heap: u64| {
            format!(
                "[    1.0] cpu0 INFO  domain: domain {domid} ('hello') destroyed after 1 ms of CPU: 1024 pages \
                 returned; 5000 frames free, heap {heap} bytes in use\r\n(d{domid}) hello: goodbye\r\n"
            )
        };
        let run = |heaps: &[u64]| -> Vec<String> {
            let serial: String = (1..).zip(heaps).map(|(d, &h)| destroyed(d, h)).collect();
            let drive = Drive {
                reasons: Vec::new(),
                early_exit_for: None,
                forbidden: None,
                timings: Vec::new(),
            };
            judge(&s, drive, None, true, serial.as_bytes())
        };
        let mut heaps = vec![900; 9];
        heaps.extend([1000; 12]);
        assert!(run(&heaps).is_empty(), "{:?}", run(&heaps));
        heaps.push(1016);
        assert_eq!(
            run(&heaps),
            [
                "the hypervisor heap grew by 16 bytes: 1000 bytes in use after destroy 10, 1016 after destroy 22 \
                 (the last)"
            ]
        );
        let few = run(&[1; 5]);
        assert!(few[0].starts_with("heap check: 5 domain(s) destroyed"), "{few:?}");
        // Without the key nothing is checked.
        let plain = scenario("plain", "description = \"d\"\n");
        let drive = Drive {
            reasons: Vec::new(),
            early_exit_for: None,
            forbidden: None,
            timings: Vec::new(),
        };
        assert!(judge(&plain, drive, None, true, b"").is_empty());
    }

    #[test]
    fn watcher_matches_in_order_across_chunks() {
        let console = Console::default();
        let forbid = vec!["FATAL".to_string()];
        thread::scope(|scope| {
            scope.spawn(|| {
                for chunk in [&b"Oxen 0.1"[..], b".0 hyper", b"visor\nFA", b"TAL: x\n"] {
                    thread::sleep(Duration::from_millis(20));
                    let mut out = console.lock();
                    out.serial.extend_from_slice(chunk);
                    drop(out);
                    console.changed.notify_all();
                }
            });
            let mut watcher = Watcher {
                console: &console,
                forbid: &forbid,
                forbid_checked: 0,
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            assert_eq!(watcher.wait_for(Some("0.1.0"), 0, deadline), Wait::Found(10));
            assert_eq!(watcher.wait_for(Some("visor"), 10, deadline), Wait::Found(21));
            // "Oxen" lies before the cursor, so it is not found again; the
            // forbidden string, split across two chunks, stops the wait.
            assert_eq!(watcher.wait_for(Some("Oxen"), 21, deadline), Wait::Forbidden);
        });
        let mut watcher = Watcher {
            console: &console,
            forbid: &[],
            forbid_checked: 0,
        };
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(watcher.wait_for(Some("nope"), 0, soon), Wait::TimedOut);
        console.lock().closed = true;
        assert_eq!(watcher.wait_for(Some("nope"), 0, soon), Wait::Closed);
    }

    /// What a stub kernel does after printing its message.
    #[derive(Clone, Copy)]
    enum Then {
        /// Writes this value to the debug-exit port.
        Exit(u8),
        /// Halts forever.
        Hang,
        /// Echoes serial input until it reads `!`, then exits with this value.
        EchoThenExit(u8),
    }

    /// A minimal 32-bit ELF that QEMU boots through its PVH note (and GRUB
    /// through its multiboot2 header): it writes `message` to COM1, then does
    /// what `then` says.
    fn stub_kernel(message: &str, then: Then) -> Vec<u8> {
        const BASE: u32 = 0x10_0000;
        const NOTE: u32 = 0x80;
        const MB2: u32 = 0x100;
        const CODE: u32 = 0x200;
        let mut code: Vec<u8> = vec![0xfc, 0xbe, 0, 0, 0, 0]; // cld; mov esi, message
        code.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
        // 1: lodsb; test al, al; jz 2f; out dx, al; jmp 1b; 2:
        code.extend_from_slice(&[0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8]);
        if let Then::EchoThenExit(_) = then {
            // 1: mov dx, 0x3fd; in al, dx; test al, 1 (LSR data ready); jz 1b
            code.extend_from_slice(&[0x66, 0xba, 0xfd, 0x03, 0xec, 0xa8, 0x01, 0x74, 0xf7]);
            // mov dx, 0x3f8; in al, dx; out dx, al; cmp al, '!'; jne 1b
            code.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03, 0xec, 0xee, 0x3c, b'!', 0x75, 0xed]);
        }
        let value = match then {
            Then::Exit(value) | Then::EchoThenExit(value) => Some(value),
            Then::Hang => None,
        };
        code.extend_from_slice(&[0x66, 0xba, 0xf4, 0x00]); // mov dx, 0xf4
        code.extend_from_slice(&[0xb0, value.unwrap_or(0)]); // mov al, value
        code.push(if value.is_some() { 0xee } else { 0x90 }); // out dx, al / nop
        code.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]); // cli; 1: hlt; jmp 1b
        let message_at = BASE + CODE + u32::try_from(code.len()).expect("the stub is small");
        code[2..6].copy_from_slice(&message_at.to_le_bytes());
        code.extend_from_slice(message.as_bytes());
        code.push(0);

        let mut elf = vec![0u8; CODE as usize];
        elf.extend_from_slice(&code);
        let len = u32::try_from(elf.len()).expect("the stub is small");
        let put = |elf: &mut Vec<u8>, at: usize, bytes: &[u8]| {
            elf[at..at + bytes.len()].copy_from_slice(bytes);
        };
        let words = |values: &[u32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
        put(&mut elf, 0, &[0x7f, b'E', b'L', b'F', 1, 1, 1]);
        put(&mut elf, 16, &[2, 0, 3, 0]); // ET_EXEC, EM_386
        put(&mut elf, 20, &words(&[1, BASE + CODE, 52, 0, 0]));
        put(&mut elf, 40, &[52, 0, 32, 0, 2, 0, 40, 0, 0, 0, 0, 0]);
        // PT_LOAD of the whole file, then PT_NOTE of the PVH note.
        put(&mut elf, 52, &words(&[1, 0, BASE, BASE, len, len, 5, 0x1000]));
        put(
            &mut elf,
            84,
            &words(&[4, NOTE, BASE + NOTE, BASE + NOTE, 20, 20, 4, 4]),
        );
        // XEN_ELFNOTE_PHYS32_ENTRY (18): name "Xen", the 32-bit entry point.
        put(&mut elf, NOTE as usize, &words(&[4, 4, 18]));
        put(&mut elf, NOTE as usize + 12, b"Xen\0");
        put(&mut elf, NOTE as usize + 16, &(BASE + CODE).to_le_bytes());
        // Multiboot2 header: magic, arch 0, length 24, checksum, end tag.
        let magic: u32 = 0xe852_50d6;
        let checksum = 0u32.wrapping_sub(magic.wrapping_add(24));
        put(&mut elf, MB2 as usize, &words(&[magic, 0, 24, checksum, 0, 8]));
        elf
    }

    fn scenario(name: &str, text: &str) -> Scenario {
        Scenario::parse(name, text).expect("test scenario is valid")
    }

    /// Boots stub kernels through the whole runner: success, a wrong exit, a
    /// forbidden string, an early exit and a timeout, on a pool of threads.
    #[test]
    fn runner_boots_stub_kernels() -> Result<()> {
        if crate::tools::find_program(qemu::QEMU_BINARY).is_none() {
            eprintln!("skipped: {} is not installed", qemu::QEMU_BINARY);
            return Ok(());
        }
        let dir = std::env::temp_dir().join(format!("xtask-runner-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let good = dir.join("good.elf");
        let bad = dir.join("bad.elf");
        let hang = dir.join("hang.elf");
        fs::write(
            &good,
            stub_kernel(
                "Oxen stub\r\nall checks passed\r\n",
                Then::Exit(DEBUG_EXIT_SUCCESS),
            ),
        )?;
        fs::write(
            &bad,
            stub_kernel("Oxen stub\r\nFATAL: oops\r\n", Then::Exit(DEBUG_EXIT_FAILURE)),
        )?;
        fs::write(&hang, stub_kernel("Oxen stub hangs\r\n", Then::Hang))?;
        let echo = dir.join("echo.elf");
        fs::write(
            &echo,
            stub_kernel(
                "Oxen stub echoes\r\nready> ",
                Then::EchoThenExit(DEBUG_EXIT_SUCCESS),
            ),
        )?;
        let bundle = dir.join("bundle.cpio");
        let files = [
            ("configs/a.cfg".to_string(), b"name = \"a\"\n".to_vec()),
            ("auto/default.cfg".to_string(), b"name = \"d\"\n".to_vec()),
        ];
        fs::write(&bundle, build::pack_bundle(&files)?)?;
        let config_for = |elf: &Path| Config {
            test_elf: elf.to_path_buf(),
            release_elf: good.clone(),
            bundle: bundle.clone(),
            out_dir: dir.join("out"),
            accel: Accel::Tcg,
            qemu: qemu::QEMU_BINARY.into(),
        };
        let base = "description = \"stub\"\nmachine = \"microvm\"\nmemory = \"64M\"\n";
        let cases = [
            (
                &good,
                "ok",
                "expect = [\"Oxen stub\", \"all checks passed\"]\nforbid = [\"FATAL\"]",
                None,
            ),
            (
                &good,
                "order",
                "expect = [\"all checks passed\", \"Oxen stub\"]",
                Some("QEMU exited before 'Oxen stub' appeared"),
            ),
            (
                &good,
                "status",
                "exit = \"failure\"",
                Some("expected exit failure (status 35), got: hypervisor reported success"),
            ),
            (
                &bad,
                "fatal",
                "exit = \"failure\"\nexpect = [\"Oxen\", \"never\"]\nforbid = [\"FATAL\"]",
                Some("forbidden 'FATAL' appeared"),
            ),
            (
                &hang,
                "hang",
                "timeout_secs = 2\nexpect = [\"hangs\", \"never\"]",
                Some("timeout after 2 s waiting for 'never'"),
            ),
            (
                &good,
                "corrupt",
                "bundle = \"corrupt\"\nboot = \"pvh\"\nexpect = [\"all checks\"]",
                None,
            ),
            (
                &echo,
                "echo",
                "expect = [\"echoes\"]\n[[step]]\nexpect = \"ready> \"\nsend = \"hello!\"\n\
                 [[step]]\nexpect = \"hello!\"",
                None,
            ),
            (
                &echo,
                "step-timeout",
                "[[step]]\nexpect = \"ready> \"\nsend = \"no bang\"\n\
                 [[step]]\nexpect = \"no bang\"\n[[step]]\nexpect = \"never\"\ntimeout_secs = 1",
                Some("timeout after 1 s waiting for 'never'"),
            ),
            (
                &good,
                "auto",
                "auto = [\"a.cfg\"]\nexpect = [\"all checks\"]",
                None,
            ),
            (
                &echo,
                "timed",
                "[[step]]\nexpect = \"ready> \"\n[[step]]\nsend = \"timed!\"\nexpect = \"timed\"\n\
                 within_ms = 20000",
                None,
            ),
        ];
        let mut reports = Vec::new();
        for (elf, name, body, _) in &cases {
            let s = scenario(name, &format!("{base}{body}\n"));
            reports.extend(run_all(&[s], &config_for(elf), 2, |_| {}));
        }
        // The pool: the same passing scenario several times over two jobs.
        let many: Vec<Scenario> = (0..4)
            .map(|i| scenario(&format!("pool{i}"), &format!("{base}expect = [\"all checks\"]\n")))
            .collect();
        let pool = run_all(&many, &config_for(&good), 2, |_| {});
        assert_eq!(pool.len(), 4);
        assert!(pool.iter().all(Report::passed), "{pool:?}");
        for ((_, name, _, want), report) in cases.iter().zip(&reports) {
            assert_eq!(&report.name, name);
            match want {
                None => assert!(report.passed(), "{name}: {report:?}"),
                Some(want) => assert!(report.reason().contains(want), "{name}: {report:?}"),
            }
            let log = fs::read_to_string(&report.transcript)?;
            assert!(log.contains("Oxen stub"), "{name}: {log}");
            assert!(
                report.tail.iter().any(|l| l.contains("Oxen stub")),
                "{name}: {report:?}"
            );
            assert!(log.contains("# result: "), "{name}: {log}");
        }
        // The timed step: sent first, its echo timed, summed up in the report.
        let timed = &reports[9];
        assert!(
            timed
                .summary
                .as_deref()
                .is_some_and(|s| s.starts_with("timed steps: 1, answered in min ")),
            "{timed:?}"
        );
        assert!(fs::read_to_string(&timed.transcript)?.contains("# timed step 2: sent \"timed!\" at "));
        assert!(reports[4].elapsed < Duration::from_secs(10), "{:?}", reports[4]);
        assert!(reports[7].elapsed < Duration::from_secs(10), "{:?}", reports[7]);
        assert!(dir.join("out/corrupt/bundle-corrupt.cpio").is_file());
        // The auto scenario booted its own bundle, whose auto/ holds a.cfg alone.
        let own = fs::read(dir.join("out/auto/bundle.cpio"))?;
        let own = oxen_bundle::Archive::parse(&own).map_err(|e| e.to_string())?;
        let auto: Vec<&str> = own
            .entries()
            .map(|e| e.name)
            .filter(|n| n.starts_with("auto/"))
            .collect();
        assert_eq!(auto, ["auto/a.cfg"]);
        let missing = scenario("missing", &format!("{base}auto = [\"nope.cfg\"]\n"));
        let report = run_one(&missing, &config_for(&good));
        assert!(
            report
                .reason()
                .starts_with("setup failed: auto config 'nope.cfg' is in neither"),
            "{report:?}"
        );
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
