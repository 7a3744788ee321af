//! Tests of `abi.rs`: the version rule and its messages, on real images.

use std::format;
use std::string::ToString;

use dom0_abi::{ABI_VERSION_MAJOR, ABI_VERSION_MINOR};

use super::elf_writer::*;
use crate::{AbiError, Image, OUR_ABI, check_abi, check_version};

const MAJOR: u16 = ABI_VERSION_MAJOR;
const MINOR: u16 = ABI_VERSION_MINOR;

#[test]
fn our_own_version_is_accepted() {
    assert_eq!(OUR_ABI, (MAJOR, MINOR));
    let bytes = TestElf::good().bytes();
    assert_eq!(check_abi(&Image::parse(&bytes).unwrap()), Ok((MAJOR, MINOR)));
}

#[test]
fn missing_note() {
    let mut elf = TestElf::good();
    elf.phs.remove(3);
    let bytes = elf.bytes();
    let e = check_abi(&Image::parse(&bytes).unwrap()).unwrap_err();
    assert_eq!(e, AbiError::Missing);
    assert_eq!(
        e.to_string(),
        "the image has no Oxen ABI note (section .note.oxen); build it with the Oxen guest SDK"
    );
}

#[test]
fn other_major_is_refused_naming_both_versions() {
    for major in [MAJOR + 1, MAJOR.wrapping_sub(1), u16::MAX, 0] {
        if major == MAJOR {
            continue;
        }
        let bytes = TestElf::with_abi(major, 0).bytes();
        let e = check_abi(&Image::parse(&bytes).unwrap()).unwrap_err();
        assert_eq!(
            e,
            AbiError::WrongMajor {
                image: (major, 0),
                ours: (MAJOR, MINOR)
            }
        );
        assert_eq!(
            e.to_string(),
            format!(
                "the image was built for Oxen ABI {major}.0 but this hypervisor speaks ABI {MAJOR}.{MINOR}"
            )
        );
    }
    let e = check_version(Some((2, 0)), (1, 0)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the image was built for Oxen ABI 2.0 but this hypervisor speaks ABI 1.0"
    );
}

#[test]
fn newer_minor_is_refused() {
    let bytes = TestElf::with_abi(MAJOR, MINOR + 1).bytes();
    let e = check_abi(&Image::parse(&bytes).unwrap()).unwrap_err();
    assert_eq!(
        e,
        AbiError::MinorTooNew {
            image: (MAJOR, MINOR + 1),
            ours: (MAJOR, MINOR)
        }
    );
    assert_eq!(
        e.to_string(),
        format!(
            "the image needs Oxen ABI {MAJOR}.{}, this hypervisor speaks {MAJOR}.{MINOR}",
            MINOR + 1
        )
    );
    assert_eq!(
        check_version(Some((1, 3)), (1, 0)).unwrap_err().to_string(),
        "the image needs Oxen ABI 1.3, this hypervisor speaks 1.0"
    );
}

#[test]
fn same_major_older_or_equal_minor_is_accepted() {
    assert_eq!(check_version(Some((1, 2)), (1, 3)), Ok((1, 2)));
    assert_eq!(check_version(Some((1, 0)), (1, 3)), Ok((1, 0)));
    assert_eq!(check_version(Some((1, 3)), (1, 3)), Ok((1, 3)));
    assert_eq!(check_version(None, (1, 3)), Err(AbiError::Missing));
    assert_eq!(
        check_version(Some((0, 9)), (1, 3)),
        Err(AbiError::WrongMajor {
            image: (0, 9),
            ours: (1, 3)
        })
    );
}
