//! The console behind [`print!`](crate::print) and
//! [`println!`](crate::println): a 256-byte line buffer behind a spin lock,
//! written with one `console_write` per line (or per 256 bytes of a longer
//! line), so that lines from different domains interleave whole.
//!
//! A guest has one running vCPU, so a held lock can only mean re-entry (a
//! trap handler or the panic handler printing while `print!` was running):
//! then the text goes out through a private buffer instead of spinning
//! forever. It may then split the interrupted line, but it is never lost.

use crate::hypercall;
use core::fmt::{self, Write};
use spin::Mutex;

/// Bytes buffered before a line is written out unfinished.
pub const LINE_MAX: usize = 256;

/// One line of pending output.
struct LineBuffer {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl LineBuffer {
    const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Append `bytes`, handing each finished line (or full buffer) to `sink`.
    fn push(&mut self, bytes: &[u8], sink: &mut impl FnMut(&[u8])) {
        for &b in bytes {
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' || self.len == LINE_MAX {
                self.flush(sink);
            }
        }
    }

    /// Hand whatever is buffered to `sink`.
    fn flush(&mut self, sink: &mut impl FnMut(&[u8])) {
        if self.len > 0 {
            sink(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

/// `fmt::Write` over a line buffer and its sink.
struct Out<'a, F: FnMut(&[u8])> {
    line: &'a mut LineBuffer,
    sink: F,
}

impl<F: FnMut(&[u8])> Write for Out<'_, F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.line.push(s.as_bytes(), &mut self.sink);
        Ok(())
    }
}

static CONSOLE: Mutex<LineBuffer> = Mutex::new(LineBuffer::new());

/// Where finished lines go: the console hypercall. Output errors have
/// nowhere to be reported, so they are dropped.
fn write_console(bytes: &[u8]) {
    let _ = hypercall::console_write(bytes);
}

/// The implementation of `print!`; not public API.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    match CONSOLE.try_lock() {
        Some(mut line) => {
            // Formatting errors come only from a failing Display impl;
            // what was formatted so far is kept.
            let _ = Out {
                line: &mut line,
                sink: write_console,
            }
            .write_fmt(args);
        }
        None => {
            let mut line = LineBuffer::new();
            let _ = Out {
                line: &mut line,
                sink: write_console,
            }
            .write_fmt(args);
            line.flush(&mut write_console);
        }
    }
}

/// Write out a pending unfinished line (before shutdown).
pub(crate) fn flush() {
    if let Some(mut line) = CONSOLE.try_lock() {
        line.flush(&mut write_console);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn run(parts: &[&str]) -> (Vec<String>, String) {
        let mut lines = Vec::new();
        let mut buf = LineBuffer::new();
        let mut sink = |b: &[u8]| lines.push(String::from_utf8(b.to_vec()).expect("test input is UTF-8"));
        for p in parts {
            buf.push(p.as_bytes(), &mut sink);
        }
        let rest = String::from_utf8(buf.buf[..buf.len].to_vec()).expect("test input is UTF-8");
        (lines, rest)
    }

    #[test]
    fn one_write_per_line() {
        let (lines, rest) = run(&["hel", "lo\nwor", "ld\n", "tail"]);
        assert_eq!(lines, ["hello\n", "world\n"]);
        assert_eq!(rest, "tail");
    }

    #[test]
    fn long_lines_are_cut_at_the_buffer_size() {
        let long = "x".repeat(600) + "\n";
        let (lines, rest) = run(&[&long]);
        assert_eq!(lines.iter().map(String::len).collect::<Vec<_>>(), [256, 256, 89]);
        assert!(rest.is_empty());
    }
}
