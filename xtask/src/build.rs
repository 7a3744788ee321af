//! `cargo xtask build`: the hypervisor ELF (normal and `test-hooks` builds), the
//! boot bundle, and the GRUB rescue ISO, all written under `target/oxen/`.
//! [`make_iso`] and [`corrupt_bundle`] are also used by the scenario runner
//! (`runner.rs`), which builds one ISO per `boot = "iso"` scenario.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use oxen_bundle::Builder;

use crate::error::{Context, Result, error};
use crate::tools::{self, KERNEL_TARGET};

/// The workspace version, which the hypervisor also reports in its banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where everything lives, relative to the workspace root.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The workspace root.
    pub root: PathBuf,
    /// The workspace's `target/` (regardless of `CARGO_TARGET_DIR`, so that the
    /// kernel always lands where the docs say).
    pub target: PathBuf,
    /// `target/oxen/`, xtask's output directory.
    pub out: PathBuf,
}

impl Layout {
    /// The layout of the workspace this xtask was built from.
    pub fn new() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask's manifest directory has no parent")?
            .to_path_buf();
        let target = root.join("target");
        let out = target.join("oxen");
        Ok(Self { root, target, out })
    }

    /// The normal hypervisor image.
    pub fn hypervisor_elf(&self) -> PathBuf {
        self.out.join("hypervisor.elf")
    }

    /// The hypervisor built with `--features test-hooks`.
    pub fn hypervisor_test_elf(&self) -> PathBuf {
        self.out.join("hypervisor-test.elf")
    }

    /// The boot bundle.
    pub fn bundle(&self) -> PathBuf {
        self.out.join("bundle.cpio")
    }

    /// The GRUB rescue ISO.
    pub fn iso(&self) -> PathBuf {
        self.out.join("oxen.iso")
    }

    /// The scenario files (`tests/*.toml`).
    pub fn scenarios(&self) -> PathBuf {
        self.root.join("tests")
    }

    /// Where scenario transcripts and per-scenario files go.
    pub fn test_out(&self) -> PathBuf {
        self.out.join("tests")
    }

    /// `path` relative to the workspace root, for messages.
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// Which hypervisor build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image {
    /// The normal release build: `target/oxen/hypervisor.elf`.
    Release,
    /// The release build with `test-hooks`: `target/oxen/hypervisor-test.elf`.
    Test,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Also build the `test-hooks` image.
    pub test_image: bool,
    /// Build `target/oxen/oxen.iso` with this hypervisor command line.
    pub iso_cmdline: Option<String>,
}

/// Builds what `plan` asks for and prints what was written where.
pub fn build(layout: &Layout, plan: &Plan) -> Result<()> {
    tools::ensure_kernel_target(&layout.root)?;
    if plan.iso_cmdline.is_some() {
        tools::ensure(tools::GRUB)?;
    }
    fs::create_dir_all(&layout.out).with_context(|| format!("cannot create {}", layout.out.display()))?;
    let mut written = vec![build_kernel(layout, Image::Release)?];
    if plan.test_image {
        written.push(build_kernel(layout, Image::Test)?);
    }
    written.push(build_bundle(layout)?);
    if let Some(cmdline) = &plan.iso_cmdline {
        let iso = layout.iso();
        make_iso(&layout.hypervisor_elf(), Some(&layout.bundle()), cmdline, &iso)?;
        written.push(iso);
    }
    println!("xtask: wrote");
    for path in &written {
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!("  {:<32} {size:>10} bytes", layout.show(path));
    }
    Ok(())
}

/// The cargo that runs xtask (`$CARGO`), so nested builds use the pinned toolchain.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Builds one hypervisor image and copies it under `target/oxen/`.
fn build_kernel(layout: &Layout, image: Image) -> Result<PathBuf> {
    let (target_dir, dest, what) = match image {
        Image::Release => (layout.target.clone(), layout.hypervisor_elf(), "hypervisor"),
        Image::Test => (
            layout.target.join("kernel-test"),
            layout.hypervisor_test_elf(),
            "hypervisor (test-hooks)",
        ),
    };
    println!("xtask: building the {what}");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&layout.root).args([
        "build",
        "-p",
        "oxen-hypervisor",
        "--bin",
        "oxen",
        "--release",
        "--target",
        KERNEL_TARGET,
    ]);
    if image == Image::Test {
        cmd.args(["--features", "test-hooks"]);
    }
    cmd.arg("--target-dir").arg(&target_dir);
    // RUSTFLAGS would replace the per-target flags in .cargo/config.toml, and
    // the kernel cannot link without them (static relocation model, kernel
    // code model).
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
        if std::env::var_os(var).is_some() {
            println!(
                "xtask: ignoring {var} for the kernel build (it would replace .cargo/config.toml's flags)"
            );
            cmd.env_remove(var);
        }
    }
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        return Err(error(format!("building the {what} failed ({status})")));
    }
    let built = target_dir.join(KERNEL_TARGET).join("release").join("oxen");
    fs::copy(&built, &dest)
        .with_context(|| format!("cannot copy {} to {}", built.display(), dest.display()))?;
    Ok(dest)
}

/// Packs the boot bundle from the workspace and writes `target/oxen/bundle.cpio`.
fn build_bundle(layout: &Layout) -> Result<PathBuf> {
    let configs = layout.root.join("configs");
    let mut entries = Vec::new();
    if configs.is_dir() {
        collect_files(&configs, "configs", &mut entries)?;
    }
    let bytes = pack_bundle(&entries)?;
    let dest = layout.bundle();
    fs::write(&dest, bytes).with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(dest)
}

/// One file for the bundle: its entry name and contents.
pub type BundleFile = (String, Vec<u8>);

/// Adds every file under `dir` to `out`, named `prefix/<relative path>`, in
/// sorted order so that bundles are reproducible.
fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<BundleFile>) -> Result<()> {
    let mut children: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    children.sort();
    for child in children {
        let file_name = child
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} is not a UTF-8 file name", child.display()))?;
        let name = format!("{prefix}/{file_name}");
        let meta = fs::metadata(&child).with_context(|| format!("cannot stat {}", child.display()))?;
        if meta.is_dir() {
            collect_files(&child, &name, out)?;
        } else if meta.is_file() {
            let data = fs::read(&child).with_context(|| format!("cannot read {}", child.display()))?;
            out.push((name, data));
        }
    }
    Ok(())
}

/// The `manifest` entry: a header, then one `name size` line per other entry.
pub fn manifest(files: &[BundleFile]) -> String {
    let mut text = format!("Oxen boot bundle\nversion {VERSION}\n");
    for (name, data) in files {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{name} {}", data.len());
    }
    text
}

/// Packs `manifest` followed by `files` into a cpio archive. Only regular
/// files are stored; names carry their directories (`configs/a/b.cfg`).
pub fn pack_bundle(files: &[BundleFile]) -> Result<Vec<u8>> {
    let mut builder = Builder::new();
    builder
        .add_file("manifest", 0o644, manifest(files).as_bytes())
        .context("cannot pack the bundle")?;
    for (name, data) in files {
        builder
            .add_file(name, 0o644, data)
            .context("cannot pack the bundle")?;
    }
    Ok(builder.finish())
}

/// Length of a newc header, magic included.
const CPIO_HEADER_LEN: usize = 110;

/// One entry's place in a newc archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntrySpan {
    data_start: usize,
    data_len: usize,
}

/// Walks a newc archive (as `oxen_bundle` writes it) and returns where each
/// entry's data lies, up to the trailer.
fn entry_spans(archive: &[u8]) -> Result<Vec<EntrySpan>> {
    let field = |header: &[u8], index: usize| -> Result<usize> {
        let start = 6 + 8 * index;
        let text = header
            .get(start..start + 8)
            .and_then(|b| std::str::from_utf8(b).ok())
            .context("truncated cpio header")?;
        usize::from_str_radix(text, 16).with_context(|| format!("bad cpio header field '{text}'"))
    };
    let align = |n: usize| n.next_multiple_of(4);
    let mut spans = Vec::new();
    let mut at = 0;
    loop {
        let header = archive
            .get(at..at + CPIO_HEADER_LEN)
            .context("cpio archive ends without a trailer")?;
        if !(header.starts_with(b"070701") || header.starts_with(b"070702")) {
            return Err(error(format!("no cpio magic at offset {at}")));
        }
        let data_len = field(header, 6)?;
        let name_len = field(header, 11)?;
        let name_start = at + CPIO_HEADER_LEN;
        let name = archive
            .get(name_start..name_start + name_len.saturating_sub(1))
            .context("truncated cpio name")?;
        if name == b"TRAILER!!!" {
            return Ok(spans);
        }
        let data_start = align(name_start + name_len);
        if data_start + data_len > archive.len() {
            return Err(error("truncated cpio data"));
        }
        spans.push(EntrySpan { data_start, data_len });
        at = align(data_start + data_len);
    }
}

/// A copy of `archive` with one data byte flipped: the middle byte of the
/// largest entry, so that the entry's checksum no longer matches while every
/// header still parses.
pub fn corrupt_bundle(archive: &[u8]) -> Result<Vec<u8>> {
    let span = entry_spans(archive)?
        .into_iter()
        .filter(|s| s.data_len > 0)
        .max_by_key(|s| s.data_len)
        .context("the bundle has no file data to corrupt")?;
    let mut copy = archive.to_vec();
    let at = span.data_start + span.data_len / 2;
    copy[at] ^= 0xff;
    Ok(copy)
}

/// Quotes one word for GRUB's shell-like config language when it needs it.
fn grub_word(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-=.,:/+@%".contains(c));
    if plain {
        return word.to_string();
    }
    let mut quoted = String::from("\"");
    for c in word.chars() {
        if matches!(c, '"' | '\\' | '$') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The `grub.cfg` that boots `/boot/oxen.elf` with `cmdline`, and the bundle
/// as a module when there is one, all on the serial console.
pub fn grub_cfg(cmdline: &str, with_bundle: bool) -> String {
    let mut kernel_line = String::from("multiboot2 /boot/oxen.elf");
    for word in cmdline.split_whitespace() {
        kernel_line.push(' ');
        kernel_line.push_str(&grub_word(word));
    }
    let module = if with_bundle {
        "    module2 /boot/oxen-bundle.cpio bundle\n"
    } else {
        ""
    };
    format!(
        "set timeout=0\n\
         set default=0\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         menuentry \"Oxen\" {{\n    {kernel_line}\n{module}    boot\n}}\n"
    )
}

/// Makes a GRUB rescue ISO at `out` that boots `elf` through multiboot2 with
/// `cmdline`, and `bundle` (if any) as its one module. The ISO tree is staged
/// in `iso-root/` beside `out`.
pub fn make_iso(elf: &Path, bundle: Option<&Path>, cmdline: &str, out: &Path) -> Result<()> {
    let parent = out
        .parent()
        .with_context(|| format!("{} has no parent directory", out.display()))?;
    let staging = parent.join("iso-root");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    let grub_dir = staging.join("boot").join("grub");
    fs::create_dir_all(&grub_dir).with_context(|| format!("cannot create {}", grub_dir.display()))?;
    let boot = staging.join("boot");
    fs::copy(elf, boot.join("oxen.elf")).with_context(|| format!("cannot copy {}", elf.display()))?;
    if let Some(bundle) = bundle {
        fs::copy(bundle, boot.join("oxen-bundle.cpio"))
            .with_context(|| format!("cannot copy {}", bundle.display()))?;
    }
    fs::write(grub_dir.join("grub.cfg"), grub_cfg(cmdline, bundle.is_some()))
        .context("cannot write grub.cfg")?;
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(out)
        .arg(&staging)
        .output()
        .context("cannot run grub-mkrescue")?;
    if !output.status.success() {
        return Err(error(format!(
            "grub-mkrescue failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<BundleFile> {
        vec![
            ("configs/dom0.cfg".to_string(), b"memory = 64\n".to_vec()),
            ("configs/guests/hello.cfg".to_string(), vec![7; 300]),
        ]
    }

    #[test]
    fn manifest_lists_the_other_entries() {
        assert_eq!(
            manifest(&files()),
            format!(
                "Oxen boot bundle\nversion {VERSION}\nconfigs/dom0.cfg 12\nconfigs/guests/hello.cfg 300\n"
            )
        );
    }

    #[test]
    fn bundle_holds_manifest_then_files() -> Result<()> {
        let bundle = pack_bundle(&files())?;
        let spans = entry_spans(&bundle)?;
        assert_eq!(spans.len(), 3);
        let manifest_span = spans[0];
        let text = &bundle[manifest_span.data_start..][..manifest_span.data_len];
        assert!(text.starts_with(b"Oxen boot bundle\n"));
        assert_eq!(spans[2].data_len, 300);
        Ok(())
    }

    #[test]
    fn corruption_flips_one_byte_of_the_largest_entry() -> Result<()> {
        let bundle = pack_bundle(&files())?;
        let bad = corrupt_bundle(&bundle)?;
        let diffs: Vec<usize> = (0..bundle.len()).filter(|&i| bundle[i] != bad[i]).collect();
        assert_eq!(diffs.len(), 1);
        let largest = entry_spans(&bundle)?[2];
        assert_eq!(diffs[0], largest.data_start + 150);
        assert!(oxen_bundle::Archive::parse(&bundle).is_ok());
        assert!(oxen_bundle::Archive::parse(&bad).is_err());
        Ok(())
    }

    #[test]
    fn corrupting_an_empty_archive_fails() {
        assert!(corrupt_bundle(&[0; 512]).is_err());
        assert!(corrupt_bundle(&oxen_bundle::Builder::new().finish()).is_err());
    }

    #[test]
    fn grub_cfg_carries_cmdline_and_module() {
        let cfg = grub_cfg("bogus_key=1  oxen_test=boot", true);
        assert!(cfg.contains("serial --unit=0 --speed=115200\n"));
        assert!(cfg.contains("    multiboot2 /boot/oxen.elf bogus_key=1 oxen_test=boot\n"));
        assert!(cfg.contains("    module2 /boot/oxen-bundle.cpio bundle\n"));
        assert!(cfg.ends_with("    boot\n}\n"));
        let bare = grub_cfg("", false);
        assert!(bare.contains("    multiboot2 /boot/oxen.elf\n"));
        assert!(!bare.contains("module2"));
    }

    #[test]
    fn grub_words_are_quoted_when_needed() {
        assert_eq!(grub_word("loglvl=debug"), "loglvl=debug");
        assert_eq!(grub_word("a;b"), "\"a;b\"");
        assert_eq!(grub_word("x=$y\"z"), "\"x=\\$y\\\"z\"");
    }
}
