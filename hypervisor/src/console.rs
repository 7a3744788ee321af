//! The hypervisor console: COM1 behind one lock, with `\n` turned into
//! `\r\n` for serial terminals. `logger.rs` writes through it; fatal reports
//! use [`EmergencyWriter`], which takes no lock, so a panic while the console
//! is held still gets its report out.

use crate::arch::serial::{self, Serial};
use core::fmt;
use spin::Mutex;

static SERIAL: Mutex<Option<Serial>> = Mutex::new(None);

/// Bring up COM1. Until this runs, output goes nowhere.
pub fn init() {
    let mut guard = SERIAL.lock();
    if guard.is_none() {
        *guard = Serial::com1();
    }
}

fn write_translated(s: &str, mut out: impl FnMut(&[u8])) {
    let mut rest = s.as_bytes();
    while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
        out(&rest[..pos]);
        out(b"\r\n");
        rest = &rest[pos + 1..];
    }
    out(rest);
}

/// Write formatted text to the console under its lock.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let mut guard = SERIAL.lock();
    if let Some(serial) = guard.as_mut() {
        let mut w = LockedWriter(serial);
        let _ = fmt::Write::write_fmt(&mut w, args);
    }
}

struct LockedWriter<'a>(&'a mut Serial);

impl fmt::Write for LockedWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_translated(s, |b| self.0.write(b));
        Ok(())
    }
}

/// Write raw bytes (dom0's console output) under the lock, `\n` as `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    let mut guard = SERIAL.lock();
    if let Some(serial) = guard.as_mut() {
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            serial.write(&rest[..pos]);
            serial.write(b"\r\n");
            rest = &rest[pos + 1..];
        }
        serial.write(rest);
    }
}

/// Read waiting serial input into `buf`; the bytes read.
pub fn read_input(buf: &mut [u8]) -> usize {
    let mut guard = SERIAL.lock();
    let Some(serial) = guard.as_mut() else { return 0 };
    let mut n = 0;
    while n < buf.len() {
        match serial.try_read() {
            Some(b) => {
                buf[n] = b;
                n += 1;
            }
            None => break,
        }
    }
    n
}

/// A lock-free console writer for fatal reports.
pub struct EmergencyWriter;

impl fmt::Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_translated(s, serial::emergency_write);
        Ok(())
    }
}

/// Print to the console without a log prefix (banner, tables).
#[macro_export]
macro_rules! println {
    () => { $crate::console::write_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
