//! Splitting a command line into words the way a POSIX shell (and Python's
//! `shlex`, which xm's own shell used) does: blanks separate words, `'...'`
//! quotes literally, `"..."` quotes with `\"` and `\\` escapes, and a
//! backslash outside quotes takes the next character as it is. So
//! `xm create web extra="console=hvc0 quiet"` has two words after
//! `create`: `web` and `extra=console=hvc0 quiet`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Why a line cannot be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WordsError {
    /// A quote is not closed.
    NoClosingQuote,
    /// The line ends with a lone backslash.
    NoEscapedCharacter,
}

impl fmt::Display for WordsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // shlex's words.
        f.write_str(match self {
            WordsError::NoClosingQuote => "No closing quotation",
            WordsError::NoEscapedCharacter => "No escaped character",
        })
    }
}

/// The words of `line`.
pub fn split(line: &str) -> Result<Vec<String>, WordsError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started (so `''` is an empty word, not nothing).
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(core::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(WordsError::NoClosingQuote),
                        Some('\'') => break,
                        Some(c) => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(WordsError::NoClosingQuote),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            None => return Err(WordsError::NoClosingQuote),
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        Some(c) => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().ok_or(WordsError::NoEscapedCharacter)?);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn words_and_quotes() {
        assert_eq!(split("  xm   list  ").unwrap(), ["xm", "list"]);
        assert_eq!(split("").unwrap(), [] as [&str; 0]);
        assert_eq!(split("\t").unwrap(), [] as [&str; 0]);
        assert_eq!(
            split("xm create web extra=\"console=hvc0 quiet\" name='a b'").unwrap(),
            ["xm", "create", "web", "extra=console=hvc0 quiet", "name=a b"]
        );
        assert_eq!(
            split("a\\ b 'c\\d' \"e\\\"f\\g\"").unwrap(),
            ["a b", "c\\d", "e\"f\\g"]
        );
        assert_eq!(split("'' x").unwrap(), ["", "x"]);
        assert_eq!(split("ab'cd'ef").unwrap(), ["abcdef"]);
    }

    #[test]
    fn errors() {
        assert_eq!(split("xm create 'web"), Err(WordsError::NoClosingQuote));
        assert_eq!(split("\"x\\"), Err(WordsError::NoClosingQuote));
        assert_eq!(split("x \\"), Err(WordsError::NoEscapedCharacter));
        assert_eq!(WordsError::NoClosingQuote.to_string(), "No closing quotation");
    }
}
