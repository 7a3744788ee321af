//! The `xm` domain configuration format, as Xen's `xm create` reads it: one
//! Python-like assignment per line (`memory = 64`, `name = "web"`,
//! `vif = [ 'bridge=xenbr0' ]`), `#` comments, strings in single or double
//! quotes, integers, and lists that may span lines. The keys acted on are
//! `name`, `memory`, `maxmem`, `vcpus`, `kernel`, `extra`, `on_poweroff`,
//! `on_reboot`, `on_crash`, and the credit scheduler's `cpu_weight` and
//! `cpu_cap`.
//!
//! [`Config::parse`] turns the text of one file into a [`Config`] plus
//! [`Warning`]s (an unknown key is a warning, as Xen ignores it), or a
//! [`ConfigError`] whose sentence names the file and line
//! (`configs/web.cfg:3: memory = "lots" is not a number`).
//! [`Config::apply_override`] applies one `key=value` from an
//! `xm create web.cfg memory=128` command line. `toolstack.rs` turns a
//! `Config` into a running domain.
//!
//! `syntax.rs` scans the text into assignments, this file gives the keys
//! their meaning and checks the values, `error.rs` holds the errors and
//! warnings, `tests.rs` the host tests.

mod error;
mod syntax;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests;

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use error::{ConfigError, ErrorKind, Origin, Warning, WarningKind};
use syntax::{Parser, Value};

/// Longest domain name: the ABI's 32-byte name field keeps a NUL.
pub const NAME_MAX_LEN: usize = 31;
/// Longest guest command line (`extra`): `StartInfo::cmdline` keeps a NUL.
pub const EXTRA_MAX_LEN: usize = 511;
/// Largest `memory` / `maxmem`, in MiB (16 TiB): far above any machine Oxen
/// runs on, and small enough that the frame count cannot overflow.
pub const MAX_MEMORY_MIB: u64 = 1 << 24;
/// 4 KiB frames in one MiB.
pub const PAGES_PER_MIB: u64 = 256;
/// Most vCPUs a domain may have: one `vcpu_info` each in the shared-info page.
#[allow(clippy::cast_possible_truncation)] // 8, asserted below
pub const MAX_VCPUS: u32 = dom0_abi::MAX_VCPUS as u32;
const _: () = assert!(MAX_VCPUS as usize == dom0_abi::MAX_VCPUS);
/// Deepest nesting of lists accepted (a guard against hostile input).
const LIST_DEPTH_MAX: usize = 16;
/// Longest value text quoted back in a message before it is cut.
const RAW_SHOWN_MAX: usize = 40;

/// The settings of one domain, as `xm` configs give them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `name`: unique, 1 to 31 characters of `A-Z a-z 0-9 _ . -`.
    pub name: String,
    /// `memory`: the memory the domain starts with, in MiB.
    pub memory_mib: u64,
    /// `maxmem`: the most memory it may grow to, in MiB; `None` means the
    /// same as `memory` (see [`Config::maxmem_mib`]).
    pub maxmem_mib: Option<u64>,
    /// `vcpus`: 1 to [`MAX_VCPUS`].
    pub vcpus: u32,
    /// `kernel`: the path of the guest image inside the boot bundle.
    pub kernel: String,
    /// `extra`: the guest's command line.
    pub extra: String,
    /// `on_poweroff`: what to do when the guest powers off.
    pub on_poweroff: Action,
    /// `on_reboot`: what to do when the guest asks to be rebooted.
    pub on_reboot: Action,
    /// `on_crash`: what to do when the guest crashes.
    pub on_crash: Action,
    /// `cpu_weight`: the credit scheduler's weight (1 to 65535; the
    /// hypervisor's default, 256, when not set).
    pub cpu_weight: Option<u32>,
    /// `cpu_cap`: the most CPU the domain may use, in percent of one CPU
    /// (0 = no cap, the default when not set).
    pub cpu_cap: Option<u32>,
}

/// What the toolstack does with a domain that stopped (`on_poweroff`,
/// `on_reboot`, `on_crash`), as xm and xl name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Destroy the domain and free its memory.
    Destroy,
    /// Destroy it and start it again from its config.
    Restart,
    /// Keep it, stopped, until `xm destroy`.
    Preserve,
    /// Rename the stopped domain and start a new one under the name.
    RenameRestart,
    /// Write a core dump, then destroy.
    CoredumpDestroy,
    /// Write a core dump, then restart.
    CoredumpRestart,
}

impl Action {
    /// Every action, in the order messages list them.
    pub const ALL: [Action; 6] = [
        Action::Destroy,
        Action::Restart,
        Action::Preserve,
        Action::RenameRestart,
        Action::CoredumpDestroy,
        Action::CoredumpRestart,
    ];

    /// The word used in configs.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::Preserve => "preserve",
            Action::RenameRestart => "rename-restart",
            Action::CoredumpDestroy => "coredump-destroy",
            Action::CoredumpRestart => "coredump-restart",
        }
    }

    /// The action a config word names.
    pub fn from_name(word: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == word)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed config and what was odd about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The domain's settings.
    pub config: Config,
    /// Settings that were ignored or repeated, in file order.
    pub warnings: Vec<Warning>,
}

impl Config {
    /// Parse the text of the config file `file` (a name used in messages).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Parsed, ConfigError> {
        let at_line = |line, kind| ConfigError {
            origin: Origin::Line {
                file: file.to_owned(),
                line,
            },
            kind,
        };
        let text = match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let line = line_of(bytes, e.valid_up_to());
                return Err(at_line(line, ErrorKind::NotUtf8));
            }
        };
        let assignments = Parser::new(text)
            .assignments()
            .map_err(|(kind, line)| at_line(line, kind))?;

        let mut draft = Draft::default();
        let mut warnings = Vec::new();
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for a in &assignments {
            if let Some(&(_, first_line)) = seen.iter().find(|(k, _)| *k == a.key) {
                warnings.push(Warning {
                    file: file.to_owned(),
                    line: a.line,
                    kind: WarningKind::Repeated {
                        key: a.key.clone(),
                        first_line,
                    },
                });
            } else {
                seen.push((&a.key, a.line));
            }
            match draft.assign(&a.key, &a.value, &a.raw, a.line) {
                Ok(None) => {}
                Ok(Some(kind)) => warnings.push(Warning {
                    file: file.to_owned(),
                    line: a.line,
                    kind,
                }),
                Err(kind) => return Err(at_line(a.line, kind)),
            }
        }
        let config = draft.finish().map_err(|(kind, line)| ConfigError {
            origin: match line {
                Some(line) => Origin::Line {
                    file: file.to_owned(),
                    line,
                },
                None => Origin::File {
                    file: file.to_owned(),
                },
            },
            kind,
        })?;
        Ok(Parsed { config, warnings })
    }

    /// Apply one `key=value` override from an `xm create` command line.
    /// The value may be quoted (`extra="a b"`); numbers may be given bare.
    /// On error the config is unchanged.
    pub fn apply_override(&mut self, text: &str) -> Result<(), ConfigError> {
        let fail = |kind| ConfigError {
            origin: Origin::Override {
                text: text.to_owned(),
            },
            kind,
        };
        let Some((key, value)) = text.split_once('=') else {
            return Err(fail(ErrorKind::OverrideSyntax));
        };
        let (key, value) = (key.trim(), value.trim());
        if !is_ident(key) {
            return Err(fail(ErrorKind::OverrideSyntax));
        }
        if !KEYS.contains(&key) {
            return Err(fail(ErrorKind::UnknownOverrideKey { key: key.to_owned() }));
        }
        let unquoted = strip_quotes(value);
        let mut draft = Draft::from_config(self);
        draft
            .assign(key, &Value::Str(unquoted.to_owned()), value, 0)
            .map_err(fail)?;
        *self = draft.finish().map_err(|(kind, _)| fail(kind))?;
        Ok(())
    }

    /// `maxmem` in MiB, `memory` when not set.
    pub fn maxmem_mib(&self) -> u64 {
        self.maxmem_mib.unwrap_or(self.memory_mib)
    }

    /// Frames the domain starts with.
    pub fn initial_pages(&self) -> u64 {
        // Cannot overflow: memory is at most MAX_MEMORY_MIB (checked on parse).
        self.memory_mib.saturating_mul(PAGES_PER_MIB)
    }

    /// Most frames the domain may have.
    pub fn max_pages(&self) -> u64 {
        self.maxmem_mib().saturating_mul(PAGES_PER_MIB)
    }

    /// The scheduler parameters to give the domain right after it is
    /// created, if the config sets `cpu_weight` or `cpu_cap` (the one not
    /// set takes Xen's default: weight 256, no cap).
    pub fn sched_params(&self) -> Option<dom0_abi::SchedParams> {
        if self.cpu_weight.is_none() && self.cpu_cap.is_none() {
            return None;
        }
        Some(dom0_abi::SchedParams {
            weight: self.cpu_weight.unwrap_or(dom0_abi::SCHED_WEIGHT_DEFAULT),
            cap: self.cpu_cap.unwrap_or(0),
            reserved: 0,
        })
    }
}

/// Every key a config may set; the rest are warned about and ignored.
const KEYS: [&str; 11] = [
    "name",
    "memory",
    "maxmem",
    "vcpus",
    "kernel",
    "extra",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "cpu_weight",
    "cpu_cap",
];

/// Largest `cpu_weight`, as Xen's credit scheduler takes it.
pub const CPU_WEIGHT_MAX: u32 = dom0_abi::SCHED_WEIGHT_MAX;
/// Largest `cpu_cap` a config may give (percent of one CPU); the hypervisor
/// may refuse less (more than its CPUs can give).
pub const CPU_CAP_MAX: u32 = 65535;

/// Keys of real xm configs that Oxen does not act on yet: ignored with a
/// gentler warning than a misspelt key gets.
const UNSUPPORTED_KEYS: [&str; 18] = [
    "bootloader",
    "bootargs",
    "builder",
    "cpus",
    "disk",
    "maxvcpus",
    "on_xend_start",
    "on_xend_stop",
    "pci",
    "ramdisk",
    "root",
    "sdl",
    "serial",
    "uuid",
    "vfb",
    "vif",
    "vnc",
    "vtpm",
];

/// Settings collected so far; [`Draft::finish`] checks them as a whole.
#[derive(Default)]
struct Draft {
    /// `name`.
    name: Option<String>,
    /// `memory` in MiB.
    memory_mib: Option<u64>,
    /// `maxmem` in MiB, and the line that set it (0 for an override).
    maxmem_mib: Option<(u64, usize)>,
    /// `vcpus`.
    vcpus: Option<u32>,
    /// `kernel`.
    kernel: Option<String>,
    /// `extra`.
    extra: Option<String>,
    /// `on_poweroff`.
    on_poweroff: Option<Action>,
    /// `on_reboot`.
    on_reboot: Option<Action>,
    /// `on_crash`.
    on_crash: Option<Action>,
    /// `cpu_weight`.
    cpu_weight: Option<u32>,
    /// `cpu_cap`.
    cpu_cap: Option<u32>,
}

impl Draft {
    /// A draft holding every setting of `c`.
    fn from_config(c: &Config) -> Draft {
        Draft {
            name: Some(c.name.clone()),
            memory_mib: Some(c.memory_mib),
            maxmem_mib: c.maxmem_mib.map(|m| (m, 0)),
            vcpus: Some(c.vcpus),
            kernel: Some(c.kernel.clone()),
            extra: Some(c.extra.clone()),
            on_poweroff: Some(c.on_poweroff),
            on_reboot: Some(c.on_reboot),
            on_crash: Some(c.on_crash),
            cpu_weight: c.cpu_weight,
            cpu_cap: c.cpu_cap,
        }
    }

    /// Check one assignment and record it. `raw` is the value as written,
    /// for messages. Returns a warning for a key that is not acted on.
    fn assign(
        &mut self,
        key: &str,
        value: &Value,
        raw: &str,
        line: usize,
    ) -> Result<Option<WarningKind>, ErrorKind> {
        match key {
            "name" => {
                let name = string(key, value, raw)?;
                let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
                if name.is_empty() || name.len() > NAME_MAX_LEN || !name.chars().all(ok_char) {
                    return Err(ErrorKind::BadName { raw: shown(raw) });
                }
                self.name = Some(name);
            }
            "memory" => self.memory_mib = Some(memory(key, value, raw)?),
            "maxmem" => self.maxmem_mib = Some((memory(key, value, raw)?, line)),
            "vcpus" => {
                let n = number(key, value, raw, 1, u64::from(MAX_VCPUS), "")?;
                self.vcpus =
                    Some(u32::try_from(n).map_err(|_| out_of_range(key, raw, 1, MAX_VCPUS.into(), ""))?);
            }
            "kernel" => {
                let kernel = string(key, value, raw)?;
                if kernel.is_empty() {
                    return Err(ErrorKind::EmptyKernel);
                }
                self.kernel = Some(kernel);
            }
            "extra" => {
                let extra = string(key, value, raw)?;
                if extra.len() > EXTRA_MAX_LEN {
                    return Err(ErrorKind::ExtraTooLong { len: extra.len() });
                }
                if extra.contains('\0') {
                    return Err(ErrorKind::ExtraHasNul);
                }
                self.extra = Some(extra);
            }
            "on_poweroff" | "on_reboot" | "on_crash" => {
                let word = string(key, value, raw)?;
                let action = Action::from_name(&word).ok_or_else(|| ErrorKind::BadAction {
                    key: key.to_owned(),
                    raw: shown(raw),
                })?;
                match key {
                    "on_poweroff" => self.on_poweroff = Some(action),
                    "on_reboot" => self.on_reboot = Some(action),
                    _ => self.on_crash = Some(action),
                }
            }
            "cpu_weight" => {
                let n = number(key, value, raw, 1, u64::from(CPU_WEIGHT_MAX), "")?;
                self.cpu_weight =
                    Some(u32::try_from(n).map_err(|_| out_of_range(key, raw, 1, CPU_WEIGHT_MAX.into(), ""))?);
            }
            "cpu_cap" => {
                let n = number(key, value, raw, 0, u64::from(CPU_CAP_MAX), " %")?;
                self.cpu_cap =
                    Some(u32::try_from(n).map_err(|_| out_of_range(key, raw, 0, CPU_CAP_MAX.into(), " %"))?);
            }
            _ if UNSUPPORTED_KEYS.contains(&key) => {
                return Ok(Some(WarningKind::Unsupported { key: key.to_owned() }));
            }
            _ => return Ok(Some(WarningKind::Unknown { key: key.to_owned() })),
        }
        Ok(None)
    }

    /// The finished config, or what is missing or inconsistent (with the
    /// line to blame, when one is).
    fn finish(self) -> Result<Config, (ErrorKind, Option<usize>)> {
        let missing = |key| (ErrorKind::Missing { key }, None);
        let name = self.name.ok_or_else(|| missing("name"))?;
        let memory_mib = self.memory_mib.ok_or_else(|| missing("memory"))?;
        let kernel = self.kernel.ok_or_else(|| missing("kernel"))?;
        if let Some((maxmem, line)) = self.maxmem_mib
            && maxmem < memory_mib
        {
            let kind = ErrorKind::MaxmemBelowMemory {
                maxmem_mib: maxmem,
                memory_mib,
            };
            return Err((kind, (line > 0).then_some(line)));
        }
        Ok(Config {
            name,
            memory_mib,
            maxmem_mib: self.maxmem_mib.map(|(m, _)| m),
            vcpus: self.vcpus.unwrap_or(1),
            kernel,
            extra: self.extra.unwrap_or_default(),
            // xl's defaults.
            on_poweroff: self.on_poweroff.unwrap_or(Action::Destroy),
            on_reboot: self.on_reboot.unwrap_or(Action::Restart),
            on_crash: self.on_crash.unwrap_or(Action::Destroy),
            cpu_weight: self.cpu_weight,
            cpu_cap: self.cpu_cap,
        })
    }
}

/// A string setting: quoted in the file (any string, in an override).
fn string(key: &str, value: &Value, raw: &str) -> Result<String, ErrorKind> {
    match value {
        Value::Str(s) => Ok(s.clone()),
        Value::Bare(_) | Value::List(_) => Err(ErrorKind::NotAString {
            key: key.to_owned(),
            raw: shown(raw),
        }),
    }
}

/// A `memory` or `maxmem` setting in MiB.
fn memory(key: &str, value: &Value, raw: &str) -> Result<u64, ErrorKind> {
    number(key, value, raw, 1, MAX_MEMORY_MIB, " MiB")
}

/// An integer setting in `min ..= max`. xm accepts numbers given as strings
/// (`memory = "64"`), so this does too.
fn number(
    key: &str,
    value: &Value,
    raw: &str,
    min: u64,
    max: u64,
    unit: &'static str,
) -> Result<u64, ErrorKind> {
    let n = match value {
        Value::Bare(s) | Value::Str(s) => parse_int(s),
        Value::List(_) => None,
    }
    .ok_or_else(|| ErrorKind::NotANumber {
        key: key.to_owned(),
        raw: shown(raw),
    })?;
    match u64::try_from(n) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(out_of_range(key, raw, min, max, unit)),
    }
}

/// The out-of-range error for `key = raw`.
fn out_of_range(key: &str, raw: &str, min: u64, max: u64, unit: &'static str) -> ErrorKind {
    ErrorKind::OutOfRange {
        key: key.to_owned(),
        raw: shown(raw),
        min,
        max,
        unit,
    }
}

/// A Python integer literal: decimal or `0x` hex, an optional sign, `_`
/// between digits. Values too large for `i64` saturate (and are then out of
/// range).
fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = match digits.get(..2) {
        Some("0x" | "0X") => (16, &digits[2..]),
        _ => (10, digits),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let mut magnitude: u64 = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        let d = c.to_digit(radix)?;
        magnitude = magnitude
            .saturating_mul(u64::from(radix))
            .saturating_add(u64::from(d));
    }
    let value = i64::try_from(magnitude).unwrap_or(i64::MAX);
    Some(if negative { -value } else { value })
}

/// `value` without one pair of matching surrounding quotes.
fn strip_quotes(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

/// A value as written, cut short for quoting in a message.
fn shown(raw: &str) -> String {
    let raw = raw.trim();
    match raw.char_indices().nth(RAW_SHOWN_MAX) {
        Some((cut, _)) => alloc::format!("{}...", &raw[..cut]),
        None => raw.to_owned(),
    }
}

/// The 1-based line number of byte `offset` in `bytes`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes.iter().take(offset).filter(|&&b| b == b'\n').count()
}

/// Whether `s` is a Python identifier (ASCII).
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
