//! The statistics of `cargo xtask bench`: nearest-rank percentiles, the
//! summary of a set of runs, and the change between two results. The
//! bench guest (`guests/bench/src/stats.rs`) uses the same percentile
//! definition for its in-guest samples, so a median means the same thing
//! whichever side computed it.
//!
//! **Nearest rank**: the p-th percentile of n samples is the
//! `ceil(p * n / 100)`-th smallest (rank clamped to 1..=n). The median of an
//! even count is therefore the lower middle sample, a value that was
//! actually measured; p99 of fewer than 100 samples is the maximum.

/// The nearest-rank `p`-th percentile (0 < p <= 100) of `values`, which
/// need not be sorted; `None` for no values or a NaN among them.
pub fn percentile(values: &[f64], p: u32) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let rank = (usize::try_from(p).ok()? * n).div_ceil(100).clamp(1, n);
    sorted.get(rank - 1).copied()
}

/// The median (nearest rank: the lower middle of an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50)
}

/// `v` as a count: rounded, with negatives and NaN as 0. Rust's float to
/// integer `as` saturates, which is what a count read back from JSON wants.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn count(v: f64) -> u64 {
    v.round().max(0.0) as u64
}

/// What a figure reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Median.
    pub median: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// How many values it summarises.
    pub n: u64,
}

impl Summary {
    /// The summary of `values`; `None` when empty (or with a NaN).
    pub fn of(values: &[f64]) -> Option<Summary> {
        Some(Summary {
            median: median(values)?,
            p99: percentile(values, 99)?,
            min: values.iter().copied().reduce(f64::min)?,
            max: values.iter().copied().reduce(f64::max)?,
            n: u64::try_from(values.len()).ok()?,
        })
    }
}

/// How a figure moved between two results.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// Both have it: new - old, and that in percent of old (`None` when old is 0).
    Moved {
        /// New minus old.
        delta: f64,
        /// The delta in percent of the old value.
        percent: Option<f64>,
    },
    /// Only the new result has it.
    Added,
    /// Only the old result has it.
    Removed,
    /// Neither has a value (n/a on both sides).
    Missing,
}

/// The change from `old` to `new`.
pub fn change(old: Option<f64>, new: Option<f64>) -> Change {
    match (old, new) {
        (Some(old), Some(new)) => Change::Moved {
            delta: new - old,
            percent: (old != 0.0).then(|| (new - old) / old.abs() * 100.0),
        },
        (None, Some(_)) => Change::Added,
        (Some(_), None) => Change::Removed,
        (None, None) => Change::Missing,
    }
}

impl Change {
    /// `+12.5%`, `-3 (new 0)`, `added`, `removed`, `n/a`; changes within
    /// `noise` percent read `~` before the number.
    pub fn describe(&self, noise: f64) -> String {
        match *self {
            Change::Moved { delta, .. } if delta.abs() < 1e-9 => "same".into(),
            Change::Moved { percent: Some(p), .. } => {
                let mark = if p.abs() <= noise { "~" } else { "" };
                format!("{mark}{p:+.1}%")
            }
            Change::Moved { delta, percent: None } => format!("{delta:+} (was 0)"),
            Change::Added => "added".into(),
            Change::Removed => "removed".into(),
            Change::Missing => "n/a".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50), Some(50.0));
        assert_eq!(percentile(&v, 99), Some(99.0));
        assert_eq!(percentile(&v, 100), Some(100.0));
        assert_eq!(percentile(&v, 1), Some(1.0));
        // Fewer than 100 samples: p99 is the maximum.
        let few = [3.0, 1.0, 2.0];
        assert_eq!(percentile(&few, 99), Some(3.0));
        // Unsorted input, duplicates.
        assert_eq!(percentile(&[5.0, 5.0, 1.0, 9.0, 5.0], 50), Some(5.0));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[1.0, f64::NAN], 50), None);
    }

    #[test]
    fn counts() {
        assert_eq!(count(3.6), 4);
        assert_eq!(count(-2.0), 0);
        assert_eq!(count(f64::NAN), 0);
        assert_eq!(count(1e30), u64::MAX);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[2.0, 1.0, 3.0]), Some(2.0));
        // An even count takes the lower middle, a value that was measured.
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median(&[10.0, 20.0]), Some(10.0));
    }

    #[test]
    fn summaries() {
        let s = Summary::of(&[8.0, 2.0, 5.0, 1.0, 9.0]).expect("non-empty");
        assert_eq!(
            s,
            Summary {
                median: 5.0,
                p99: 9.0,
                min: 1.0,
                max: 9.0,
                n: 5
            }
        );
        assert_eq!(Summary::of(&[]), None);
        // A long tail shows in p99, not in the median.
        let mut tail = vec![100.0; 990];
        tail.extend([5000.0; 10]);
        let s = Summary::of(&tail).expect("non-empty");
        assert_eq!((s.median, s.p99, s.max), (100.0, 100.0, 5000.0));
        tail.push(5000.0);
        assert_eq!(Summary::of(&tail).expect("non-empty").p99, 5000.0);
    }

    #[test]
    fn changes() {
        assert_eq!(
            change(Some(200.0), Some(150.0)),
            Change::Moved {
                delta: -50.0,
                percent: Some(-25.0)
            }
        );
        assert_eq!(change(Some(200.0), Some(150.0)).describe(1.0), "-25.0%");
        assert_eq!(change(Some(1000.0), Some(1004.0)).describe(1.0), "~+0.4%");
        assert_eq!(change(Some(0.0), Some(3.0)).describe(1.0), "+3 (was 0)");
        assert_eq!(change(Some(7.0), Some(7.0)).describe(1.0), "same");
        assert_eq!(change(None, Some(3.0)), Change::Added);
        assert_eq!(change(Some(3.0), None).describe(1.0), "removed");
        assert_eq!(change(None, None).describe(1.0), "n/a");
        assert_eq!(change(Some(-4.0), Some(-2.0)).describe(0.0), "+50.0%");
    }
}
