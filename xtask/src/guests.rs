//! The guest kernels: dom0 and the domU test guests, workspace packages that
//! are `no_std` binaries for `x86_64-unknown-none`. [`build`] builds them all
//! in one cargo invocation and copies each to `target/oxen/guests/NAME.elf`;
//! [`derived_images`] makes the two broken images the bundle carries for the
//! domain builder's tests. `build.rs` packs them into the bundle.
//!
//! Whether a guest exists is read from the workspace manifests (members, with
//! `*` and `?` globs, less `exclude`), so that a missing one is named before
//! cargo runs.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::build::{self, BundleFile, Layout};
use crate::elf;
use crate::error::{Context, Result, error};
use crate::tools::KERNEL_TARGET;

/// dom0's package. The bundle holds its ELF as `dom0`.
pub const DOM0: &str = "dom0";

/// The domU guests' packages. The bundle holds each as `images/NAME.elf`.
pub const DOMU: &[&str] = &[
    "hello", "memtest", "hostile", "pingpong", "spinner", "timer", "bench", "fuzz",
];

/// The guest whose image the broken test images are made from.
pub const DERIVED_FROM: &str = "hello";

/// `images/bad-abi.elf`: [`DERIVED_FROM`] with its ABI note's major version
/// one above `dom0_abi::ABI_VERSION_MAJOR`.
pub const BAD_ABI: &str = "bad-abi.elf";

/// `images/truncated.elf`: the first [`TRUNCATED_LEN`] bytes of [`DERIVED_FROM`].
pub const TRUNCATED: &str = "truncated.elf";

/// How much of the image `truncated.elf` keeps.
pub const TRUNCATED_LEN: usize = 3000;

/// Every guest package, dom0 first.
pub fn all() -> impl Iterator<Item = &'static str> {
    std::iter::once(DOM0).chain(DOMU.iter().copied())
}

/// The parts of a `Cargo.toml` that say which packages and binaries exist.
#[derive(Debug, Default, Deserialize)]
struct Manifest {
    workspace: Option<WorkspaceSection>,
    package: Option<PackageSection>,
    #[serde(default)]
    bin: Vec<BinSection>,
}

#[derive(Debug, Default, Deserialize)]
struct WorkspaceSection {
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct PackageSection {
    name: String,
}

#[derive(Debug, Deserialize)]
struct BinSection {
    name: Option<String>,
}

/// A workspace package: its name and the names of its `[[bin]]` targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// `package.name`.
    pub name: String,
    /// Names of the explicit `[[bin]]` targets (none: the default binary).
    pub bins: Vec<String>,
}

impl Package {
    /// The binary the package builds: the default one (named after the
    /// package), the `[[bin]]` of that name, or its only `[[bin]]`.
    pub fn binary(&self) -> Result<&str> {
        match self.bins.as_slice() {
            [] => Ok(&self.name),
            [only] => Ok(only),
            bins => bins
                .iter()
                .find(|b| **b == self.name)
                .map(String::as_str)
                .with_context(|| {
                    format!(
                        "guest crate '{}' has several binaries ({}) and none named after it",
                        self.name,
                        bins.join(", ")
                    )
                }),
        }
    }
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        error(format!(
            "cannot parse {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })
}

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters and `?` for one.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The directories a `members` entry names, relative to `root`.
fn expand_member(root: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let mut dirs = vec![root.to_path_buf()];
    for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if !part.contains(['*', '?']) {
            dirs = dirs.into_iter().map(|d| d.join(part)).collect();
            continue;
        }
        let mut matched = Vec::new();
        for dir in dirs.iter().filter(|d| d.is_dir()) {
            for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
                let path = entry
                    .with_context(|| format!("cannot list {}", dir.display()))?
                    .path();
                let hit = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| wildcard_match(part, n));
                if hit && path.is_dir() {
                    matched.push(path);
                }
            }
        }
        matched.sort();
        dirs = matched;
    }
    Ok(dirs)
}

/// Every package of the workspace rooted at `root`.
pub fn workspace_packages(root: &Path) -> Result<Vec<Package>> {
    let top = read_manifest(&root.join("Cargo.toml"))?;
    let workspace = top.workspace.unwrap_or_default();
    let excluded: Vec<PathBuf> = workspace.exclude.iter().map(|e| root.join(e)).collect();
    let mut dirs = Vec::new();
    if top.package.is_some() {
        dirs.push(root.to_path_buf());
    }
    for pattern in &workspace.members {
        for dir in expand_member(root, pattern)? {
            // Cargo refuses a member without a manifest before xtask runs;
            // skipping one here only keeps this lookup simple.
            if dir.join("Cargo.toml").is_file() && !excluded.contains(&dir) && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    let mut packages = Vec::new();
    for dir in dirs {
        let manifest = read_manifest(&dir.join("Cargo.toml"))?;
        if let Some(package) = manifest.package {
            packages.push(Package {
                name: package.name,
                bins: manifest.bin.into_iter().filter_map(|b| b.name).collect(),
            });
        }
    }
    Ok(packages)
}

/// The packages of `wanted`, in that order, from `packages`; the error names
/// every missing one.
fn find_guests<'a>(packages: &'a [Package], wanted: &[&str]) -> Result<Vec<&'a Package>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in wanted {
        match packages.iter().find(|p| p.name == *name) {
            Some(package) => found.push(package),
            None => missing.push(*name),
        }
    }
    match missing.as_slice() {
        [] => Ok(found),
        [first, rest @ ..] => {
            let mut msg = format!("guest crate '{first}' not found in the workspace");
            if !rest.is_empty() {
                let rest: Vec<String> = rest.iter().map(|n| format!("'{n}'")).collect();
                msg.push_str(&format!(" (nor {})", rest.join(", ")));
            }
            msg.push_str(&format!(
                "; xtask builds the workspace packages {} (guests/*)",
                wanted.join(", ")
            ));
            Err(error(msg))
        }
    }
}

/// The guest packages of the workspace, dom0 first; the error names every
/// missing one. `cargo xtask build` calls this before building anything.
pub fn find(layout: &Layout) -> Result<Vec<Package>> {
    let names: Vec<&str> = all().collect();
    let packages = workspace_packages(&layout.root)?;
    Ok(find_guests(&packages, &names)?.into_iter().cloned().collect())
}

/// Builds the `guests` ([`find`]) in one cargo invocation (into the workspace
/// `target/`, beside the hypervisor) and copies each to
/// `target/oxen/guests/NAME.elf`. Returns the copies.
pub fn build(layout: &Layout, guests: &[Package]) -> Result<Vec<PathBuf>> {
    let names: Vec<&str> = guests.iter().map(|p| p.name.as_str()).collect();
    println!("xtask: building the guests ({})", names.join(", "));
    let mut cmd = build::kernel_cargo(layout, "guest");
    cmd.args(["build", "--release", "--target", KERNEL_TARGET]);
    for name in &names {
        cmd.args(["-p", name]);
    }
    cmd.arg("--target-dir").arg(&layout.target);
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        return Err(error(format!("building the guests failed ({status})")));
    }
    let dir = layout.guests();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let release = layout.target.join(KERNEL_TARGET).join("release");
    let mut written = Vec::new();
    for package in guests {
        let built = release.join(package.binary()?);
        let dest = layout.guest_elf(&package.name);
        fs::copy(&built, &dest)
            .with_context(|| format!("cannot copy {} to {}", built.display(), dest.display()))?;
        written.push(dest);
    }
    Ok(written)
}

/// The broken images the bundle carries under `images/`, made from `hello`
/// (the bytes of [`DERIVED_FROM`]'s ELF): [`BAD_ABI`] and [`TRUNCATED`].
pub fn derived_images(hello: &[u8]) -> Result<Vec<BundleFile>> {
    let major = dom0_abi::ABI_VERSION_MAJOR;
    let (hello_major, hello_minor) =
        elf::abi_version(hello).with_context(|| format!("cannot make {BAD_ABI} from {DERIVED_FROM}.elf"))?;
    if hello_major != major {
        return Err(error(format!(
            "{DERIVED_FROM}.elf states Oxen ABI {hello_major}.{hello_minor}, but dom0-abi is {major}.{}",
            dom0_abi::ABI_VERSION_MINOR
        )));
    }
    let bad_major = major
        .checked_add(1)
        .context("ABI_VERSION_MAJOR has no successor")?;
    let bad_abi = elf::patch_abi_major(hello, bad_major)
        .with_context(|| format!("cannot make {BAD_ABI} from {DERIVED_FROM}.elf"))?;
    let truncated = match hello.get(..TRUNCATED_LEN) {
        Some(head) if hello.len() > TRUNCATED_LEN => head,
        _ => {
            return Err(error(format!(
                "cannot make {TRUNCATED}: {DERIVED_FROM}.elf has {} bytes, not more than {TRUNCATED_LEN}",
                hello.len()
            )));
        }
    };
    Ok(vec![
        (BAD_ABI.to_string(), bad_abi),
        (TRUNCATED.to_string(), truncated.to_vec()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::synthetic_elf;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "hello"));
        assert!(wildcard_match("h*o", "hello"));
        assert!(wildcard_match("h?llo", "hello"));
        assert!(wildcard_match("*l*", "hello"));
        assert!(wildcard_match("hello*", "hello"));
        assert!(!wildcard_match("h?lo", "hello"));
        assert!(!wildcard_match("*x*", "hello"));
        assert!(!wildcard_match("hello", "hell"));
    }

    fn write(path: &Path, text: &str) -> Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(path, text)?;
        Ok(())
    }

    #[test]
    fn packages_are_read_from_members_and_globs() -> Result<()> {
        let root = std::env::temp_dir().join(format!("xtask-guests-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        write(
            &root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"hypervisor\", \"guests/*\"]\nexclude = [\"guests/old\"]\n",
        )?;
        write(
            &root.join("hypervisor/Cargo.toml"),
            "[package]\nname = \"oxen-hypervisor\"\n[[bin]]\nname = \"oxen\"\npath = \"src/main.rs\"\n",
        )?;
        write(
            &root.join("guests/hello/Cargo.toml"),
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\n",
        )?;
        write(
            &root.join("guests/sdk/Cargo.toml"),
            "[package]\nname = \"oxen-guest-sdk\"\n[lib]\n",
        )?;
        write(
            &root.join("guests/old/Cargo.toml"),
            "[package]\nname = \"memtest\"\n",
        )?;
        write(&root.join("guests/README.md"), "not a crate\n")?;
        fs::create_dir_all(root.join("guests/empty"))?;
        let packages = workspace_packages(&root)?;
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["oxen-hypervisor", "hello", "oxen-guest-sdk"]);
        assert_eq!(packages[0].binary()?, "oxen");
        assert_eq!(packages[1].binary()?, "hello");
        let found = find_guests(&packages, &["hello"])?;
        assert_eq!(found[0].name, "hello");
        let err = find_guests(&packages, &["dom0", "hello", "memtest"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("guest crate 'dom0' not found in the workspace (nor 'memtest');"),
            "{err}"
        );
        fs::remove_dir_all(&root)?;
        Ok(())
    }

    #[test]
    fn this_workspace_is_readable() -> Result<()> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let packages = workspace_packages(&root)?;
        assert!(packages.iter().any(|p| p.name == "xtask"), "{packages:?}");
        Ok(())
    }

    #[test]
    fn binaries() {
        let package = |bins: &[&str]| Package {
            name: "dom0".into(),
            bins: bins.iter().map(|b| b.to_string()).collect(),
        };
        assert_eq!(package(&["kernel"]).binary().ok(), Some("kernel"));
        assert_eq!(package(&["tool", "dom0"]).binary().ok(), Some("dom0"));
        assert!(package(&["a", "b"]).binary().is_err());
    }

    #[test]
    fn derived_images_from_hello() -> Result<()> {
        let mut hello = synthetic_elf(dom0_abi::ABI_VERSION_MAJOR, dom0_abi::ABI_VERSION_MINOR, true);
        hello.resize(5000, 0x90);
        let images = derived_images(&hello)?;
        let names: Vec<&str> = images.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bad-abi.elf", "truncated.elf"]);
        assert_eq!(
            elf::abi_version(&images[0].1)?,
            (dom0_abi::ABI_VERSION_MAJOR + 1, dom0_abi::ABI_VERSION_MINOR)
        );
        assert_eq!(images[0].1.len(), hello.len());
        assert_eq!(images[1].1, hello[..TRUNCATED_LEN]);
        // Too short to truncate, or no note: refused, with the reason.
        let stale = synthetic_elf(dom0_abi::ABI_VERSION_MAJOR + 5, 0, false);
        let err = derived_images(&stale)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("but dom0-abi is"), "{err}");
        let short = synthetic_elf(dom0_abi::ABI_VERSION_MAJOR, 0, false);
        let err = derived_images(&short)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("truncated.elf"), "{err}");
        let err = derived_images(&[0; 4000])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("bad-abi.elf") && err.contains("not an ELF"), "{err}");
        Ok(())
    }
}
