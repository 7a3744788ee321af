//! QEMU for Oxen: accelerator detection, command-line construction, and the
//! meaning of QEMU's exit status. `cargo xtask run` (here, [`run_interactive`])
//! and the scenario runner (`runner.rs`) both build their command lines with
//! [`command_line`], so the two boot the hypervisor the same way.
//!
//! The hypervisor leaves QEMU through the `isa-debug-exit` device at port
//! 0xf4: writing value `v` makes QEMU exit with status `(v << 1) | 1`. Oxen
//! writes [`DEBUG_EXIT_SUCCESS`] or [`DEBUG_EXIT_FAILURE`].

use std::ffi::OsString;
use std::fmt::{self, Display};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::error::{Context, Result};

/// The QEMU binary.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";

/// The `isa-debug-exit` device the hypervisor reports its result through.
pub const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// Value the hypervisor writes to the debug-exit port on success.
pub const DEBUG_EXIT_SUCCESS: u8 = 0x10;

/// Value the hypervisor writes to the debug-exit port on failure.
pub const DEBUG_EXIT_FAILURE: u8 = 0x11;

/// QEMU's exit status after the guest wrote `value` to `isa-debug-exit`.
pub const fn debug_exit_status(value: u8) -> i32 {
    ((value as i32) << 1) | 1
}

/// QEMU's exit status when the hypervisor reports success (33).
pub const STATUS_SUCCESS: i32 = debug_exit_status(DEBUG_EXIT_SUCCESS);

/// QEMU's exit status when the hypervisor reports failure (35).
pub const STATUS_FAILURE: i32 = debug_exit_status(DEBUG_EXIT_FAILURE);

/// The accelerator QEMU runs the hypervisor with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware-assisted KVM.
    Kvm,
    /// QEMU's software emulator.
    Tcg,
}

impl Accel {
    /// Parses `kvm` or `tcg`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "kvm" => Some(Self::Kvm),
            "tcg" => Some(Self::Tcg),
            _ => None,
        }
    }

    /// The `-accel` and `-cpu` arguments.
    ///
    /// Under KVM, `-cpu host` and `-cpu max` abort with "failed to set MSR
    /// 0x10a" on these hosts, so the arch-capabilities MSR is left out
    /// (ARCHITECTURE.md §7). TCG's `max` model emulates AMD SVM with nested
    /// paging, SMEP, SMAP and 1 GiB pages.
    pub fn args(self) -> [&'static str; 4] {
        match self {
            Self::Kvm => ["-accel", "kvm", "-cpu", "host,-arch-capabilities"],
            Self::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
    }
}

impl Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        })
    }
}

/// Picks the accelerator for this host, and says why.
///
/// KVM is used only where the CPU advertises hardware virtualization (`vmx` or
/// `svm` in `/proc/cpuinfo`) *and* `/dev/kvm` opens read-write. A usable
/// `/dev/kvm` alone is not enough: on the development and CI machines it is
/// `kvm_pvm`, a software KVM for PVM-aware Linux guests that cannot run a
/// ring-0 kernel faithfully (`syscall` from CPL 3 stays in CPL 3, `int n` at
/// CPL 3 raises #UD, `xgetbv` hangs; see ARCHITECTURE.md §7). Those hosts
/// show no `vmx`/`svm` flag, so they get TCG, and Oxen carries no workarounds
/// for `kvm_pvm`.
pub fn detect_accel() -> (Accel, &'static str) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !cpu_has_virtualization(&cpuinfo) {
        return (Accel::Tcg, "the host CPU shows no vmx/svm flag");
    }
    let kvm_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if kvm_usable {
        (Accel::Kvm, "vmx/svm present and /dev/kvm usable")
    } else {
        (Accel::Tcg, "/dev/kvm is missing or not accessible")
    }
}

/// Whether a `/proc/cpuinfo` text lists the `vmx` or `svm` CPU flag.
fn cpu_has_virtualization(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim() == "flags")
        .any(|(_, flags)| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// Machine type, memory and CPU count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Passed to `-M` verbatim (`q35`, `pc`, `microvm,acpi=off`, ...).
    pub machine: String,
    /// Passed to `-m` verbatim (`128M`, `1G`, ...).
    pub memory: String,
    /// Number of CPUs (`-smp`).
    pub smp: u32,
}

impl Machine {
    /// Whether the machine type is `microvm`, which has no firmware to boot a CD.
    pub fn is_microvm(&self) -> bool {
        machine_is_microvm(&self.machine)
    }
}

/// Whether a `-M` value names the `microvm` machine type.
pub fn machine_is_microvm(machine: &str) -> bool {
    machine.split(',').next().map(str::trim) == Some("microvm")
}

/// How the hypervisor image reaches the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// `-kernel` (QEMU takes the PVH entry), the bundle as `-initrd`.
    Pvh {
        /// The hypervisor ELF.
        kernel: PathBuf,
        /// The boot bundle, if any.
        initrd: Option<PathBuf>,
        /// The hypervisor command line.
        append: String,
    },
    /// A GRUB rescue ISO (multiboot2) as the CD-ROM; GRUB's config carries the
    /// command line.
    Iso {
        /// The ISO image.
        iso: PathBuf,
    },
}

/// Where the serial console goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// The user's terminal, multiplexed with the QEMU monitor (Ctrl-A C; Ctrl-A X quits).
    Interactive,
    /// xtask's pipes: stdin feeds the serial port, stdout carries its output,
    /// and Ctrl-C is not turned into a signal for QEMU.
    Piped,
}

/// The full QEMU argument list (without the binary itself).
pub fn command_line(console: Console, machine: &Machine, accel: Accel, boot: &Boot) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |arg: &str| args.push(arg.into());
    push("-display");
    push("none");
    push("-nodefaults");
    push("-no-reboot");
    match console {
        Console::Interactive => {
            push("-serial");
            push("mon:stdio");
        }
        Console::Piped => {
            push("-chardev");
            push("stdio,id=ser0,signal=off");
            push("-serial");
            push("chardev:ser0");
        }
    }
    push("-device");
    push(DEBUG_EXIT_DEVICE);
    push("-M");
    push(&machine.machine);
    push("-m");
    push(&machine.memory);
    push("-smp");
    push(&machine.smp.to_string());
    for arg in accel.args() {
        push(arg);
    }
    match boot {
        Boot::Pvh {
            kernel,
            initrd,
            append,
        } => {
            args.push("-kernel".into());
            args.push(kernel.into());
            if let Some(initrd) = initrd {
                args.push("-initrd".into());
                args.push(initrd.into());
            }
            args.push("-append".into());
            args.push(append.into());
        }
        Boot::Iso { iso } => {
            args.push("-cdrom".into());
            args.push(iso.into());
            args.push("-boot".into());
            args.push("d".into());
        }
    }
    args
}

/// Arguments that give QMP and the gdbstub a Unix socket each (servers,
/// not waiting for a client) and hold the CPU at reset (`-S`) until a
/// client lets it go: what the runner's W^X check needs (`qmp.rs`).
pub fn monitor_args(qmp: &Path, gdb: &Path) -> Vec<OsString> {
    let socket = |path: &Path| {
        let mut arg = OsString::from("unix:");
        arg.push(path);
        arg.push(",server=on,wait=off");
        arg
    };
    vec![
        "-qmp".into(),
        socket(qmp),
        "-gdb".into(),
        socket(gdb),
        "-S".into(),
    ]
}

/// Renders a command line for humans (and for copying into a shell).
pub fn shell_words(program: &str, args: &[OsString]) -> String {
    let mut out = String::from(program);
    for arg in args {
        let arg = arg.to_string_lossy();
        out.push(' ');
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=.,:/+@%".contains(c));
        if plain {
            out.push_str(&arg);
        } else {
            out.push('\'');
            out.push_str(&arg.replace('\'', r"'\''"));
            out.push('\'');
        }
    }
    out
}

/// What QEMU's exit status says about the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The hypervisor wrote [`DEBUG_EXIT_SUCCESS`] (status 33).
    Success,
    /// The hypervisor wrote [`DEBUG_EXIT_FAILURE`] (status 35).
    Failure,
    /// QEMU exited with status 0: quit from the monitor, or the guest powered off.
    Quit,
    /// Status 1: a QEMU error (bad option, missing file), or debug-exit value 0.
    QemuError,
    /// Another odd status: the guest wrote this other value to the debug-exit port.
    DebugExit {
        /// The value written.
        value: i32,
        /// QEMU's exit status.
        status: i32,
    },
    /// Any other exit status.
    Status(i32),
    /// QEMU was killed by a signal (a timeout, or the user).
    Signal(Option<i32>),
}

impl Outcome {
    /// Classifies an exit code (`None` when the process died from a signal).
    pub fn from_code(code: Option<i32>, signal: Option<i32>) -> Self {
        match code {
            Some(STATUS_SUCCESS) => Self::Success,
            Some(STATUS_FAILURE) => Self::Failure,
            Some(0) => Self::Quit,
            Some(1) => Self::QemuError,
            Some(status) if status & 1 == 1 && status > 0 => Self::DebugExit {
                value: status >> 1,
                status,
            },
            Some(status) => Self::Status(status),
            None => Self::Signal(signal),
        }
    }

    /// Classifies a finished process's status.
    pub fn from_status(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self::from_code(status.code(), status.signal())
    }
}

impl Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Success => write!(
                f,
                "hypervisor reported success (debug-exit {DEBUG_EXIT_SUCCESS:#x}, status {STATUS_SUCCESS})"
            ),
            Self::Failure => write!(
                f,
                "hypervisor reported failure (debug-exit {DEBUG_EXIT_FAILURE:#x}, status {STATUS_FAILURE})"
            ),
            Self::Quit => f.write_str("QEMU quit (status 0: monitor quit or guest power-off)"),
            Self::QemuError => f.write_str("QEMU failed (status 1: a QEMU error, or debug-exit value 0)"),
            Self::DebugExit { value, status } => {
                write!(f, "unexpected debug-exit value {value:#x} (status {status})")
            }
            Self::Status(status) => write!(f, "QEMU exited with status {status}"),
            Self::Signal(Some(signal)) => write!(f, "QEMU was killed by signal {signal}"),
            Self::Signal(None) => f.write_str("QEMU was killed"),
        }
    }
}

/// Boots interactively with the serial console and QEMU monitor on the
/// terminal, and returns what the exit status means.
pub fn run_interactive(args: &[OsString]) -> Result<Outcome> {
    println!("xtask: {}", shell_words(QEMU_BINARY, args));
    println!("xtask: serial console below; Ctrl-A X quits QEMU, Ctrl-A C toggles its monitor");
    let status = Command::new(QEMU_BINARY)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {QEMU_BINARY}"))?;
    Ok(Outcome::from_status(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn debug_exit_values_map_to_statuses() {
        assert_eq!(STATUS_SUCCESS, 33);
        assert_eq!(STATUS_FAILURE, 35);
        assert_eq!(Outcome::from_code(Some(33), None), Outcome::Success);
        assert_eq!(Outcome::from_code(Some(35), None), Outcome::Failure);
        assert_eq!(Outcome::from_code(Some(0), None), Outcome::Quit);
        assert_eq!(Outcome::from_code(Some(1), None), Outcome::QemuError);
        assert_eq!(
            Outcome::from_code(Some(5), None),
            Outcome::DebugExit { value: 2, status: 5 }
        );
        assert_eq!(Outcome::from_code(Some(2), None), Outcome::Status(2));
        assert_eq!(Outcome::from_code(None, Some(9)), Outcome::Signal(Some(9)));
        assert!(Outcome::Failure.to_string().contains("35"));
    }

    #[test]
    fn virtualization_flags_are_found() {
        let amd = "processor\t: 0\nflags\t\t: fpu vme svm lm\n";
        let intel = "flags\t: fpu vmx\n";
        let none = "flags\t: fpu vme lm hypervisor\nvmx flags\t: ept\n";
        assert!(cpu_has_virtualization(amd));
        assert!(cpu_has_virtualization(intel));
        assert!(!cpu_has_virtualization(none));
        assert!(!cpu_has_virtualization(""));
    }

    #[test]
    fn microvm_is_recognised_with_options() {
        assert!(machine_is_microvm("microvm"));
        assert!(machine_is_microvm("microvm,acpi=off"));
        assert!(!machine_is_microvm("q35"));
        assert!(!machine_is_microvm("pc,accel=tcg"));
    }

    #[test]
    fn pvh_command_line() {
        let machine = Machine {
            machine: "microvm".into(),
            memory: "128M".into(),
            smp: 2,
        };
        let boot = Boot::Pvh {
            kernel: "k.elf".into(),
            initrd: Some("b.cpio".into()),
            append: "oxen_test=boot".into(),
        };
        let args = strings(&command_line(Console::Piped, &machine, Accel::Tcg, &boot));
        let expected = "-display none -nodefaults -no-reboot -chardev stdio,id=ser0,signal=off \
            -serial chardev:ser0 -device isa-debug-exit,iobase=0xf4,iosize=0x04 -M microvm \
            -m 128M -smp 2 -accel tcg -cpu max -kernel k.elf -initrd b.cpio -append oxen_test=boot";
        assert_eq!(args.join(" "), expected);
    }

    #[test]
    fn iso_command_line_without_initrd() {
        let machine = Machine {
            machine: "q35".into(),
            memory: "1G".into(),
            smp: 1,
        };
        let boot = Boot::Iso { iso: "o.iso".into() };
        let args = strings(&command_line(Console::Interactive, &machine, Accel::Kvm, &boot));
        assert!(args.windows(2).any(|w| w == ["-serial", "mon:stdio"]));
        assert!(args.windows(2).any(|w| w == ["-cpu", "host,-arch-capabilities"]));
        assert!(args.ends_with(&["-cdrom".into(), "o.iso".into(), "-boot".into(), "d".into()]));
        assert!(!args.iter().any(|a| a == "-kernel" || a == "-initrd"));
    }

    #[test]
    fn monitor_sockets() {
        let args = strings(&monitor_args(Path::new("/tmp/q.sock"), Path::new("/tmp/g.sock")));
        assert_eq!(
            args.join(" "),
            "-qmp unix:/tmp/q.sock,server=on,wait=off -gdb unix:/tmp/g.sock,server=on,wait=off -S"
        );
    }

    #[test]
    fn shell_words_quotes_what_needs_it() {
        let args: Vec<OsString> = vec!["-append".into(), "a=1 b='x'".into(), "".into()];
        assert_eq!(shell_words("qemu", &args), r"qemu -append 'a=1 b='\''x'\''' ''");
    }
}
