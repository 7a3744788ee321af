//! The property framework, after the Xen Test Framework's idea: one tiny
//! guest per property, one verdict line per guest. A [`Prop`] is a name,
//! the outcome it expects ([`Expect`]) and the function that checks it;
//! `registry.rs` lists them all and `main.rs` runs the one the command line
//! names. [`run`] prints the verdict:
//!
//! ```text
//! prop NAME: SUCCESS
//! prop NAME: SKIP (why)
//! prop NAME: FAILURE (what)
//! prop NAME: expecting CRASH        (a CRASH property, right before the deadly act)
//! ```
//!
//! A property's function returns `Ok(Pass::Success)`, `Ok(Pass::Skip(..))`
//! or `Err(what went wrong)`; the checks use `?` on `Result<_, String>`. A
//! CRASH property calls [`expecting_crash`] just before the act that must
//! get the domain crashed by the hypervisor; if the act returns, the
//! property returns `Err("still alive")`, and a CRASH property that returns
//! anything but a skip is a FAILURE. xtask (`xtask/src/props.rs`) reads the
//! lines and the hypervisor's `domain N ('p-NAME') crashed:` report.

use alloc::format;
use alloc::string::String;
use core::fmt::Debug;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use oxen_guest_sdk::{ShutdownReason, Status, println};

use crate::registry::PROPS;

/// The outcome a property expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The guest itself reports SUCCESS (or SKIP) and powers off.
    Success,
    /// The hypervisor crashes the domain.
    Crash,
}

/// A property that held, or could not be checked here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pass {
    /// It holds.
    Success,
    /// It cannot be checked on this machine: why.
    Skip(String),
}

/// What a property's function returns: `Err` says what went wrong.
pub type PropResult = Result<Pass, String>;

/// A check inside a property: `Err` says what went wrong.
pub type Check = Result<(), String>;

/// One property.
pub struct Prop {
    /// The name `prop=` selects; the domain is called `p-NAME`.
    pub name: &'static str,
    /// The outcome it expects.
    pub expect: Expect,
    /// The check.
    pub run: fn() -> PropResult,
}

impl Prop {
    /// A property whose guest reports SUCCESS itself.
    pub const fn success(name: &'static str, run: fn() -> PropResult) -> Prop {
        Prop {
            name,
            expect: Expect::Success,
            run,
        }
    }

    /// A property whose domain the hypervisor must crash.
    pub const fn crash(name: &'static str, run: fn() -> PropResult) -> Prop {
        Prop {
            name,
            expect: Expect::Crash,
            run,
        }
    }
}

/// The index in [`PROPS`] of the property running.
static CURRENT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The property running (for messages).
pub fn current_name() -> &'static str {
    PROPS.get(CURRENT.load(SeqCst)).map_or("?", |p| p.name)
}

/// Run property `index` of [`PROPS`] and print its verdict line.
pub fn run(index: usize) -> ShutdownReason {
    CURRENT.store(index, SeqCst);
    let Some(prop) = PROPS.get(index) else {
        return ShutdownReason::Crash;
    };
    let verdict = match ((prop.run)(), prop.expect) {
        (Ok(Pass::Success), Expect::Success) => String::from("SUCCESS"),
        (Ok(Pass::Skip(why)), _) => format!("SKIP ({why})"),
        (Ok(Pass::Success), Expect::Crash) => String::from("FAILURE (still alive)"),
        (Err(what), _) => format!("FAILURE ({what})"),
    };
    println!("prop {}: {verdict}", prop.name);
    ShutdownReason::Poweroff
}

/// Announce the act that must crash this domain (a CRASH property).
pub fn expecting_crash() {
    println!("prop {}: expecting CRASH", current_name());
}

/// A progress or diagnostic line that is not a verdict: `info NAME: ...`.
macro_rules! note {
    ($($arg:tt)*) => {
        oxen_guest_sdk::println!(
            "info {}: {}",
            $crate::framework::current_name(),
            ::core::format_args!($($arg)*)
        )
    };
}

/// `Err(format!(...))` from the enclosing check unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(::alloc::format!($($arg)*));
        }
    };
}

/// `r` must be `Err(want)`.
pub fn refused<T: Debug>(what: &str, r: Result<T, Status>, want: Status) -> Check {
    match r {
        Err(s) if s == want => Ok(()),
        Err(s) => Err(format!("{what}: {}, expected {}", s.name(), want.name())),
        Ok(v) => Err(format!("{what}: accepted ({v:?}), expected {}", want.name())),
    }
}

/// `r` must be `Err` with one of `wants`.
pub fn refused_any<T: Debug>(what: &str, r: Result<T, Status>, wants: &[Status]) -> Check {
    match r {
        Err(s) if wants.contains(&s) => Ok(()),
        Err(s) => Err(format!("{what}: {}, expected one of {wants:?}", s.name())),
        Ok(v) => Err(format!("{what}: accepted ({v:?}), expected one of {wants:?}")),
    }
}

/// `r` must be `Ok`: its value.
pub fn accepted<T>(what: &str, r: Result<T, Status>) -> Result<T, String> {
    r.map_err(|s| format!("{what}: {s}"))
}

/// A raw hypercall as a `Result`.
///
/// # Safety
/// As for [`oxen_guest_sdk::hypercall::raw`]: any pointer the call writes
/// through must name memory the caller owns and expects to change.
pub unsafe fn raw(nr: u64, args: [u64; 6]) -> Result<u64, Status> {
    // SAFETY: the caller's contract.
    Status::from_ret(unsafe { oxen_guest_sdk::hypercall::raw(nr, args) })
}

/// SUCCESS.
pub fn ok() -> PropResult {
    Ok(Pass::Success)
}
