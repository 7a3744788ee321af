//! The boot bundle: the one boot module, a cpio archive that carries dom0's
//! kernel, domU images and domain configs. The hypervisor checks the whole
//! archive (structure, names, checksums) and logs its entries; a missing or
//! corrupt bundle is reported by entry and never faults. dom0 takes it over
//! in the PV domains work.

use crate::mm::memmap::PhysRange;
use crate::mm::setup;
use log::{error, info, warn};
use oxen_bundle::Archive;

/// Validate and log the bundle in `module`, if there is one.
pub fn load(module: Option<PhysRange>) -> Option<Archive<'static>> {
    let Some(range) = module else {
        warn!(target: "bundle", "no boot bundle (pass it with -initrd or GRUB's module2); dom0 cannot start");
        return None;
    };
    let len = range.len();
    let va = match setup::map_firmware(range.start, len) {
        Ok(va) => va,
        Err(e) => {
            error!(target: "bundle", "cannot map the boot module at {range}: {e}");
            return None;
        }
    };
    let Ok(len_usize) = usize::try_from(len) else {
        error!(target: "bundle", "boot module of {len} bytes is too large");
        return None;
    };
    // SAFETY: `va` maps the boot module, which the frame allocator never
    // hands out, read-only for the life of the hypervisor.
    #[allow(unsafe_code)]
    let data: &'static [u8] = unsafe { core::slice::from_raw_parts(va as *const u8, len_usize) };
    match Archive::parse(data) {
        Ok(archive) => {
            info!(target: "bundle", "{} {}, {} KiB at {range}", archive.len(), if archive.len() == 1 { "entry" } else { "entries" }, len >> 10);
            for entry in archive.entries() {
                let kind = if entry.is_dir() { "dir" } else { "file" };
                info!(target: "bundle", "entry '{}' ({kind}, {} bytes)", entry.name, entry.data.len());
            }
            Some(archive)
        }
        Err(e) => {
            error!(target: "bundle", "invalid boot bundle: {e}");
            None
        }
    }
}
