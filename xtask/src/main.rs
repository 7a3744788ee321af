//! `cargo xtask`: Oxen's build, run and test driver, a host program in the
//! workspace (the alias lives in `.cargo/config.toml`). This file reads the
//! command line and dispatches; `build.rs` makes the images and the boot
//! bundle, `guests.rs` builds the guest kernels, `elf.rs` patches their ABI
//! note, `qemu.rs` knows QEMU, `tools.rs` installs host tools, `scenario.rs`
//! reads `tests/*.toml`, `runner.rs` boots them, and `props.rs` knows the
//! hostile-guest property suite those with `props = [...]` run; `soak.rs`
//! creates and destroys domains in a loop (`cargo xtask soak`); `fuzz.rs`
//! runs the hypercall fuzzer beside a canary (`cargo xtask fuzz`), and
//! `qmp.rs` checks W^X from outside for scenarios with `qmp_check_after`.

mod bench;
mod build;
mod elf;
mod error;
mod fuzz;
mod guests;
mod props;
mod qemu;
mod qmp;
mod runner;
mod scenario;
mod soak;
mod tools;

use std::process::{Command, ExitCode};
use std::time::Instant;

use build::{Layout, Plan};
use error::{Context, Result, UsageError, error};
use qemu::{Accel, Boot, Machine, Outcome};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build        build target/oxen/{hypervisor.elf, hypervisor-test.elf, guests/*.elf,
               bundle.cpio, oxen.iso}
  run          build, then boot the hypervisor under QEMU on this terminal
  test         host unit tests, build, then the QEMU scenarios in tests/*.toml
  bench        build, then measure path lengths and domain lifecycle times
               (table; target/oxen/bench.json and bench.svg; docs/benchmarks.md)
  soak         build, then create and destroy domains in dom0 (xm soak) and check that
               every frame comes back and the hypervisor heap does not grow
  fuzz         build, then run the hypercall fuzzer beside a canary and check the
               hypervisor's invariants (tests/fuzz-regressions/README.md)
  help         show this text

run options:
  --accel kvm|tcg     accelerator (default: kvm only with vmx/svm and a usable /dev/kvm)
  --iso               boot the GRUB ISO (multiboot2) instead of -kernel (PVH)
  --machine M         QEMU machine, passed to -M verbatim (default q35)
  --memory SIZE       guest RAM, passed to -m verbatim (default 1G)
  --smp N             CPUs (default 1)
  --append \"...\"      hypervisor command line
  -- ARGS...          extra QEMU arguments

fuzz options:
  --calls N           hypercalls per run (default 100000)
  --seed S            the first seed (default 1)
  --runs K            runs with seeds S, S+1, ... (default 1)
  --keep-going        do not stop at the first failing run, nor a run at its first broken promise
  --allow shx         go where a known hypervisor problem is (see guests/fuzz)
  --regressions       run the saved failing seeds (tests/fuzz-regressions/*.toml) instead
  --no-build          boot what target/oxen/ holds
  --accel kvm|tcg     as for run

test options:
  FILTER              run only scenarios whose file stem contains FILTER
  --jobs N, -j N      scenarios run in parallel (default: CPUs, at most 4)
  --no-unit           skip the host unit tests
  --keep-going        go on to the scenarios even if the unit tests fail
  --accel kvm|tcg     as for run

bench options:
  --quick             fewer samples and boots (under a minute; the full run takes a few)
  --compare OLD.json  after the run, print the change of every figure from OLD.json
  --compare OLD.json NEW.json
                      compare two saved results without running anything
  --no-build          measure what target/oxen/ holds
  --accel kvm|tcg     as for run (KVM: cycles; TCG: instructions under -icount)

soak options:
  --cycles N          domains to create and destroy (default 1000)
  --no-build          boot what target/oxen/ holds
  --accel kvm|tcg     as for run
";

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => return fail(&UsageError(format!("argument {arg:?} is not UTF-8")).into()),
        }
    }
    match dispatch(&args) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(e: &error::Error) -> ExitCode {
    if let Some(usage) = e.downcast_ref::<UsageError>() {
        eprintln!("xtask: {usage}\n\n{USAGE}");
        ExitCode::from(2)
    } else {
        eprintln!("xtask: error: {e}");
        ExitCode::FAILURE
    }
}

fn dispatch(args: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        return Err(UsageError("no command given".into()).into());
    };
    match command.as_str() {
        "build" => {
            Options::parse(rest, &[])?;
            cmd_build()
        }
        "run" => cmd_run(RunArgs::parse(rest)?),
        "test" => cmd_test(TestArgs::parse(rest)?),
        "fuzz" => fuzz::command(rest),
        "bench" => bench::command(rest),
        "soak" => soak::command(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(UsageError(format!("unknown command '{other}'")).into()),
    }
}

/// A parsed option list: `--flag`, `--flag VALUE`, `--flag=VALUE`, positional
/// words, and everything after `--`.
#[derive(Debug, Default)]
struct Options {
    flags: Vec<(String, Option<String>)>,
    positional: Vec<String>,
    rest: Vec<String>,
}

impl Options {
    /// Parses `args`; `spec` lists the accepted flags and whether each takes a value.
    fn parse(args: &[String], spec: &[(&str, bool)]) -> Result<Self> {
        let mut out = Self::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                out.rest = it.cloned().collect();
                break;
            }
            if !arg.starts_with('-') || arg == "-" {
                out.positional.push(arg.clone());
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            let Some(&(canonical, takes_value)) = spec
                .iter()
                .find(|(flag, _)| *flag == name || short(flag) == Some(name))
            else {
                return Err(UsageError(format!("unknown option '{name}'")).into());
            };
            let value = match (takes_value, inline) {
                (true, Some(value)) => Some(value),
                (true, None) => Some(
                    it.next()
                        .cloned()
                        .ok_or_else(|| UsageError(format!("{canonical} needs a value")))?,
                ),
                (false, Some(_)) => {
                    return Err(UsageError(format!("{canonical} takes no value")).into());
                }
                (false, None) => None,
            };
            out.flags.push((canonical.to_string(), value));
        }
        Ok(out)
    }

    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|(f, _)| f == flag)
    }

    /// The last value given for `flag`.
    fn value(&self, flag: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .and_then(|(_, v)| v.as_deref())
    }

    fn number(&self, flag: &str) -> Result<Option<u32>> {
        self.value(flag)
            .map(|v| match v.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(UsageError(format!("{flag} needs a positive number, not '{v}'")).into()),
            })
            .transpose()
    }

    fn accel(&self) -> Result<Option<Accel>> {
        self.value("--accel")
            .map(|v| {
                Accel::parse(v)
                    .ok_or_else(|| UsageError(format!("--accel must be kvm or tcg, not '{v}'")).into())
            })
            .transpose()
    }
}

/// The short form of a flag, if it has one.
fn short(flag: &str) -> Option<&'static str> {
    match flag {
        "--jobs" => Some("-j"),
        _ => None,
    }
}

/// Options of `cargo xtask run`.
#[derive(Debug)]
struct RunArgs {
    accel: Option<Accel>,
    iso: bool,
    machine: Machine,
    append: String,
    extra: Vec<String>,
}

impl RunArgs {
    fn parse(args: &[String]) -> Result<Self> {
        let spec = [
            ("--accel", true),
            ("--iso", false),
            ("--machine", true),
            ("--memory", true),
            ("--smp", true),
            ("--append", true),
        ];
        let opts = Options::parse(args, &spec)?;
        if let Some(word) = opts.positional.first() {
            return Err(UsageError(format!(
                "unexpected argument '{word}' (QEMU arguments go after --)"
            ))
            .into());
        }
        let machine = Machine {
            machine: opts.value("--machine").unwrap_or("q35").to_string(),
            memory: opts.value("--memory").unwrap_or("1G").to_string(),
            smp: opts.number("--smp")?.unwrap_or(1),
        };
        let iso = opts.has("--iso");
        if iso && machine.is_microvm() {
            return Err(UsageError(format!(
                "--iso needs a machine with firmware to boot a CD (pc or q35), not '{}'",
                machine.machine
            ))
            .into());
        }
        Ok(Self {
            accel: opts.accel()?,
            iso,
            machine,
            append: opts.value("--append").unwrap_or("").to_string(),
            extra: opts.rest,
        })
    }
}

/// Options of `cargo xtask test`.
#[derive(Debug)]
struct TestArgs {
    filter: Option<String>,
    jobs: Option<usize>,
    unit: bool,
    keep_going: bool,
    accel: Option<Accel>,
}

impl TestArgs {
    fn parse(args: &[String]) -> Result<Self> {
        let spec = [
            ("--jobs", true),
            ("--no-unit", false),
            ("--keep-going", false),
            ("--accel", true),
        ];
        let opts = Options::parse(args, &spec)?;
        if opts.positional.len() > 1 || !opts.rest.is_empty() {
            return Err(UsageError("test takes at most one FILTER".into()).into());
        }
        let jobs = opts
            .number("--jobs")?
            .map(|n| usize::try_from(n).context("--jobs is too large"))
            .transpose()?;
        Ok(Self {
            filter: opts.positional.first().cloned(),
            jobs,
            unit: !opts.has("--no-unit"),
            keep_going: opts.has("--keep-going"),
            accel: opts.accel()?,
        })
    }
}

/// The accelerator to use: the user's choice, or what the host supports.
fn pick_accel(choice: Option<Accel>) -> Accel {
    match choice {
        Some(accel) => {
            println!("xtask: accelerator {accel} (--accel)");
            accel
        }
        None => {
            let (accel, why) = qemu::detect_accel();
            println!("xtask: accelerator {accel} ({why})");
            accel
        }
    }
}

fn cmd_build() -> Result<ExitCode> {
    let layout = Layout::new()?;
    build::build(
        &layout,
        &Plan {
            test_image: true,
            iso_cmdline: Some(String::new()),
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_run(args: RunArgs) -> Result<ExitCode> {
    let layout = Layout::new()?;
    tools::ensure(tools::QEMU)?;
    build::build(
        &layout,
        &Plan {
            test_image: false,
            iso_cmdline: args.iso.then(|| args.append.clone()),
        },
    )?;
    let accel = pick_accel(args.accel);
    let boot = if args.iso {
        Boot::Iso { iso: layout.iso() }
    } else {
        Boot::Pvh {
            kernel: layout.hypervisor_elf(),
            initrd: Some(layout.bundle()),
            append: args.append.clone(),
        }
    };
    let mut qemu_args = qemu::command_line(qemu::Console::Interactive, &args.machine, accel, &boot);
    qemu_args.extend(args.extra.iter().map(Into::into));
    let outcome = qemu::run_interactive(&qemu_args)?;
    println!("\nxtask: {outcome}");
    Ok(match outcome {
        Outcome::Success | Outcome::Quit => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Runs the host unit tests; returns whether they passed.
fn unit_tests(layout: &Layout) -> Result<bool> {
    // The hypervisor binary has `test = false`; its library is host-testable.
    let args = ["test", "--workspace"];
    println!("xtask: host unit tests: cargo {}", args.join(" "));
    let status = Command::new(build::cargo())
        .args(args)
        .current_dir(&layout.root)
        .status()
        .context("cannot run cargo test")?;
    Ok(status.success())
}

fn cmd_test(args: TestArgs) -> Result<ExitCode> {
    let layout = Layout::new()?;
    let scenarios = scenario::load_all(&layout.scenarios(), args.filter.as_deref())?;
    if let Some(filter) = &args.filter
        && scenarios.is_empty()
    {
        return Err(error(format!("no scenario in tests/ matches '{filter}'")));
    }
    // Before the unit tests, so that xtask's own runner test boots QEMU too.
    tools::ensure(tools::QEMU)?;
    tools::ensure(tools::GRUB)?;
    let mut ok = true;
    if args.unit && !unit_tests(&layout)? {
        ok = false;
        if !args.keep_going {
            return Err(error(
                "host unit tests failed (--keep-going runs the scenarios anyway)",
            ));
        }
        println!("xtask: host unit tests failed; going on (--keep-going)");
    }
    build::build(
        &layout,
        &Plan {
            test_image: true,
            iso_cmdline: Some(String::new()),
        },
    )?;
    let accel = pick_accel(args.accel);
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .min(4)
    });
    let config = runner::Config {
        test_elf: layout.hypervisor_test_elf(),
        release_elf: layout.hypervisor_elf(),
        bundle: layout.bundle(),
        out_dir: layout.test_out(),
        accel,
        qemu: qemu::QEMU_BINARY.into(),
    };
    println!(
        "xtask: running {} scenario{} on {jobs} job{}",
        scenarios.len(),
        if scenarios.len() == 1 { "" } else { "s" },
        if jobs == 1 { "" } else { "s" }
    );
    let started = Instant::now();
    let reports = runner::run_all(&scenarios, &config, jobs, |report| {
        println!("{}", report.status_line());
    });
    let failed: Vec<&runner::Report> = reports.iter().filter(|r| !r.passed()).collect();
    for report in &failed {
        println!("\n---- scenario {} FAILED: {}", report.name, report.reason());
        println!("last {} transcript lines:", runner::TAIL_LINES);
        for line in &report.tail {
            println!("    {line}");
        }
        println!("transcript: {}", layout.show(&report.transcript));
    }
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|r| r.name.as_str()).collect();
        println!("\nfailed scenarios: {}", names.join(" "));
    }
    println!(
        "xtask: scenarios took {:.2} s; transcripts in {}",
        started.elapsed().as_secs_f64(),
        layout.show(&layout.test_out())
    );
    println!(
        "scenarios: {} passed, {} failed",
        reports.len() - failed.len(),
        failed.len()
    );
    if !ok {
        println!("xtask: host unit tests failed");
    }
    Ok(if ok && failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_arguments() -> Result<()> {
        let run = RunArgs::parse(&strings(&[
            "--accel=tcg",
            "--memory",
            "512M",
            "--smp=2",
            "--append",
            "loglvl=debug smp=2",
            "--",
            "-s",
            "-S",
        ]))?;
        assert_eq!(run.accel, Some(Accel::Tcg));
        assert_eq!(run.machine.machine, "q35");
        assert_eq!(run.machine.memory, "512M");
        assert_eq!(run.machine.smp, 2);
        assert_eq!(run.append, "loglvl=debug smp=2");
        assert_eq!(run.extra, ["-s", "-S"]);
        assert!(!run.iso);
        Ok(())
    }

    fn usage_error(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Ok(v) => panic!("accepted: {v:?}"),
            Err(e) => {
                assert!(e.downcast_ref::<UsageError>().is_some(), "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn bad_run_arguments() {
        let parse = |a: &[&str]| RunArgs::parse(&strings(a));
        assert!(usage_error(parse(&["--iso", "--machine", "microvm"])).contains("microvm"));
        assert!(usage_error(parse(&["--accel", "hvf"])).contains("hvf"));
        assert!(usage_error(parse(&["--smp", "0"])).contains("--smp"));
        assert!(usage_error(parse(&["--memory"])).contains("needs a value"));
        assert!(usage_error(parse(&["--iso=yes"])).contains("no value"));
        assert!(usage_error(parse(&["--bogus"])).contains("--bogus"));
        assert!(usage_error(parse(&["extra"])).contains("after --"));
    }

    #[test]
    fn test_arguments() -> Result<()> {
        let t = TestArgs::parse(&strings(&["pvh", "-j", "3", "--no-unit", "--keep-going"]))?;
        assert_eq!(t.filter.as_deref(), Some("pvh"));
        assert_eq!(t.jobs, Some(3));
        assert!(!t.unit && t.keep_going);
        let d = TestArgs::parse(&[])?;
        assert!(d.filter.is_none() && d.jobs.is_none() && d.unit && !d.keep_going);
        assert!(usage_error(TestArgs::parse(&strings(&["a", "b"]))).contains("FILTER"));
        assert!(usage_error(TestArgs::parse(&strings(&["--jobs=x"]))).contains("--jobs"));
        Ok(())
    }

    #[test]
    fn unknown_command_is_a_usage_error() {
        assert!(usage_error(dispatch(&strings(&["frobnicate"]))).contains("frobnicate"));
        assert!(usage_error(dispatch(&[])).contains("no command"));
    }
}
