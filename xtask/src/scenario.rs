//! Scenario files: one `tests/NAME.toml` per QEMU boot test, parsed and
//! checked here; `runner.rs` runs them. `tests/README.md` documents the same
//! format for people writing scenarios.
//!
//! ```toml
//! description = "PVH boot on microvm with 128 MiB"
//! boot = "pvh"          # "pvh" (-kernel/-initrd/-append) or "iso" (GRUB ISO, multiboot2)
//! machine = "microvm"   # passed to -M verbatim; default "q35"
//! memory = "128M"       # passed to -m verbatim; default "1G"
//! smp = 1               # default 1
//! append = "oxen_test=boot"  # hypervisor command line; default ""
//! image = "test"        # "test" (hypervisor-test.elf, default) or "release" (hypervisor.elf)
//! bundle = "default"    # "default" | "none" | "corrupt"
//! auto = ["hello.cfg"]  # optional: the bundle's auto/ holds exactly these configs
//! props = ["priv"]      # optional: one domain per property of the suite (`props.rs`)
//! timeout_secs = 60     # hard limit for the whole run; default 60
//! heap_stable = false   # the hypervisor heap must not grow over the domain destroys
//! exit = "success"      # "success" (QEMU status 33) | "failure" (status 35); default "success"
//! expect = ["Oxen 0.1.0", "boot protocol: PVH"]  # must appear in this order
//! forbid = ["FATAL"]    # must not appear anywhere
//! qmp_check_after = "self-check: no writable+executable mapping"  # optional (qmp.rs)
//!
//! [[step]]              # optional, after the `expect` list, in order
//! expect = "dom0# "     # wait for this (after everything matched so far)...
//! send = "xm list\n"    # ...then type this on the serial console
//! timeout_secs = 10     # optional limit for this step's wait
//! within_ms = 50        # optional: send first, then `expect` must appear within 50 ms
//!
//! [[ratio]]             # optional: a number in the output, or the ratio of two
//! numerator = "spin: spin-512 steady rate {} iterations/s"   # `{}` stands for a number
//! denominator = "spin: spin-256 steady rate {} iterations/s" # optional (default 1)
//! expect = 2.0          # the value wanted (> 0)...
//! tolerance = 0.05      # ...within this fraction of it (0 < tolerance <= 1)
//! ```
//!
//! Only `description` is required. Unknown keys are errors, so a typo cannot
//! silently drop a check. The scenario's name is its file stem.
//!
//! `auto` picks the domains dom0 starts at boot. Without it the scenario boots
//! the default bundle, whose `auto/` holds every `configs/auto/*.cfg`. With it
//! the runner makes the scenario its own bundle (`target/oxen/tests/NAME/
//! bundle.cpio`): the default one with `auto/` holding exactly the listed
//! files, in the listed order, each taken from `configs/NAME` or, failing
//! that, `configs/auto/NAME`; a name found in neither fails the scenario.
//! `auto = []` starts nothing. `bundle = "corrupt"` then corrupts that bundle;
//! `bundle = "none"` cannot go with `auto`.
//!
//! `props` runs properties of the hostile-guest suite (`props.rs`): each word
//! is `"all"`, a group or a property name. Like `auto`, it gives the scenario
//! its own bundle, whose `auto/` starts one `p-NAME` domain per property; after
//! the run every property's verdict is judged, and the runner reports
//! `props: N passed, S skipped, F failed`. It cannot go with `auto` or
//! `bundle = "none"`.
//!
//! `[[ratio]]` compares numbers the guests print, for properties that only
//! hold between domains (a scheduler weight of 512 against one of 256 gives
//! twice the CPU). Each pattern is literal text with one `{}`, which matches
//! a decimal number (`-12`, `3.5`); the first place in the serial output
//! where the whole pattern matches gives the number. After the run the value
//! (`numerator / denominator`, or the numerator alone) must lie within
//! `tolerance` of `expect`, relatively: `|value / expect - 1| <= tolerance`.
//! A pattern that never matched fails the scenario too.
//!
//! `within_ms` makes a step a timed request (`runner.rs` stamps the serial
//! output as it arrives): the step types `send` first, then waits for
//! `expect` in what arrives after it, and the scenario fails when the
//! answer took longer than `within_ms` (the wait itself still ends only at
//! the step's `timeout_secs`, so the report says how late it was).
//! `heap_stable = true` applies `cargo xtask soak`'s heap rule to the
//! run's output ([`crate::soak::check_heap`]): the hypervisor heap in use
//! after the last domain destroy is not above its value after the tenth.
//!
//! `qmp_check_after` checks W^X from outside (`qmp.rs`): once that text
//! appears on the console, the runner holds the machine, reads the page
//! tables through QMP (`info tlb`) and fails the scenario on any
//! upper-half page that is writable and executable or user-accessible.

use std::fs;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Context, Result, error};
use crate::qemu::{self, Machine};

/// Default overall time limit of a scenario, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// Largest accepted time limit, in seconds.
const MAX_TIMEOUT_SECS: u64 = 3600;

/// How the hypervisor is booted.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BootKind {
    /// QEMU's `-kernel` (PVH entry), `-initrd`, `-append`.
    #[default]
    Pvh,
    /// A per-scenario GRUB rescue ISO (multiboot2), `append` in `grub.cfg`.
    Iso,
}

/// Which hypervisor image to boot.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// `hypervisor-test.elf`, built with `test-hooks`.
    #[default]
    Test,
    /// `hypervisor.elf`, the normal build.
    Release,
}

/// Which boot bundle goes with it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BundleKind {
    /// `target/oxen/bundle.cpio`.
    #[default]
    Default,
    /// No module at all.
    None,
    /// The default bundle with one data byte flipped, so a checksum fails.
    Corrupt,
}

/// The exit the hypervisor must report through `isa-debug-exit`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedExit {
    /// QEMU status 33.
    #[default]
    Success,
    /// QEMU status 35.
    Failure,
}

impl std::fmt::Display for ExpectedExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Success => "success",
            Self::Failure => "failure",
        })
    }
}

impl ExpectedExit {
    /// QEMU's exit status for this outcome.
    pub fn status(self) -> i32 {
        match self {
            Self::Success => qemu::STATUS_SUCCESS,
            Self::Failure => qemu::STATUS_FAILURE,
        }
    }
}

/// One interactive step: wait for `expect` (if any), then type `send` (if
/// any). A timed step (`within_ms`) goes the other way: it types `send`,
/// then `expect` must appear, in output that arrived after the send, at
/// most `within_ms` milliseconds after it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Text to wait for, after everything matched before it.
    pub expect: Option<String>,
    /// Text to write to the serial console.
    pub send: Option<String>,
    /// Limit for this step's wait, in seconds (the scenario's limit still applies).
    pub timeout_secs: Option<u64>,
    /// Largest time from writing `send` to `expect` appearing, in milliseconds.
    pub within_ms: Option<u64>,
}

/// A `[[ratio]]` table as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatioFile {
    numerator: String,
    denominator: Option<String>,
    expect: f64,
    tolerance: f64,
}

/// Literal text around one `{}` that stands for a decimal number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberPattern {
    /// Text before the number.
    before: String,
    /// Text after it.
    after: String,
}

impl NumberPattern {
    /// The placeholder for the number.
    const HOLE: &'static str = "{}";

    /// Parses `text`: exactly one `{}`, and some literal text beside it.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((before, after)) = text.split_once(Self::HOLE) else {
            return Err(error(format!(
                "ratio pattern '{text}' has no {{}} for the number"
            )));
        };
        if after.contains(Self::HOLE) {
            return Err(error(format!("ratio pattern '{text}' has more than one {{}}")));
        }
        if before.is_empty() && after.is_empty() {
            return Err(error("a ratio pattern needs text around its {}"));
        }
        Ok(Self {
            before: before.to_string(),
            after: after.to_string(),
        })
    }

    /// The number where the whole pattern first matches in `text`.
    pub fn find(&self, text: &str) -> Option<f64> {
        text.match_indices(self.before.as_str()).find_map(|(at, _)| {
            let rest = text.get(at + self.before.len()..)?;
            let len = number_len(rest);
            if len == 0 || !rest.get(len..)?.starts_with(self.after.as_str()) {
                return None;
            }
            rest.get(..len)?.parse().ok()
        })
    }
}

impl std::fmt::Display for NumberPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.before, Self::HOLE, self.after)
    }
}

/// The length of the decimal number `text` starts with (`-`, digits, and
/// `.` with more digits); 0 if it starts with none.
fn number_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let digits = |from: usize| bytes.iter().skip(from).take_while(|b| b.is_ascii_digit()).count();
    let sign = usize::from(bytes.first() == Some(&b'-'));
    let whole = digits(sign);
    if whole == 0 {
        return 0;
    }
    let end = sign + whole;
    match bytes.get(end) {
        Some(b'.') if digits(end + 1) > 0 => end + 1 + digits(end + 1),
        _ => end,
    }
}

/// A checked `[[ratio]]`: a number from the output, or the ratio of two,
/// that must lie within `tolerance` of `expect`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    /// The number on top.
    pub numerator: NumberPattern,
    /// The number below (none: 1).
    pub denominator: Option<NumberPattern>,
    /// The value wanted.
    pub expect: f64,
    /// Largest accepted relative deviation from `expect`.
    pub tolerance: f64,
}

impl Ratio {
    fn from_file(file: RatioFile) -> Result<Self> {
        if !(file.expect.is_finite() && file.expect > 0.0) {
            return Err(error(format!(
                "ratio expect must be above 0, not {}",
                file.expect
            )));
        }
        if !(file.tolerance > 0.0 && file.tolerance <= 1.0) {
            return Err(error(format!(
                "ratio tolerance must be above 0 and at most 1, not {}",
                file.tolerance
            )));
        }
        Ok(Self {
            numerator: NumberPattern::parse(&file.numerator)?,
            denominator: file
                .denominator
                .as_deref()
                .map(NumberPattern::parse)
                .transpose()?,
            expect: file.expect,
            tolerance: file.tolerance,
        })
    }

    /// What the check is about, for messages.
    pub fn describe(&self) -> String {
        match &self.denominator {
            Some(d) => format!("ratio '{}' / '{d}'", self.numerator),
            None => format!("value '{}'", self.numerator),
        }
    }

    /// Checks `output`: the value found, or why the check fails.
    pub fn check(&self, output: &str) -> std::result::Result<f64, String> {
        let find = |p: &NumberPattern| {
            p.find(output)
                .ok_or_else(|| format!("'{p}' did not appear in the output"))
        };
        let top = find(&self.numerator)?;
        let value = match &self.denominator {
            None => top,
            Some(d) => {
                let bottom = find(d)?;
                if bottom == 0.0 {
                    return Err(format!("'{d}' is 0"));
                }
                top / bottom
            }
        };
        if (value / self.expect - 1.0).abs() <= self.tolerance {
            Ok(value)
        } else {
            Err(format!(
                "{} is {value:.3}, expected {} \u{b1} {} %",
                self.describe(),
                self.expect,
                self.tolerance * 100.0
            ))
        }
    }
}

/// The file as written; [`Scenario::parse`] checks it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: String,
    #[serde(default)]
    boot: BootKind,
    machine: Option<String>,
    memory: Option<String>,
    smp: Option<u32>,
    #[serde(default)]
    append: String,
    #[serde(default)]
    image: ImageKind,
    #[serde(default)]
    bundle: BundleKind,
    auto: Option<Vec<String>>,
    props: Option<Vec<String>>,
    timeout_secs: Option<u64>,
    #[serde(default)]
    exit: ExpectedExit,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    forbid: Vec<String>,
    qmp_check_after: Option<String>,
    #[serde(default)]
    step: Vec<Step>,
    #[serde(default)]
    ratio: Vec<RatioFile>,
    #[serde(default)]
    icount: bool,
    #[serde(default)]
    heap_stable: bool,
}

/// A checked scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The file stem.
    pub name: String,
    /// One line saying what it checks.
    pub description: String,
    /// PVH or GRUB ISO.
    pub boot: BootKind,
    /// Machine type, memory and CPUs.
    pub machine: Machine,
    /// Hypervisor command line.
    pub append: String,
    /// Which image.
    pub image: ImageKind,
    /// Which bundle.
    pub bundle: BundleKind,
    /// The configs the bundle's `auto/` holds instead of the default set.
    pub auto: Option<Vec<String>>,
    /// Properties of the suite to run, one domain each (`props.rs`).
    pub props: Option<Vec<String>>,
    /// Hard limit for the whole run, in seconds.
    pub timeout_secs: u64,
    /// The required exit.
    pub exit: ExpectedExit,
    /// Strings that must appear, in order.
    pub expect: Vec<String>,
    /// Strings that must not appear.
    pub forbid: Vec<String>,
    /// Check the page tables through QMP once this text appears (`qmp.rs`).
    pub qmp_check_after: Option<String>,
    /// Interactive steps after `expect`.
    pub steps: Vec<Step>,
    /// Numbers in the output to check once the run is over.
    pub ratios: Vec<Ratio>,
    /// Run under TCG with `-icount shift=0,align=off,sleep=off`: the guest
    /// TSC then counts instructions, so time-based checks (scheduler
    /// shares) do not depend on how busy the host is. Ignored under KVM.
    pub icount: bool,
    /// Check the hypervisor's heap figures in its domain destroy lines
    /// ([`crate::soak::check_heap`]) once the run is over.
    pub heap_stable: bool,
}

fn check_timeout(what: &str, secs: u64) -> Result<u64> {
    if (1..=MAX_TIMEOUT_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(error(format!(
            "{what} must be between 1 and {MAX_TIMEOUT_SECS}, not {secs}"
        )))
    }
}

/// Checks an `auto` list: plain `NAME.cfg` file names, each once.
fn check_auto(names: &[String]) -> Result<()> {
    for (index, name) in names.iter().enumerate() {
        let stem = name.strip_suffix(".cfg").unwrap_or_default();
        let plain = !stem.is_empty()
            && !stem.starts_with('.')
            && !name.contains(['/', '\\'])
            && !name.contains(char::is_whitespace);
        if !plain {
            return Err(error(format!(
                "auto entry '{name}' is not a config file name such as \"hello.cfg\""
            )));
        }
        if names[..index].contains(name) {
            return Err(error(format!("auto lists '{name}' twice")));
        }
    }
    Ok(())
}

impl Scenario {
    /// Parses and checks the text of scenario `name`.
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let file: File = toml::from_str(text).map_err(|e| error(e.to_string().trim_end()))?;
        let machine = Machine {
            machine: file.machine.unwrap_or_else(|| "q35".to_string()),
            memory: file.memory.unwrap_or_else(|| "1G".to_string()),
            smp: file.smp.unwrap_or(1),
        };
        if machine.machine.trim().is_empty() || machine.machine.contains(char::is_whitespace) {
            return Err(error(format!("bad machine '{}'", machine.machine)));
        }
        if machine.memory.is_empty() || machine.memory.contains(char::is_whitespace) {
            return Err(error(format!("bad memory size '{}'", machine.memory)));
        }
        if !(1..=255).contains(&machine.smp) {
            return Err(error(format!(
                "smp must be between 1 and 255, not {}",
                machine.smp
            )));
        }
        if file.boot == BootKind::Iso && machine.is_microvm() {
            return Err(error(
                "boot = \"iso\" needs a machine with firmware (pc or q35), not microvm",
            ));
        }
        let timeout_secs = check_timeout("timeout_secs", file.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS))?;
        if file.expect.iter().chain(&file.forbid).any(String::is_empty) {
            return Err(error("expect and forbid strings must not be empty"));
        }
        if let Some(auto) = &file.auto {
            if file.bundle == BundleKind::None {
                return Err(error("auto needs a bundle, but bundle = \"none\""));
            }
            check_auto(auto)?;
        }
        if let Some(props) = &file.props {
            if file.auto.is_some() || file.bundle == BundleKind::None {
                return Err(error("props cannot go with auto or bundle = \"none\""));
            }
            crate::props::select(props)?;
        }
        for (index, step) in file.step.iter().enumerate() {
            let number = index + 1;
            match (&step.expect, &step.send) {
                (None, None) => {
                    return Err(error(format!("step {number} has neither expect nor send")));
                }
                (Some(expect), _) if expect.is_empty() => {
                    return Err(error(format!("step {number} expects an empty string")));
                }
                _ => {}
            }
            if let Some(secs) = step.timeout_secs {
                check_timeout(&format!("step {number} timeout_secs"), secs)?;
            }
            if let Some(ms) = step.within_ms {
                if step.send.is_none() || step.expect.is_none() {
                    return Err(error(format!(
                        "step {number} has within_ms but not both send and expect"
                    )));
                }
                if !(1..=MAX_TIMEOUT_SECS * 1000).contains(&ms) {
                    return Err(error(format!(
                        "step {number} within_ms must be between 1 and {}, not {ms}",
                        MAX_TIMEOUT_SECS * 1000
                    )));
                }
            }
        }
        if file.qmp_check_after.as_deref() == Some("") {
            return Err(error("qmp_check_after must not be empty"));
        }
        let ratios = file
            .ratio
            .into_iter()
            .enumerate()
            .map(|(index, r)| Ratio::from_file(r).with_context(|| format!("ratio {}", index + 1)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            name: name.to_string(),
            description: file.description,
            boot: file.boot,
            machine,
            append: file.append,
            image: file.image,
            bundle: file.bundle,
            auto: file.auto,
            props: file.props,
            timeout_secs,
            exit: file.exit,
            expect: file.expect,
            forbid: file.forbid,
            qmp_check_after: file.qmp_check_after,
            steps: file.step,
            ratios,
            icount: file.icount,
            heap_stable: file.heap_stable,
        })
    }

    /// Reads and checks one scenario file.
    pub fn load(path: &Path) -> Result<Self> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("{} has no UTF-8 file stem", path.display()))?;
        let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(name, &text).with_context(|| format!("invalid scenario {}", path.display()))
    }
}

/// Loads every `*.toml` in `dir` whose stem contains `filter`, sorted by name.
/// Every invalid file is reported, not only the first.
pub fn load_all(dir: &Path, filter: Option<&str>) -> Result<Vec<Scenario>> {
    let mut paths: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    paths.sort();
    let mut scenarios = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        if let (Some(filter), Some(stem)) = (filter, &stem)
            && !stem.contains(filter)
        {
            continue;
        }
        match Scenario::load(&path) {
            Ok(scenario) => scenarios.push(scenario),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(scenarios)
    } else {
        Err(error(problems.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        description = "PVH boot on microvm with 128 MiB"
        boot = "pvh"
        machine = "microvm"
        memory = "128M"
        smp = 2
        append = "oxen_test=boot"
        image = "release"
        bundle = "corrupt"
        auto = ["hostile.cfg", "hello.cfg"]
        timeout_secs = 30
        exit = "failure"
        expect = ["Oxen 0.1.0", "boot protocol: PVH"]
        forbid = ["FATAL"]

        [[step]]
        expect = "dom0# "
        send = "xm list\n"
        timeout_secs = 5

        [[step]]
        send = "exit\n"
    "#;

    #[test]
    fn full_file_parses() -> Result<()> {
        let s = Scenario::parse("pvh-microvm", FULL)?;
        assert_eq!(s.name, "pvh-microvm");
        assert_eq!(s.boot, BootKind::Pvh);
        assert_eq!(s.machine.machine, "microvm");
        assert_eq!(s.machine.memory, "128M");
        assert_eq!(s.machine.smp, 2);
        assert_eq!(s.append, "oxen_test=boot");
        assert_eq!(s.image, ImageKind::Release);
        assert_eq!(s.bundle, BundleKind::Corrupt);
        assert_eq!(
            s.auto,
            Some(vec!["hostile.cfg".to_string(), "hello.cfg".to_string()])
        );
        assert_eq!(s.timeout_secs, 30);
        assert_eq!(s.exit.status(), 35);
        assert_eq!(s.expect, ["Oxen 0.1.0", "boot protocol: PVH"]);
        assert_eq!(s.forbid, ["FATAL"]);
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.steps[0].send.as_deref(), Some("xm list\n"));
        assert_eq!(s.steps[0].timeout_secs, Some(5));
        assert_eq!(s.steps[1].expect, None);
        Ok(())
    }

    #[test]
    fn defaults_apply() -> Result<()> {
        let s = Scenario::parse("x", "description = \"d\"")?;
        assert_eq!(s.boot, BootKind::Pvh);
        assert_eq!(s.machine.machine, "q35");
        assert_eq!(s.machine.memory, "1G");
        assert_eq!(s.machine.smp, 1);
        assert_eq!(s.append, "");
        assert_eq!(s.image, ImageKind::Test);
        assert_eq!(s.bundle, BundleKind::Default);
        assert_eq!(s.auto, None);
        assert_eq!(s.timeout_secs, DEFAULT_TIMEOUT_SECS);
        assert_eq!(s.exit.status(), 33);
        assert!(s.expect.is_empty() && s.forbid.is_empty() && s.steps.is_empty());
        Ok(())
    }

    fn rejected(text: &str) -> String {
        match Scenario::parse("x", text) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn mistakes_are_rejected() {
        assert!(rejected("boot = \"pvh\"").contains("description"));
        assert!(rejected("description = \"d\"\nexpct = [\"x\"]").contains("expct"));
        assert!(rejected("description = \"d\"\nboot = \"efi\"").contains("efi"));
        assert!(rejected("description = \"d\"\nexit = \"ok\"").contains("ok"));
        assert!(rejected("description = \"d\"\nbundle = \"broken\"").contains("broken"));
        assert!(rejected("description = \"d\"\nsmp = 0").contains("smp"));
        assert!(rejected("description = \"d\"\ntimeout_secs = 0").contains("timeout_secs"));
        assert!(rejected("description = \"d\"\nexpect = [\"\"]").contains("empty"));
        assert!(rejected("description = \"d\"\nmemory = \"1 G\"").contains("memory"));
        assert!(
            rejected("description = \"d\"\nboot = \"iso\"\nmachine = \"microvm,acpi=off\"")
                .contains("microvm")
        );
        assert!(rejected("description = \"d\"\n[[step]]\ntimeout_secs = 3").contains("step 1"));
        assert!(rejected("description = \"d\"\n[[step]]\nsend = \"x\"\nbogus = 1").contains("bogus"));
    }

    #[test]
    fn timed_steps_and_heap_stable() -> Result<()> {
        let text = r##"
            description = "d"
            heap_stable = true
            [[step]]
            expect = "# "
            send = "xm list\r"
            [[step]]
            send = "\r"
            expect = "# "
            within_ms = 50
            timeout_secs = 5
        "##;
        let s = Scenario::parse("x", text)?;
        assert!(s.heap_stable);
        assert_eq!(s.steps[0].within_ms, None);
        assert_eq!(
            s.steps[1],
            Step {
                expect: Some("# ".into()),
                send: Some("\r".into()),
                timeout_secs: Some(5),
                within_ms: Some(50),
            }
        );
        assert!(!Scenario::parse("x", "description = \"d\"")?.heap_stable);
        let with = |step: &str| rejected(&format!("description = \"d\"\n[[step]]\n{step}"));
        assert!(with("expect = \"# \"\nwithin_ms = 50").contains("step 1 has within_ms but not both"));
        assert!(with("send = \"x\"\nwithin_ms = 50").contains("not both send and expect"));
        assert!(with("send = \"x\"\nexpect = \"y\"\nwithin_ms = 0").contains("within_ms must be between 1"));
        assert!(with("send = \"x\"\nexpect = \"y\"\nwithin_ms = -5").contains("within_ms"));
        assert!(rejected("description = \"d\"\nheap_stable = \"yes\"").contains("heap_stable"));
        Ok(())
    }

    #[test]
    fn auto_lists_are_checked() -> Result<()> {
        let with = |auto: &str| Scenario::parse("x", &format!("description = \"d\"\nauto = {auto}"));
        assert_eq!(with("[]")?.auto, Some(Vec::new()));
        assert_eq!(
            with("[\"bad-abi.cfg\"]")?.auto,
            Some(vec!["bad-abi.cfg".to_string()])
        );
        let rejected = |auto: &str| with(auto).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(rejected("[\"hello\"]").contains("'hello' is not a config file name"));
        assert!(rejected("[\".cfg\"]").contains("not a config file name"));
        assert!(rejected("[\"auto/hello.cfg\"]").contains("not a config file name"));
        assert!(rejected("[\"../hello.cfg\"]").contains("not a config file name"));
        assert!(rejected("[\"a.cfg\", \"a.cfg\"]").contains("'a.cfg' twice"));
        assert!(rejected("\"hello.cfg\"").contains("auto"));
        assert!(rejected("[\"hello.cfg\"]\nbundle = \"none\"").contains("auto needs a bundle"));
        Ok(())
    }

    #[test]
    fn number_patterns() -> Result<()> {
        let p = NumberPattern::parse("rate {} iterations/s")?;
        assert_eq!(p.to_string(), "rate {} iterations/s");
        assert_eq!(p.find("x rate 12 iterations/s"), Some(12.0));
        assert_eq!(p.find("rate -3.25 iterations/s"), Some(-3.25));
        // The first place where the whole pattern matches.
        assert_eq!(
            p.find("rate ? iterations/s\nrate 7 it\nrate 8 iterations/s"),
            Some(8.0)
        );
        assert_eq!(p.find("rate 12. iterations/s"), None);
        assert_eq!(p.find("rate iterations/s"), None);
        let tail = NumberPattern::parse("share {}")?;
        assert_eq!(tail.find("share 33.3 % of a CPU"), Some(33.3));
        let head = NumberPattern::parse("{} ms")?;
        assert_eq!(head.find("took 15 ms"), Some(15.0));
        assert_eq!(number_len("-"), 0);
        assert_eq!(number_len("1.5.6"), 3);
        for bad in ["no hole", "{} and {}", "{}"] {
            assert!(NumberPattern::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn ratios_parse_and_check() -> Result<()> {
        let text = r#"
            description = "d"
            [[ratio]]
            numerator = "a={}"
            denominator = "b={}"
            expect = 2.0
            tolerance = 0.05
            [[ratio]]
            numerator = "share {} %"
            expect = 25
            tolerance = 0.2
        "#;
        let s = Scenario::parse("x", text)?;
        assert_eq!(s.ratios.len(), 2);
        let (pair, single) = (&s.ratios[0], &s.ratios[1]);
        assert_eq!(pair.check("a=205 b=100\n"), Ok(2.05));
        let err = pair.check("a=215 b=100").err().unwrap_or_default();
        assert!(
            err.starts_with("ratio 'a={}' / 'b={}' is 2.150, expected 2 \u{b1} 5 %"),
            "{err}"
        );
        assert_eq!(pair.check("a=1 b=0").err().unwrap_or_default(), "'b={}' is 0");
        assert_eq!(
            pair.check("a=1").err().unwrap_or_default(),
            "'b={}' did not appear in the output"
        );
        assert_eq!(single.check("share 21.5 % of a CPU"), Ok(21.5));
        assert!(single.check("share 31 %").is_err());
        Ok(())
    }

    #[test]
    fn bad_ratios_are_rejected() {
        let with = |body: &str| rejected(&format!("description = \"d\"\n[[ratio]]\n{body}"));
        assert!(
            with("numerator = \"a {}\"\nexpect = 0.0\ntolerance = 0.1").contains("expect must be above 0")
        );
        assert!(with("numerator = \"a {}\"\nexpect = 1.0\ntolerance = 0.0").contains("tolerance"));
        assert!(with("numerator = \"a {}\"\nexpect = 1.0\ntolerance = 2.0").contains("tolerance"));
        assert!(with("numerator = \"a\"\nexpect = 1.0\ntolerance = 0.1").contains("ratio 1"));
        assert!(with("numerator = \"a {}\"\nexpect = 1.0").contains("tolerance"));
        assert!(with("numerator = \"a {}\"\nexpect = 1.0\ntolerance = 0.1\nslack = 1").contains("slack"));
    }

    #[test]
    fn qmp_checks_are_optional_and_not_empty() -> Result<()> {
        let s = Scenario::parse("x", "description = \"d\"\nqmp_check_after = \"self-check\"")?;
        assert_eq!(s.qmp_check_after.as_deref(), Some("self-check"));
        assert_eq!(Scenario::parse("x", "description = \"d\"")?.qmp_check_after, None);
        assert!(rejected("description = \"d\"\nqmp_check_after = \"\"").contains("qmp_check_after"));
        Ok(())
    }

    #[test]
    fn repository_scenarios_parse() -> Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests");
        load_all(&dir, None)?;
        Ok(())
    }
}
