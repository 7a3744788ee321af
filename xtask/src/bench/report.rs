//! One benchmark run's results: the figures, where they were measured, the
//! terminal table, `bench.json` (written and read back for `--compare`) and
//! the comparison of two runs.

use std::fmt::Write as _;

use super::json::Value;
use super::stats::{self, Summary};

/// Which kind of figure: the table shows them in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// A path length measured inside a guest (instructions or cycles).
    Path,
    /// A whole operation timed from outside, or a count.
    Lifecycle,
    /// A fixed reference number (Xen 4.17), not measured here.
    Reference,
}

impl Group {
    /// The name used in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Group::Path => "path",
            Group::Lifecycle => "lifecycle",
            Group::Reference => "reference",
        }
    }

    fn parse(s: &str) -> Option<Group> {
        match s {
            "path" => Some(Group::Path),
            "lifecycle" => Some(Group::Lifecycle),
            "reference" => Some(Group::Reference),
            _ => None,
        }
    }
}

/// One reported number.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Stable identifier (`null_hypercall`).
    pub name: String,
    /// Its kind.
    pub group: Group,
    /// `instructions`, `cycles`, `ms`, `domains`, `KiB`.
    pub unit: String,
    /// The measured values, or `None` with the reason (`n/a`).
    pub value: Result<Summary, String>,
    /// Runs it was measured in (samples per run are `value.n` for path lengths).
    pub runs: u64,
    /// The goal: at most this much, in `unit`.
    pub target: Option<f64>,
    /// What it measures, in a few words.
    pub note: String,
}

impl Figure {
    /// A figure with a value.
    pub fn new(name: &str, group: Group, unit: &str, summary: Summary, runs: u64, note: &str) -> Figure {
        Figure {
            name: name.into(),
            group,
            unit: unit.into(),
            value: Ok(summary),
            runs,
            target: None,
            note: note.into(),
        }
    }

    /// A figure that could not be measured, and why.
    pub fn na(name: &str, group: Group, unit: &str, reason: &str, note: &str) -> Figure {
        Figure {
            name: name.into(),
            group,
            unit: unit.into(),
            value: Err(reason.into()),
            runs: 0,
            target: None,
            note: note.into(),
        }
    }

    /// The same figure with a goal.
    pub fn with_target(mut self, target: Option<f64>) -> Figure {
        self.target = target;
        self
    }

    /// The median, if measured.
    pub fn median(&self) -> Option<f64> {
        self.value.as_ref().ok().map(|s| s.median)
    }

    /// Whether the median meets the target (`None`: no target or no value).
    pub fn meets_target(&self) -> Option<bool> {
        Some(self.median()? <= self.target?)
    }

    fn to_json(&self) -> Value {
        let num = |v: f64| Value::Number(round(v));
        let mut m = vec![
            ("name".to_string(), Value::String(self.name.clone())),
            ("group".into(), Value::String(self.group.name().into())),
            ("unit".into(), Value::String(self.unit.clone())),
        ];
        match &self.value {
            Ok(s) => {
                m.push(("status".into(), Value::String("ok".into())));
                m.push(("median".into(), num(s.median)));
                m.push(("p99".into(), num(s.p99)));
                m.push(("min".into(), num(s.min)));
                m.push(("max".into(), num(s.max)));
                m.push(("n".into(), Value::Number(s.n as f64)));
            }
            Err(reason) => {
                m.push(("status".into(), Value::String("n/a".into())));
                m.push(("reason".into(), Value::String(reason.clone())));
            }
        }
        m.push(("runs".into(), Value::Number(self.runs as f64)));
        m.push(("target".into(), self.target.map_or(Value::Null, Value::Number)));
        m.push(("note".into(), Value::String(self.note.clone())));
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Result<Figure, String> {
        let text = |key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("a figure has no \"{key}\""))
        };
        let name = text("name")?;
        let num = |key: &str| {
            v.get(key)
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("figure '{name}' has no number \"{key}\""))
        };
        let value = if text("status")? == "ok" {
            Ok(Summary {
                median: num("median")?,
                p99: num("p99")?,
                min: num("min")?,
                max: num("max")?,
                n: stats::count(num("n")?),
            })
        } else {
            Err(text("reason").unwrap_or_default())
        };
        Ok(Figure {
            group: Group::parse(&text("group")?).ok_or_else(|| format!("figure '{name}': unknown group"))?,
            unit: text("unit")?,
            value,
            runs: stats::count(v.get("runs").and_then(Value::as_f64).unwrap_or(0.0)),
            target: v.get("target").and_then(Value::as_f64),
            note: text("note").unwrap_or_default(),
            name,
        })
    }
}

/// Three significant decimals are plenty; keeps the JSON readable.
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Where and how a run was made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    /// `hostname`.
    pub hostname: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Host CPUs.
    pub host_cpus: u64,
    /// `qemu-system-x86_64 --version`, first line.
    pub qemu_version: String,
    /// `tcg` or `kvm`.
    pub accelerator: String,
    /// Whether path lengths ran under `-icount shift=0`.
    pub icount: bool,
    /// `git rev-parse HEAD`.
    pub git_commit: String,
    /// Whether the work tree had changes.
    pub git_dirty: bool,
    /// Seconds since the Unix epoch at the start of the run.
    pub unix_time: u64,
    /// `--quick`.
    pub quick: bool,
    /// Wall time of the whole run, seconds.
    pub elapsed_s: f64,
}

/// A whole run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Where and how.
    pub context: Context,
    /// Every figure, in table order.
    pub figures: Vec<Figure>,
}

/// The JSON layout's name and version.
pub const SCHEMA: &str = "oxen-bench/1";

impl Report {
    /// The figure named `name`.
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// `bench.json`.
    pub fn to_json(&self) -> Value {
        let c = &self.context;
        let s = |v: &str| Value::String(v.into());
        Value::Object(vec![
            ("schema".into(), s(SCHEMA)),
            (
                "machine".into(),
                Value::Object(vec![
                    ("hostname".into(), s(&c.hostname)),
                    ("cpu_model".into(), s(&c.cpu_model)),
                    ("host_cpus".into(), Value::Number(c.host_cpus as f64)),
                ]),
            ),
            ("qemu_version".into(), s(&c.qemu_version)),
            ("accelerator".into(), s(&c.accelerator)),
            ("icount".into(), Value::Bool(c.icount)),
            ("git_commit".into(), s(&c.git_commit)),
            ("git_dirty".into(), Value::Bool(c.git_dirty)),
            ("unix_time".into(), Value::Number(c.unix_time as f64)),
            ("quick".into(), Value::Bool(c.quick)),
            ("elapsed_s".into(), Value::Number(round(c.elapsed_s))),
            (
                "figures".into(),
                Value::Array(self.figures.iter().map(Figure::to_json).collect()),
            ),
        ])
    }

    /// Read a `bench.json` back.
    pub fn from_json(v: &Value) -> Result<Report, String> {
        match v.get("schema").and_then(Value::as_str) {
            Some(SCHEMA) => {}
            other => return Err(format!("not an {SCHEMA} file (schema {other:?})")),
        }
        let s = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let b = |key: &str| matches!(v.get(key), Some(Value::Bool(true)));
        let n = |key: &str| v.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        let machine = |key: &str| {
            v.get("machine")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let figures = v
            .get("figures")
            .and_then(Value::as_array)
            .ok_or("no \"figures\" array")?
            .iter()
            .map(Figure::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Report {
            context: Context {
                hostname: machine("hostname"),
                cpu_model: machine("cpu_model"),
                host_cpus: stats::count(
                    v.get("machine")
                        .and_then(|m| m.get("host_cpus"))
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                ),
                qemu_version: s("qemu_version"),
                accelerator: s("accelerator"),
                icount: b("icount"),
                git_commit: s("git_commit"),
                git_dirty: b("git_dirty"),
                unix_time: stats::count(n("unix_time")),
                quick: b("quick"),
                elapsed_s: n("elapsed_s"),
            },
            figures,
        })
    }

    /// The terminal table (also the one `docs/benchmarks.md` shows).
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "figure".to_string(),
            "median".into(),
            "p99".into(),
            "n".into(),
            "unit".into(),
            "target".into(),
            "note".into(),
        ]];
        for group in [Group::Path, Group::Lifecycle, Group::Reference] {
            for f in self.figures.iter().filter(|f| f.group == group) {
                let (median, p99, n) = match &f.value {
                    Ok(s) => (
                        show(s.median),
                        show(s.p99),
                        if f.group == Group::Path {
                            s.n.to_string()
                        } else {
                            format!("{} run{}", f.runs, if f.runs == 1 { "" } else { "s" })
                        },
                    ),
                    Err(_) => ("n/a".into(), "".into(), "".into()),
                };
                let target = match (f.target, f.meets_target()) {
                    (Some(t), Some(true)) => format!("<= {} met", show(t)),
                    (Some(t), Some(false)) => format!("<= {} MISSED", show(t)),
                    (Some(t), None) => format!("<= {}", show(t)),
                    (None, _) => String::new(),
                };
                let note = match &f.value {
                    Err(reason) => format!("n/a: {reason}"),
                    Ok(_) => f.note.clone(),
                };
                rows.push([f.name.clone(), median, p99, n, f.unit.clone(), target, note]);
            }
        }
        render(&rows, &[false, true, true, true, false, false, false])
    }

    /// What changed from `old` to `self`, one line per figure.
    pub fn compare(&self, old: &Report) -> String {
        let mut out = String::new();
        let (o, n) = (&old.context, &self.context);
        let _ = writeln!(
            out,
            "old: {} ({}{}, {}, icount {}, {})",
            short(&o.git_commit),
            o.hostname,
            if o.quick { ", quick" } else { "" },
            o.accelerator,
            if o.icount { "on" } else { "off" },
            o.cpu_model
        );
        let _ = writeln!(
            out,
            "new: {} ({}{}, {}, icount {}, {})",
            short(&n.git_commit),
            n.hostname,
            if n.quick { ", quick" } else { "" },
            n.accelerator,
            if n.icount { "on" } else { "off" },
            n.cpu_model
        );
        if o.accelerator != n.accelerator || o.icount != n.icount {
            out.push_str("warning: the runs used different accelerators or icount settings; path lengths do not compare\n");
        }
        let mut rows = vec![[
            "figure".to_string(),
            "old".into(),
            "new".into(),
            "change".into(),
            "old p99".into(),
            "new p99".into(),
            "unit".into(),
        ]];
        let mut names: Vec<&str> = self.figures.iter().map(|f| f.name.as_str()).collect();
        for f in &old.figures {
            if !names.contains(&f.name.as_str()) {
                names.push(&f.name);
            }
        }
        for name in names {
            let (of, nf) = (old.figure(name), self.figure(name));
            if nf.is_some_and(|f| f.group == Group::Reference) {
                continue;
            }
            let unit = nf.or(of).map(|f| f.unit.clone()).unwrap_or_default();
            if let (Some(of), Some(nf)) = (of, nf)
                && of.unit != nf.unit
            {
                rows.push([
                    name.to_string(),
                    value(Some(of)),
                    value(Some(nf)),
                    format!("units differ ({} vs {})", of.unit, nf.unit),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                continue;
            }
            let median = |f: Option<&Figure>| f.and_then(Figure::median);
            let p99 = |f: Option<&Figure>| f.and_then(|f| f.value.as_ref().ok()).map(|s| show(s.p99));
            let change = stats::change(median(of), median(nf));
            rows.push([
                name.to_string(),
                value(of),
                value(nf),
                change.describe(NOISE_PERCENT),
                p99(of).unwrap_or_default(),
                p99(nf).unwrap_or_default(),
                unit,
            ]);
        }
        out.push_str(&render(&rows, &[false, true, true, true, true, true, false]));
        let _ = writeln!(
            out,
            "(change of the median; '~' marks changes within {NOISE_PERCENT}%, lower is better for every figure but density_1m)"
        );
        out
    }
}

/// Changes this small (percent) are marked as noise in comparisons.
pub const NOISE_PERCENT: f64 = 1.0;

fn value(f: Option<&Figure>) -> String {
    match f.map(|f| &f.value) {
        Some(Ok(s)) => show(s.median),
        Some(Err(_)) => "n/a".into(),
        None => "-".into(),
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// A number for the table: integers as such, others with up to 2 decimals.
pub fn show(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Columns padded to their widest cell; `right` aligns numbers.
fn render<const N: usize>(rows: &[[String; N]], right: &[bool; N]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c > 0 {
                line.push_str("  ");
            }
            if right[c] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if c + 1 < N {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (N - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::json;

    fn sample() -> Report {
        let s = |median: f64| Summary {
            median,
            p99: median * 1.5,
            min: median - 1.0,
            max: median * 2.0,
            n: 10_000,
        };
        Report {
            context: Context {
                hostname: "vm".into(),
                cpu_model: "AMD EPYC".into(),
                host_cpus: 2,
                qemu_version: "QEMU emulator version 7.2.22".into(),
                accelerator: "tcg".into(),
                icount: true,
                git_commit: "0123456789abcdef0123".into(),
                git_dirty: false,
                unix_time: 1_700_000_000,
                quick: false,
                elapsed_s: 12.5,
            },
            figures: vec![
                Figure::new(
                    "null_hypercall",
                    Group::Path,
                    "instructions",
                    s(1200.0),
                    1,
                    "version()",
                )
                .with_target(Some(60.0)),
                Figure::new(
                    "boot_to_dom0_ms",
                    Group::Lifecycle,
                    "ms",
                    s(180.25),
                    5,
                    "QEMU start",
                ),
                Figure::na(
                    "xm_overhead",
                    Group::Lifecycle,
                    "KiB",
                    "no xm shell yet",
                    "overhead",
                ),
            ],
        }
    }

    #[test]
    fn json_round_trip() -> Result<(), String> {
        let report = sample();
        let text = report.to_json().pretty();
        assert!(
            text.contains("\"git_commit\": \"0123456789abcdef0123\""),
            "{text}"
        );
        assert!(text.contains("\"status\": \"n/a\""), "{text}");
        let back = Report::from_json(&json::parse(&text)?)?;
        assert_eq!(back, report);
        assert!(Report::from_json(&json::parse("{\"schema\": \"other\"}")?).is_err());
        Ok(())
    }

    #[test]
    fn table_shows_targets_and_na() {
        let t = sample().table();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("figure"), "{t}");
        assert!(lines[1].starts_with("-----"), "{t}");
        assert!(t.contains("<= 60 MISSED"), "{t}");
        assert!(t.contains("180.2"), "{t}");
        assert!(t.contains("5 runs"), "{t}");
        assert!(t.contains("n/a: no xm shell yet"), "{t}");
    }

    #[test]
    fn comparison_lists_every_figure() {
        let old = sample();
        let mut new = sample();
        new.context.git_commit = "fedcba9876543210".into();
        new.figures[0].value = Ok(Summary {
            median: 900.0,
            p99: 1000.0,
            min: 800.0,
            max: 2000.0,
            n: 10_000,
        });
        new.figures.remove(1);
        new.figures.push(Figure::new(
            "density_1m",
            Group::Lifecycle,
            "domains",
            Summary::of(&[400.0]).expect("one value"),
            1,
            "fit",
        ));
        let c = new.compare(&old);
        let line = |name: &str| {
            c.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default()
                .to_string()
        };
        assert!(line("null_hypercall").contains("-25.0%"), "{c}");
        assert!(line("density_1m").contains("added"), "{c}");
        assert!(line("boot_to_dom0_ms").contains("removed"), "{c}");
        assert!(line("xm_overhead").contains("n/a"), "{c}");
        assert!(c.starts_with("old: 0123456789ab (vm, tcg"), "{c}");
        let mut kvm = sample();
        kvm.context.accelerator = "kvm".into();
        assert!(kvm.compare(&old).contains("do not compare"));
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(show(1234.0), "1234");
        assert_eq!(show(4.256), "4.26");
        assert_eq!(show(180.25), "180.2");
    }
}
