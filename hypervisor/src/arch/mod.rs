//! Architecture support. Only x86-64 exists; the module is kept so that the
//! portable code names `arch::` and never a particular architecture.

pub mod x86_64;
pub use self::x86_64::*;
