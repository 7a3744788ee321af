//! Why a config was refused ([`ConfigError`]: where, and a sentence saying
//! what) and what was odd about an accepted one ([`Warning`]).

use alloc::string::String;
use core::fmt;

use super::{Action, EXTRA_MAX_LEN, LIST_DEPTH_MAX, NAME_MAX_LEN};

/// Where a config error was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A line of a file.
    Line {
        /// The file.
        file: String,
        /// The line, from 1.
        line: usize,
    },
    /// A file as a whole (a missing setting).
    File {
        /// The file.
        file: String,
    },
    /// A command-line override.
    Override {
        /// The `key=value` text.
        text: String,
    },
}

/// Why a config was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where.
    pub origin: Origin,
    /// What.
    pub kind: ErrorKind,
}

/// What is wrong with a config. `raw` fields hold the value as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file is not UTF-8.
    NotUtf8,
    /// A line does not start with a key.
    ExpectedSetting {
        /// The line.
        found: String,
    },
    /// A key is not followed by `=`.
    ExpectedEquals {
        /// The key.
        key: String,
    },
    /// `key =` with nothing after it.
    MissingValue {
        /// The key.
        key: String,
    },
    /// A character that cannot start a value.
    UnexpectedChar {
        /// The character.
        found: char,
    },
    /// Text after a complete value.
    TrailingText {
        /// The key.
        key: String,
        /// The text.
        found: String,
    },
    /// A quote is not closed on its line.
    UnterminatedString,
    /// A list is not closed before the end of the file.
    UnterminatedList {
        /// The missing bracket.
        close: char,
    },
    /// Something other than `,` or the bracket after a list item.
    ListSeparator {
        /// What was found.
        found: char,
        /// The closing bracket.
        close: char,
    },
    /// Lists nested too deeply.
    ListTooDeep,
    /// An integer setting is not an integer.
    NotANumber {
        /// The key.
        key: String,
        /// The value.
        raw: String,
    },
    /// A string setting is not quoted.
    NotAString {
        /// The key.
        key: String,
        /// The value.
        raw: String,
    },
    /// An integer setting outside its range.
    OutOfRange {
        /// The key.
        key: String,
        /// The value.
        raw: String,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// The unit, with a leading space, or empty.
        unit: &'static str,
    },
    /// `name` is empty, too long or has other characters.
    BadName {
        /// The value.
        raw: String,
    },
    /// `kernel = ""`.
    EmptyKernel,
    /// `extra` does not fit in `StartInfo::cmdline`.
    ExtraTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// `extra` has a NUL, which would cut it short.
    ExtraHasNul,
    /// An `on_*` setting is not an [`Action`].
    BadAction {
        /// The key.
        key: String,
        /// The value.
        raw: String,
    },
    /// `maxmem` below `memory`.
    MaxmemBelowMemory {
        /// `maxmem`.
        maxmem_mib: u64,
        /// `memory`.
        memory_mib: u64,
    },
    /// A required setting is not given.
    Missing {
        /// The key.
        key: &'static str,
    },
    /// An override is not `key=value`.
    OverrideSyntax,
    /// An override names a key configs do not have.
    UnknownOverrideKey {
        /// The key.
        key: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line { file, line } => write!(f, "{file}:{line}"),
            Origin::File { file } => f.write_str(file),
            Origin::Override { text } => write!(f, "override '{text}'"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.kind)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NotUtf8 => f.write_str("the file is not UTF-8 text"),
            ErrorKind::ExpectedSetting { found } => {
                write!(f, "expected a setting such as memory = 64, found '{found}'")
            }
            ErrorKind::ExpectedEquals { key } => write!(f, "expected '=' after '{key}'"),
            ErrorKind::MissingValue { key } => write!(f, "'{key} =' has no value"),
            ErrorKind::UnexpectedChar { found } => write!(f, "unexpected '{found}' where a value belongs"),
            ErrorKind::TrailingText { key, found } => {
                write!(f, "unexpected '{found}' after the value of {key}")
            }
            ErrorKind::UnterminatedString => f.write_str("a string is not closed (missing quote)"),
            ErrorKind::UnterminatedList { close } => write!(f, "a list is not closed (missing '{close}')"),
            ErrorKind::ListSeparator { found, close } => {
                write!(f, "expected ',' or '{close}' between list items, found '{found}'")
            }
            ErrorKind::ListTooDeep => write!(f, "lists are nested more than {LIST_DEPTH_MAX} deep"),
            ErrorKind::NotANumber { key, raw } => write!(f, "{key} = {raw} is not a number"),
            ErrorKind::NotAString { key, raw } => {
                write!(
                    f,
                    "{key} = {raw} is not a string; put it in quotes: {key} = \"{raw}\""
                )
            }
            ErrorKind::OutOfRange {
                key,
                raw,
                min,
                max,
                unit,
            } => write!(f, "{key} = {raw} is out of range: {min} to {max}{unit}"),
            ErrorKind::BadName { raw } => write!(
                f,
                "name = {raw} is not a valid domain name: use 1 to {NAME_MAX_LEN} characters of A-Z a-z 0-9 _ . -"
            ),
            ErrorKind::EmptyKernel => f.write_str("kernel is empty; name an image in the boot bundle"),
            ErrorKind::ExtraTooLong { len } => {
                write!(f, "extra is {len} bytes long; at most {EXTRA_MAX_LEN} fit")
            }
            ErrorKind::ExtraHasNul => f.write_str("extra contains a NUL character"),
            ErrorKind::BadAction { key, raw } => {
                write!(f, "{key} = {raw} is not one of ")?;
                for (i, a) in Action::ALL.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{a}")?;
                }
                Ok(())
            }
            ErrorKind::MaxmemBelowMemory {
                maxmem_mib,
                memory_mib,
            } => {
                write!(f, "maxmem = {maxmem_mib} is less than memory = {memory_mib}")
            }
            ErrorKind::Missing { key } => {
                let example = match *key {
                    "name" => "name = \"web\"",
                    "memory" => "memory = 64 (MiB)",
                    _ => "kernel = \"images/web.elf\"",
                };
                write!(f, "'{key}' is not set; every domain needs one, such as {example}")
            }
            ErrorKind::OverrideSyntax => f.write_str("expected key=value"),
            ErrorKind::UnknownOverrideKey { key } => write!(f, "'{key}' is not a setting a config can have"),
        }
    }
}

/// A setting that was ignored or repeated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file.
    pub file: String,
    /// The line, from 1.
    pub line: usize,
    /// What.
    pub kind: WarningKind,
}

/// What a [`Warning`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// A key no xm config has (perhaps misspelt).
    Unknown {
        /// The key.
        key: String,
    },
    /// An xm key that Oxen does not act on yet.
    Unsupported {
        /// The key.
        key: String,
    },
    /// A key set twice; the later value wins, as in Python.
    Repeated {
        /// The key.
        key: String,
        /// Where it was first set.
        first_line: usize,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        match &self.kind {
            WarningKind::Unknown { key } => write!(f, "unknown setting '{key}' ignored"),
            WarningKind::Unsupported { key } => write!(f, "'{key}' is not supported by Oxen yet; ignored"),
            WarningKind::Repeated { key, first_line } => {
                write!(
                    f,
                    "'{key}' is set again; this replaces the value from line {first_line}"
                )
            }
        }
    }
}
