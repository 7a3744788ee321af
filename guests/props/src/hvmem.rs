//! The hypervisor's half of the address space is shared by every guest
//! address space but supervisor-only: a guest read, write or instruction
//! fetch there must page-fault as a user access to a present page (and be
//! reflected to the guest), for the hypervisor image and for its direct
//! map of RAM alike. Non-canonical addresses must raise #GP.

use alloc::format;
use oxen_guest_sdk::dom0_abi::vector;
use oxen_guest_sdk::probe::Fault;

use crate::framework::{Check, PropResult, ok};
use crate::lowlevel::{
    FIRST_NON_CANONICAL, HV_DIRECT_MAP, HV_IMAGE, LAST_NON_CANONICAL, NON_CANONICAL, install_probes,
};

/// Page-fault error code bits (Intel SDM Vol.3A 5.7): present, write,
/// user, instruction fetch.
const PF_PRESENT: u64 = 1 << 0;
const PF_WRITE: u64 = 1 << 1;
const PF_USER: u64 = 1 << 2;
const PF_FETCH: u64 = 1 << 4;

/// `f` must be a #PF at `addr` whose error code has `set` and lacks `clear`.
fn page_fault(what: &str, f: Fault, addr: u64, set: u64, clear: u64) -> Check {
    ensure!(
        f.vector == u64::from(vector::PF),
        "{what} raised {f}, expected #PF"
    );
    ensure!(
        f.fault_addr == addr,
        "{what}: #PF reports address {:#x}, expected {addr:#x}",
        f.fault_addr
    );
    ensure!(
        f.error_code & set == set && f.error_code & clear == 0,
        "{what}: #PF error code {:#x}, expected bits {set:#x} set and {clear:#x} clear",
        f.error_code
    );
    Ok(())
}

fn read(addr: u64) -> PropResult {
    install_probes()?;
    // SAFETY: a user read of a supervisor page faults and the probe resumes
    // after it; were it allowed, a read has no side effect.
    let probed = unsafe { probe_at!(addr; [] "mov rax, qword ptr [rdx]") };
    let what = format!("read of {addr:#x}");
    let f = probed.reflected(&what, &[vector::PF])?;
    page_fault(&what, f, addr, PF_PRESENT | PF_USER, PF_WRITE | PF_FETCH)?;
    ok()
}

fn write(addr: u64) -> PropResult {
    install_probes()?;
    // SAFETY: a user write to a supervisor page faults and the probe
    // resumes after it. Were it allowed it would corrupt the hypervisor,
    // which is exactly what this property is there to catch.
    let probed = unsafe { probe_at!(addr; ["xor eax, eax"] "mov qword ptr [rdx], rax") };
    let what = format!("write to {addr:#x}");
    let f = probed.reflected(&what, &[vector::PF])?;
    page_fault(&what, f, addr, PF_PRESENT | PF_WRITE | PF_USER, PF_FETCH)?;
    ok()
}

fn exec(addr: u64) -> PropResult {
    install_probes()?;
    // SAFETY: a user fetch from a supervisor page faults with rip at the
    // target, and the probe resumes after the jump. Were it allowed, the
    // hypervisor's code would run at CPL 3 until its first trap, which also
    // lands on the pad.
    let probed = unsafe { probe_at!(addr; [] "jmp rdx") };
    let what = format!("jump to {addr:#x}");
    let f = probed
        .fault
        .ok_or_else(|| format!("{what} came back without a trap"))?;
    ensure!(
        f.rip == addr,
        "{what}: code ran there (trap {f} at rip {:#x})",
        f.rip
    );
    page_fault(&what, f, addr, PF_PRESENT | PF_USER | PF_FETCH, PF_WRITE)?;
    ok()
}

/// Reading the hypervisor image faults.
pub fn image_read() -> PropResult {
    read(HV_IMAGE)
}

/// Writing the hypervisor image faults.
pub fn image_write() -> PropResult {
    write(HV_IMAGE)
}

/// Executing the hypervisor image faults.
pub fn image_exec() -> PropResult {
    exec(HV_IMAGE)
}

/// Reading the direct map faults.
pub fn directmap_read() -> PropResult {
    read(HV_DIRECT_MAP)
}

/// Writing the direct map faults.
pub fn directmap_write() -> PropResult {
    write(HV_DIRECT_MAP)
}

/// Executing from the direct map faults.
pub fn directmap_exec() -> PropResult {
    exec(HV_DIRECT_MAP)
}

/// Reads, writes and jumps at non-canonical addresses raise #GP.
pub fn noncanonical() -> PropResult {
    install_probes()?;
    for addr in [NON_CANONICAL, FIRST_NON_CANONICAL, LAST_NON_CANONICAL] {
        // SAFETY: a non-canonical access raises #GP before touching memory
        // (Intel SDM Vol.3A 3.3.7.1); the probe resumes after it.
        let probed = unsafe { probe_at!(addr; [] "mov rax, qword ptr [rdx]") };
        probed.reflected(&format!("read of {addr:#x}"), &[vector::GP])?;
        // SAFETY: as above.
        let probed = unsafe { probe_at!(addr; ["xor eax, eax"] "mov qword ptr [rdx], rax") };
        probed.reflected(&format!("write to {addr:#x}"), &[vector::GP])?;
        // SAFETY: a jump to a non-canonical address raises #GP (at the jump,
        // or at the fetch on some CPUs); the probe resumes after it.
        let probed = unsafe { probe_at!(addr; [] "jmp rdx") };
        let f = probed
            .fault
            .ok_or_else(|| format!("jump to {addr:#x} came back without a trap"))?;
        ensure!(
            f.vector == u64::from(vector::GP) || f.vector == u64::from(vector::PF),
            "jump to {addr:#x} raised {f}, expected #GP"
        );
    }
    ok()
}
