//! A domain's physical-to-machine map: guest frame number (GFN) to machine
//! frame (MFN). Guests name their memory by GFN, 0 to `len() - 1`; the map
//! is kept as runs of consecutive machine frames (the frame allocator hands
//! out low frames first, so a domain's memory is a handful of runs), which
//! keeps both directions cheap without a per-frame table.
#![deny(unsafe_code)]

use alloc::vec::Vec;

/// One run: guest frames `gfn .. gfn + count` are machine frames `mfn ..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    gfn: u64,
    mfn: u64,
    count: u64,
}

/// The physical-to-machine map of one domain.
#[derive(Clone, Debug, Default)]
pub struct P2m {
    runs: Vec<Run>,
    len: u64,
}

impl P2m {
    /// An empty map.
    pub const fn new() -> Self {
        P2m {
            runs: Vec::new(),
            len: 0,
        }
    }

    /// Guest frames in the map (`tot_pages`).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append machine frame `mfn` as the next guest frame; its GFN.
    pub fn push(&mut self, mfn: u64) -> u64 {
        let gfn = self.len;
        match self.runs.last_mut() {
            Some(run) if run.mfn + run.count == mfn => run.count += 1,
            _ => self.runs.push(Run { gfn, mfn, count: 1 }),
        }
        self.len += 1;
        gfn
    }

    /// Remove the highest guest frame; its MFN.
    pub fn pop(&mut self) -> Option<u64> {
        let run = self.runs.last_mut()?;
        run.count -= 1;
        let mfn = run.mfn + run.count;
        if run.count == 0 {
            self.runs.pop();
        }
        self.len -= 1;
        Some(mfn)
    }

    /// The MFN of guest frame `gfn`.
    pub fn mfn(&self, gfn: u64) -> Option<u64> {
        if gfn >= self.len {
            return None;
        }
        let i = self.runs.partition_point(|r| r.gfn + r.count <= gfn);
        let run = self.runs.get(i)?;
        Some(run.mfn + (gfn - run.gfn))
    }

    /// The GFN that machine frame `mfn` backs, if it is one of ours.
    pub fn gfn_of(&self, mfn: u64) -> Option<u64> {
        self.runs
            .iter()
            .find(|r| mfn >= r.mfn && mfn < r.mfn + r.count)
            .map(|r| r.gfn + (mfn - r.mfn))
    }

    /// Every machine frame, in GFN order.
    pub fn mfns(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|r| r.mfn..r.mfn + r.count)
    }

    /// How many runs the map has (for diagnostics).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_split() {
        let mut p = P2m::new();
        for mfn in [10, 11, 12, 20, 21, 5] {
            p.push(mfn);
        }
        assert_eq!(p.len(), 6);
        assert_eq!(p.runs(), 3);
        assert_eq!(p.mfn(0), Some(10));
        assert_eq!(p.mfn(2), Some(12));
        assert_eq!(p.mfn(3), Some(20));
        assert_eq!(p.mfn(5), Some(5));
        assert_eq!(p.mfn(6), None);
        assert_eq!(p.gfn_of(21), Some(4));
        assert_eq!(p.gfn_of(13), None);
        assert_eq!(p.mfns().collect::<Vec<_>>(), vec![10, 11, 12, 20, 21, 5]);
        assert_eq!(p.pop(), Some(5));
        assert_eq!(p.pop(), Some(21));
        assert_eq!(p.runs(), 2);
        assert_eq!(p.len(), 4);
        while p.pop().is_some() {}
        assert!(p.is_empty());
        assert_eq!(p.runs(), 0);
    }
}
