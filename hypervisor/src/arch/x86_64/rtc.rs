//! The CMOS real-time clock (MC146818: index port 0x70, data port 0x71),
//! read once at boot for the wall clock. Registers 0x00-0x09 hold the time,
//! 0x32 the century where present; register A bit 7 flags an update in
//! progress, register B bit 2 binary (else BCD) and bit 1 24-hour mode.

use super::port::{inb, outb};

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;

fn read(reg: u8) -> u8 {
    // Bit 7 of the index port keeps NMIs enabled as they were (clear).
    outb(INDEX, reg & 0x7f);
    inb(DATA)
}

/// A calendar time read from the RTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcTime {
    /// Full year.
    pub year: u32,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    /// 0-23.
    pub hour: u32,
    /// 0-59.
    pub minute: u32,
    /// 0-59.
    pub second: u32,
}

fn snapshot() -> [u8; 7] {
    [
        read(0x00),
        read(0x02),
        read(0x04),
        read(0x07),
        read(0x08),
        read(0x09),
        read(0x32),
    ]
}

/// Read the RTC, or `None` when none answers sensibly.
pub fn read_time() -> Option<RtcTime> {
    // Wait (bounded) for no update in progress, then read until two
    // consecutive snapshots agree.
    for _ in 0..100_000 {
        if read(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let mut a = snapshot();
    for _ in 0..10 {
        let b = snapshot();
        if a == b {
            break;
        }
        a = b;
    }
    let reg_b = read(0x0b);
    if reg_b == 0xff {
        return None;
    }
    let bcd = reg_b & 0x04 == 0;
    let conv = |v: u8| -> u32 {
        if bcd {
            u32::from(v & 0x0f) + u32::from(v >> 4) * 10
        } else {
            u32::from(v)
        }
    };
    let [s, m, h, d, mo, y, c] = a;
    let mut hour = conv(h & 0x7f);
    if reg_b & 0x02 == 0 && h & 0x80 != 0 {
        hour = (hour % 12) + 12;
    }
    let century = match conv(c) {
        19..=30 => conv(c),
        _ => 20,
    };
    let t = RtcTime {
        year: century * 100 + conv(y),
        month: conv(mo),
        day: conv(d),
        hour,
        minute: conv(m),
        second: conv(s),
    };
    let sane = (1..=12).contains(&t.month)
        && (1..=31).contains(&t.day)
        && t.hour < 24
        && t.minute < 60
        && t.second < 61;
    sane.then_some(t)
}
