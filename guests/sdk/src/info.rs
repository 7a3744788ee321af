//! What the builder told this domain: the [`StartInfo`] copy the runtime
//! validated at entry, and the accessors over it (name, command line, domain
//! ID, dom0's boot module). The checks themselves ([`validate`]) are pure so
//! the host tests them.

use core::fmt;
use dom0_abi::{
    ABI_VERSION_MAJOR, ABI_VERSION_MINOR, DOMID_MAX, DomId, GUEST_VA_LIMIT, PAGE_SIZE, START_INFO_MAGIC,
    StartInfo, field_str,
};
use spin::Once;

static START_INFO: Once<StartInfo> = Once::new();

/// Keep the validated copy (the runtime calls this once, before main).
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // Used by the guest runtime (rt.rs).
pub(crate) fn store(si: StartInfo) -> &'static StartInfo {
    START_INFO.call_once(|| si)
}

/// The stored copy, if the runtime has stored it yet.
pub(crate) fn try_start_info() -> Option<&'static StartInfo> {
    START_INFO.get()
}

/// The copy of `start_info` the SDK validated at entry.
///
/// # Panics
/// Before the runtime stored it, which in a guest is never (it happens
/// before main); on the host, always.
pub fn start_info() -> &'static StartInfo {
    START_INFO
        .get()
        .expect("the SDK runtime stores start_info before the guest's main runs")
}

/// The command line the domain was built with (the config's `extra=`).
pub fn cmdline() -> &'static str {
    field_str(&start_info().cmdline)
}

/// The domain's name.
pub fn name() -> &'static str {
    field_str(&start_info().name)
}

/// This domain's ID.
pub fn domid() -> DomId {
    DomId::try_from(start_info().domid).expect("validate() checked domid <= DOMID_MAX at entry")
}

/// dom0's boot bundle (`module_va`, `module_len`); `None` for a domU.
pub fn module() -> Option<&'static [u8]> {
    let si = start_info();
    if si.module_va == 0 || si.module_len == 0 || !range_in_lower_half(si.module_va, si.module_len) {
        return None;
    }
    let len = usize::try_from(si.module_len).ok()?;
    // SAFETY: the builder maps the module read-only at `module_va` for
    // `module_len` bytes for the domain's lifetime (dom0_abi::StartInfo),
    // nothing writes it, and the range was checked to lie in the lower
    // half without wrapping (so within isize::MAX bytes).
    Some(unsafe { core::slice::from_raw_parts(si.module_va as *const u8, len) })
}

/// The value of `key=value` in the space-separated command line; a bare
/// `key` gives `Some("")`. The last occurrence wins, so appended options
/// override earlier ones.
pub fn cmdline_value(key: &str) -> Option<&'static str> {
    lookup(cmdline(), key)
}

/// [`cmdline_value`] over any command line.
fn lookup<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|word| match word.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if word == key => Some(""),
            _ => None,
        })
        .next_back()
}

/// Whether `[va, va + len)` lies in the lower half without wrapping.
fn range_in_lower_half(va: u64, len: u64) -> bool {
    va.checked_add(len).is_some_and(|end| end <= GUEST_VA_LIMIT)
}

/// Why a `start_info` is not one this SDK can run with.
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // Used by the guest runtime (rt.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartInfoError {
    /// `rdi` at entry was not an aligned lower-half address.
    BadPointer(u64),
    /// The magic is not `START_INFO_MAGIC`.
    Magic(u64),
    /// The domain was built for another ABI major: (major, minor).
    AbiMajor(u16, u16),
    /// The domain ID is out of range.
    DomId(u32),
    /// `first_free_gfn > nr_pages`, or the physmap does not fit.
    Memory,
    /// The module range is not in the lower half.
    Module,
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StartInfoError::BadPointer(p) => write!(f, "start_info pointer {p:#x} is not usable"),
            StartInfoError::Magic(m) => {
                write!(
                    f,
                    "start_info magic is {m:#018x}, expected {START_INFO_MAGIC:#018x}"
                )
            }
            StartInfoError::AbiMajor(maj, min) => write!(
                f,
                "the domain was built with Oxen ABI {maj}.{min}, this image for ABI \
                 {ABI_VERSION_MAJOR}.{ABI_VERSION_MINOR}"
            ),
            StartInfoError::DomId(d) => write!(f, "domain ID {d} is out of range"),
            StartInfoError::Memory => f.write_str("start_info memory fields are inconsistent"),
            StartInfoError::Module => f.write_str("start_info module range is not in the lower half"),
        }
    }
}

/// Whether `rdi` at entry can point at a `StartInfo` (8-aligned, non-null,
/// the whole structure in the lower half).
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // Used by the guest runtime (rt.rs).
pub(crate) fn check_pointer(va: u64) -> Result<(), StartInfoError> {
    let size = core::mem::size_of::<StartInfo>() as u64;
    if va == 0 || !va.is_multiple_of(8) || !range_in_lower_half(va, size) {
        return Err(StartInfoError::BadPointer(va));
    }
    Ok(())
}

/// Check what the runtime relies on before it trusts a `StartInfo`.
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // Used by the guest runtime (rt.rs).
pub(crate) fn validate(si: &StartInfo) -> Result<(), StartInfoError> {
    if si.magic != START_INFO_MAGIC {
        return Err(StartInfoError::Magic(si.magic));
    }
    if si.abi_major != ABI_VERSION_MAJOR {
        return Err(StartInfoError::AbiMajor(si.abi_major, si.abi_minor));
    }
    if si.domid > u32::from(DOMID_MAX) {
        return Err(StartInfoError::DomId(si.domid));
    }
    let physmap_pages = si.nr_pages.max(si.max_pages);
    let physmap_fits = physmap_pages
        .checked_mul(PAGE_SIZE)
        .is_some_and(|bytes| range_in_lower_half(si.physmap_va, bytes));
    if si.first_free_gfn > si.nr_pages || !si.physmap_va.is_multiple_of(PAGE_SIZE) || !physmap_fits {
        return Err(StartInfoError::Memory);
    }
    if si.module_len != 0 && !range_in_lower_half(si.module_va, si.module_len) {
        return Err(StartInfoError::Module);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dom0_abi::{GUEST_MODULE_VA, GUEST_PHYSMAP_VA, GUEST_START_INFO_VA};
    use std::string::ToString;
    use zerocopy::FromZeros;

    fn good() -> StartInfo {
        let mut si = StartInfo::new_zeroed();
        si.magic = START_INFO_MAGIC;
        si.abi_major = ABI_VERSION_MAJOR;
        si.abi_minor = ABI_VERSION_MINOR;
        si.domid = 3;
        si.nr_pages = 4096;
        si.max_pages = 8192;
        si.physmap_va = GUEST_PHYSMAP_VA;
        si.first_free_gfn = 100;
        si
    }

    #[test]
    fn cmdline_lookup() {
        let c = "greeting=hi  mode=crash quiet mode=normal x=";
        assert_eq!(lookup(c, "greeting"), Some("hi"));
        assert_eq!(lookup(c, "mode"), Some("normal"));
        assert_eq!(lookup(c, "quiet"), Some(""));
        assert_eq!(lookup(c, "x"), Some(""));
        assert_eq!(lookup(c, "greet"), None);
        assert_eq!(lookup("", "mode"), None);
        assert_eq!(lookup("a=b=c", "a"), Some("b=c"));
    }

    #[test]
    fn start_info_checks() {
        assert_eq!(validate(&good()), Ok(()));
        let mut si = good();
        si.magic = 0;
        assert_eq!(validate(&si), Err(StartInfoError::Magic(0)));
        let mut si = good();
        si.abi_major = ABI_VERSION_MAJOR + 1;
        assert!(matches!(validate(&si), Err(StartInfoError::AbiMajor(..))));
        assert!(
            validate(&si)
                .expect_err("a foreign ABI major is refused")
                .to_string()
                .contains("this image for ABI")
        );
        let mut si = good();
        si.domid = 0x10000;
        assert_eq!(validate(&si), Err(StartInfoError::DomId(0x10000)));
        let mut si = good();
        si.first_free_gfn = si.nr_pages + 1;
        assert_eq!(validate(&si), Err(StartInfoError::Memory));
        let mut si = good();
        si.max_pages = u64::MAX;
        assert_eq!(validate(&si), Err(StartInfoError::Memory));
        let mut si = good();
        si.module_va = GUEST_MODULE_VA;
        si.module_len = 1 << 20;
        assert_eq!(validate(&si), Ok(()));
        si.module_va = GUEST_VA_LIMIT - 10;
        assert_eq!(validate(&si), Err(StartInfoError::Module));
    }

    #[test]
    fn entry_pointer_checks() {
        assert_eq!(check_pointer(GUEST_START_INFO_VA), Ok(()));
        for bad in [
            0,
            GUEST_START_INFO_VA + 4,
            GUEST_VA_LIMIT - 8,
            0xffff_8000_0000_0000,
        ] {
            assert_eq!(check_pointer(bad), Err(StartInfoError::BadPointer(bad)));
        }
    }
}
