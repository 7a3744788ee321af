//! dom0's management shell: the `xm` prompt on the console.
//!
//! [`Shell`] is fed what the operator types ([`Shell::input`], then
//! [`Shell::run_pending`] once the echo is shown) and woken
//! whenever something may have happened ([`Shell::tick`]: a domain stopped,
//! a console being followed has new output, a wait may be over); everything
//! it has to show collects in a string that the guest writes to the
//! console ([`Shell::take_output`]). It never waits itself: the guest loop
//! (`guest/mod.rs`) sleeps in between, at most [`Shell::timeout_ns`].
//!
//! The shell is in one of three modes:
//! - **prompt**: bytes go to the line editor (`line.rs`); a submitted line
//!   is split into words (`words.rs`), understood (`commands.rs`) and run
//!   by the toolstack (`xm/`). Messages about domains (`dom0: domain 1
//!   ('hello') powered off`) are printed above the line being typed, which
//!   is then shown again.
//! - **attached** to a domain's console (`xm console`, `xm create -c`):
//!   its output is shown as it comes; Ctrl-] (`0x1d`) returns to the
//!   prompt, and so does the domain going away.
//! - **waiting** for domains to stop (`xm shutdown -w`); Ctrl-C stops
//!   waiting.
//! - **soaking** (`xm soak`): each tick finishes the cycle under way if
//!   its domain stopped and starts the next (`xm/soak.rs`); Ctrl-C ends
//!   the soak early.
//!
//! Nothing typed can make the shell panic: every path is covered by the
//! fuzz tests in `tests.rs`.

pub mod commands;
pub mod line;
pub mod words;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests;

use alloc::string::String;

use dom0_abi::{DomId, ShutdownReason, Status};

use self::commands::{Command, help_for, long_help, usage};
use self::line::{Edit, LineEditor};
use crate::config::Config;
use crate::hv::Hv;
use crate::toolstack::{StartError, start_domain};
use crate::watch::Reaper;
use crate::xm::soak::Soak;
use crate::xm::{Attach, Fail, Next, Wait, Xm};

/// The prompt, as on an Oracle VM Server's dom0.
pub const PROMPT: &str = "[root@oxen ~]# ";
/// Ctrl-C.
const CTRL_C: u8 = 0x03;
/// How often a followed console is read, in nanoseconds.
pub const CONSOLE_POLL_NS: u64 = 50_000_000;
/// How often the domains waited for are looked at.
pub const WAIT_POLL_NS: u64 = 100_000_000;

/// What the shell is doing.
#[derive(Debug)]
enum Mode {
    /// Reading a command line.
    Prompt,
    /// Showing a domain's console.
    Attached(Attach),
    /// Waiting for domains to stop.
    Waiting(Wait),
    /// Creating and destroying domains (`xm soak`).
    Soaking(Soak),
}

/// The shell: the line editor, the toolstack and the mode.
#[derive(Debug)]
pub struct Shell<'a> {
    /// The line editor (prompt mode).
    editor: LineEditor,
    /// The toolstack.
    xm: Xm<'a>,
    /// What it is doing.
    mode: Mode,
    /// What is to be shown on the console.
    out: String,
    /// Set by `xm poweroff`: dom0 stops with this reason.
    done: Option<ShutdownReason>,
    /// A line submitted but not run yet.
    pending: Option<String>,
}

impl<'a> Shell<'a> {
    /// A shell over `xm`.
    pub fn new(xm: Xm<'a>) -> Self {
        Shell {
            editor: LineEditor::new(PROMPT),
            xm,
            mode: Mode::Prompt,
            out: String::new(),
            done: None,
            pending: None,
        }
    }

    /// Greet and show the first prompt.
    pub fn start(&mut self) {
        say!(
            self.out,
            "dom0: the xm shell is ready; type 'help' for the commands (Ctrl-] leaves a console)."
        );
        self.editor.show(&mut self.out);
    }

    /// The toolstack.
    pub fn xm(&mut self) -> &mut Xm<'a> {
        &mut self.xm
    }

    /// What is to be shown, taken.
    pub fn take_output(&mut self) -> String {
        core::mem::take(&mut self.out)
    }

    /// Set once dom0 is to stop (`xm poweroff`), with the reason.
    pub fn finished(&self) -> Option<ShutdownReason> {
        self.done
    }

    /// How long the guest may sleep before calling [`Shell::tick`] again
    /// if nothing wakes it (`None`: until something does).
    pub fn timeout_ns(&self) -> Option<u64> {
        match &self.mode {
            Mode::Prompt => None,
            Mode::Attached(_) => Some(CONSOLE_POLL_NS),
            Mode::Waiting(_) => Some(WAIT_POLL_NS),
            Mode::Soaking(soak) => Some(soak.timeout_ns()),
        }
    }

    /// Take what the operator typed, up to and including the first line
    /// submitted: returns how many bytes were taken (feed the rest after).
    /// The submitted line runs at the next call of [`Shell::run_pending`],
    /// `input` or `tick`, so that the caller can show its echo first.
    pub fn input<H: Hv>(&mut self, hv: &mut H, bytes: &[u8], now_ns: u64) -> usize {
        self.run_pending(hv, now_ns);
        for (i, &byte) in bytes.iter().enumerate() {
            if self.done.is_some() {
                return bytes.len();
            }
            match &mut self.mode {
                Mode::Prompt => match self.editor.feed(byte, &mut self.out) {
                    Edit::Submit(line) => {
                        self.pending = Some(line);
                        return i + 1;
                    }
                    Edit::None | Edit::Interrupt => {}
                },
                Mode::Attached(attach) => {
                    if byte == crate::xm::console::ESCAPE {
                        // Show what came in up to now, then leave.
                        let _ = attach.pump(hv, &mut self.out);
                        attach.end_line(&mut self.out);
                        self.prompt();
                    }
                    // Other bytes: domains have no console input yet (said
                    // once on attach).
                }
                Mode::Waiting(_) => {
                    if byte == CTRL_C {
                        say!(self.out, "^C");
                        say!(self.out, "Interrupted.");
                        self.prompt();
                    }
                }
                Mode::Soaking(soak) => {
                    if byte == CTRL_C {
                        soak.interrupt(hv, now_ns, &mut self.out);
                        self.prompt();
                    }
                }
            }
        }
        bytes.len()
    }

    /// Take everything typed, running each line as it is submitted
    /// (without a chance to show the echo first; for the tests).
    pub fn input_all<H: Hv>(&mut self, hv: &mut H, mut bytes: &[u8], now_ns: u64) {
        while !bytes.is_empty() {
            let used = self.input(hv, bytes, now_ns);
            bytes = &bytes[used.min(bytes.len())..];
        }
        self.run_pending(hv, now_ns);
    }

    /// Run the line submitted by the last [`Shell::input`], if any.
    pub fn run_pending<H: Hv>(&mut self, hv: &mut H, now_ns: u64) {
        if let Some(line) = self.pending.take() {
            self.run_line(hv, &line, now_ns);
        }
    }

    /// Look at the domains: apply `on_*` actions to those that stopped,
    /// show new console output, finish a wait.
    pub fn tick<H: Hv>(&mut self, hv: &mut H, now_ns: u64) {
        self.run_pending(hv, now_ns);
        if self.done.is_some() {
            return;
        }
        let mut events = String::new();
        let happened = {
            let mut reaper = ShellReaper {
                mode: &mut self.mode,
                out: &mut self.out,
                bundle: self.xm.bundle,
                tsc_khz: self.xm.tsc_khz,
                now_ns,
            };
            self.xm.watch.poll(hv, &mut reaper)
        };
        for event in &happened {
            say!(events, "{event}");
        }
        // Once every domain started from auto/ at boot has stopped, say
        // whether the memory they had came back (as the non-shell dom0 does).
        if self.xm.auto_pending && self.xm.watch.is_empty() {
            self.xm.auto_pending = false;
            if let (Some(before_free), Ok(phys)) = (self.xm.boot_free_pages, hv.sysctl_physinfo()) {
                let check = crate::watch::MemoryCheck {
                    before_free,
                    after_free: phys.free_pages,
                    preserved: self.xm.watch.preserved().len(),
                };
                say!(events, "{check}");
            }
        }
        if !events.is_empty() {
            self.notice(&events);
        }
        match &mut self.mode {
            Mode::Prompt => {}
            Mode::Attached(attach) => {
                let gone = match attach.pump(hv, &mut self.out) {
                    Ok(()) => !exists(hv, attach.domid),
                    Err(_) => true,
                };
                if gone {
                    attach.end_line(&mut self.out);
                    self.prompt();
                }
            }
            Mode::Waiting(wait) => {
                if wait.check(hv, &mut self.out) {
                    self.prompt();
                }
            }
            Mode::Soaking(soak) => {
                let bundle = self.xm.bundle.as_ref();
                if soak.step(hv, bundle, self.xm.tsc_khz, now_ns, &mut self.out) {
                    self.prompt();
                }
            }
        }
    }

    /// Show `text` (whole lines) without garbling what is being typed.
    fn notice(&mut self, text: &str) {
        match &mut self.mode {
            Mode::Prompt => {
                self.editor.hide(&mut self.out);
                self.out.push_str(text);
                self.editor.show(&mut self.out);
            }
            Mode::Attached(attach) => {
                attach.end_line(&mut self.out);
                self.out.push_str(text);
            }
            Mode::Waiting(_) | Mode::Soaking(_) => self.out.push_str(text),
        }
    }

    /// Back to the prompt.
    fn prompt(&mut self) {
        self.mode = Mode::Prompt;
        self.editor.clear();
        self.editor.show(&mut self.out);
    }

    /// Run one submitted line.
    fn run_line<H: Hv>(&mut self, hv: &mut H, line: &str, now_ns: u64) {
        let command = words::split(line)
            .map_err(commands::Error::Words)
            .and_then(|w| commands::parse(&w));
        let next = match command {
            Ok(None) => Ok(Next::Prompt),
            Ok(Some(Command::Help { topic })) => {
                self.help(topic.as_deref());
                Ok(Next::Prompt)
            }
            Ok(Some(command)) => self.xm.run(hv, command, now_ns, &mut self.out),
            Err(e) => {
                say!(self.out, "{e}");
                Ok(Next::Prompt)
            }
        };
        match next {
            Ok(Next::Prompt) => self.prompt(),
            Ok(Next::Attach(attach)) => self.mode = Mode::Attached(attach),
            Ok(Next::Wait(wait)) => self.mode = Mode::Waiting(wait),
            Ok(Next::Soak(soak)) => self.mode = Mode::Soaking(soak),
            Ok(Next::PowerOff(reason)) => self.done = Some(reason),
            Err(fail) => {
                match fail {
                    Fail::Error(message) => say!(self.out, "Error: {message}"),
                    Fail::Usage(name, message) => match help_for(name) {
                        Some(h) => say!(self.out, "Error: {message}\n\n{}", usage(h)),
                        None => say!(self.out, "Error: {message}"),
                    },
                    Fail::Quiet => {}
                }
                self.prompt();
            }
        }
    }

    /// `help` and `help CMD`.
    fn help(&mut self, topic: Option<&str>) {
        match topic {
            None => say!(self.out, "{}", long_help()),
            Some(name) => match commands::lookup(name) {
                Some(h) => say!(self.out, "{}", usage(h)),
                None => say!(self.out, "{}", commands::Error::Unknown(name.into())),
            },
        }
    }
}

/// Whether domain `domid` still exists.
fn exists<H: Hv>(hv: &mut H, domid: DomId) -> bool {
    match hv.domctl_getinfo(domid) {
        Ok(info) => info.domid == domid,
        Err(Status::ESRCH) => false,
        // Cannot tell: keep following.
        Err(_) => true,
    }
}

/// The watch's [`Reaper`] while the shell runs: restarts from the bundle,
/// and reads the last output of a domain the shell follows before the
/// domain is destroyed.
struct ShellReaper<'s, 'a> {
    /// The shell's mode (to find the console being followed).
    mode: &'s mut Mode,
    /// The shell's output.
    out: &'s mut String,
    /// Where kernels come from.
    bundle: Option<oxen_bundle::Archive<'a>>,
    /// For new domains' `StartInfo`.
    tsc_khz: u64,
    /// dom0's clock.
    now_ns: u64,
}

impl<H: Hv> Reaper<H> for ShellReaper<'_, '_> {
    fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn stopping(&mut self, hv: &mut H, domid: DomId) {
        if let Mode::Attached(attach) = self.mode
            && attach.domid == domid
        {
            let _ = attach.pump(hv, self.out);
        }
    }

    fn restart(&mut self, hv: &mut H, config: &Config) -> Result<DomId, StartError> {
        match &self.bundle {
            Some(bundle) => start_domain(hv, bundle, config, self.tsc_khz),
            None => Err(StartError::no_bundle(config)),
        }
    }
}
