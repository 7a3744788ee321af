//! A byte ring that remembers how many bytes were ever written, so readers
//! can follow it as a stream: the hypervisor log (`xm dmesg`) and each
//! domain's console (`xm console`) are rings of this kind. Readers name a
//! stream offset; when they fell behind, reading starts at the oldest byte
//! kept, and the gap shows as a jump in the returned offset.
#![deny(unsafe_code)]

/// A ring of `N` bytes.
pub struct ByteRing<const N: usize> {
    buf: [u8; N],
    /// Bytes ever written.
    total: u64,
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        ByteRing {
            buf: [0; N],
            total: 0,
        }
    }

    /// Append `bytes`, dropping the oldest when full.
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let slot = usize::try_from(self.total % N as u64).unwrap_or(0);
            self.buf[slot] = b;
            self.total += 1;
        }
    }

    /// Bytes ever written (the offset of the next byte).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The oldest offset still kept.
    pub fn oldest(&self) -> u64 {
        self.total.saturating_sub(N as u64)
    }

    /// Copy bytes from stream offset `from` into `out`: `(first offset
    /// copied, count)`. Starts at the oldest byte kept if `from` is older,
    /// and copies nothing if `from` is at or past the end.
    pub fn read(&self, from: u64, out: &mut [u8]) -> (u64, usize) {
        let start = from.max(self.oldest()).min(self.total);
        let avail = self.total - start;
        let n = usize::try_from(avail).unwrap_or(usize::MAX).min(out.len());
        for (i, slot) in out.iter_mut().take(n).enumerate() {
            *slot = self.buf[usize::try_from((start + i as u64) % N as u64).unwrap_or(0)];
        }
        (start, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_stream_and_reports_gaps() {
        let mut r = ByteRing::<8>::new();
        r.push(b"hello");
        let mut out = [0u8; 16];
        assert_eq!(r.read(0, &mut out), (0, 5));
        assert_eq!(&out[..5], b"hello");
        r.push(b" world");
        assert_eq!(r.total(), 11);
        assert_eq!(r.oldest(), 3);
        let (start, n) = r.read(0, &mut out);
        assert_eq!((start, n), (3, 8));
        assert_eq!(&out[..8], b"lo world");
        assert_eq!(r.read(11, &mut out), (11, 0));
        assert_eq!(r.read(99, &mut out), (11, 0));
        let mut small = [0u8; 3];
        assert_eq!(r.read(5, &mut small), (5, 3));
        assert_eq!(&small, b" wo");
    }
}
