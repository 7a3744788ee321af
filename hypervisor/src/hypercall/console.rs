//! `console_write` (every domain) and `console_read` (dom0): the guest side
//! of the hypervisor-owned serial console.

use super::Caller;
use crate::arch::uaccess;
use dom0_abi::{CONSOLE_IO_MAX, Status};

/// Copy up to `CONSOLE_IO_MAX` bytes from the guest into its console.
pub fn write(c: &mut Caller<'_>, buf: u64, len: u64) -> Result<u64, Status> {
    if len > CONSOLE_IO_MAX {
        return Err(Status::E2BIG);
    }
    let mut bytes = [0u8; CONSOLE_IO_MAX as usize];
    let bytes = &mut bytes[..len as usize];
    uaccess::copy_from_guest(bytes, buf)?;
    let id = c.dom;
    let dom = c.domain();
    let raw = dom.privileged;
    dom.console.write(id, raw, bytes);
    Ok(len)
}

/// Hand dom0 the serial input waiting, up to `len` bytes.
pub fn read(buf: u64, len: u64) -> Result<u64, Status> {
    if len > CONSOLE_IO_MAX {
        return Err(Status::E2BIG);
    }
    if !uaccess::range_ok(buf, len) {
        return Err(Status::EFAULT);
    }
    let mut bytes = [0u8; CONSOLE_IO_MAX as usize];
    let n = crate::console::read_input(&mut bytes[..len as usize]);
    uaccess::copy_to_guest(buf, &bytes[..n])?;
    Ok(n as u64)
}
