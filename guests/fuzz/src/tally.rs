//! What a run counts and prints: calls, successes, failures by status,
//! faults the fuzzer took, broken promises, and the sequence checksum (FNV-1a
//! over the words of every step as issued), with the console lines
//! `cargo xtask fuzz` reads.

use crate::step::Step;
use alloc::format;
use alloc::string::String;
use core::fmt::Write;
use dom0_abi::Status;

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The counters of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Hypercalls made (`iret` included).
    pub calls: u64,
    /// Calls that returned `>= 0`.
    pub ok: u64,
    /// Failures by status, in `Status::ALL` order.
    pub by_status: [u64; Status::ALL.len()],
    /// Failures with a value that is no status.
    pub other_errors: u64,
    /// Traps the fuzzer took and caught (probes, `iret` targets, TF).
    pub faults: u64,
    /// Probes made.
    pub probes: u64,
    /// Broken promises.
    pub bugs: u64,
    /// FNV-1a over every step.
    pub checksum: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            calls: 0,
            ok: 0,
            by_status: [0; Status::ALL.len()],
            other_errors: 0,
            faults: 0,
            probes: 0,
            bugs: 0,
            checksum: FNV_OFFSET,
        }
    }
}

impl Tally {
    /// Fold a step into the checksum and count it.
    pub fn step(&mut self, step: &Step) {
        for word in step.words() {
            for byte in word.to_le_bytes() {
                self.checksum = (self.checksum ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
            }
        }
        if step.is_call() {
            self.calls += 1;
        } else {
            self.probes += 1;
        }
    }

    /// Count what a call returned.
    pub fn result(&mut self, ret: i64) {
        if ret >= 0 {
            self.ok += 1;
            return;
        }
        match Status::ALL.iter().position(|s| s.to_ret() == ret) {
            Some(i) => self.by_status[i] += 1,
            None => self.other_errors += 1,
        }
    }

    /// Failed calls.
    pub fn errors(&self) -> u64 {
        self.by_status.iter().sum::<u64>() + self.other_errors
    }

    /// `fuzz: 100000 calls, <ok> ok, <err> errors, <faults> faults`.
    pub fn progress_line(&self) -> String {
        format!(
            "fuzz: {} calls, {} ok, {} errors, {} faults",
            self.calls,
            self.ok,
            self.errors(),
            self.faults
        )
    }

    /// `fuzz: seed S: N calls done (<ok> ok, EPERM n, ...)`.
    pub fn done_line(&self, seed: u64) -> String {
        let mut line = format!("fuzz: seed {seed}: {} calls done ({} ok", self.calls, self.ok);
        for (status, n) in Status::ALL.iter().zip(self.by_status) {
            if n > 0 {
                let _ = write!(line, ", {} {n}", status.name());
            }
        }
        if self.other_errors > 0 {
            let _ = write!(line, ", other {}", self.other_errors);
        }
        line.push(')');
        line
    }

    /// `fuzz: sequence checksum 0x...`.
    pub fn checksum_line(&self) -> String {
        format!("fuzz: sequence checksum {:#018x}", self.checksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Call;

    #[test]
    fn lines() {
        let mut t = Tally::default();
        t.step(&Step::Call(Call::default()));
        t.result(3);
        t.result(Status::EPERM.to_ret());
        t.result(Status::EINVAL.to_ret());
        t.result(Status::EINVAL.to_ret());
        t.result(-12345);
        t.faults = 4;
        t.calls = 100_000;
        assert_eq!(t.progress_line(), "fuzz: 100000 calls, 1 ok, 4 errors, 4 faults");
        assert_eq!(
            t.done_line(7),
            "fuzz: seed 7: 100000 calls done (1 ok, EPERM 1, EINVAL 2, other 1)"
        );
        assert!(t.checksum_line().starts_with("fuzz: sequence checksum 0x"));
        assert_eq!(t.checksum_line().len(), "fuzz: sequence checksum 0x".len() + 16);
    }

    #[test]
    fn the_checksum_follows_the_steps() {
        let (mut a, mut b) = (Tally::default(), Tally::default());
        let one = Step::Call(Call {
            nr: 1,
            ..Call::default()
        });
        let two = Step::Call(Call {
            nr: 2,
            ..Call::default()
        });
        a.step(&one);
        a.step(&two);
        b.step(&two);
        b.step(&one);
        assert_ne!(a.checksum, b.checksum);
        let mut c = Tally::default();
        c.step(&one);
        c.step(&two);
        assert_eq!(a.checksum, c.checksum);
    }
}
