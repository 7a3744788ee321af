//! The syntax of `xm` config files (see `mod.rs`): a hand-written scanner
//! that turns the text into `key = value` [`Assignment`]s, with the line of
//! each and the value as written, and knows nothing of what keys mean.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use super::error::ErrorKind;
use super::{LIST_DEPTH_MAX, is_ident, shown};

/// A value as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    /// A quoted string, escapes resolved.
    Str(String),
    /// An unquoted word: a number, or a Python name such as `True`.
    Bare(String),
    /// `[a, b]` or `(a, b)`.
    List(Vec<Value>),
}

/// One `key = value` line.
pub(super) struct Assignment {
    /// The key.
    pub(super) key: String,
    /// The value.
    pub(super) value: Value,
    /// The value's text, for messages.
    pub(super) raw: String,
    /// The line of the key.
    pub(super) line: usize,
}

/// A syntax error and its line.
pub(super) type SyntaxError = (ErrorKind, usize);

/// A hand-written scanner over the config text.
pub(super) struct Parser<'s> {
    /// The whole file.
    src: &'s str,
    /// Byte offset of the next character.
    pos: usize,
    /// Line of the next character, from 1.
    line: usize,
}

impl<'s> Parser<'s> {
    /// A parser at the start of `src`.
    pub(super) fn new(src: &'s str) -> Self {
        Parser { src, pos: 0, line: 1 }
    }

    /// The next character.
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    /// Consume the next character.
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// The rest of the current line, trimmed, for messages.
    fn rest_of_line(&self) -> String {
        let rest = &self.src[self.pos..];
        shown(rest.split('\n').next().unwrap_or(""))
    }

    /// Skip spaces, tabs, carriage returns, backslash-newline continuations,
    /// comments and, when `newlines`, line ends.
    fn skip_blank(&mut self, newlines: bool) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\x0c') => {}
                Some('\n') if newlines => {}
                Some('\\') if self.src[self.pos + 1..].starts_with('\n') => {
                    self.bump();
                }
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                    continue;
                }
                _ => return,
            }
            self.bump();
        }
    }

    /// Every assignment in the file.
    pub(super) fn assignments(mut self) -> Result<Vec<Assignment>, SyntaxError> {
        let mut out = Vec::new();
        loop {
            self.skip_blank(true);
            while self.peek() == Some(';') {
                self.bump();
                self.skip_blank(true);
            }
            if self.peek().is_none() {
                return Ok(out);
            }
            out.push(self.assignment()?);
        }
    }

    /// One `key = value`, up to (not including) its line end.
    fn assignment(&mut self) -> Result<Assignment, SyntaxError> {
        let line = self.line;
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.bump();
        }
        let key = &self.src[start..self.pos];
        if !is_ident(key) {
            self.pos = start;
            return Err((
                ErrorKind::ExpectedSetting {
                    found: self.rest_of_line(),
                },
                line,
            ));
        }
        self.skip_blank(false);
        if self.peek() != Some('=') {
            return Err((ErrorKind::ExpectedEquals { key: key.to_owned() }, line));
        }
        self.bump();
        self.skip_blank(false);
        if matches!(self.peek(), None | Some('\n' | ';')) {
            return Err((ErrorKind::MissingValue { key: key.to_owned() }, line));
        }
        let value_start = self.pos;
        let value = self.value(0)?;
        let raw = self.src[value_start..self.pos].to_owned();
        self.skip_blank(false);
        match self.peek() {
            None | Some('\n' | ';') => Ok(Assignment {
                key: key.to_owned(),
                value,
                raw,
                line,
            }),
            Some(_) => Err((
                ErrorKind::TrailingText {
                    key: key.to_owned(),
                    found: self.rest_of_line(),
                },
                self.line,
            )),
        }
    }

    /// A string, a list or a bare word.
    fn value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => self.string(q),
            Some(open @ ('[' | '(')) => self.list(open, depth),
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| !c.is_whitespace() && !",;#=[]()'\"".contains(c))
                {
                    self.bump();
                }
                if self.pos == start {
                    let found = self.peek().unwrap_or(' ');
                    return Err((ErrorKind::UnexpectedChar { found }, self.line));
                }
                Ok(Value::Bare(self.src[start..self.pos].to_owned()))
            }
        }
    }

    /// A quoted string with Python's common escapes.
    fn string(&mut self, quote: char) -> Result<Value, SyntaxError> {
        let line = self.line;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err((ErrorKind::UnterminatedString, line)),
                Some(c) if c == quote => return Ok(Value::Str(out)),
                Some('\\') => match self.bump() {
                    None => return Err((ErrorKind::UnterminatedString, line)),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some('\n') => {}
                    Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                    // Python keeps unknown escapes as written.
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// `[a, b, ...]` or `(a, b, ...)`, across lines, trailing comma allowed.
    fn list(&mut self, open: char, depth: usize) -> Result<Value, SyntaxError> {
        let line = self.line;
        if depth >= LIST_DEPTH_MAX {
            return Err((ErrorKind::ListTooDeep, line));
        }
        let close = if open == '[' { ']' } else { ')' };
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_blank(true);
            match self.peek() {
                None => return Err((ErrorKind::UnterminatedList { close }, line)),
                Some(c) if c == close => {
                    self.bump();
                    return Ok(Value::List(items));
                }
                Some(_) => items.push(self.value(depth + 1)?),
            }
            self.skip_blank(true);
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(c) if c == close => {}
                None => return Err((ErrorKind::UnterminatedList { close }, line)),
                Some(found) => return Err((ErrorKind::ListSeparator { found, close }, self.line)),
            }
        }
    }
}
