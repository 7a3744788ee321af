//! The line editor of dom0's shell: what a person at a serial console
//! needs, fed one byte at a time as `console_read` hands them over (so an
//! escape sequence may arrive split across reads).
//!
//! Keys: printable ASCII is inserted at the cursor and echoed; Backspace
//! (`0x7f` or `0x08`) and Ctrl-H delete before the cursor, Delete (`ESC [ 3
//! ~`) and Ctrl-D under it; Left/Right (`ESC [ D` / `ESC [ C`), Home/End
//! (`ESC [ H` / `ESC [ F`, `ESC [ 1 ~` / `ESC [ 4 ~`, Ctrl-A / Ctrl-E)
//! move; Up/Down (`ESC [ A` / `ESC [ B`, or the `ESC O` forms) walk the
//! last [`HISTORY_MAX`] lines; Ctrl-U kills the line, Ctrl-K the rest of
//! it, Ctrl-W the word before the cursor; Ctrl-C cancels the line; Ctrl-L
//! clears the screen and redraws; `\r` or `\n` submits (`\r\n` counts once).
//! Anything else (other control bytes, non-ASCII, unknown escape sequences)
//! is dropped. A line holds at most [`LINE_MAX`] characters; typing past
//! that rings the bell once and is ignored.
//!
//! The editor writes what the terminal should show into an output string:
//! only plain characters, backspace (`0x08`) to move left and CR, so it
//! works on any terminal; Ctrl-L alone uses ANSI (`ESC [ H ESC [ 2 J`).
//! `shell/mod.rs` owns the editor and decides what a submitted line does.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// Lines the history keeps.
pub const HISTORY_MAX: usize = 32;
/// Longest line, in characters.
pub const LINE_MAX: usize = 1024;
/// Longest escape sequence followed before it is dropped unread.
const ESC_MAX: usize = 16;

/// Ctrl-A: to the start of the line.
const CTRL_A: u8 = 0x01;
/// Ctrl-C: cancel the line.
const CTRL_C: u8 = 0x03;
/// Ctrl-D: delete the character under the cursor.
const CTRL_D: u8 = 0x04;
/// Ctrl-E: to the end of the line.
const CTRL_E: u8 = 0x05;
/// Ctrl-H, the ASCII backspace.
const BS: u8 = 0x08;
/// Ctrl-K: kill to the end of the line.
const CTRL_K: u8 = 0x0b;
/// Ctrl-L: clear the screen and redraw.
const CTRL_L: u8 = 0x0c;
/// Ctrl-U: kill the line.
const CTRL_U: u8 = 0x15;
/// Ctrl-W: kill the word before the cursor.
const CTRL_W: u8 = 0x17;
/// The escape character.
const ESC: u8 = 0x1b;
/// DEL, what most terminals send for Backspace.
const DEL: u8 = 0x7f;
/// The bell.
const BEL: char = '\x07';

/// What a byte did to the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// The line changed, or nothing happened.
    None,
    /// Enter: the line, which has been added to the history.
    Submit(String),
    /// Ctrl-C: the line was dropped and a fresh prompt shown.
    Interrupt,
}

/// Where the editor is in an escape sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    /// Not in one.
    None,
    /// After `ESC`.
    Start,
    /// After `ESC [`: `len` bytes read, `param` the first number.
    Csi { len: usize, param: u32 },
    /// After `ESC O` (the keypad's application mode).
    Ss3,
}

/// A decoded key that is not plain text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    Delete,
}

/// The line being edited, its cursor, the history, and the state of an
/// escape sequence in progress.
#[derive(Debug)]
pub struct LineEditor {
    /// Shown before the line.
    prompt: String,
    /// The line: printable ASCII only.
    buf: Vec<u8>,
    /// Cursor position in `buf`.
    cursor: usize,
    /// Submitted lines, oldest first.
    history: VecDeque<String>,
    /// The history entry shown, while walking it.
    browsing: Option<usize>,
    /// The line that was being typed when the walk began.
    saved: Vec<u8>,
    /// Escape sequence state.
    esc: Esc,
    /// The last byte was `\r` (so a `\n` right after it is the same Enter).
    after_cr: bool,
    /// The bell rang for a full line; it rings again only once there is room.
    rang: bool,
}

impl LineEditor {
    /// An empty editor showing `prompt`.
    pub fn new(prompt: &str) -> Self {
        LineEditor {
            prompt: prompt.into(),
            buf: Vec::new(),
            cursor: 0,
            history: VecDeque::new(),
            browsing: None,
            saved: Vec::new(),
            esc: Esc::None,
            after_cr: false,
            rang: false,
        }
    }

    /// The prompt.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// The line as typed so far.
    pub fn line(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.buf).unwrap_or("")
    }

    /// The cursor's position in the line.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history.iter().map(String::as_str)
    }

    /// Show the prompt and the line, with the cursor where it is (after
    /// output that ended a line, or at the start).
    pub fn show(&self, out: &mut String) {
        out.push_str(&self.prompt);
        out.push_str(self.line());
        back(out, self.buf.len() - self.cursor);
    }

    /// Erase the prompt and the line from the screen, leaving the cursor at
    /// the start of the empty screen line (before printing something else;
    /// [`LineEditor::show`] puts them back).
    pub fn hide(&self, out: &mut String) {
        out.push('\r');
        spaces(out, self.prompt.len() + self.buf.len());
        out.push('\r');
    }

    /// Take one input byte; what the terminal should show goes to `out`.
    pub fn feed(&mut self, byte: u8, out: &mut String) -> Edit {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match self.esc {
            Esc::None => {}
            Esc::Start => {
                self.esc = match byte {
                    b'[' => Esc::Csi { len: 0, param: 0 },
                    b'O' => Esc::Ss3,
                    ESC => Esc::Start,
                    // A control byte ends the sequence and counts on its own.
                    0x00..=0x1f => Esc::None,
                    // Alt-<key> and the like: dropped.
                    _ => {
                        self.esc = Esc::None;
                        return Edit::None;
                    }
                };
                if self.esc != Esc::None {
                    return Edit::None;
                }
            }
            Esc::Csi { len, param } => {
                match byte {
                    // Parameters and intermediates: keep the first number.
                    0x20..=0x3f => {
                        let param = match byte {
                            b'0'..=b'9' => param.saturating_mul(10).saturating_add(u32::from(byte - b'0')),
                            _ => param,
                        };
                        self.esc = if len + 1 >= ESC_MAX {
                            Esc::None
                        } else {
                            Esc::Csi { len: len + 1, param }
                        };
                        return Edit::None;
                    }
                    // The final byte.
                    0x40..=0x7e => {
                        self.esc = Esc::None;
                        let key = match (byte, param) {
                            (b'A', _) => Some(Key::Up),
                            (b'B', _) => Some(Key::Down),
                            (b'C', _) => Some(Key::Right),
                            (b'D', _) => Some(Key::Left),
                            (b'H', _) | (b'~', 1 | 7) => Some(Key::Home),
                            (b'F', _) | (b'~', 4 | 8) => Some(Key::End),
                            (b'~', 3) => Some(Key::Delete),
                            _ => None,
                        };
                        if let Some(key) = key {
                            self.key(key, out);
                        }
                        return Edit::None;
                    }
                    // Anything else ends the sequence and counts on its own.
                    _ => self.esc = Esc::None,
                }
            }
            Esc::Ss3 if byte < 0x20 => self.esc = Esc::None,
            Esc::Ss3 => {
                self.esc = Esc::None;
                let key = match byte {
                    b'A' => Some(Key::Up),
                    b'B' => Some(Key::Down),
                    b'C' => Some(Key::Right),
                    b'D' => Some(Key::Left),
                    b'H' => Some(Key::Home),
                    b'F' => Some(Key::End),
                    _ => None,
                };
                if let Some(key) = key {
                    self.key(key, out);
                }
                return Edit::None;
            }
        }
        match byte {
            b'\n' if after_cr => Edit::None,
            b'\r' | b'\n' => self.submit(out),
            0x20..=0x7e => {
                self.insert(byte, out);
                Edit::None
            }
            DEL | BS => {
                self.backspace(out);
                Edit::None
            }
            ESC => {
                self.esc = Esc::Start;
                Edit::None
            }
            CTRL_C => {
                out.push_str("^C\n");
                self.clear();
                self.show(out);
                Edit::Interrupt
            }
            CTRL_A => {
                self.key(Key::Home, out);
                Edit::None
            }
            CTRL_E => {
                self.key(Key::End, out);
                Edit::None
            }
            CTRL_D => {
                self.key(Key::Delete, out);
                Edit::None
            }
            CTRL_K => {
                let gone = self.buf.len() - self.cursor;
                self.buf.truncate(self.cursor);
                spaces(out, gone);
                back(out, gone);
                self.edited();
                Edit::None
            }
            CTRL_U => {
                let old_len = self.buf.len();
                back(out, self.cursor);
                self.buf.clear();
                self.cursor = 0;
                spaces(out, old_len);
                back(out, old_len);
                self.edited();
                Edit::None
            }
            CTRL_W => {
                let mut start = self.cursor;
                while start > 0 && self.buf[start - 1] == b' ' {
                    start -= 1;
                }
                while start > 0 && self.buf[start - 1] != b' ' {
                    start -= 1;
                }
                self.remove(start, self.cursor, out);
                Edit::None
            }
            CTRL_L => {
                out.push_str("\x1b[H\x1b[2J");
                self.show(out);
                Edit::None
            }
            // Tabs, NULs, other control bytes and non-ASCII: ignored.
            _ => Edit::None,
        }
    }

    /// Forget the line being typed (not the history).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.cursor = 0;
        self.browsing = None;
        self.saved.clear();
        self.esc = Esc::None;
        self.rang = false;
    }

    /// Enter: the line goes to the history and is handed back.
    fn submit(&mut self, out: &mut String) -> Edit {
        out.push('\n');
        let line = String::from(self.line());
        self.clear();
        let trimmed = line.trim();
        if !trimmed.is_empty() && self.history.back().map(String::as_str) != Some(trimmed) {
            if self.history.len() == HISTORY_MAX {
                self.history.pop_front();
            }
            self.history.push_back(trimmed.into());
        }
        Edit::Submit(line)
    }

    /// Insert a printable byte at the cursor.
    fn insert(&mut self, byte: u8, out: &mut String) {
        if self.buf.len() >= LINE_MAX {
            if !self.rang {
                out.push(BEL);
                self.rang = true;
            }
            return;
        }
        self.buf.insert(self.cursor, byte);
        self.cursor += 1;
        // Echo the byte and everything after it, then come back.
        out.push_str(&self.line()[self.cursor - 1..]);
        back(out, self.buf.len() - self.cursor);
        self.edited();
    }

    /// Delete the byte before the cursor.
    fn backspace(&mut self, out: &mut String) {
        if self.cursor > 0 {
            self.remove(self.cursor - 1, self.cursor, out);
        }
    }

    /// Delete `buf[from..to]` (`to` is the cursor) and redraw the rest.
    fn remove(&mut self, from: usize, to: usize, out: &mut String) {
        if from >= to {
            return;
        }
        let gone = to - from;
        back(out, self.cursor - from);
        self.buf.drain(from..to);
        self.cursor = from;
        let rest = self.buf.len() - self.cursor;
        out.push_str(&self.line()[self.cursor..]);
        spaces(out, gone);
        back(out, rest + gone);
        self.edited();
    }

    /// A key that moves or recalls.
    fn key(&mut self, key: Key, out: &mut String) {
        match key {
            Key::Left if self.cursor > 0 => {
                self.cursor -= 1;
                back(out, 1);
            }
            Key::Right if self.cursor < self.buf.len() => {
                out.push(char::from(self.buf[self.cursor]));
                self.cursor += 1;
            }
            Key::Home => {
                back(out, self.cursor);
                self.cursor = 0;
            }
            Key::End => {
                out.push_str(&self.line()[self.cursor..]);
                self.cursor = self.buf.len();
            }
            Key::Delete if self.cursor < self.buf.len() => {
                let at = self.cursor;
                // Remove the byte under the cursor: step over it first.
                self.cursor += 1;
                out.push(char::from(self.buf[at]));
                self.remove(at, at + 1, out);
            }
            Key::Up => {
                let to = match self.browsing {
                    None if !self.history.is_empty() => {
                        self.saved = self.buf.clone();
                        Some(self.history.len() - 1)
                    }
                    Some(i) if i > 0 => Some(i - 1),
                    _ => None,
                };
                if let Some(i) = to {
                    self.browsing = Some(i);
                    let entry = self.history[i].as_bytes().to_vec();
                    self.replace(entry, out);
                }
            }
            Key::Down => match self.browsing {
                Some(i) if i + 1 < self.history.len() => {
                    self.browsing = Some(i + 1);
                    let entry = self.history[i + 1].as_bytes().to_vec();
                    self.replace(entry, out);
                }
                Some(_) => {
                    self.browsing = None;
                    let saved = core::mem::take(&mut self.saved);
                    self.replace(saved, out);
                }
                None => {}
            },
            Key::Left | Key::Right | Key::Delete => {}
        }
    }

    /// Show `line` instead of the current one, cursor at its end.
    fn replace(&mut self, line: Vec<u8>, out: &mut String) {
        let old_len = self.buf.len();
        back(out, self.cursor);
        self.buf = line;
        self.buf.truncate(LINE_MAX);
        self.cursor = self.buf.len();
        out.push_str(self.line());
        let extra = old_len.saturating_sub(self.buf.len());
        spaces(out, extra);
        back(out, extra);
    }

    /// The line changed: the bell may ring again once it is full again.
    fn edited(&mut self) {
        if self.buf.len() < LINE_MAX {
            self.rang = false;
        }
    }
}

/// Move the terminal's cursor `n` columns left.
fn back(out: &mut String, n: usize) {
    out.extend(core::iter::repeat_n('\x08', n));
}

/// Write `n` spaces.
fn spaces(out: &mut String, n: usize) {
    out.extend(core::iter::repeat_n(' ', n));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    /// Feed `input`; the submitted lines and interrupts, in order.
    fn feed(e: &mut LineEditor, input: &[u8]) -> (Vec<Edit>, String) {
        let mut out = String::new();
        let edits = input
            .iter()
            .map(|&b| e.feed(b, &mut out))
            .filter(|edit| *edit != Edit::None)
            .collect();
        (edits, out)
    }

    fn submitted(e: &mut LineEditor, input: &[u8]) -> Vec<String> {
        feed(e, input)
            .0
            .into_iter()
            .filter_map(|edit| match edit {
                Edit::Submit(line) => Some(line),
                _ => None,
            })
            .collect()
    }

    /// What a terminal shows after `out`, for the line only: a model of a
    /// one-line screen that understands printable text, BS and CR.
    fn screen(out: &str) -> String {
        let mut line: Vec<char> = Vec::new();
        let mut col = 0usize;
        for c in out.chars() {
            match c {
                '\x08' => col = col.saturating_sub(1),
                '\r' => col = 0,
                '\n' => {
                    line.clear();
                    col = 0;
                }
                '\x07' => {}
                c => {
                    if col < line.len() {
                        line[col] = c;
                    } else {
                        line.push(c);
                    }
                    col += 1;
                }
            }
        }
        line.into_iter().collect::<String>().trim_end().to_string()
    }

    #[test]
    fn typing_and_enter() {
        let mut e = LineEditor::new("# ");
        let (edits, out) = feed(&mut e, b"xm list\r");
        assert_eq!(edits, [Edit::Submit("xm list".into())]);
        assert_eq!(out, "xm list\n");
        assert_eq!(e.line(), "");
        // \r\n is one Enter; \n alone is one; \n\n is two.
        assert_eq!(submitted(&mut e, b"a\r\nb\nc\n\n"), ["a", "b", "c", ""]);
        assert_eq!(submitted(&mut e, b"\r\r"), ["", ""]);
    }

    #[test]
    fn backspace_both_ways_and_the_echo() {
        let mut e = LineEditor::new("# ");
        let (_, out) = feed(&mut e, b"lisx\x7f");
        assert_eq!(out, "lisx\x08 \x08");
        feed(&mut e, b"t\x08\x08\x08\x08\x08\x08");
        assert_eq!(e.line(), "");
        assert_eq!(submitted(&mut e, b"help\x7f\x7fre\r"), ["here"]);
    }

    #[test]
    fn cursor_movement_and_insertion() {
        let mut e = LineEditor::new("# ");
        let (_, out) = feed(&mut e, b"xm lst\x1b[D\x1b[Di");
        assert_eq!(e.line(), "xm list");
        assert_eq!(e.cursor(), 5);
        assert_eq!(screen(&out), "xm list");
        // Home, Delete, End, Ctrl-A, Ctrl-E, Right past the end.
        let (_, out2) = feed(&mut e, b"\x1b[H\x1b[3~\x1b[F\x01\x05\x1b[C");
        assert_eq!(e.line(), "m list");
        assert_eq!(e.cursor(), 6);
        assert_eq!(screen(&(out.clone() + &out2)), "m list");
        // Ctrl-D deletes under the cursor; the ESC O forms move too.
        feed(&mut e, b"\x1bOH\x04\x1bOF");
        assert_eq!(e.line(), " list");
        assert_eq!(submitted(&mut e, b"\x1b[1~x\x1b[4~\r"), ["x list"]);
    }

    #[test]
    fn kill_keys() {
        let mut e = LineEditor::new("# ");
        let (_, out) = feed(&mut e, b"xm destroy web\x15");
        assert_eq!(e.line(), "");
        assert_eq!(screen(&out), "");
        feed(&mut e, b"xm destroy web\x17");
        assert_eq!(e.line(), "xm destroy ");
        feed(&mut e, b"\x17\x17\x17");
        assert_eq!(e.line(), "");
        let (_, out) = feed(&mut e, b"abc def\x1b[D\x1b[D\x1b[D\x0b");
        assert_eq!(e.line(), "abc ");
        assert_eq!(screen(&out), "abc");
        // Ctrl-U in the middle kills the whole line.
        let (_, out) = feed(&mut e, b"xyz\x1b[D\x15");
        assert_eq!((e.line(), e.cursor()), ("", 0));
        assert_eq!(screen(&out), "");
    }

    #[test]
    fn ctrl_c_and_ctrl_l() {
        let mut e = LineEditor::new("# ");
        let (edits, out) = feed(&mut e, b"xm destroy\x03");
        assert_eq!(edits, [Edit::Interrupt]);
        assert!(out.ends_with("^C\n# "), "{out:?}");
        assert_eq!(e.line(), "");
        assert_eq!(e.history().count(), 0, "a cancelled line is not kept");
        let (_, out) = feed(&mut e, b"ab\x1b[D\x0c");
        assert_eq!(out, "ab\x08\x1b[H\x1b[2J# ab\x08");
    }

    #[test]
    fn history_walks_and_keeps_the_line_being_typed() {
        let mut e = LineEditor::new("# ");
        submitted(&mut e, b"one\rtwo\r\rtwo\r  three  \r");
        assert_eq!(e.history().collect::<Vec<_>>(), ["one", "two", "three"]);
        let (_, mut shown) = feed(&mut e, b"par\x1b[A");
        assert_eq!(e.line(), "three");
        shown += &feed(&mut e, b"\x1b[A\x1b[A\x1b[A").1;
        assert_eq!(e.line(), "one", "stops at the oldest");
        shown += &feed(&mut e, b"\x1b[B").1;
        assert_eq!(e.line(), "two");
        assert_eq!(screen(&shown), "two");
        feed(&mut e, b"\x1b[B\x1b[B");
        assert_eq!(e.line(), "par", "back to what was being typed");
        feed(&mut e, b"\x1b[B");
        assert_eq!(e.line(), "par");
        // Recalled lines can be edited and submitted.
        assert_eq!(
            submitted(&mut e, b"\x15\x1b[A\x7f\x7f\x7f\x7f\x7fTHREE\r"),
            ["THREE"]
        );
        // Only the last HISTORY_MAX are kept.
        for i in 0..40 {
            submitted(&mut e, alloc::format!("cmd{i}\r").as_bytes());
        }
        let h: Vec<&str> = e.history().collect();
        assert_eq!(h.len(), HISTORY_MAX);
        assert_eq!((h[0], h[31]), ("cmd8", "cmd39"));
    }

    #[test]
    fn escape_sequences_split_across_reads() {
        let mut e = LineEditor::new("# ");
        submitted(&mut e, b"first\r");
        let mut out = String::new();
        for chunk in [&b"\x1b"[..], b"[", b"A"] {
            for &b in chunk {
                e.feed(b, &mut out);
            }
        }
        assert_eq!(e.line(), "first");
        // Unknown sequences vanish, parameters and all.
        assert_eq!(
            submitted(&mut e, b"\x15a\x1b[1;5Pb\x1b[200~c\x1bxd\x1bOZe\r"),
            ["abcde"]
        );
        // A control byte inside a sequence ends it and counts itself.
        assert_eq!(submitted(&mut e, b"x\x1b[\r"), ["x"]);
        // An overlong sequence is dropped after ESC_MAX bytes.
        let mut long = b"\x1b[".to_vec();
        long.extend(core::iter::repeat_n(b'1', 40));
        long.extend_from_slice(b"ok\r");
        let got = submitted(&mut e, &long);
        assert_eq!(got.len(), 1);
        assert!(got[0].ends_with("ok") && got[0].chars().all(|c| c == '1' || c == 'o' || c == 'k'));
    }

    #[test]
    fn control_and_non_ascii_bytes_are_dropped() {
        let mut e = LineEditor::new("# ");
        let (_, out) = feed(&mut e, b"a\x00\t\x02\x7e\xc3\xa9\xff\x1d b");
        assert_eq!(e.line(), "a~ b");
        assert_eq!(out, "a~ b");
    }

    #[test]
    fn a_full_line_rings_once() {
        let mut e = LineEditor::new("# ");
        let input = vec![b'x'; LINE_MAX + 500];
        let (_, out) = feed(&mut e, &input);
        assert_eq!(e.line().len(), LINE_MAX);
        assert_eq!(out.matches(BEL).count(), 1);
        let (_, out) = feed(&mut e, b"\x7fyz");
        assert_eq!(out.matches(BEL).count(), 1, "rings again once there was room");
        assert!(e.line().ends_with('y'));
        assert_eq!(submitted(&mut e, b"\r")[0].len(), LINE_MAX);
    }

    #[test]
    fn hide_and_show_restore_the_line() {
        let mut e = LineEditor::new("# ");
        let (_, mut out) = feed(&mut e, b"xm li\x1b[D");
        e.hide(&mut out);
        assert_eq!(screen(&out), "");
        out.push_str("event\n");
        e.show(&mut out);
        assert_eq!(screen(&out), "# xm li");
        feed(&mut e, b"s");
        assert_eq!(e.line(), "xm lsi");
    }

    #[test]
    fn fuzz_random_bytes_keep_the_invariants() {
        let mut rng = crate::fake::XorShift(0x9e37_79b9_7f4a_7c15);
        for round in 0..200 {
            let mut e = LineEditor::new("[root@oxen ~]# ");
            let mut out = String::new();
            let len = usize::try_from(rng.next() % 5000).unwrap();
            for _ in 0..len {
                let b = rng.byte();
                if let Edit::Submit(line) = e.feed(b, &mut out) {
                    assert!(line.len() <= LINE_MAX, "round {round}");
                    assert!(line.bytes().all(|c| (0x20..0x7f).contains(&c)), "round {round}");
                }
                assert!(e.cursor() <= e.line().len(), "round {round}");
                assert!(e.line().len() <= LINE_MAX, "round {round}");
                assert!(e.history().count() <= HISTORY_MAX);
            }
            // After the noise the editor still works.
            let mut tail = String::new();
            e.feed(0x03, &mut tail);
            let mut clean = String::new();
            let mut got = None;
            for &b in b"xm list\r" {
                if let Edit::Submit(line) = e.feed(b, &mut clean) {
                    got = Some(line);
                }
            }
            assert_eq!(got.as_deref(), Some("xm list"), "round {round}");
        }
    }
}
