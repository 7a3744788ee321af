//! A domain's console: what it writes is kept in a ring (for `xm console`
//! and `xm dmesg`-style readers later) and shown on the serial line. dom0's
//! bytes go out as they are (it owns the terminal); a domU's go out a line
//! at a time behind a `(dN) ` prefix, with control characters replaced so a
//! guest cannot drive the operator's terminal.

use crate::ring::ByteRing;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Bytes kept per domain.
pub const RING_BYTES: usize = 16 * 1024;
/// A domU line longer than this is cut and continued.
const LINE_MAX: usize = 256;

/// One domain's console state.
pub struct Console {
    ring: Box<ByteRing<RING_BYTES>>,
    line: Vec<u8>,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            ring: Box::new(ByteRing::new()),
            line: Vec::new(),
        }
    }
}

impl Console {
    /// Take `bytes` written by domain `id` (`raw` for dom0).
    pub fn write(&mut self, id: u16, raw: bool, bytes: &[u8]) {
        self.ring.push(bytes);
        if raw {
            crate::console::write_bytes(bytes);
            return;
        }
        for &b in bytes {
            match b {
                b'\n' => self.flush(id),
                b'\r' => {}
                b'\t' => self.line.push(b),
                0x20..=0x7e => self.line.push(b),
                _ => self.line.push(b'?'),
            }
            if self.line.len() >= LINE_MAX {
                self.flush(id);
            }
        }
    }

    /// Emit a partial line (at shutdown).
    pub fn flush(&mut self, id: u16) {
        if self.line.is_empty() {
            return;
        }
        let text = core::str::from_utf8(&self.line).unwrap_or("?");
        crate::console::write_guest_fmt(format_args!("(d{id}) {text}\n"));
        self.line.clear();
    }

    /// The ring, for `domctl_console_read`.
    pub fn ring(&self) -> &ByteRing<RING_BYTES> {
        &self.ring
    }
}
