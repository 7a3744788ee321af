//! The error type every xtask module returns, and a `context` helper that puts
//! what xtask was doing in front of the underlying error, the way `anyhow` does,
//! without the dependency. `main.rs` prints the result; a [`UsageError`] also
//! gets the usage text.

use std::error::Error as StdError;
use std::fmt::{self, Display};

/// Any error, with its context already folded into the message.
pub type Error = Box<dyn StdError + Send + Sync>;

/// The result type of every fallible xtask function.
pub type Result<T> = std::result::Result<T, Error>;

/// A mistake on the command line: `main` answers it with the usage text and
/// exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for UsageError {}

/// Builds an [`Error`] from a message.
pub fn error(msg: impl Display) -> Error {
    msg.to_string().into()
}

/// Adds what xtask was doing to an error (`Result`) or to a missing value (`Option`).
pub trait Context<T> {
    /// Prefixes the error with `msg`.
    fn context(self, msg: impl Display) -> Result<T>;
    /// Prefixes the error with the message `f` builds, built only on failure.
    fn with_context<M: Display>(self, f: impl FnOnce() -> M) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, msg: impl Display) -> Result<T> {
        self.map_err(|e| error(format!("{msg}: {e}")))
    }

    fn with_context<M: Display>(self, f: impl FnOnce() -> M) -> Result<T> {
        self.map_err(|e| error(format!("{}: {e}", f())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, msg: impl Display) -> Result<T> {
        self.ok_or_else(|| error(msg))
    }

    fn with_context<M: Display>(self, f: impl FnOnce() -> M) -> Result<T> {
        self.ok_or_else(|| error(f()))
    }
}
