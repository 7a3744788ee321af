//! `cargo xtask soak --cycles N`: create and destroy domains in a loop and
//! check that nothing leaks. It builds everything as `cargo xtask build`
//! does (without the ISO), boots the test hypervisor with `oxen_test=dom0`
//! and a bundle whose `auto/` is empty (so dom0 runs its `xm` shell, as the
//! `tests/xm-*.toml` scenarios do), types `xm soak N` (dom0's
//! `xm/soak.rs`), and follows the serial console:
//!
//! - the rate: after the first [`CALIBRATION_CYCLES`] domains are destroyed
//!   the time limit becomes [`SLACK`] times the time the rest should take,
//!   plus [`MARGIN`]; a run that destroys no domain for [`STALL`] fails;
//! - dom0's verdict: `soak: N cycles done, free frames F == start S:
//!   restored` (the free frame count is back exactly where it started);
//! - the hypervisor heap: [`check_heap`] over the hypervisor's
//!   `domain N ('hello') destroyed after ...: heap H bytes in use` lines;
//!   the heap in use after the last destroy must not be above its value
//!   after destroy [`HEAP_WARM_UP`] (a one-time warm-up before it is
//!   allowed: the first destroys may grow tables that are then reused).
//!
//! It then types `xm poweroff` (dom0 checks once more that no domain is
//! left and all memory is back) and expects QEMU's success status. The
//! transcript goes to `target/oxen/soak/soak.log`. Scenarios get the same
//! heap rule with `heap_stable = true` (`runner.rs`; `tests/soak-short.toml`).

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::build::{self, Layout};
use crate::error::{Context, Result, UsageError, error};
use crate::qemu::{self, Accel, Boot, Console, Machine, Outcome};
use crate::{Options, tools};

/// Cycles when `--cycles` is not given.
const DEFAULT_CYCLES: u32 = 1000;
/// The heap after this many destroys is the reference (the warm-up is over).
pub const HEAP_WARM_UP: usize = 10;
/// Destroys timed before the time limit is set from the rate.
const CALIBRATION_CYCLES: usize = 20;
/// Time limit for the boot up to the shell prompt.
const BOOT_LIMIT: Duration = Duration::from_secs(180);
/// Time limit for the calibration cycles.
const CALIBRATION_LIMIT: Duration = Duration::from_secs(180);
/// How many times the expected duration the soak may take.
const SLACK: u32 = 3;
/// Added to the time limit (a slow end, the progress lines).
const MARGIN: Duration = Duration::from_secs(60);
/// A soak that destroys no domain for this long has stalled.
const STALL: Duration = Duration::from_secs(60);
/// Time limit from `xm poweroff` to QEMU's exit.
const POWEROFF_LIMIT: Duration = Duration::from_secs(60);
/// dom0's shell prompt.
const PROMPT: &str = "[root@oxen ~]# ";
/// What the hypervisor logs when it has freed a domain (`domain/mod.rs`, `finalize`).
const DESTROYED: &str = ") destroyed after ";

/// Options of `cargo xtask soak`.
#[derive(Debug, PartialEq, Eq)]
struct SoakArgs {
    /// `--cycles N`.
    cycles: u32,
    /// `--accel`.
    accel: Option<Accel>,
    /// `--no-build`: use what `target/oxen/` holds.
    no_build: bool,
}

impl SoakArgs {
    fn parse(args: &[String]) -> Result<Self> {
        let spec = [("--cycles", true), ("--accel", true), ("--no-build", false)];
        let opts = Options::parse(args, &spec)?;
        if let Some(word) = opts.positional.first().or(opts.rest.first()) {
            return Err(UsageError(format!("soak takes no argument '{word}'")).into());
        }
        Ok(Self {
            cycles: opts.number("--cycles")?.unwrap_or(DEFAULT_CYCLES),
            accel: opts.accel()?,
            no_build: opts.has("--no-build"),
        })
    }
}

/// One `domain N ('name') destroyed after ...` line of the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destroyed {
    /// The domain.
    pub domid: u32,
    /// Free frames after it was freed.
    pub free_frames: u64,
    /// Hypervisor heap in use after it was freed, in bytes.
    pub heap_bytes: u64,
}

/// Reads a destroy line:
/// `... domain 7 ('hello') destroyed after 1 ms of CPU: 1024 pages returned;
/// 50140 frames free, heap 20008 bytes in use`.
pub fn parse_destroyed(line: &str) -> Option<Destroyed> {
    let body = line.trim_end().strip_suffix(" bytes in use")?;
    let (before, heap) = body.rsplit_once(", heap ")?;
    let (head, free) = before.strip_suffix(" frames free")?.rsplit_once("; ")?;
    let (who, _) = head.split_once(DESTROYED)?;
    let (who, _) = who.split_once(" ('")?;
    let domid = who.rsplit_once("domain ")?.1;
    Some(Destroyed {
        domid: domid.parse().ok()?,
        free_frames: free.parse().ok()?,
        heap_bytes: heap.parse().ok()?,
    })
}

/// Every destroy line in `serial`, in order.
pub fn destroyed_lines(serial: &str) -> Vec<Destroyed> {
    serial.lines().filter_map(parse_destroyed).collect()
}

/// The heap figures [`check_heap`] judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapFigures {
    /// Destroy lines seen.
    pub destroys: usize,
    /// After the first destroy.
    pub first: Destroyed,
    /// After destroy [`HEAP_WARM_UP`].
    pub warm: Destroyed,
    /// After the last.
    pub last: Destroyed,
}

impl fmt::Display for HeapFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "heap in use after destroy 1: {} bytes, after destroy {HEAP_WARM_UP}: {} bytes, after destroy {} \
             (the last): {} bytes; free frames {} / {} / {}",
            self.first.heap_bytes,
            self.warm.heap_bytes,
            self.destroys,
            self.last.heap_bytes,
            self.first.free_frames,
            self.warm.free_frames,
            self.last.free_frames
        )
    }
}

/// The heap rule: the hypervisor heap in use after the last domain was
/// destroyed is not above its value after destroy [`HEAP_WARM_UP`]. Needs
/// more than [`HEAP_WARM_UP`] destroy lines in `serial`.
pub fn check_heap(serial: &str) -> std::result::Result<HeapFigures, String> {
    let lines = destroyed_lines(serial);
    let (Some(&first), Some(&warm), Some(&last)) = (
        lines.first(),
        lines.get(HEAP_WARM_UP - 1),
        lines.last().filter(|_| lines.len() > HEAP_WARM_UP),
    ) else {
        return Err(format!(
            "heap check: {} domain(s) destroyed, but it compares the heap after destroy {HEAP_WARM_UP} \
             with the last, so it needs more than {HEAP_WARM_UP}",
            lines.len()
        ));
    };
    let figures = HeapFigures {
        destroys: lines.len(),
        first,
        warm,
        last,
    };
    if last.heap_bytes > warm.heap_bytes {
        return Err(format!(
            "the hypervisor heap grew by {} bytes: {} bytes in use after destroy {HEAP_WARM_UP}, {} after \
             destroy {} (the last)",
            last.heap_bytes - warm.heap_bytes,
            warm.heap_bytes,
            last.heap_bytes,
            lines.len()
        ));
    }
    Ok(figures)
}

/// `cargo xtask soak [--cycles N] [--accel kvm|tcg] [--no-build]`.
pub fn command(args: &[String]) -> Result<ExitCode> {
    let args = SoakArgs::parse(args)?;
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
    }
    let accel = crate::pick_accel(args.accel);
    let dir = layout.out.join("soak");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bundle = dir.join("bundle.cpio");
    let default =
        fs::read(layout.bundle()).with_context(|| format!("cannot read {}", layout.bundle().display()))?;
    fs::write(&bundle, build::with_auto(&default, &[])?)
        .with_context(|| format!("cannot write {}", bundle.display()))?;
    let machine = Machine {
        machine: "q35".into(),
        memory: "256M".into(),
        smp: 1,
    };
    let boot = Boot::Pvh {
        kernel: layout.hypervisor_test_elf(),
        initrd: Some(bundle),
        append: "oxen_test=dom0".into(),
    };
    let qemu_args = qemu::command_line(Console::Piped, &machine, accel, &boot);
    let log = dir.join("soak.log");
    println!(
        "xtask: soak: {} cycles of xm soak; transcript in {}",
        args.cycles,
        layout.show(&log)
    );
    let outcome = soak(&qemu_args, args.cycles, &log);
    let failures = match outcome {
        Ok(failures) => failures,
        Err(e) => vec![e.to_string()],
    };
    if failures.is_empty() {
        println!("xtask: soak: passed");
        Ok(ExitCode::SUCCESS)
    } else {
        for failure in &failures {
            println!("xtask: soak: FAILED: {failure}");
        }
        println!("xtask: soak: transcript: {}", layout.show(&log));
        Ok(ExitCode::FAILURE)
    }
}

/// Boots, soaks, powers off and judges; the failures (none: passed).
fn soak(qemu_args: &[OsString], cycles: u32, log: &Path) -> Result<Vec<String>> {
    let mut session = Session::start(qemu_args)?;
    let result = drive(&mut session, cycles);
    // After a failure before `xm poweroff` there is nothing to wait for.
    let status = session.finish(if result.is_ok() {
        POWEROFF_LIMIT
    } else {
        Duration::ZERO
    });
    let mut failures = match result {
        Ok(failures) => failures,
        Err(e) => vec![e.to_string()],
    };
    match status {
        Some(Outcome::Success) => {}
        Some(other) if failures.is_empty() => failures.push(format!("QEMU: {other}")),
        Some(_) => {}
        None if failures.is_empty() => failures.push("QEMU did not exit after xm poweroff".into()),
        None => {}
    }
    let serial = String::from_utf8_lossy(&session.serial).into_owned();
    match check_heap(&serial) {
        Ok(figures) => println!("xtask: soak: {figures}"),
        Err(e) => failures.push(e),
    }
    write_log(log, qemu_args, &session.serial)?;
    Ok(failures)
}

/// Types `xm soak N`, follows it, types `xm poweroff`; the failures.
fn drive(session: &mut Session, cycles: u32) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    let boot_deadline = Instant::now() + BOOT_LIMIT;
    if !session.wait_for_text(PROMPT, boot_deadline) {
        return Err(error(if session.closed {
            "QEMU exited before dom0's shell prompt appeared".to_string()
        } else {
            format!("no shell prompt within {} s of the boot", BOOT_LIMIT.as_secs())
        }));
    }
    session.send(&format!("xm soak {cycles}\n"))?;
    let started = Instant::now();
    let done = format!("soak: {cycles} cycles done");
    let mut deadline = started + CALIBRATION_LIMIT;
    let mut calibrated = false;
    let verdict = loop {
        if let Some(line) = session
            .lines_seen
            .iter()
            .find(|l| l.starts_with(&done) || l.starts_with("soak: stopped after"))
        {
            break line.clone();
        }
        let destroys = session.destroys.len();
        if !calibrated && destroys >= CALIBRATION_CYCLES.min(cycles as usize) {
            calibrated = true;
            let took = started.elapsed().as_secs_f64().max(1e-3);
            let rate = destroys as f64 / took;
            let rest = (f64::from(cycles) - destroys as f64).max(0.0) / rate;
            deadline = Instant::now() + Duration::from_secs_f64(rest * f64::from(SLACK)) + MARGIN;
            println!(
                "xtask: soak: {destroys} cycles in {took:.1} s ({rate:.1} cycles/s); allowing {:.0} s for the rest",
                (deadline - Instant::now()).as_secs_f64()
            );
        }
        let last = session.destroys.last().copied().unwrap_or(started);
        if last.elapsed() > STALL {
            return Err(error(format!(
                "stalled: no domain destroyed for {} s after {destroys} cycles",
                STALL.as_secs()
            )));
        }
        match session.pump((last + STALL).min(deadline)) {
            Pump::Data => {}
            Pump::Closed => return Err(error(format!("QEMU exited after {destroys} cycles"))),
            Pump::TimedOut if Instant::now() >= deadline => {
                return Err(error(format!(
                    "timeout after {:.0} s with {destroys} of {cycles} cycles done",
                    started.elapsed().as_secs_f64()
                )));
            }
            Pump::TimedOut => {}
        }
    };
    let took = started.elapsed().as_secs_f64();
    let end = session
        .destroys
        .last()
        .map_or(took, |t| (*t - started).as_secs_f64());
    println!(
        "xtask: soak: {} domains destroyed in {end:.1} s: {:.1} cycles/s",
        session.destroys.len(),
        session.destroys.len() as f64 / end.max(1e-3)
    );
    if !(verdict.starts_with(&done) && verdict.ends_with(": restored")) {
        failures.push(format!("dom0 said: {verdict}"));
    }
    if session.wait_for_text(PROMPT, Instant::now() + POWEROFF_LIMIT) {
        session.send("xm poweroff\n")?;
    } else {
        failures.push("no prompt after the soak".into());
    }
    Ok(failures)
}

/// What one [`Session::pump`] saw.
enum Pump {
    /// Output arrived.
    Data,
    /// QEMU closed its console.
    Closed,
    /// Nothing came before the deadline.
    TimedOut,
}

/// QEMU with its serial console on pipes: output read on a thread, lines
/// looked at as they complete.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Vec<u8>>,
    /// Everything the serial port wrote.
    serial: Vec<u8>,
    /// Where the first incomplete line starts.
    line_start: usize,
    /// Where [`Session::wait_for_text`] searches from.
    cursor: usize,
    /// QEMU closed its stdout.
    closed: bool,
    /// When each destroy line arrived.
    destroys: Vec<Instant>,
    /// dom0's `soak: ` lines.
    lines_seen: Vec<String>,
}

impl Session {
    fn start(args: &[OsString]) -> Result<Self> {
        let mut child = Command::new(qemu::QEMU_BINARY)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", qemu::QEMU_BINARY))?;
        let mut stdout = child.stdout.take().context("QEMU has no stdout")?;
        let stdin = child.stdin.take();
        let (tx, chunks) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 16384];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            chunks,
            serial: Vec::new(),
            line_start: 0,
            cursor: 0,
            closed: false,
            destroys: Vec::new(),
            lines_seen: Vec::new(),
        })
    }

    /// Wait for output until `deadline`; look at the lines it completes.
    fn pump(&mut self, deadline: Instant) -> Pump {
        if self.closed {
            return Pump::Closed;
        }
        let chunk = match self
            .chunks
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(chunk) => chunk,
            Err(RecvTimeoutError::Timeout) => return Pump::TimedOut,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                return Pump::Closed;
            }
        };
        let at = Instant::now();
        self.serial.extend_from_slice(&chunk);
        while let Some(end) = self.serial[self.line_start..].iter().position(|&b| b == b'\n') {
            let line = &self.serial[self.line_start..self.line_start + end];
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end_matches('\r');
            if text.contains(DESTROYED) && parse_destroyed(text).is_some() {
                self.destroys.push(at);
            } else if let Some(soak) = text.find("soak: ").map(|i| &text[i..]) {
                println!("xtask: dom0: {soak}");
                self.lines_seen.push(soak.to_string());
            }
            self.line_start += end + 1;
        }
        Pump::Data
    }

    /// Wait until `text` appears after everything waited for so far.
    fn wait_for_text(&mut self, text: &str, deadline: Instant) -> bool {
        loop {
            let from = self.cursor.saturating_sub(text.len());
            if let Some(at) = self.serial[from..]
                .windows(text.len())
                .position(|w| w == text.as_bytes())
            {
                self.cursor = from + at + text.len();
                return true;
            }
            if !matches!(self.pump(deadline), Pump::Data) {
                return false;
            }
        }
    }

    /// Type `text` on the serial console; later output is searched from here.
    fn send(&mut self, text: &str) -> Result<()> {
        self.cursor = self.serial.len();
        let pipe = self.stdin.as_mut().context("QEMU's stdin is closed")?;
        pipe.write_all(text.as_bytes())
            .and_then(|()| pipe.flush())
            .with_context(|| format!("cannot type {text:?} on the console"))
    }

    /// Give QEMU `limit` to exit (after `xm poweroff`), reading its output
    /// to the end; kill it if it does not. Its outcome (`None`: it had to
    /// be killed).
    fn finish(&mut self, limit: Duration) -> Option<Outcome> {
        let deadline = Instant::now() + limit;
        while !matches!(self.pump(deadline), Pump::Closed | Pump::TimedOut) {}
        let outcome = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(Outcome::from_status(status)),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) | Err(_) => {
                    // Errors only mean it is already gone; `wait` reaps it.
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        self.stdin = None;
        outcome
    }
}

fn write_log(path: &Path, args: &[OsString], serial: &[u8]) -> Result<()> {
    let mut text = format!("# {}\n", qemu::shell_words(qemu::QEMU_BINARY, args)).into_bytes();
    text.extend_from_slice(serial);
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(domid: u32, free: u64, heap: u64) -> String {
        format!(
            "[    0.555151] cpu0 INFO  domain: domain {domid} ('hello') destroyed after 1 ms of CPU: \
             1024 pages returned; {free} frames free, heap {heap} bytes in use\r\n"
        )
    }

    /// A transcript of `heaps.len()` cycles with guest output around the
    /// hypervisor's lines.
    fn transcript(heaps: &[u64]) -> String {
        let mut text = String::from("Oxen 0.1.0 hypervisor\r\n[root@oxen ~]# xm soak 3\r\n");
        for (i, heap) in heaps.iter().enumerate() {
            let domid = u32::try_from(i + 1).unwrap_or(u32::MAX);
            text.push_str(&format!(
                "[    0.5] cpu0 INFO  domain: domain {domid} ('hello') created: 1024 pages\r\n\
                 (d{domid}) hello: goodbye\r\n"
            ));
            text.push_str(&line(domid, 50140, *heap));
        }
        text.push_str("soak: 3 cycles done, free frames 50140 == start 50140: restored\r\n");
        text
    }

    #[test]
    fn destroy_lines_are_read() {
        assert_eq!(
            parse_destroyed(&line(49, 50140, 20008)),
            Some(Destroyed {
                domid: 49,
                free_frames: 50140,
                heap_bytes: 20008
            })
        );
        // A name with the separators in it.
        let odd = "domain: domain 3 ('a (') destroyed after x') destroyed after 0 ms of CPU: 1 pages returned; \
                   7 frames free, heap 9 bytes in use";
        assert_eq!(
            parse_destroyed(odd).map(|d| (d.domid, d.free_frames, d.heap_bytes)),
            Some((3, 7, 9))
        );
        for bad in [
            "domain 1 ('hello') created: 1024 pages",
            "domain 1 ('hello') destroyed after 1 ms of CPU: 1024 pages returned; x frames free, heap 1 bytes in use",
            "(d1) heap 5 bytes in use",
            "",
        ] {
            assert_eq!(parse_destroyed(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_heap_may_warm_up_but_not_grow_after() {
        // Growth in the first cycles, then steady (or smaller): fine.
        let mut heaps = vec![100, 200, 300, 300, 300, 300, 300, 300, 300, 400];
        heaps.extend([400; 20]);
        heaps.push(350);
        let figures = check_heap(&transcript(&heaps)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(figures.destroys, 31);
        assert_eq!(
            (
                figures.first.heap_bytes,
                figures.warm.heap_bytes,
                figures.last.heap_bytes
            ),
            (100, 400, 350)
        );
        assert_eq!(figures.warm.domid, 10);
        assert!(figures.to_string().starts_with(
            "heap in use after destroy 1: 100 bytes, after destroy 10: 400 bytes, after destroy 31 (the last): \
             350 bytes"
        ));
        // Any growth after the warm-up fails, naming both figures.
        heaps.push(408);
        assert_eq!(
            check_heap(&transcript(&heaps)),
            Err(
                "the hypervisor heap grew by 8 bytes: 400 bytes in use after destroy 10, 408 after destroy 32 \
                 (the last)"
                    .to_string()
            )
        );
        // Too few destroys to judge.
        let e = check_heap(&transcript(&[1; 10])).err().unwrap_or_default();
        assert!(e.starts_with("heap check: 10 domain(s) destroyed"), "{e}");
        assert!(check_heap(&transcript(&[1; 11])).is_ok());
    }

    #[test]
    fn arguments() -> Result<()> {
        let s = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            SoakArgs::parse(&s(&["--cycles", "10000", "--accel=tcg", "--no-build"]))?,
            SoakArgs {
                cycles: 10000,
                accel: Some(Accel::Tcg),
                no_build: true
            }
        );
        assert_eq!(SoakArgs::parse(&[])?.cycles, DEFAULT_CYCLES);
        for bad in [&["--cycles", "0"][..], &["--cycles=x"], &["200"], &["--bogus"]] {
            let e = SoakArgs::parse(&s(bad))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!e.is_empty(), "{bad:?}");
        }
        Ok(())
    }
}
