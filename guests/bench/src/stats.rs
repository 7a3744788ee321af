//! Samples and the line each benchmark prints. Statistics are nearest-rank
//! percentiles over the sorted samples, the same definition as `cargo xtask
//! bench` uses (`xtask/src/bench/stats.rs`, unit-tested there): the p-th
//! percentile of n samples is the `ceil(p * n / 100)`-th smallest, so the
//! median of an even count is the lower middle one.

use alloc::vec::Vec;
use oxen_guest_sdk::println;

/// Measurements of one benchmark, warm-up already discarded.
pub struct Samples {
    name: &'static str,
    values: Vec<u64>,
}

impl Samples {
    /// Room for `n` samples of benchmark `name`.
    pub fn new(name: &'static str, n: usize) -> Samples {
        Samples {
            name,
            values: Vec::with_capacity(n),
        }
    }

    /// Add one measurement.
    pub fn push(&mut self, ticks: u64) {
        self.values.push(ticks);
    }

    /// Print `bench: NAME median=.. p99=.. min=.. max=.. n=.. unit=tsc
    /// overhead=..`, every value already less `overhead` (the cost of the
    /// measurement itself), which is printed for reference.
    pub fn report(mut self, overhead: u64) {
        if self.values.is_empty() {
            println!("bench: {} n=0 error=no-samples", self.name);
            return;
        }
        self.values.sort_unstable();
        let v = &self.values;
        let less = |x: u64| x.saturating_sub(overhead);
        println!(
            "bench: {} median={} p99={} min={} max={} n={} unit=tsc overhead={}",
            self.name,
            less(percentile(v, 50)),
            less(percentile(v, 99)),
            less(v[0]),
            less(v[v.len() - 1]),
            v.len(),
            overhead
        );
    }
}

/// The nearest-rank `p`-th percentile of sorted, non-empty `v`.
fn percentile(v: &[u64], p: usize) -> u64 {
    let rank = (p * v.len()).div_ceil(100).clamp(1, v.len());
    v[rank - 1]
}
