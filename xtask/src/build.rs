//! `cargo xtask build`: the hypervisor ELF (normal and `test-hooks` builds), the
//! guests (`guests.rs`), the boot bundle, and the GRUB rescue ISO, all written
//! under `target/oxen/`. [`make_iso`], [`with_auto`] and [`corrupt_bundle`] are
//! also used by the scenario runner (`runner.rs`), which builds one ISO per
//! `boot = "iso"` scenario and one bundle per `auto = [...]` scenario.
//!
//! The bundle (`target/oxen/bundle.cpio`, a cpio newc archive) holds, in order:
//!
//! ```text
//! manifest              "Oxen boot bundle", "version V", then "NAME SIZE" per other entry
//! dom0                  dom0's ELF; the hypervisor starts it
//! images/NAME.elf       the domU guests, and bad-abi.elf and truncated.elf (from hello.elf)
//! configs/NAME.cfg      every configs/*.cfg of the workspace
//! auto/NAME.cfg         every configs/auto/*.cfg; dom0 starts these at boot
//! ```
//!
//! Each directory's entries are sorted by name, except that a scenario's
//! `auto/` keeps the order its `auto` list gives.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use oxen_bundle::Builder;

use crate::error::{Context, Result, error};
use crate::guests;
use crate::props;
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

    /// Where the guest ELFs are copied (`target/oxen/guests/`).
    pub fn guests(&self) -> PathBuf {
        self.out.join("guests")
    }

    /// The copy of guest `name`'s ELF.
    pub fn guest_elf(&self, name: &str) -> PathBuf {
        self.guests().join(format!("{name}.elf"))
    }

    /// The domain configs (`configs/*.cfg`; `configs/auto/*.cfg` start at boot).
    pub fn configs(&self) -> PathBuf {
        self.root.join("configs")
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
    let mut guests = guests::find(layout)?;
    // The property suite's image (images/props.elf), for `props` scenarios.
    if !guests::DOMU.contains(&props::PACKAGE) {
        guests.push(props::package(layout)?);
    }
    fs::create_dir_all(&layout.out).with_context(|| format!("cannot create {}", layout.out.display()))?;
    let mut written = vec![build_kernel(layout, Image::Release)?];
    if plan.test_image {
        written.push(build_kernel(layout, Image::Test)?);
    }
    written.extend(guests::build(layout, &guests)?);
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

/// A cargo command for building `x86_64-unknown-none` code (`what`: the
/// hypervisor or the guests), without `RUSTFLAGS`: they would replace the
/// per-target flags in .cargo/config.toml, and the kernels cannot link without
/// them (static relocation model, kernel code model).
pub fn kernel_cargo(layout: &Layout, what: &str) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&layout.root);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
        if std::env::var_os(var).is_some() {
            println!(
                "xtask: ignoring {var} for the {what} build (it would replace .cargo/config.toml's flags)"
            );
            cmd.env_remove(var);
        }
    }
    cmd
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
    let mut cmd = kernel_cargo(layout, "kernel");
    cmd.args([
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
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        return Err(error(format!("building the {what} failed ({status})")));
    }
    let built = target_dir.join(KERNEL_TARGET).join("release").join("oxen");
    fs::copy(&built, &dest)
        .with_context(|| format!("cannot copy {} to {}", built.display(), dest.display()))?;
    Ok(dest)
}

/// Packs the boot bundle from the guests and configs and writes
/// `target/oxen/bundle.cpio`.
fn build_bundle(layout: &Layout) -> Result<PathBuf> {
    let read = |path: PathBuf| fs::read(&path).with_context(|| format!("cannot read {}", path.display()));
    let mut images = Vec::new();
    for name in guests::DOMU {
        images.push((format!("{name}.elf"), read(layout.guest_elf(name))?));
    }
    if !guests::DOMU.contains(&props::PACKAGE) {
        images.push((props::IMAGE.to_string(), read(layout.guest_elf(props::PACKAGE))?));
    }
    let hello = read(layout.guest_elf(guests::DERIVED_FROM))?;
    images.extend(guests::derived_images(&hello)?);
    let contents = Contents {
        dom0: read(layout.guest_elf(guests::DOM0))?,
        images,
        configs: read_configs(&layout.configs())?,
        auto: read_configs(&layout.configs().join("auto"))?,
    };
    let bytes = pack_bundle(&contents.entries())?;
    let dest = layout.bundle();
    fs::write(&dest, bytes).with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(dest)
}

/// One file for the bundle: its entry name and contents.
pub type BundleFile = (String, Vec<u8>);

/// What a boot bundle holds besides its manifest. Names are file names
/// (`hello.elf`, `hello.cfg`); [`Contents::entries`] puts them in their
/// directories.
#[derive(Clone, Debug, Default)]
pub struct Contents {
    /// dom0's ELF: entry `dom0`.
    pub dom0: Vec<u8>,
    /// domU images: `images/NAME`, sorted.
    pub images: Vec<BundleFile>,
    /// Domain configs: `configs/NAME`, sorted.
    pub configs: Vec<BundleFile>,
    /// Configs dom0 starts at boot: `auto/NAME`, in this order.
    pub auto: Vec<BundleFile>,
}

impl Contents {
    /// The entries after `manifest`, in bundle order.
    pub fn entries(&self) -> Vec<BundleFile> {
        let sorted = |files: &[BundleFile]| {
            let mut files = files.to_vec();
            files.sort_by(|a, b| a.0.cmp(&b.0));
            files
        };
        let mut out = vec![(guests::DOM0.to_string(), self.dom0.clone())];
        let dirs = [
            ("images", sorted(&self.images)),
            ("configs", sorted(&self.configs)),
            ("auto", self.auto.clone()),
        ];
        for (dir, files) in dirs {
            out.extend(
                files
                    .into_iter()
                    .map(|(name, data)| (format!("{dir}/{name}"), data)),
            );
        }
        out
    }
}

/// The `*.cfg` files directly in `dir` (none if it does not exist), by file
/// name, sorted.
fn read_configs(dir: &Path) -> Result<Vec<BundleFile>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "cfg") && p.is_file());
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} is not a UTF-8 file name", path.display()))?;
        let data = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        out.push((name.to_string(), data));
    }
    Ok(out)
}

/// A copy of the bundle `archive` whose `auto/` holds exactly `names`, in
/// that order: each is the archive's `configs/NAME` or, failing that, its
/// `auto/NAME` (that is, `configs/NAME` or `configs/auto/NAME` of the
/// workspace). Every other entry stays as it was; the manifest is rewritten.
pub fn with_auto(archive: &[u8], names: &[String]) -> Result<Vec<u8>> {
    let parsed =
        oxen_bundle::Archive::parse(archive).map_err(|e| error(format!("cannot read the bundle: {e}")))?;
    let find = |name: &str| parsed.find(name).filter(|e| e.is_file()).map(|e| e.data.to_vec());
    let mut auto = Vec::new();
    for name in names {
        let data = find(&format!("configs/{name}"))
            .or_else(|| find(&format!("auto/{name}")))
            .with_context(|| format!("auto config '{name}' is in neither configs/ nor configs/auto/"))?;
        auto.push((format!("auto/{name}"), data));
    }
    let mut files: Vec<BundleFile> = parsed
        .entries()
        .filter(|e| e.is_file() && e.name != "manifest" && !e.name.starts_with("auto/"))
        .map(|e| (e.name.to_string(), e.data.to_vec()))
        .collect();
    files.extend(auto);
    pack_bundle(&files)
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

    fn names(archive: &[u8]) -> Result<Vec<String>> {
        let parsed = oxen_bundle::Archive::parse(archive).map_err(|e| error(e.to_string()))?;
        Ok(parsed.entries().map(|e| e.name.to_string()).collect())
    }

    fn file(name: &str, data: &[u8]) -> BundleFile {
        (name.to_string(), data.to_vec())
    }

    /// A bundle as `cargo xtask build` lays it out, from small fake files.
    fn contents() -> Contents {
        Contents {
            dom0: b"dom0 elf".to_vec(),
            images: vec![
                file("hello.elf", b"hello"),
                file("memtest.elf", b"memtest"),
                file("hostile.elf", b"hostile"),
                file("bad-abi.elf", b"bad"),
                file("truncated.elf", b"trunc"),
            ],
            configs: vec![
                file("hostile.cfg", b"name = \"hostile\"\n"),
                file("bad-abi.cfg", b"x"),
            ],
            auto: vec![
                file("greeter.cfg", b"g"),
                file("hello.cfg", b"name = \"hello\"\n"),
            ],
        }
    }

    #[test]
    fn bundle_layout() -> Result<()> {
        let bundle = pack_bundle(&contents().entries())?;
        assert_eq!(
            names(&bundle)?,
            [
                "manifest",
                "dom0",
                "images/bad-abi.elf",
                "images/hello.elf",
                "images/hostile.elf",
                "images/memtest.elf",
                "images/truncated.elf",
                "configs/bad-abi.cfg",
                "configs/hostile.cfg",
                "auto/greeter.cfg",
                "auto/hello.cfg",
            ]
        );
        let parsed = oxen_bundle::Archive::parse(&bundle).map_err(|e| error(e.to_string()))?;
        let manifest = parsed.find("manifest").context("no manifest")?;
        let text = std::str::from_utf8(manifest.data)?;
        assert!(text.starts_with(&format!(
            "Oxen boot bundle\nversion {VERSION}\ndom0 8\nimages/bad-abi.elf 3\n"
        )));
        assert!(text.ends_with("auto/hello.cfg 15\n"), "{text}");
        assert_eq!(parsed.find("dom0").map(|e| e.data), Some(&b"dom0 elf"[..]));
        Ok(())
    }

    #[test]
    fn configs_are_read_flat_and_sorted() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-configs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("auto"))?;
        for (name, text) in [
            ("memtest.cfg", "m"),
            ("hello.cfg", "h"),
            ("notes.txt", "n"),
            ("auto/greeter.cfg", "g"),
        ] {
            fs::write(dir.join(name), text)?;
        }
        assert_eq!(
            read_configs(&dir)?,
            [file("hello.cfg", b"h"), file("memtest.cfg", b"m")]
        );
        assert_eq!(read_configs(&dir.join("auto"))?, [file("greeter.cfg", b"g")]);
        assert!(read_configs(&dir.join("missing"))?.is_empty());
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn auto_replaces_the_boot_set() -> Result<()> {
        let bundle = pack_bundle(&contents().entries())?;
        // From configs/ and from configs/auto/, in the order given.
        let auto = |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_string()).collect() };
        let custom = with_auto(&bundle, &auto(&["hostile.cfg", "hello.cfg"]))?;
        let got = names(&custom)?;
        assert_eq!(got[..9], names(&bundle)?[..9]);
        assert_eq!(got[9..], ["auto/hostile.cfg", "auto/hello.cfg"]);
        let parsed = oxen_bundle::Archive::parse(&custom).map_err(|e| error(e.to_string()))?;
        assert_eq!(
            parsed.find("auto/hostile.cfg").map(|e| e.data),
            Some(&b"name = \"hostile\"\n"[..])
        );
        let manifest = std::str::from_utf8(parsed.find("manifest").context("no manifest")?.data)?;
        assert!(
            manifest.ends_with("auto/hostile.cfg 17\nauto/hello.cfg 15\n"),
            "{manifest}"
        );
        assert!(!manifest.contains("greeter"), "{manifest}");
        // An empty list: dom0 starts nothing.
        assert_eq!(names(&with_auto(&bundle, &[])?)?.len(), 9);
        let err = with_auto(&bundle, &auto(&["hello.cfg", "nope.cfg"]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("'nope.cfg' is in neither configs/ nor configs/auto/"),
            "{err}"
        );
        assert!(with_auto(b"junk", &[]).is_err());
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
