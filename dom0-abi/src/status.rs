//! Status codes: a failed hypercall returns `-(code)` in `rax`. The values
//! are Linux/Xen errno numbers so that they read familiarly in traces.

use core::fmt;

/// Why a hypercall failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i64)]
pub enum Status {
    /// Not allowed for this domain (e.g. a domU calling a domctl).
    EPERM = 1,
    /// No such object (file, bundle entry, vCPU).
    ENOENT = 2,
    /// No such domain.
    ESRCH = 3,
    /// A buffer or count is too large.
    E2BIG = 7,
    /// The image is not executable (bad ELF, wrong ABI).
    ENOEXEC = 8,
    /// Try again (nothing available now).
    EAGAIN = 11,
    /// Out of memory (frames, or the domain's `max_pages`).
    ENOMEM = 12,
    /// Access to this frame or mapping is denied.
    EACCES = 13,
    /// A guest pointer is bad: unmapped, upper half, non-canonical, read-only.
    EFAULT = 14,
    /// The object is in use.
    EBUSY = 16,
    /// The object already exists (a mapping, a domain name).
    EEXIST = 17,
    /// An argument is invalid (reserved bits, bad flags, out of range).
    EINVAL = 22,
    /// A number is out of range.
    ERANGE = 34,
    /// No such hypercall.
    ENOSYS = 38,
    /// The other end of the event channel has closed (since 1.1).
    ENOTCONN = 107,
}

impl Status {
    /// Every status, in numeric order.
    pub const ALL: [Status; 15] = [
        Status::EPERM,
        Status::ENOENT,
        Status::ESRCH,
        Status::E2BIG,
        Status::ENOEXEC,
        Status::EAGAIN,
        Status::ENOMEM,
        Status::EACCES,
        Status::EFAULT,
        Status::EBUSY,
        Status::EEXIST,
        Status::EINVAL,
        Status::ERANGE,
        Status::ENOSYS,
        Status::ENOTCONN,
    ];

    /// The value a hypercall returns for this status (negative).
    pub const fn to_ret(self) -> i64 {
        -(self as i64)
    }

    /// Decode a hypercall return value: `Ok(value)` for `>= 0`.
    pub fn from_ret(ret: i64) -> Result<u64, Status> {
        if ret >= 0 {
            return Ok(ret.unsigned_abs());
        }
        Err(Status::try_from(ret.unsigned_abs()).unwrap_or(Status::EINVAL))
    }

    /// The symbolic name.
    pub const fn name(self) -> &'static str {
        match self {
            Status::EPERM => "EPERM",
            Status::ENOENT => "ENOENT",
            Status::ESRCH => "ESRCH",
            Status::E2BIG => "E2BIG",
            Status::ENOEXEC => "ENOEXEC",
            Status::EAGAIN => "EAGAIN",
            Status::ENOMEM => "ENOMEM",
            Status::EACCES => "EACCES",
            Status::EFAULT => "EFAULT",
            Status::EBUSY => "EBUSY",
            Status::EEXIST => "EEXIST",
            Status::EINVAL => "EINVAL",
            Status::ERANGE => "ERANGE",
            Status::ENOSYS => "ENOSYS",
            Status::ENOTCONN => "ENOTCONN",
        }
    }

    /// A short description.
    pub const fn describe(self) -> &'static str {
        match self {
            Status::EPERM => "operation not permitted",
            Status::ENOENT => "no such entry",
            Status::ESRCH => "no such domain",
            Status::E2BIG => "argument too large",
            Status::ENOEXEC => "not an executable image",
            Status::EAGAIN => "try again",
            Status::ENOMEM => "out of memory",
            Status::EACCES => "access denied",
            Status::EFAULT => "bad address",
            Status::EBUSY => "busy",
            Status::EEXIST => "already exists",
            Status::EINVAL => "invalid argument",
            Status::ERANGE => "out of range",
            Status::ENOSYS => "no such hypercall",
            Status::ENOTCONN => "the other end has closed",
        }
    }
}

impl TryFrom<u64> for Status {
    type Error = u64;

    fn try_from(code: u64) -> Result<Self, u64> {
        Status::ALL
            .iter()
            .copied()
            .find(|s| *s as u64 == code)
            .ok_or(code)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_ret(s.to_ret()), Err(s));
            assert_eq!(Status::try_from(s as u64), Ok(s));
        }
        assert_eq!(Status::from_ret(5), Ok(5));
        assert_eq!(Status::from_ret(-999), Err(Status::EINVAL));
        assert_eq!(Status::try_from(999), Err(999));
    }

    #[test]
    fn all_is_sorted_and_complete() {
        assert!(Status::ALL.windows(2).all(|w| (w[0] as i64) < (w[1] as i64)));
    }
}
