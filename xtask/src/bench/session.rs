//! One QEMU boot of a benchmark: the serial console read on a thread that
//! stamps every line with the time it arrived (from just before QEMU was
//! spawned), a stop condition checked per line, a hard timeout, and the
//! stamped transcript kept in `target/oxen/bench/NAME.log`.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, Result};

/// One console line and when it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Since QEMU was spawned.
    pub at: Duration,
    /// The text, without the line end.
    pub text: String,
}

/// What one boot printed, and how it ended.
#[derive(Debug, Default)]
pub struct Transcript {
    /// Every complete line.
    pub lines: Vec<Line>,
    /// When a shell prompt (`# ` at the end of unfinished output) first showed.
    pub prompt_at: Option<Duration>,
    /// The stop condition held (as opposed to QEMU exiting or the timeout).
    pub stopped: bool,
    /// The timeout ended the run.
    pub timed_out: bool,
    /// QEMU's standard error.
    pub stderr: String,
}

impl Transcript {
    /// The first line containing `needle`.
    pub fn find(&self, needle: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.text.contains(needle))
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines.iter().filter(|l| l.text.contains(needle)).count()
    }
}

enum Event {
    Line(Line),
    Prompt(Duration),
    Closed,
}

/// Splits console bytes into lines, stamping each as it completes.
#[derive(Default)]
struct Splitter {
    partial: Vec<u8>,
    prompt_seen: bool,
}

impl Splitter {
    /// Feed a chunk that arrived at `at`; complete lines and a first
    /// prompt come out.
    fn feed(&mut self, chunk: &[u8], at: Duration, out: &mut Vec<Event>) {
        for &b in chunk {
            if b == b'\n' {
                let text = String::from_utf8_lossy(&self.partial)
                    .trim_end_matches('\r')
                    .to_string();
                // A prompt that other output followed before this chunk ended.
                if !self.prompt_seen && is_prompt_line(&text) {
                    self.prompt_seen = true;
                    out.push(Event::Prompt(at));
                }
                out.push(Event::Line(Line { at, text }));
                self.partial.clear();
            } else {
                self.partial.push(b);
            }
        }
        if !self.prompt_seen && self.partial.ends_with(b"# ") {
            self.prompt_seen = true;
            out.push(Event::Prompt(at));
        }
    }
}

/// Whether a console line holds a shell prompt (`# ` at its start, or
/// after `]` or `dom0` as in `[root@oxen ~]# ` and `dom0# `).
fn is_prompt_line(text: &str) -> bool {
    text.starts_with("# ") || text.contains("]# ") || text.contains("dom0# ")
}

/// Boot QEMU with `args`, feeding each line to `done` until it returns true,
/// QEMU exits, or `timeout` passes; QEMU is killed if still running.
/// The stamped transcript goes to `log`.
pub fn run(
    qemu: &OsStr,
    args: &[OsString],
    timeout: Duration,
    log: &Path,
    mut done: impl FnMut(&Line) -> bool,
) -> Result<Transcript> {
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", qemu.to_string_lossy()))?;
    let mut stdout = child.stdout.take().context("QEMU has no stdout")?;
    let mut stderr = child.stderr.take().context("QEMU has no stderr")?;
    // Kept open (and silent) so that the console sees no end of input.
    let stdin = child.stdin.take();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut splitter = Splitter::default();
        let mut buf = [0u8; 8192];
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut events = Vec::new();
            splitter.feed(&buf[..n], start.elapsed(), &mut events);
            for e in events {
                if tx.send(e).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Event::Closed);
    });
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut t = Transcript::default();
    let deadline = start + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::Line(line)) => {
                let stop = done(&line);
                t.lines.push(line);
                if stop {
                    t.stopped = true;
                    break;
                }
            }
            Ok(Event::Prompt(at)) => t.prompt_at = Some(at),
            Ok(Event::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                t.timed_out = true;
                break;
            }
        }
    }
    // Errors only mean QEMU is already gone; `wait` reaps it either way.
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    let _ = reader.join();
    t.stderr = errors.join().unwrap_or_default();
    write_log(log, args, &t)?;
    Ok(t)
}

fn write_log(path: &Path, args: &[OsString], t: &Transcript) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut text = format!("# {}\n", crate::qemu::shell_words(crate::qemu::QEMU_BINARY, args));
    for line in &t.lines {
        let _ = writeln!(
            text,
            "[{:>10.3} ms] {}",
            line.at.as_secs_f64() * 1000.0,
            line.text
        );
    }
    for line in t.stderr.lines() {
        let _ = writeln!(text, "qemu stderr: {line}");
    }
    let _ = writeln!(
        text,
        "# end: {}",
        if t.stopped {
            "stop condition met"
        } else if t.timed_out {
            "timeout"
        } else {
            "QEMU exited"
        }
    );
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(events: &[Event]) -> Vec<(u128, String, bool)> {
        events
            .iter()
            .map(|e| match e {
                Event::Line(l) => (l.at.as_millis(), l.text.clone(), false),
                Event::Prompt(at) => (at.as_millis(), String::new(), true),
                Event::Closed => (0, "closed".into(), false),
            })
            .collect()
    }

    #[test]
    fn lines_are_stamped_when_they_complete() {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        s.feed(b"Oxen 0.1\r\ndom0: up", Duration::from_millis(5), &mut out);
        s.feed(b"\n(d1) hel", Duration::from_millis(9), &mut out);
        s.feed(b"lo\ndom0# ", Duration::from_millis(12), &mut out);
        s.feed(b"xm list\n# ", Duration::from_millis(20), &mut out);
        let mut late = Splitter::default();
        let mut seen = Vec::new();
        late.feed(
            b"boot\n[root@oxen ~]# (d1) hi\n",
            Duration::from_millis(7),
            &mut seen,
        );
        assert_eq!(
            lines(&seen),
            [
                (7, "boot".to_string(), false),
                (7, String::new(), true),
                (7, "[root@oxen ~]# (d1) hi".to_string(), false),
            ]
        );
        assert_eq!(
            lines(&out),
            [
                (5, "Oxen 0.1".to_string(), false),
                (9, "dom0: up".to_string(), false),
                (12, "(d1) hello".to_string(), false),
                (12, String::new(), true),
                (20, "dom0# xm list".to_string(), false),
            ]
        );
    }
}
