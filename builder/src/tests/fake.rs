//! A fake `BuildTarget`: frames in a `HashMap` (absent = zero), every mmu
//! operation and batch size recorded, and an optional failure on the Nth
//! call (writes and maps counted together, from 0).

use std::collections::HashMap;
use std::fmt;
use std::vec::Vec;

use dom0_abi::{MMU_BATCH_MAX, MmuOp};

use crate::BuildTarget;

/// The fake's error: which call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeError(pub usize);

impl fmt::Display for FakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fake target failed call {}", self.0)
    }
}

#[derive(Default)]
pub struct Fake {
    pub frames: HashMap<u64, [u8; 4096]>,
    /// The gfn of every write, in order.
    pub writes: Vec<u64>,
    pub ops: Vec<MmuOp>,
    pub batches: Vec<usize>,
    pub calls: usize,
    pub fail_at: Option<usize>,
    /// Frames the domain has: writes beyond are a builder bug.
    pub nr_pages: u64,
}

impl Fake {
    pub fn new(nr_pages: u64) -> Fake {
        Fake {
            nr_pages,
            ..Fake::default()
        }
    }

    pub fn failing_at(nr_pages: u64, n: usize) -> Fake {
        Fake {
            nr_pages,
            fail_at: Some(n),
            ..Fake::default()
        }
    }

    /// Frame `gfn` as the guest sees it.
    pub fn frame(&self, gfn: u64) -> [u8; 4096] {
        self.frames.get(&gfn).copied().unwrap_or([0; 4096])
    }

    fn call(&mut self) -> Result<(), FakeError> {
        let n = self.calls;
        self.calls += 1;
        if self.fail_at == Some(n) {
            Err(FakeError(n))
        } else {
            Ok(())
        }
    }
}

impl BuildTarget for Fake {
    type Error = FakeError;

    fn write(&mut self, gfn: u64, offset: usize, bytes: &[u8]) -> Result<(), FakeError> {
        self.call()?;
        assert!(gfn < self.nr_pages, "write to gfn {gfn} of {}", self.nr_pages);
        assert!(
            offset + bytes.len() <= 4096,
            "write of {} bytes at {offset}",
            bytes.len()
        );
        self.writes.push(gfn);
        let frame = self.frames.entry(gfn).or_insert([0; 4096]);
        frame[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn map(&mut self, ops: &[MmuOp]) -> Result<(), FakeError> {
        self.call()?;
        assert!(!ops.is_empty());
        assert!(ops.len() as u64 <= MMU_BATCH_MAX);
        self.batches.push(ops.len());
        self.ops.extend_from_slice(ops);
        Ok(())
    }
}
