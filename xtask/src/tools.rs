//! Host tools xtask depends on: QEMU, the GRUB rescue-ISO tool chain and the
//! `x86_64-unknown-none` Rust target. Each is checked before first use; when one
//! is missing xtask installs it where it can (root on a Debian-like system, with
//! `apt-get` or `rustup`) and otherwise stops with the exact command to run.
//! `.ci/run` installs the same packages up front.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Context, Result, error};

/// The Rust target the hypervisor is built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// Every Debian package xtask can need, in the order a user would type them.
const ALL_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "grub-pc-bin",
    "grub-common",
    "xorriso",
    "mtools",
];

/// How a tool is found on the host.
#[derive(Clone, Copy, Debug)]
enum Probe {
    /// An executable somewhere on `PATH`.
    Program(&'static str),
    /// A directory that must exist (GRUB's platform files).
    Dir(&'static str),
}

/// A host tool and the Debian package that provides it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    probe: Probe,
    package: &'static str,
}

/// The QEMU system emulator.
pub const QEMU: &[Tool] = &[Tool {
    probe: Probe::Program("qemu-system-x86_64"),
    package: "qemu-system-x86",
}];

/// What `grub-mkrescue` needs to make a BIOS (i386-pc) rescue ISO.
pub const GRUB: &[Tool] = &[
    Tool {
        probe: Probe::Program("grub-mkrescue"),
        package: "grub-common",
    },
    Tool {
        probe: Probe::Program("xorriso"),
        package: "xorriso",
    },
    Tool {
        probe: Probe::Program("mformat"),
        package: "mtools",
    },
    Tool {
        probe: Probe::Dir("/usr/lib/grub/i386-pc"),
        package: "grub-pc-bin",
    },
];

/// Set once `apt-get update` has run in this process.
static APT_UPDATED: AtomicBool = AtomicBool::new(false);

impl Tool {
    fn name(&self) -> &'static str {
        match self.probe {
            Probe::Program(name) | Probe::Dir(name) => name,
        }
    }

    fn present(&self) -> bool {
        match self.probe {
            Probe::Program(name) => find_program(name).is_some(),
            Probe::Dir(path) => Path::new(path).is_dir(),
        }
    }
}

/// Finds an executable on `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Makes sure every tool in `tools` is present, installing the missing ones
/// with `apt-get` when running as root on a Debian-like system.
pub fn ensure(tools: &[Tool]) -> Result<()> {
    let missing: Vec<Tool> = tools.iter().copied().filter(|t| !t.present()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = Vec::new();
    for tool in &missing {
        if !packages.contains(&tool.package) {
            packages.push(tool.package);
        }
    }
    let names: Vec<&str> = missing.iter().map(Tool::name).collect();
    let debian = Path::new("/etc/debian_version").exists();
    if !(is_root() && debian) {
        let hint = if debian { "" } else { " (on Debian or Ubuntu)" };
        return Err(error(format!(
            "missing host tools: {}\ninstall them{hint} with:\n    sudo apt-get install -y {}",
            names.join(", "),
            ALL_PACKAGES.join(" ")
        )));
    }
    let list = packages.join(" ");
    println!("xtask: missing {}", names.join(", "));
    println!("xtask: installing {list} with: apt-get install -y {list}");
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        apt(&["update"])?;
    }
    let mut args = vec!["install", "-y"];
    args.extend(&packages);
    apt(&args)?;
    let still: Vec<&str> = missing.iter().filter(|t| !t.present()).map(Tool::name).collect();
    if !still.is_empty() {
        return Err(error(format!(
            "still missing after installing {list}: {}",
            still.join(", ")
        )));
    }
    Ok(())
}

fn apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if status.success() {
        Ok(())
    } else {
        Err(error(format!("`apt-get {}` failed ({status})", args.join(" "))))
    }
}

/// Whether xtask runs as root (real uid 0).
fn is_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(uid) = uid_from_status(&status)
    {
        return uid == 0;
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The real uid from the text of `/proc/self/status` (`Uid: real effective ...`).
fn uid_from_status(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// Makes sure rustup has the kernel target for the pinned toolchain, adding it
/// if needed. Without rustup (a distribution toolchain) it trusts the user.
pub fn ensure_kernel_target(root: &Path) -> Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output();
    let Ok(out) = listed else {
        println!("xtask: rustup not found; assuming the {KERNEL_TARGET} target is installed");
        return Ok(());
    };
    if !out.status.success() {
        return Err(error(format!(
            "`rustup target list --installed` failed ({})",
            out.status
        )));
    }
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|line| line.trim() == KERNEL_TARGET)
    {
        return Ok(());
    }
    println!("xtask: adding the {KERNEL_TARGET} target with: rustup target add {KERNEL_TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", KERNEL_TARGET])
        .current_dir(root)
        .status()
        .context("cannot run rustup")?;
    if status.success() {
        Ok(())
    } else {
        Err(error(format!(
            "`rustup target add {KERNEL_TARGET}` failed ({status})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_is_read_from_proc_status() {
        let status = "Name:\tcat\nUmask:\t0022\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\n";
        assert_eq!(uid_from_status(status), Some(1000));
        assert_eq!(uid_from_status("Name:\tx\n"), None);
    }

    #[test]
    fn every_package_is_in_the_install_hint() {
        for tool in QEMU.iter().chain(GRUB) {
            assert!(ALL_PACKAGES.contains(&tool.package), "{}", tool.package);
        }
    }
}
