//! The logic of the `fuzz` guest, kept apart from the guest binary
//! (`main.rs`) so that the host tests it.
//!
//! A run is a sequence of steps made from a seed: `generate.rs` makes each step
//! (a hypercall with structured random arguments, an `iret`, or a probe of
//! the fuzzer's own mappings), `guard.rs` rewrites what would kill the
//! fuzzer on purpose and judges what came back, `layout.rs` is the
//! fuzzer's map of its own address space and the shadow of the pages its
//! batches change, `tally.rs` counts and prints. The binary issues the
//! steps (`guest/`), and with `mode=canary` is the domain that must
//! survive a fuzzer beside it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod generate;
pub mod guard;
pub mod layout;
pub mod rng;
pub mod step;
pub mod tally;

/// The command-line value of `key` in `cmdline` (`key=value`, the last one
/// wins), parsed as a number (decimal, or hex with `0x`).
pub fn number(cmdline: &str, key: &str) -> Option<u64> {
    let value = cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
        .next_back()?;
    let value = value.replace('_', "");
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_from_the_command_line() {
        assert_eq!(number("seed=12 calls=100_000", "calls"), Some(100_000));
        assert_eq!(number("seed=0x1f", "seed"), Some(31));
        assert_eq!(number("seed=1 seed=2", "seed"), Some(2));
        assert_eq!(number("seed=x", "seed"), None);
        assert_eq!(number("seeds=3", "seed"), None);
    }
}
