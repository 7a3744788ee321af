//! The `xm` command line: the table of commands with the usage and
//! description Xen's `xm` gives them (`tools/python/xen/xm/main.py`,
//! `SUBCOMMAND_HELP`), the option parser (GNU `getopt` style: options
//! anywhere, `-wa`, `-w 5`, `-w5`, `--weight=5`, `--weight 5`, `--` ends
//! them), and [`parse`], which turns the words of a line into a
//! [`Command`] or an [`Error`] whose `Display` is what xm prints. The
//! `xm` in front is optional (`xm list` and `list` are the same), and a
//! unique prefix of a command is the command, as in xm (`xm li`).
//!
//! `shell/mod.rs` runs the commands through `xm/`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use dom0_abi::ShutdownReason;

/// One option of a command.
#[derive(Debug, PartialEq, Eq)]
pub struct Opt {
    /// `-x`.
    pub short: char,
    /// `--name`.
    pub long: &'static str,
    /// The value's name when it takes one (`WEIGHT`).
    pub value: Option<&'static str>,
    /// What it does.
    pub desc: &'static str,
}

/// One command, as `help` shows it.
#[derive(Debug, PartialEq, Eq)]
pub struct Help {
    /// Its name.
    pub name: &'static str,
    /// Its arguments, as xm writes them.
    pub args: &'static str,
    /// One line on what it does.
    pub desc: &'static str,
    /// Its options.
    pub options: &'static [Opt],
}

/// Shorthand for the table.
const fn opt(short: char, long: &'static str, value: Option<&'static str>, desc: &'static str) -> Opt {
    Opt {
        short,
        long,
        value,
        desc,
    }
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[Help] = &[
    Help {
        name: "console",
        args: "[-q|--quiet] <Domain>",
        desc: "Attach to <Domain>'s console.",
        options: &[opt(
            'q',
            "quiet",
            None,
            "Do not print an error message if the domain does not exist",
        )],
    },
    Help {
        name: "create",
        args: "<ConfigFile> [options] [vars]",
        desc: "Create a domain based on <ConfigFile>.",
        options: &[
            opt(
                'c',
                "console_autoconnect",
                None,
                "Connect to the console after the domain is created",
            ),
            opt('p', "paused", None, "Leave the domain paused after it is created"),
        ],
    },
    Help {
        name: "destroy",
        args: "<Domain>",
        desc: "Terminate a domain immediately.",
        options: &[],
    },
    Help {
        name: "help",
        args: "[Command]",
        desc: "Display this message, or the usage of one command.",
        options: &[],
    },
    Help {
        name: "list",
        args: "[options] [Domain, ...]",
        desc: "List information about all/some domains.",
        options: &[opt('l', "long", None, "Output all VM details in SXP")],
    },
    Help {
        name: "mem-max",
        args: "<Domain> <Mem>",
        desc: "Set the maximum amount reservation for a domain.",
        options: &[],
    },
    Help {
        name: "mem-set",
        args: "<Domain> <Mem>",
        desc: "Set the current memory usage for a domain.",
        options: &[],
    },
    Help {
        name: "pause",
        args: "<Domain>",
        desc: "Pause execution of a domain.",
        options: &[],
    },
    Help {
        name: "reboot",
        args: "<Domain> [-wa]",
        desc: "Reboot a domain.",
        options: &[
            opt('w', "wait", None, "Wait for reboot to complete."),
            opt('a', "all", None, "Reboot all domains."),
        ],
    },
    Help {
        name: "shutdown",
        args: "<Domain> [-waRH]",
        desc: "Shutdown a domain.",
        options: &[
            opt('w', "wait", None, "Wait for shutdown to complete."),
            opt('a', "all", None, "Shutdown all domains."),
            opt('R', "reboot", None, "Shutdown and reboot."),
            opt('H', "halt", None, "Shutdown without reboot."),
        ],
    },
    Help {
        name: "unpause",
        args: "<Domain>",
        desc: "Unpause a paused domain.",
        options: &[],
    },
    Help {
        name: "uptime",
        args: "[-s] [Domain, ...]",
        desc: "Print uptime for all/some domains.",
        options: &[opt('s', "short", None, "Print one short line per domain")],
    },
    Help {
        name: "vcpu-set",
        args: "<Domain> <vCPUs>",
        desc: "Set the number of active VCPUs allowed for the domain.",
        options: &[],
    },
    Help {
        name: "dmesg",
        args: "[-c|--clear]",
        desc: "Read and/or clear the hypervisor's message buffer.",
        options: &[opt(
            'c',
            "clear",
            None,
            "Clear dmesg buffer as well as printing it",
        )],
    },
    Help {
        name: "domid",
        args: "<DomainName>",
        desc: "Convert a domain name to domain id.",
        options: &[],
    },
    Help {
        name: "domname",
        args: "<DomId>",
        desc: "Convert a domain id to domain name.",
        options: &[],
    },
    Help {
        name: "info",
        args: "",
        desc: "Get information about the Oxen host.",
        options: &[],
    },
    Help {
        name: "sched-credit",
        args: "[-d <Domain> [-w[=WEIGHT]|-c[=CAP]]]",
        desc: "Get/set credit scheduler parameters.",
        options: &[
            opt('d', "domain", Some("DOMAIN"), "Domain to modify"),
            opt('w', "weight", Some("WEIGHT"), "Weight (int)"),
            opt('c', "cap", Some("CAP"), "Cap (int)"),
        ],
    },
    Help {
        name: "vcpu-list",
        args: "[Domain, ...]",
        desc: "List the VCPUs for all/some domains.",
        options: &[],
    },
    Help {
        name: "vcpu-pin",
        args: "<Domain> <VCPU|all> <CPUs|all>",
        desc: "Set which CPUs a VCPU can use.",
        options: &[],
    },
    Help {
        name: "soak",
        args: "<Cycles> [ConfigFile]",
        desc: "Oxen test/maintenance: create and destroy a domain from <ConfigFile> (default hello) \
               <Cycles> times; check that every frame comes back.",
        options: &[],
    },
    Help {
        name: "poweroff",
        args: "",
        desc: "Oxen test/maintenance: power dom0 off once no domain is left and all memory is back \
               (as a crash otherwise).",
        options: &[],
    },
];

/// Old names xm still took.
const ALIASES: [(&str, &str); 2] = [("balloon", "mem-set"), ("set-vcpus", "vcpu-set")];

/// The command named `name`.
pub fn help_for(name: &str) -> Option<&'static Help> {
    COMMANDS.iter().find(|h| h.name == name)
}

/// Which vCPUs `vcpu-pin` pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VcpuSel {
    /// Every vCPU of the domain.
    All,
    /// One.
    One(u32),
}

/// Which domains `shutdown` and `reboot` act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every domain but dom0 (`-a`).
    All,
    /// One, by name or ID.
    One(String),
}

/// A command line, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `list [-l] [Domain ...]`.
    List {
        /// `-l`: the s-expression detail.
        long: bool,
        /// The domains to show (all when empty).
        domains: Vec<String>,
    },
    /// `create CFG [-c] [-p] [key=value ...]`.
    Create {
        /// The config file.
        config: String,
        /// `-c`: attach to its console.
        console: bool,
        /// `-p`: leave it paused.
        paused: bool,
        /// `key=value` overrides.
        vars: Vec<String>,
    },
    /// `destroy DOM`.
    Destroy {
        /// The domain.
        domain: String,
    },
    /// `shutdown` and `reboot`.
    Shutdown {
        /// Which domains.
        target: Target,
        /// `-w`: wait until they have stopped.
        wait: bool,
        /// Power off or reboot.
        reason: ShutdownReason,
    },
    /// `pause DOM`.
    Pause {
        /// The domain.
        domain: String,
    },
    /// `unpause DOM`.
    Unpause {
        /// The domain.
        domain: String,
    },
    /// `console DOM`.
    Console {
        /// The domain.
        domain: String,
        /// `-q`: no message if it does not exist.
        quiet: bool,
    },
    /// `dmesg [-c]`.
    Dmesg {
        /// `-c`: read only newer messages from now on.
        clear: bool,
    },
    /// `info`.
    Info,
    /// `uptime [-s] [Domain ...]`.
    Uptime {
        /// `-s`.
        short: bool,
        /// The domains (all when empty).
        domains: Vec<String>,
    },
    /// `sched-credit [-d DOM] [-w W] [-c CAP]`.
    SchedCredit {
        /// `-d`.
        domain: Option<String>,
        /// `-w`.
        weight: Option<u32>,
        /// `-c`.
        cap: Option<u32>,
    },
    /// `mem-set DOM MB`.
    MemSet {
        /// The domain.
        domain: String,
        /// The target, MiB.
        mib: u64,
    },
    /// `mem-max DOM MB`.
    MemMax {
        /// The domain.
        domain: String,
        /// The maximum, MiB.
        mib: u64,
    },
    /// `vcpu-list [Domain ...]`.
    VcpuList {
        /// The domains (all when empty).
        domains: Vec<String>,
    },
    /// `vcpu-set DOM N`.
    VcpuSet {
        /// The domain.
        domain: String,
        /// vCPUs to have up.
        count: u32,
    },
    /// `vcpu-pin DOM VCPU CPUS`.
    VcpuPin {
        /// The domain.
        domain: String,
        /// Which vCPUs.
        vcpu: VcpuSel,
        /// The CPU list as typed (`all`, `0-1,3`, `^2`); `xm/vcpu.rs` reads it.
        cpus: String,
    },
    /// `domid NAME`.
    Domid {
        /// The name.
        name: String,
    },
    /// `domname ID`.
    Domname {
        /// The ID as typed.
        id: String,
    },
    /// `help [CMD]`, `CMD --help`, or `xm` alone.
    Help {
        /// The command asked about.
        topic: Option<String>,
    },
    /// `poweroff` (Oxen's own).
    Poweroff,
    /// `soak N [CFG]` (Oxen's own).
    Soak {
        /// How many times to create and destroy the domain.
        cycles: u32,
        /// The config file (`hello` when not given).
        config: String,
    },
}

/// Why a line is not a command; `Display` is what the shell prints.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// The line cannot be split into words.
    Words(super::words::WordsError),
    /// No such command.
    Unknown(String),
    /// A command used wrongly: the message, then the command's usage.
    Usage(&'static Help, String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Words(e) => write!(f, "Error: {e}"),
            Error::Unknown(word) => write!(
                f,
                "Error: '{word}' is not a valid command.\nType 'help' for a list of commands."
            ),
            Error::Usage(help, message) => write!(f, "Error: {message}\n\n{}", usage(help)),
        }
    }
}

/// `help CMD`: `Usage: xm NAME ARGS`, the description and the options, as
/// xm's `cmdHelp` prints them (no trailing newline).
pub fn usage(help: &Help) -> String {
    let mut out = String::new();
    let _ = write!(out, "Usage: xm {} {}", help.name, help.args);
    let _ = write!(out, "\n\n{}", help.desc);
    for o in help.options {
        let shown = match o.value {
            Some(v) => alloc::format!("-{} {v}, --{}={v}", o.short, o.long),
            None => alloc::format!("-{}, --{}", o.short, o.long),
        };
        let _ = write!(out, "\n  {shown:<30} {}", o.desc);
    }
    out
}

/// `help`: every command with its description, as xm's `longHelp`.
pub fn long_help() -> String {
    let mut out = String::from(
        "Usage: xm <subcommand> [args]\n\nControl, list, and manipulate Oxen guest instances.\n\n\
         xm full list of subcommands:\n\n",
    );
    for h in COMMANDS {
        say!(out, " {:<20} {}", h.name, h.desc);
    }
    out.push_str(
        "\n<Domain> can either be the Domain Name or Id.\n\
         The 'xm' in front is optional. 'help <subcommand>' shows its usage.",
    );
    out
}

/// The command `word` names: exact, an alias, or a unique prefix.
pub fn lookup(word: &str) -> Option<&'static Help> {
    if let Some(h) = help_for(word) {
        return Some(h);
    }
    if let Some((_, name)) = ALIASES.iter().find(|(alias, _)| *alias == word) {
        return help_for(name);
    }
    if word.len() > 1 {
        let mut matches = COMMANDS.iter().filter(|h| h.name.starts_with(word));
        if let (Some(h), None) = (matches.next(), matches.next()) {
            return Some(h);
        }
    }
    None
}

/// The command in `words` (`None` for an empty line).
pub fn parse(words: &[String]) -> Result<Option<Command>, Error> {
    let (words, had_xm) = match words.split_first() {
        Some((xm, rest)) if xm == "xm" => (rest, true),
        _ => (words, false),
    };
    let Some((first, rest)) = words.split_first() else {
        // `xm` alone shows the commands, as xm does; an empty line nothing.
        return Ok(had_xm.then_some(Command::Help { topic: None }));
    };
    let help = lookup(first).ok_or_else(|| Error::Unknown(first.clone()))?;
    if rest.iter().any(|w| w == "-h" || w == "--help") && help.name != "help" {
        return Ok(Some(Command::Help {
            topic: Some(help.name.into()),
        }));
    }
    let (opts, args) = getopt(help, rest)?;
    let flag = |c: char| opts.iter().any(|(o, _)| *o == c);
    let value = |c: char| {
        opts.iter()
            .rev()
            .find(|(o, _)| *o == c)
            .and_then(|(_, v)| v.clone())
    };
    let usage_err = |message: String| Error::Usage(help, message);
    let exactly = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            let s = if n == 1 { "" } else { "s" };
            Err(usage_err(alloc::format!(
                "'xm {}' requires {n} argument{s}.",
                help.name
            )))
        }
    };
    let invalid = || usage_err("Invalid argument.".into());
    let one = |args: &[String]| args.first().cloned().unwrap_or_default();

    let command = match help.name {
        "console" => {
            if args.len() != 1 {
                return Err(usage_err("No domain given".into()));
            }
            Command::Console {
                domain: one(&args),
                quiet: flag('q'),
            }
        }
        "create" => {
            let Some((config, vars)) = args.split_first() else {
                return Err(usage_err("'xm create' requires a config file.".into()));
            };
            if let Some(bad) = vars.iter().find(|v| !v.contains('=')) {
                return Err(usage_err(alloc::format!(
                    "'{bad}' is not a setting: give settings as name=value."
                )));
            }
            Command::Create {
                config: config.clone(),
                console: flag('c'),
                paused: flag('p'),
                vars: vars.to_vec(),
            }
        }
        "destroy" => {
            exactly(1)?;
            Command::Destroy { domain: one(&args) }
        }
        "help" => {
            if args.len() > 1 {
                return Err(usage_err("'xm help' takes at most 1 argument.".into()));
            }
            Command::Help {
                topic: args.first().cloned(),
            }
        }
        "list" => Command::List {
            long: flag('l'),
            domains: args,
        },
        "mem-max" | "mem-set" => {
            exactly(2)?;
            let mib = parse_mem_mib(&args[1]).ok_or_else(invalid)?;
            let domain = one(&args);
            if help.name == "mem-max" {
                Command::MemMax { domain, mib }
            } else {
                Command::MemSet { domain, mib }
            }
        }
        "pause" => {
            exactly(1)?;
            Command::Pause { domain: one(&args) }
        }
        "unpause" => {
            exactly(1)?;
            Command::Unpause { domain: one(&args) }
        }
        "reboot" | "shutdown" => {
            let all = flag('a');
            let reboot = help.name == "reboot" || flag('R');
            if flag('R') && flag('H') {
                return Err(usage_err("Can't specify halt and reboot".into()));
            }
            let target = match (all, args.as_slice()) {
                (true, []) => Target::All,
                (false, [domain]) => Target::One(domain.clone()),
                (true, _) => return Err(usage_err("-a does not take a domain.".into())),
                (false, []) => return Err(usage_err("No domain parameter given".into())),
                (false, _) => return Err(usage_err("No multiple domain parameters allowed".into())),
            };
            Command::Shutdown {
                target,
                wait: flag('w'),
                reason: if reboot {
                    ShutdownReason::Reboot
                } else {
                    ShutdownReason::Poweroff
                },
            }
        }
        "uptime" => Command::Uptime {
            short: flag('s'),
            domains: args,
        },
        "vcpu-set" => {
            exactly(2)?;
            let count = parse_u32(&args[1]).ok_or_else(invalid)?;
            Command::VcpuSet {
                domain: one(&args),
                count,
            }
        }
        "dmesg" => {
            exactly(0)?;
            Command::Dmesg { clear: flag('c') }
        }
        "domid" => {
            exactly(1)?;
            Command::Domid { name: one(&args) }
        }
        "domname" => {
            exactly(1)?;
            Command::Domname { id: one(&args) }
        }
        "info" => {
            exactly(0)?;
            Command::Info
        }
        "sched-credit" => {
            exactly(0)?;
            let number = |c: char| match value(c) {
                None => Ok(None),
                Some(v) => parse_u32(&v).map(Some).ok_or_else(invalid),
            };
            let (weight, cap) = (number('w')?, number('c')?);
            let domain = value('d');
            if domain.is_none() && (weight.is_some() || cap.is_some()) {
                return Err(usage_err("No domain given.".into()));
            }
            Command::SchedCredit { domain, weight, cap }
        }
        "vcpu-list" => Command::VcpuList { domains: args },
        "vcpu-pin" => {
            exactly(3)?;
            let vcpu = match args[1].as_str() {
                "all" => VcpuSel::All,
                n => VcpuSel::One(parse_u32(n).ok_or_else(invalid)?),
            };
            Command::VcpuPin {
                domain: one(&args),
                vcpu,
                cpus: args[2].clone(),
            }
        }
        "poweroff" => {
            exactly(0)?;
            Command::Poweroff
        }
        "soak" => {
            let (cycles, config) = match args.as_slice() {
                [cycles] => (cycles, crate::xm::soak::DEFAULT_CONFIG.to_string()),
                [cycles, config] => (cycles, config.clone()),
                _ => return Err(usage_err("'xm soak' requires 1 or 2 arguments.".into())),
            };
            let cycles = parse_u32(cycles).filter(|&n| n > 0).ok_or_else(invalid)?;
            Command::Soak { cycles, config }
        }
        // Every name in COMMANDS has an arm above.
        _ => return Err(Error::Unknown(first.clone())),
    };
    Ok(Some(command))
}

/// Options found (each with its value, if it takes one) and the other words.
type Split = (Vec<(char, Option<String>)>, Vec<String>);

/// Split `args` into options (with their values) and the other words.
fn getopt(help: &'static Help, args: &[String]) -> Result<Split, Error> {
    let fail = |message: String| Error::Usage(help, message);
    let mut opts = Vec::new();
    let mut rest = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            rest.extend(words.cloned());
            break;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let o = help
                .options
                .iter()
                .find(|o| o.long == name)
                .ok_or_else(|| fail(alloc::format!("option --{name} not recognized")))?;
            let value = match (o.value, inline) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(fail(alloc::format!("option --{name} must not have an argument")));
                }
                (Some(_), Some(v)) => Some(v),
                (Some(_), None) => Some(
                    words
                        .next()
                        .cloned()
                        .ok_or_else(|| fail(alloc::format!("option --{name} requires argument")))?,
                ),
            };
            opts.push((o.short, value));
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (i, c) in shorts.char_indices() {
                let o = help
                    .options
                    .iter()
                    .find(|o| o.short == c)
                    .ok_or_else(|| fail(alloc::format!("option -{c} not recognized")))?;
                if o.value.is_none() {
                    opts.push((c, None));
                    continue;
                }
                let attached = &shorts[i + c.len_utf8()..];
                let value = if attached.is_empty() {
                    words
                        .next()
                        .cloned()
                        .ok_or_else(|| fail(alloc::format!("option -{c} requires argument")))?
                } else {
                    attached.to_string()
                };
                opts.push((c, Some(value)));
                break;
            }
        } else {
            rest.push(word.clone());
        }
    }
    Ok((opts, rest))
}

/// A decimal `u32`.
fn parse_u32(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A memory size in MiB as xm's `int_unit(.., 'm')` reads it: a number,
/// optionally followed by `k`, `m` or `g` (any case); kilobytes round down.
pub fn parse_mem_mib(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], Some(c.to_ascii_lowercase())),
        _ => (text, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    match unit {
        None | Some('m') => Some(n),
        Some('k') => Some(n / 1024),
        Some('g') => n.checked_mul(1024),
        Some(_) => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::shell::words::split;

    fn cmd(line: &str) -> Command {
        parse(&split(line).unwrap()).unwrap().unwrap()
    }

    fn err(line: &str) -> String {
        parse(&split(line).unwrap()).unwrap_err().to_string()
    }

    #[test]
    fn xm_is_optional_and_prefixes_work() {
        assert_eq!(cmd("xm list"), cmd("list"));
        assert_eq!(
            cmd("li -l web 3"),
            Command::List {
                long: true,
                domains: ["web".into(), "3".into()].into()
            }
        );
        assert_eq!(cmd("list --long"), cmd("list -l"));
        assert_eq!(parse(&split("  ").unwrap()).unwrap(), None);
        assert_eq!(
            parse(&split("xm").unwrap()).unwrap(),
            Some(Command::Help { topic: None })
        );
        assert_eq!(cmd("balloon web 64"), cmd("mem-set web 64"));
        // "sh" is shutdown only; "s" is too short; "vcpu-" is ambiguous.
        assert!(matches!(cmd("shut web"), Command::Shutdown { .. }));
        assert!(err("s").contains("'s' is not a valid command"));
        assert!(err("vcpu- x").contains("is not a valid command"));
    }

    #[test]
    fn unknown_commands() {
        assert_eq!(
            err("foo"),
            "Error: 'foo' is not a valid command.\nType 'help' for a list of commands."
        );
        assert_eq!(err("xm foo bar"), err("foo"));
        assert_eq!(
            Error::Words(split("'x").unwrap_err()).to_string(),
            "Error: No closing quotation"
        );
    }

    #[test]
    fn create() {
        assert_eq!(
            cmd("xm create hello -c name=web memory=8 -p"),
            Command::Create {
                config: "hello".into(),
                console: true,
                paused: true,
                vars: ["name=web".into(), "memory=8".into()].into()
            }
        );
        assert_eq!(
            cmd("create web extra='a b'"),
            Command::Create {
                config: "web".into(),
                console: false,
                paused: false,
                vars: ["extra=a b".into()].into()
            }
        );
        assert!(err("create").starts_with("Error: 'xm create' requires a config file.\n\nUsage: xm create"));
        assert!(err("create web oops").starts_with("Error: 'oops' is not a setting"));
    }

    #[test]
    fn wrong_arguments_print_the_usage() {
        assert_eq!(
            err("xm destroy"),
            "Error: 'xm destroy' requires 1 argument.\n\nUsage: xm destroy <Domain>\n\n\
             Terminate a domain immediately."
        );
        assert_eq!(
            err("pause a b"),
            "Error: 'xm pause' requires 1 argument.\n\nUsage: xm pause <Domain>\n\nPause execution of a domain."
        );
        assert!(err("vcpu-pin a 0").starts_with("Error: 'xm vcpu-pin' requires 3 arguments."));
        assert_eq!(
            err("list -x"),
            "Error: option -x not recognized\n\nUsage: xm list [options] [Domain, ...]\n\n\
             List information about all/some domains.\n  -l, --long                     Output all VM details in SXP"
        );
        assert!(err("mem-set web lots").starts_with("Error: Invalid argument.\n\nUsage: xm mem-set"));
        assert!(err("vcpu-set web -1").starts_with("Error: option -1 not recognized"));
        assert!(err("shutdown").starts_with("Error: No domain parameter given"));
        assert!(err("shutdown -a web").starts_with("Error: -a does not take a domain."));
        assert!(err("shutdown a b").starts_with("Error: No multiple domain parameters allowed"));
        assert!(err("shutdown -RH web").starts_with("Error: Can't specify halt and reboot"));
        assert!(err("console").starts_with("Error: No domain given"));
        assert!(err("info x").starts_with("Error: 'xm info' requires 0 arguments."));
        assert!(err("help a b").starts_with("Error: 'xm help' takes at most 1 argument."));
    }

    #[test]
    fn shutdown_and_reboot() {
        assert_eq!(
            cmd("shutdown -w web"),
            Command::Shutdown {
                target: Target::One("web".into()),
                wait: true,
                reason: ShutdownReason::Poweroff
            }
        );
        assert_eq!(
            cmd("shutdown -wa"),
            Command::Shutdown {
                target: Target::All,
                wait: true,
                reason: ShutdownReason::Poweroff
            }
        );
        assert_eq!(cmd("shutdown -R 3"), cmd("reboot 3"));
        assert_eq!(cmd("shutdown --halt --wait web"), cmd("shutdown -wH web"));
    }

    #[test]
    fn sched_credit_options() {
        assert_eq!(
            cmd("sched-credit"),
            Command::SchedCredit {
                domain: None,
                weight: None,
                cap: None
            }
        );
        assert_eq!(
            cmd("sched-credit -d Domain-0 -w 512"),
            Command::SchedCredit {
                domain: Some("Domain-0".into()),
                weight: Some(512),
                cap: None
            }
        );
        assert_eq!(
            cmd("sched-credit -dweb -w512 -c50"),
            cmd("sched-credit --domain web --weight=512 --cap 50")
        );
        assert!(err("sched-credit -w 5").starts_with("Error: No domain given.\n\nUsage: xm sched-credit"));
        assert!(err("sched-credit -d web -w x").starts_with("Error: Invalid argument."));
        assert!(err("sched-credit -d").starts_with("Error: option -d requires argument"));
        assert!(err("sched-credit --weight").starts_with("Error: option --weight requires argument"));
        assert!(err("list --long=1").starts_with("Error: option --long must not have an argument"));
        assert!(err("sched-credit web").starts_with("Error: 'xm sched-credit' requires 0 arguments."));
    }

    #[test]
    fn memory_and_vcpus() {
        assert_eq!(
            cmd("mem-set web 64"),
            Command::MemSet {
                domain: "web".into(),
                mib: 64
            }
        );
        for (text, mib) in [
            ("64", 64),
            ("64m", 64),
            ("64M", 64),
            ("1g", 1024),
            ("65536k", 64),
            ("1000k", 0),
        ] {
            assert_eq!(parse_mem_mib(text), Some(mib), "{text}");
        }
        for bad in ["", "m", "1x", "-1", "1.5", "12mm", "99999999999999999999"] {
            assert_eq!(parse_mem_mib(bad), None, "{bad}");
        }
        assert_eq!(
            cmd("vcpu-pin web all 0-1,3"),
            Command::VcpuPin {
                domain: "web".into(),
                vcpu: VcpuSel::All,
                cpus: "0-1,3".into()
            }
        );
        assert!(matches!(
            cmd("vcpu-pin web 2 all"),
            Command::VcpuPin {
                vcpu: VcpuSel::One(2),
                ..
            }
        ));
        assert_eq!(
            cmd("vcpu-set web 2"),
            Command::VcpuSet {
                domain: "web".into(),
                count: 2
            }
        );
        assert!(err("vcpu-set web two").starts_with("Error: Invalid argument."));
    }

    #[test]
    fn soak() {
        assert_eq!(
            cmd("xm soak 200"),
            Command::Soak {
                cycles: 200,
                config: "hello".into()
            }
        );
        assert_eq!(
            cmd("so 3 spin"),
            Command::Soak {
                cycles: 3,
                config: "spin".into()
            }
        );
        assert!(err("soak").starts_with("Error: 'xm soak' requires 1 or 2 arguments.\n\nUsage: xm soak"));
        assert!(err("soak 1 a b").starts_with("Error: 'xm soak' requires 1 or 2 arguments."));
        for bad in ["0", "-1", "x", "99999999999"] {
            assert!(err(&alloc::format!("soak {bad}")).starts_with("Error: "), "{bad}");
        }
        assert!(long_help().contains(" soak                 Oxen test/maintenance:"));
    }

    #[test]
    fn help() {
        assert_eq!(cmd("help"), Command::Help { topic: None });
        assert_eq!(
            cmd("help destroy"),
            Command::Help {
                topic: Some("destroy".into())
            }
        );
        assert_eq!(
            cmd("destroy --help"),
            Command::Help {
                topic: Some("destroy".into())
            }
        );
        assert_eq!(
            cmd("xm list -h"),
            Command::Help {
                topic: Some("list".into())
            }
        );
        let all = long_help();
        for h in COMMANDS {
            assert!(
                all.contains(&alloc::format!(" {:<20} {}", h.name, h.desc)),
                "{}",
                h.name
            );
        }
        assert!(all.contains(" poweroff             Oxen test/maintenance:"));
        assert_eq!(
            usage(help_for("sched-credit").unwrap()),
            "Usage: xm sched-credit [-d <Domain> [-w[=WEIGHT]|-c[=CAP]]]\n\n\
             Get/set credit scheduler parameters.\n  \
             -d DOMAIN, --domain=DOMAIN     Domain to modify\n  \
             -w WEIGHT, --weight=WEIGHT     Weight (int)\n  \
             -c CAP, --cap=CAP              Cap (int)"
        );
    }

    #[test]
    fn every_command_in_the_table_parses() {
        for h in COMMANDS {
            let e = parse(&[h.name.into(), "--bogus".into()]).unwrap_err();
            assert!(matches!(e, Error::Usage(..)), "{}: {e}", h.name);
        }
    }

    #[test]
    fn fuzz_random_words_never_panic() {
        let mut rng = crate::fake::XorShift(42);
        let pieces = [
            "xm",
            "list",
            "-l",
            "create",
            "-c",
            "-p",
            "=",
            "name=",
            "sched-credit",
            "-d",
            "-w",
            "-c",
            "--",
            "--weight=",
            "vcpu-pin",
            "all",
            "0-1,3",
            "^1",
            "mem-set",
            "1g",
            "shutdown",
            "-a",
            "-w",
            "help",
            "console",
            "-",
            "",
            "'",
            "\"",
            "\\",
            "x",
            "99999999999999999999",
            "-wa",
            "--long",
            "reboot",
        ];
        for _ in 0..5000 {
            let n = usize::try_from(rng.next() % 8).unwrap();
            let words: Vec<String> = (0..n)
                .map(|_| pieces[usize::try_from(rng.next() % pieces.len() as u64).unwrap()].into())
                .collect();
            let _ = parse(&words);
            let line = words.join(" ");
            if let Ok(w) = split(&line) {
                let _ = parse(&w);
            }
        }
    }
}
