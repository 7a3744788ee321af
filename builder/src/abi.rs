//! The ABI version check: a guest image states the Oxen ABI it was built for
//! in an ELF note (found by `elf.rs`), and the builder (`domain.rs`) refuses
//! an image this hypervisor cannot run, naming both versions.
//!
//! The rule follows `dom0-abi`'s versioning: an image built for the same
//! major and a minor no newer than ours runs (minor versions only add); an
//! image with another major, or a newer minor (it may use calls we lack), is
//! refused. An image without the note is refused too: it was not built with
//! the Oxen guest SDK, so nothing says it speaks this ABI at all.

use core::fmt;

use dom0_abi::{ABI_VERSION_MAJOR, ABI_VERSION_MINOR};

use crate::elf::Image;

/// The ABI this crate was built with, as (major, minor): the version images
/// are checked against and the one written into `StartInfo`.
pub const OUR_ABI: (u16, u16) = (ABI_VERSION_MAJOR, ABI_VERSION_MINOR);

/// Why an image's ABI version was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiError {
    /// The image has no Oxen ABI note.
    Missing,
    /// The image was built for another major version.
    WrongMajor {
        /// The image's (major, minor).
        image: (u16, u16),
        /// Ours.
        ours: (u16, u16),
    },
    /// The image needs a newer minor version than ours.
    MinorTooNew {
        /// The image's (major, minor).
        image: (u16, u16),
        /// Ours.
        ours: (u16, u16),
    },
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AbiError::Missing => write!(
                f,
                "the image has no Oxen ABI note (section .note.oxen); build it with the Oxen guest SDK"
            ),
            AbiError::WrongMajor { image, ours } => write!(
                f,
                "the image was built for Oxen ABI {}.{} but this hypervisor speaks ABI {}.{}",
                image.0, image.1, ours.0, ours.1
            ),
            AbiError::MinorTooNew { image, ours } => write!(
                f,
                "the image needs Oxen ABI {}.{}, this hypervisor speaks {}.{}",
                image.0, image.1, ours.0, ours.1
            ),
        }
    }
}

impl core::error::Error for AbiError {}

/// Check `image`'s ABI note against [`OUR_ABI`]; returns the image's
/// (major, minor) when it may run.
pub fn check_abi(image: &Image<'_>) -> Result<(u16, u16), AbiError> {
    check_version(image.abi_version(), OUR_ABI)
}

/// Check an image's ABI version `found` (from its note, `None` without one)
/// against `ours`; returns `found` when the image may run.
pub fn check_version(found: Option<(u16, u16)>, ours: (u16, u16)) -> Result<(u16, u16), AbiError> {
    let image = found.ok_or(AbiError::Missing)?;
    if image.0 != ours.0 {
        return Err(AbiError::WrongMajor { image, ours });
    }
    if image.1 > ours.1 {
        return Err(AbiError::MinorTooNew { image, ours });
    }
    Ok(image)
}
