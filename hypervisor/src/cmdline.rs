//! The hypervisor command line: `key=value` options from the bootloader.
//!
//! The boot path hands [`parse`] the multiboot2 command-line string before any
//! heap exists, so parsing borrows from the line and allocates nothing. Option
//! names and value words follow Xen where Xen has them (`loglvl`, `dom0_mem`,
//! `sched_credit_tslice_ms`, `maxcpus`), so a Xen GRUB entry mostly carries
//! over. The line comes from outside the hypervisor: nothing here can fail or
//! panic; unknown keys and bad values are reported as [`Warning`]s (the caller
//! logs them once the console is up) and the option keeps its value.

use core::fmt;

use log::LevelFilter;

/// Default credit-scheduler time slice in milliseconds (Xen credit's default).
pub const DEFAULT_SCHED_TSLICE_MS: u32 = 30;
/// Largest accepted `sched_tslice_ms`.
pub const MAX_SCHED_TSLICE_MS: u32 = 1000;
/// Largest accepted `smp` (CPUs brought up).
pub const MAX_SMP: u32 = 256;
/// `dom0_mem` must be a multiple of this many bytes (a 4 KiB page).
pub const DOM0_MEM_ALIGN: u64 = 4096;

/// What a test build does once booted (`oxen_test=`). The kernel honours it only in test builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestAction {
    /// Run the self-checks, then exit QEMU with success.
    Boot,
    /// Write to read-only kernel data; the page-fault handler must report it.
    PageFault,
    /// Call `panic!`; the panic handler must report it.
    Panic,
    /// Push until the stack guard page is hit; the double-fault handler
    /// must report it.
    StackOverflow,
    /// Start dom0 and exit QEMU with dom0's verdict when it powers off
    /// (success) or stops any other way (failure).
    Dom0,
}

/// The settings the command line controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Most verbose log level printed (`loglvl=`); default `Info`.
    pub loglvl: LevelFilter,
    /// dom0's memory in bytes (`dom0_mem=`); `None` lets the domain builder choose.
    pub dom0_mem: Option<u64>,
    /// Credit-scheduler time slice in milliseconds, `1..=1000` (`sched_tslice_ms=`).
    pub sched_tslice_ms: u32,
    /// Most CPUs to bring up, `1..=256` (`smp=`); `None` brings up all.
    pub smp: Option<u32>,
    /// Whether to use ACPI tables (`acpi=`); default on.
    pub acpi: bool,
    /// Count calls and TSC ticks per hypercall (`hcstats=`); default off.
    pub hcstats: bool,
    /// What a test build does once booted (`oxen_test=`).
    pub test: Option<TestAction>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            loglvl: LevelFilter::Info,
            dom0_mem: None,
            sched_tslice_ms: DEFAULT_SCHED_TSLICE_MS,
            smp: None,
            acpi: true,
            hcstats: false,
            test: None,
        }
    }
}

/// A problem with one command-line token; parsing carries on without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warning<'a> {
    /// The key is not an option this hypervisor knows (the whole token when
    /// it has no key, as in `=5`).
    UnknownKey {
        /// The key as written.
        key: &'a str,
    },
    /// The value is not acceptable for the key.
    BadValue {
        /// The key as written.
        key: &'a str,
        /// The value as written.
        value: &'a str,
        /// What was expected, a phrase completing "`key=value` is not ...".
        expected: &'static str,
    },
    /// A known key without `=value`, or with an empty value.
    MissingValue {
        /// The key as written.
        key: &'a str,
    },
}

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownKey { key } => {
                write!(f, "unknown command-line option '{}' ignored", key.escape_debug())
            }
            Self::BadValue { key, value, expected } => write!(
                f,
                "{}={} is not {expected}; ignored",
                key.escape_debug(),
                value.escape_debug()
            ),
            Self::MissingValue { key } => write!(
                f,
                "command-line option '{}' has no value; ignored",
                key.escape_debug()
            ),
        }
    }
}

/// Every option: (name, one-line help), for documentation and `--help`-like
/// listings. Aliases name the option they stand for.
pub const KNOWN_OPTIONS: &[(&str, &str)] = &[
    (
        "loglvl",
        "log level: none, error, warning, info, debug, trace or all (default info)",
    ),
    (
        "dom0_mem",
        "dom0 memory size, e.g. 512M or 2G; a bare number is KiB (default: chosen at boot)",
    ),
    (
        "sched_tslice_ms",
        "credit-scheduler time slice in ms, 1 to 1000 (default 30)",
    ),
    ("sched_credit_tslice_ms", "Xen's name for sched_tslice_ms"),
    ("smp", "most CPUs to bring up, 1 to 256 (default: all)"),
    ("maxcpus", "Xen's name for smp"),
    ("acpi", "use ACPI tables: on or off (default on)"),
    (
        "hcstats",
        "count calls and TSC ticks per hypercall, logged when dom0 stops: on or off (default off)",
    ),
    (
        "oxen_test",
        "test builds only: boot, dom0, pagefault, panic or stack-overflow",
    ),
];

/// Expected-value phrases for [`Warning::BadValue`].
const EXPECT_LOGLVL: &str = "a log level (none, error, warning, info, debug, trace or all)";
const EXPECT_SIZE: &str = "a size (expected e.g. 512M)";
const EXPECT_SIZE_RANGE: &str = "a size that fits in 64 bits";
const EXPECT_SIZE_PAGES: &str = "a non-zero multiple of 4 KiB";
const EXPECT_TSLICE: &str = "a time slice from 1 to 1000 ms";
const EXPECT_SMP: &str = "a CPU count from 1 to 256";
const EXPECT_BOOL: &str = "on or off";
const EXPECT_TEST: &str = "a test action (boot, dom0, pagefault, panic or stack-overflow)";

/// Parse `key=value` tokens separated by ASCII whitespace. Unknown keys and bad values are reported through `warn` and the default is kept; parsing never fails. A first token starting with '/' is the image path (GRUB's multiboot2 command line may start with it) and is skipped. Later duplicates override earlier ones.
///
/// Keys are case-sensitive, with `-` and `_` interchangeable as in Xen and
/// Linux; value words are case-insensitive. A bad value leaves the option as
/// it was: the default, or the value of an earlier good duplicate.
pub fn parse<'a>(line: &'a str, mut warn: impl FnMut(Warning<'a>)) -> Options {
    let mut options = Options::default();
    for (index, token) in line.split_ascii_whitespace().enumerate() {
        if index == 0 && token.starts_with('/') {
            continue;
        }
        if let Err(warning) = apply(&mut options, token) {
            warn(warning);
        }
    }
    options
}

/// Applies one `key=value` token to `options`.
fn apply<'a>(options: &mut Options, token: &'a str) -> Result<(), Warning<'a>> {
    let (key, value) = match token.split_once('=') {
        Some(("", _)) => return Err(Warning::UnknownKey { key: token }),
        Some((key, value)) => (key, Some(value)),
        None => (token, None),
    };
    let option = Key::from_name(key).ok_or(Warning::UnknownKey { key })?;
    let value = match value {
        Some(value) if !value.is_empty() => value,
        _ => return Err(Warning::MissingValue { key }),
    };
    let bad = |expected| Warning::BadValue { key, value, expected };
    match option {
        Key::Loglvl => options.loglvl = parse_level(value).ok_or_else(|| bad(EXPECT_LOGLVL))?,
        Key::Dom0Mem => options.dom0_mem = Some(parse_dom0_mem(value).map_err(bad)?),
        Key::SchedTsliceMs => {
            options.sched_tslice_ms =
                parse_in_range(value, 1, MAX_SCHED_TSLICE_MS).ok_or_else(|| bad(EXPECT_TSLICE))?;
        }
        Key::Smp => {
            options.smp = Some(parse_in_range(value, 1, MAX_SMP).ok_or_else(|| bad(EXPECT_SMP))?);
        }
        Key::Acpi => options.acpi = parse_bool(value).ok_or_else(|| bad(EXPECT_BOOL))?,
        Key::Hcstats => options.hcstats = parse_bool(value).ok_or_else(|| bad(EXPECT_BOOL))?,
        Key::OxenTest => options.test = Some(parse_test(value).ok_or_else(|| bad(EXPECT_TEST))?),
    }
    Ok(())
}

/// The options [`parse`] knows.
#[derive(Clone, Copy)]
enum Key {
    /// `loglvl`.
    Loglvl,
    /// `dom0_mem`.
    Dom0Mem,
    /// `sched_tslice_ms`, alias `sched_credit_tslice_ms`.
    SchedTsliceMs,
    /// `smp`, alias `maxcpus`.
    Smp,
    /// `acpi`.
    Acpi,
    /// `hcstats`.
    Hcstats,
    /// `oxen_test`.
    OxenTest,
}

impl Key {
    /// Every key name, aliases included.
    const NAMES: [(&'static str, Self); 9] = [
        ("loglvl", Self::Loglvl),
        ("dom0_mem", Self::Dom0Mem),
        ("sched_tslice_ms", Self::SchedTsliceMs),
        ("sched_credit_tslice_ms", Self::SchedTsliceMs),
        ("smp", Self::Smp),
        ("maxcpus", Self::Smp),
        ("acpi", Self::Acpi),
        ("hcstats", Self::Hcstats),
        ("oxen_test", Self::OxenTest),
    ];

    /// Looks a key up, case-sensitively, with `-` and `_` interchangeable.
    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(known, _)| same_key(name, known))
            .map(|&(_, key)| key)
    }
}

/// Whether `a` and `b` are the same key: equal bytes, except that `-` and
/// `_` match each other.
fn same_key(a: &str, b: &str) -> bool {
    let fold = |c: u8| if c == b'-' { b'_' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Whether `value` is `word`, ignoring ASCII case and treating `-` and `_`
/// alike.
fn same_word(value: &str, word: &str) -> bool {
    let fold = |c: u8| {
        if c == b'-' { b'_' } else { c.to_ascii_lowercase() }
    };
    value.len() == word.len() && value.bytes().zip(word.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// `loglvl`: Xen's words (`none`, `error`, `warning`, `info`, `debug`,
/// `all`) plus Rust's (`off`, `warn`, `trace`).
fn parse_level(value: &str) -> Option<LevelFilter> {
    const WORDS: [(&str, LevelFilter); 9] = [
        ("none", LevelFilter::Off),
        ("off", LevelFilter::Off),
        ("error", LevelFilter::Error),
        ("warning", LevelFilter::Warn),
        ("warn", LevelFilter::Warn),
        ("info", LevelFilter::Info),
        ("debug", LevelFilter::Debug),
        ("trace", LevelFilter::Trace),
        ("all", LevelFilter::Trace),
    ];
    WORDS
        .iter()
        .find(|(word, _)| same_word(value, word))
        .map(|&(_, level)| level)
}

/// `acpi` and other switches.
fn parse_bool(value: &str) -> Option<bool> {
    const WORDS: [(&str, bool); 8] = [
        ("on", true),
        ("off", false),
        ("1", true),
        ("0", false),
        ("yes", true),
        ("no", false),
        ("true", true),
        ("false", false),
    ];
    WORDS
        .iter()
        .find(|(word, _)| same_word(value, word))
        .map(|&(_, on)| on)
}

/// `oxen_test`.
fn parse_test(value: &str) -> Option<TestAction> {
    const WORDS: [(&str, TestAction); 6] = [
        ("boot", TestAction::Boot),
        ("dom0", TestAction::Dom0),
        ("pagefault", TestAction::PageFault),
        ("page-fault", TestAction::PageFault),
        ("panic", TestAction::Panic),
        ("stack-overflow", TestAction::StackOverflow),
    ];
    WORDS
        .iter()
        .find(|(word, _)| same_word(value, word))
        .map(|&(_, action)| action)
}

/// A decimal integer: ASCII digits only (no sign, no spaces), no overflow.
fn parse_decimal(digits: &str) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        let digit = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// A decimal integer within `min..=max`.
fn parse_in_range(value: &str, min: u32, max: u32) -> Option<u32> {
    let n = u32::try_from(parse_decimal(value)?).ok()?;
    (min..=max).contains(&n).then_some(n)
}

/// `dom0_mem`: a size in bytes, non-zero and page-aligned; the error is the
/// expected-value phrase.
fn parse_dom0_mem(value: &str) -> Result<u64, &'static str> {
    let bytes = parse_size(value)?;
    if bytes == 0 || bytes % DOM0_MEM_ALIGN != 0 {
        return Err(EXPECT_SIZE_PAGES);
    }
    Ok(bytes)
}

/// A size as Xen writes it: decimal digits, then an optional unit `K`, `M`,
/// `G` or `T` (binary multiples, either case, optionally followed by `iB` or
/// `B`) or `B` for bytes; without a unit the number is KiB, as in Xen.
fn parse_size(value: &str) -> Result<u64, &'static str> {
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let shift: u32 = if unit.is_empty() {
        10
    } else if same_word(unit, "b") {
        0
    } else {
        let mut chars = unit.chars();
        let shift = match chars.next().map(|c| c.to_ascii_uppercase()) {
            Some('K') => 10,
            Some('M') => 20,
            Some('G') => 30,
            Some('T') => 40,
            _ => return Err(EXPECT_SIZE),
        };
        let suffix = chars.as_str();
        if !(suffix.is_empty() || same_word(suffix, "b") || same_word(suffix, "ib")) {
            return Err(EXPECT_SIZE);
        }
        shift
    };
    let number = parse_decimal(digits).ok_or(if digits.is_empty() {
        EXPECT_SIZE
    } else {
        EXPECT_SIZE_RANGE
    })?;
    number.checked_mul(1u64 << shift).ok_or(EXPECT_SIZE_RANGE)
}

#[cfg(test)]
mod tests {
    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::*;

    /// Parses `line` and collects the warnings.
    fn run(line: &str) -> (Options, Vec<Warning<'_>>) {
        let mut warnings = Vec::new();
        let options = parse(line, |w| warnings.push(w));
        (options, warnings)
    }

    /// Parses a line that must produce no warning.
    fn clean(line: &str) -> Options {
        let (options, warnings) = run(line);
        assert!(warnings.is_empty(), "{line:?}: {warnings:?}");
        options
    }

    /// Parses a line that must produce exactly one warning, and checks that
    /// the options stayed at their defaults.
    fn one_warning(line: &str) -> Warning<'_> {
        let (options, warnings) = run(line);
        assert_eq!(options, Options::default(), "{line:?}");
        assert_eq!(warnings.len(), 1, "{line:?}: {warnings:?}");
        warnings[0]
    }

    fn bad<'a>(key: &'a str, value: &'a str, expected: &'static str) -> Warning<'a> {
        Warning::BadValue { key, value, expected }
    }

    #[test]
    fn defaults() {
        let d = Options::default();
        assert_eq!(d.loglvl, LevelFilter::Info);
        assert_eq!(d.dom0_mem, None);
        assert_eq!(d.sched_tslice_ms, 30);
        assert_eq!(d.smp, None);
        assert!(d.acpi);
        assert_eq!(d.test, None);
        assert_eq!(clean(""), d);
        assert_eq!(clean("   \t \n "), d);
    }

    #[test]
    fn loglvl_words() {
        for (word, level) in [
            ("none", LevelFilter::Off),
            ("off", LevelFilter::Off),
            ("error", LevelFilter::Error),
            ("warning", LevelFilter::Warn),
            ("warn", LevelFilter::Warn),
            ("info", LevelFilter::Info),
            ("debug", LevelFilter::Debug),
            ("trace", LevelFilter::Trace),
            ("all", LevelFilter::Trace),
            ("ALL", LevelFilter::Trace),
            ("Debug", LevelFilter::Debug),
        ] {
            let line = std::format!("loglvl={word}");
            assert_eq!(clean(&line).loglvl, level, "{word}");
        }
    }

    #[test]
    fn loglvl_bad() {
        for value in ["verbose", "3", "all/warning", "infoo", "inf"] {
            let line = std::format!("loglvl={value}");
            assert_eq!(one_warning(&line), bad("loglvl", value, EXPECT_LOGLVL));
        }
    }

    #[test]
    fn dom0_mem_sizes() {
        const K: u64 = 1 << 10;
        const M: u64 = 1 << 20;
        const G: u64 = 1 << 30;
        const T: u64 = 1 << 40;
        for (value, bytes) in [
            ("512M", 512 * M),
            ("512m", 512 * M),
            ("512MiB", 512 * M),
            ("512mib", 512 * M),
            ("512MB", 512 * M),
            ("2G", 2 * G),
            ("2g", 2 * G),
            ("1T", T),
            ("4K", 4 * K),
            ("64KiB", 64 * K),
            ("4096", 4096 * K),
            ("8", 8 * K),
            ("4096B", 4096),
            ("8192b", 8192),
            ("16777215T", 16_777_215 * T),
        ] {
            let line = std::format!("dom0_mem={value}");
            assert_eq!(clean(&line).dom0_mem, Some(bytes), "{value}");
        }
    }

    #[test]
    fn dom0_mem_bad() {
        for (value, expected) in [
            ("12Q", EXPECT_SIZE),
            ("M", EXPECT_SIZE),
            ("512MM", EXPECT_SIZE),
            ("512iB", EXPECT_SIZE),
            ("-1G", EXPECT_SIZE),
            ("+1G", EXPECT_SIZE),
            ("1.5G", EXPECT_SIZE),
            ("0x100M", EXPECT_SIZE),
            ("max:1G", EXPECT_SIZE),
            ("1G,max:2G", EXPECT_SIZE),
            ("0", EXPECT_SIZE_PAGES),
            ("0M", EXPECT_SIZE_PAGES),
            ("1", EXPECT_SIZE_PAGES),
            ("4095B", EXPECT_SIZE_PAGES),
            ("99999999999999999999T", EXPECT_SIZE_RANGE),
            ("99999999999999999999", EXPECT_SIZE_RANGE),
            ("16777216T1", EXPECT_SIZE),
            ("16777216T", EXPECT_SIZE_RANGE),
            ("18014398509481984", EXPECT_SIZE_RANGE),
        ] {
            let line = std::format!("dom0_mem={value}");
            assert_eq!(one_warning(&line), bad("dom0_mem", value, expected), "{value}");
        }
    }

    #[test]
    fn sched_tslice() {
        assert_eq!(clean("sched_tslice_ms=1").sched_tslice_ms, 1);
        assert_eq!(clean("sched_tslice_ms=1000").sched_tslice_ms, 1000);
        assert_eq!(clean("sched_credit_tslice_ms=10").sched_tslice_ms, 10);
        assert_eq!(clean("sched-tslice-ms=5").sched_tslice_ms, 5);
        for value in [
            "0",
            "1001",
            "-5",
            "+5",
            "10ms",
            "4294967296",
            "99999999999999999999",
        ] {
            let line = std::format!("sched_tslice_ms={value}");
            assert_eq!(one_warning(&line), bad("sched_tslice_ms", value, EXPECT_TSLICE));
        }
    }

    #[test]
    fn smp() {
        assert_eq!(clean("smp=1").smp, Some(1));
        assert_eq!(clean("smp=256").smp, Some(256));
        assert_eq!(clean("maxcpus=4").smp, Some(4));
        for value in ["0", "257", "four", "4 ", "0x4", "1e3"] {
            let line = std::format!("smp={value}");
            if value.ends_with(' ') {
                // Whitespace ends the token: "smp=4" is fine.
                assert_eq!(clean(&line).smp, Some(4));
                continue;
            }
            assert_eq!(one_warning(&line), bad("smp", value, EXPECT_SMP));
        }
    }

    #[test]
    fn acpi() {
        for (value, on) in [
            ("on", true),
            ("off", false),
            ("OFF", false),
            ("1", true),
            ("0", false),
            ("yes", true),
            ("No", false),
            ("true", true),
            ("FALSE", false),
        ] {
            let line = std::format!("acpi={value}");
            assert_eq!(clean(&line).acpi, on, "{value}");
        }
        for value in ["force", "ht", "2", "o"] {
            let line = std::format!("acpi={value}");
            assert_eq!(one_warning(&line), bad("acpi", value, EXPECT_BOOL));
        }
    }

    #[test]
    fn oxen_test() {
        for (value, action) in [
            ("boot", TestAction::Boot),
            ("BOOT", TestAction::Boot),
            ("pagefault", TestAction::PageFault),
            ("page-fault", TestAction::PageFault),
            ("page_fault", TestAction::PageFault),
            ("panic", TestAction::Panic),
            ("stack-overflow", TestAction::StackOverflow),
            ("stack_overflow", TestAction::StackOverflow),
        ] {
            let line = std::format!("oxen_test={value}");
            assert_eq!(clean(&line).test, Some(action), "{value}");
        }
        assert_eq!(
            one_warning("oxen_test=reboot"),
            bad("oxen_test", "reboot", EXPECT_TEST)
        );
    }

    #[test]
    fn unknown_key() {
        assert_eq!(one_warning("foo=bar"), Warning::UnknownKey { key: "foo" });
        assert_eq!(one_warning("quiet"), Warning::UnknownKey { key: "quiet" });
        assert_eq!(one_warning("=5"), Warning::UnknownKey { key: "=5" });
        assert_eq!(one_warning("="), Warning::UnknownKey { key: "=" });
        // Keys are case-sensitive, as in Xen and Linux.
        assert_eq!(one_warning("LOGLVL=info"), Warning::UnknownKey { key: "LOGLVL" });
        assert_eq!(
            one_warning("loglvl_=info"),
            Warning::UnknownKey { key: "loglvl_" }
        );
    }

    #[test]
    fn missing_value() {
        assert_eq!(one_warning("smp"), Warning::MissingValue { key: "smp" });
        assert_eq!(one_warning("smp="), Warning::MissingValue { key: "smp" });
        assert_eq!(one_warning("acpi"), Warning::MissingValue { key: "acpi" });
        assert_eq!(
            one_warning("dom0_mem="),
            Warning::MissingValue { key: "dom0_mem" }
        );
    }

    #[test]
    fn value_containing_equals() {
        assert_eq!(
            one_warning("loglvl=info=debug"),
            bad("loglvl", "info=debug", EXPECT_LOGLVL)
        );
    }

    #[test]
    fn whitespace_and_several_options() {
        let o = clean("\t loglvl=debug   smp=4\tdom0_mem=1G \n acpi=off  oxen_test=panic ");
        assert_eq!(
            o,
            Options {
                loglvl: LevelFilter::Debug,
                dom0_mem: Some(1 << 30),
                sched_tslice_ms: 30,
                smp: Some(4),
                acpi: false,
                hcstats: false,
                test: Some(TestAction::Panic),
            }
        );
    }

    #[test]
    fn leading_image_path() {
        let o = clean("/boot/oxen.elf loglvl=trace");
        assert_eq!(o.loglvl, LevelFilter::Trace);
        let o = clean("  /oxen smp=2");
        assert_eq!(o.smp, Some(2));
        // Only the first token may be a path.
        assert_eq!(
            one_warning("loglvl=info /boot/oxen").to_string(),
            "unknown command-line option '/boot/oxen' ignored"
        );
    }

    #[test]
    fn duplicates_override() {
        assert_eq!(clean("smp=2 smp=8").smp, Some(8));
        assert_eq!(clean("loglvl=debug loglvl=error").loglvl, LevelFilter::Error);
        assert_eq!(clean("smp=2 maxcpus=3").smp, Some(3));
        // A bad later value keeps the earlier good one.
        let (o, w) = run("smp=2 smp=0");
        assert_eq!(o.smp, Some(2));
        assert_eq!(w, [bad("smp", "0", EXPECT_SMP)]);
    }

    #[test]
    fn warnings_do_not_stop_parsing() {
        let (o, w) = run("foo smp=x loglvl=debug bar=1 acpi");
        assert_eq!(o.loglvl, LevelFilter::Debug);
        assert_eq!(
            w,
            [
                Warning::UnknownKey { key: "foo" },
                bad("smp", "x", EXPECT_SMP),
                Warning::UnknownKey { key: "bar" },
                Warning::MissingValue { key: "acpi" },
            ]
        );
    }

    #[test]
    fn warning_display() {
        assert_eq!(
            Warning::UnknownKey { key: "foo" }.to_string(),
            "unknown command-line option 'foo' ignored"
        );
        assert_eq!(
            bad("dom0_mem", "12Q", EXPECT_SIZE).to_string(),
            "dom0_mem=12Q is not a size (expected e.g. 512M); ignored"
        );
        assert_eq!(
            Warning::MissingValue { key: "smp" }.to_string(),
            "command-line option 'smp' has no value; ignored"
        );
        // Control characters from the bootloader are escaped, not printed.
        assert_eq!(
            Warning::UnknownKey { key: "\u{1b}[2J" }.to_string(),
            "unknown command-line option '\\u{1b}[2J' ignored"
        );
    }

    #[test]
    fn non_ascii_never_panics() {
        let (o, w) = run("smp=४ dom0_mem=５M loglvl=ınfo ключ=значение dom0_mem=1€");
        assert_eq!(o, Options::default());
        assert_eq!(w.len(), 5);
    }

    #[test]
    fn long_garbage_never_panics() {
        // A deterministic pseudo-random line mixing keys, separators and junk.
        let pieces = [
            "smp",
            "=",
            "dom0_mem",
            "loglvl",
            "acpi",
            "oxen_test",
            "9",
            "T",
            "iB",
            " ",
            "\t",
            "/",
            "-",
            "_",
            "é",
            "\u{0}",
            "99999999999999999999",
            "K",
            "M",
            "on",
            "",
        ];
        let mut line = String::new();
        let mut state: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let index = usize::try_from(state).expect("u32 fits usize") % pieces.len();
            line.push_str(pieces[index]);
        }
        let mut count = 0usize;
        let options = parse(&line, |w| {
            count += 1;
            let _ = w.to_string();
        });
        assert!(count > 0);
        assert!((1..=MAX_SMP).contains(&options.smp.unwrap_or(1)));
        assert!((1..=MAX_SCHED_TSLICE_MS).contains(&options.sched_tslice_ms));
    }

    #[test]
    fn known_options_are_all_parsed() {
        for (name, help) in KNOWN_OPTIONS {
            assert!(Key::from_name(name).is_some(), "{name}");
            assert!(!help.is_empty());
        }
        assert_eq!(KNOWN_OPTIONS.len(), Key::NAMES.len());
    }
}
