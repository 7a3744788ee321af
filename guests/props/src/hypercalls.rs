//! The hypercall boundary: every pointer a guest passes is checked (upper
//! half, non-canonical, straddling the end of the lower half, unmapped, and
//! read-only where the call writes: all `EFAULT`, and nothing written);
//! unknown numbers are `ENOSYS` whatever their upper bits; reserved bits
//! and bad enumerations are `EINVAL`; counts are bounded (`E2BIG`).

use alloc::format;
use alloc::vec::Vec;
use oxen_guest_sdk::dom0_abi::{
    CONSOLE_IO_MAX, DOMID_SELF, GUEST_SHARED_INFO_VA, GUEST_START_INFO_VA, GUEST_VA_LIMIT, Hypercall,
    MMU_BATCH_MAX, MMU_WRITE, MmuOp, PAGE_SIZE, POLL_PORTS_MAX, TRAP_TABLE_MAX, TrapEntry, vector,
};
use oxen_guest_sdk::{Status, hypercall};

use crate::framework::{Check, Pass, PropResult, ok, raw, refused};
use crate::lowlevel::{
    FIRST_NON_CANONICAL, HV_DIRECT_MAP, HV_IMAGE, LAST_NON_CANONICAL, NON_CANONICAL, STACK_GUARD, UNMAPPED,
    install_probes,
};
use crate::mmu;

/// A byte that marks memory a refused call must not have written.
const CANARY: u8 = 0xa5;

/// Whether a call reads or writes through its pointer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// The hypervisor reads the buffer.
    In,
    /// The hypervisor writes the buffer.
    Out,
}

/// One hypercall with a pointer argument.
struct PtrCall {
    name: &'static str,
    nr: Hypercall,
    args: [u64; 6],
    dir: Dir,
}

/// Every hypercall a domU may make that takes a guest pointer, with the
/// pointer at `addr` (objects of at least 16 bytes, so that a pointer 8
/// bytes below the end of the lower half straddles it).
fn pointer_calls(addr: u64) -> [PtrCall; 6] {
    let self_id = u64::from(DOMID_SELF);
    [
        PtrCall {
            name: "console_write",
            nr: Hypercall::ConsoleWrite,
            args: [addr, 16, 0, 0, 0, 0],
            dir: Dir::In,
        },
        PtrCall {
            name: "memory_info",
            nr: Hypercall::MemoryInfo,
            args: [addr, 0, 0, 0, 0, 0],
            dir: Dir::Out,
        },
        PtrCall {
            name: "evtchn_status",
            nr: Hypercall::EvtchnStatus,
            args: [1, addr, 0, 0, 0, 0],
            dir: Dir::Out,
        },
        PtrCall {
            name: "sched_poll",
            nr: Hypercall::SchedPoll,
            args: [addr, 4, 1_000_000, 0, 0, 0],
            dir: Dir::In,
        },
        PtrCall {
            name: "mmu_batch",
            nr: Hypercall::MmuBatch,
            args: [addr, 1, self_id, 0, 0, 0],
            dir: Dir::In,
        },
        PtrCall {
            name: "vcpu_set_trap_table",
            nr: Hypercall::VcpuSetTrapTable,
            args: [addr, 1, 0, 0, 0, 0],
            dir: Dir::In,
        },
    ]
}

/// Every pointer call (outputs only, if `outputs_only`) with its pointer
/// at each of `addrs` must fail with `EFAULT`.
fn all_efault(addrs: &[u64], outputs_only: bool) -> Check {
    for &addr in addrs {
        for c in pointer_calls(addr) {
            if outputs_only && c.dir == Dir::In {
                continue;
            }
            // SAFETY: the pointer is one the hypervisor must refuse; were it
            // accepted, reads have no effect on us and writes land on memory
            // the property then checks (read-only pages, unmapped ones).
            let r = unsafe { raw(c.nr as u64, c.args) };
            refused(&format!("{} with pointer {addr:#x}", c.name), r, Status::EFAULT)?;
        }
    }
    // A refused trap table changes nothing, but be sure the probes stand.
    install_probes()
}

/// Pointers into the hypervisor's half: `EFAULT`.
pub fn efault_upper_half() -> PropResult {
    install_probes()?;
    all_efault(&[HV_DIRECT_MAP, HV_IMAGE, 0xffff_ffff_ffff_f000], false)?;
    ok()
}

/// Non-canonical pointers: `EFAULT`.
pub fn efault_noncanonical() -> PropResult {
    install_probes()?;
    all_efault(&[NON_CANONICAL, FIRST_NON_CANONICAL, LAST_NON_CANONICAL], false)?;
    ok()
}

/// Objects that start in the last (mapped) page of the lower half and end
/// above it, or wrap around 2^64: `EFAULT`, and nothing written to the part
/// that is mapped.
pub fn efault_straddle() -> PropResult {
    install_probes()?;
    let top_page = GUEST_VA_LIMIT - PAGE_SIZE;
    let gfn = mmu::pool_frame()?;
    mmu::map(top_page, gfn, MMU_WRITE)?;
    let tail = GUEST_VA_LIMIT - 8;
    // SAFETY: the page at `top_page` is now our own frame, mapped
    // read-write; nothing else uses it.
    unsafe { core::ptr::write_bytes(top_page as *mut u8, CANARY, 4096) };
    let result = all_efault(&[tail, u64::MAX - 7], false).and_then(|()| {
        // SAFETY: as above; volatile because only the hypervisor could
        // have changed it.
        let bytes: [u8; 8] = unsafe { core::ptr::read_volatile(tail as *const [u8; 8]) };
        ensure!(
            bytes == [CANARY; 8],
            "a refused call wrote the mapped part of a straddling object: {bytes:02x?}"
        );
        Ok(())
    });
    mmu::unmap(top_page)?;
    result?;
    ok()
}

/// Unmapped pointers (page 0, a hole, the stack guard page, a buffer that
/// runs off the shared-info page into unmapped memory): `EFAULT`.
pub fn efault_unmapped() -> PropResult {
    install_probes()?;
    all_efault(&[0, 8, UNMAPPED, STACK_GUARD + 0x800], false)?;
    // Starts mapped, ends unmapped.
    // SAFETY: the hypervisor only reads, and must refuse the range.
    let r = unsafe {
        raw(
            Hypercall::ConsoleWrite as u64,
            [GUEST_SHARED_INFO_VA + PAGE_SIZE - 8, 64, 0, 0, 0, 0],
        )
    };
    refused(
        "console_write running off the shared-info page",
        r,
        Status::EFAULT,
    )?;
    ok()
}

/// Output pointers to read-only memory (the start_info page, our own
/// rodata and text): `EFAULT`, and the memory unchanged.
pub fn efault_readonly() -> PropResult {
    install_probes()?;
    static RODATA: [u64; 8] = [0x5245_4144_4f4e_4c59; 8];
    let text = efault_readonly as fn() -> PropResult as usize as u64;
    let targets = [GUEST_START_INFO_VA, RODATA.as_ptr() as u64, text];
    let snapshot = |addr: u64| -> [u64; 8] {
        // SAFETY: each target is mapped readable (the builder's start_info
        // page, our rodata and text); volatile, because only a hypervisor
        // bug could change them.
        unsafe { core::ptr::read_volatile(addr as *const [u64; 8]) }
    };
    let before: Vec<[u64; 8]> = targets.iter().map(|&a| snapshot(a)).collect();
    all_efault(&targets, true)?;
    for (addr, old) in targets.iter().zip(&before) {
        ensure!(
            snapshot(*addr) == *old,
            "read-only memory at {addr:#x} changed under a refused call"
        );
    }
    ok()
}

/// Every number that names no hypercall is `ENOSYS`, whatever its upper
/// bits (no truncation to a known call), and touches nothing.
pub fn enosys() -> PropResult {
    let mut buf = [CANARY; 256];
    let p = buf.as_mut_ptr() as u64;
    let known = |nr: u64| Hypercall::ALL.iter().any(|h| *h as u64 == nr);
    let mut numbers: Vec<u64> = (0..=300).filter(|&n| !known(n)).collect();
    numbers.extend([
        15,
        24,
        47,
        66,
        1 << 32,
        (1 << 32) | 1,
        (1 << 32) | u64::from(Hypercall::SchedShutdown as u32),
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ]);
    for nr in numbers {
        // SAFETY: no such hypercall; every argument points at `buf`, which
        // the hypervisor must not touch (checked below).
        let r = unsafe { raw(nr, [p, p, p, p, p, p]) };
        refused(&format!("hypercall {nr:#x}"), r, Status::ENOSYS)?;
    }
    let buf = core::hint::black_box(buf);
    ensure!(
        buf.iter().all(|&b| b == CANARY),
        "an unknown hypercall wrote to its arguments"
    );
    ok()
}

/// `mmu_batch` operations with reserved flag bits, nonzero padding, an
/// unknown op, or fields an op does not take: `EINVAL`, nothing mapped.
pub fn einval_mmu() -> PropResult {
    install_probes()?;
    let gfn = mmu::pool_frame()?;
    let va = crate::lowlevel::SCRATCH_VA;
    let good = mmu::map_op(va, gfn, 0);
    let mut bad: Vec<(alloc::string::String, MmuOp)> = Vec::new();
    for bit in 2..32 {
        bad.push((
            format!("flags bit {bit}"),
            MmuOp {
                flags: 1 << bit,
                ..good
            },
        ));
    }
    for i in 0..6 {
        let mut op = good;
        op.pad[i] = 1;
        bad.push((format!("pad[{i}] = 1"), op));
    }
    for code in [0, 5, 6, 0x100, u32::MAX] {
        bad.push((format!("op {code:#x}"), MmuOp { op: code, ..good }));
    }
    bad.push((
        "unmap with flags".into(),
        MmuOp {
            flags: MMU_WRITE,
            ..mmu::unmap_op(va)
        },
    ));
    bad.push((
        "unmap with a gfn".into(),
        MmuOp {
            gfn: 1,
            ..mmu::unmap_op(va)
        },
    ));
    bad.push((
        "protect with a gfn".into(),
        MmuOp {
            gfn: 1,
            ..mmu::protect_op(va, 0)
        },
    ));
    for (what, op) in bad {
        mmu::refused_untouched(&what, &[op], &[Status::EINVAL], &[va])?;
    }
    ok()
}

/// `vcpu_set_trap_table` entries with reserved flags, nonzero padding, a
/// vector the hypervisor keeps, a duplicate vector, or a handler outside
/// the lower half: `EINVAL`; too many: `E2BIG`; and the table registered
/// before stays in force.
pub fn einval_trap_table() -> PropResult {
    install_probes()?;
    let handler = einval_trap_table as fn() -> PropResult as usize as u64;
    let entry = |vector: u8| TrapEntry {
        vector,
        handler,
        ..TrapEntry::default()
    };
    let mut bad: Vec<(alloc::string::String, Vec<TrapEntry>)> = Vec::new();
    for flags in [1u8, 0x80, 0xff] {
        bad.push((
            format!("flags {flags:#x}"),
            alloc::vec![TrapEntry {
                flags,
                ..entry(vector::UD)
            }],
        ));
    }
    for i in 0..6 {
        let mut e = entry(vector::UD);
        e.pad[i] = 1;
        bad.push((format!("pad[{i}] = 1"), alloc::vec![e]));
    }
    for v in [2u8, 8, 9, 10, 11, 15, 18, 20, 21, 28, 29, 30, 31, 32, 0x80, 0xff] {
        bad.push((format!("vector {v}"), alloc::vec![entry(v)]));
    }
    bad.push((
        "vector 6 twice".into(),
        alloc::vec![entry(vector::UD), entry(vector::UD)],
    ));
    for h in [HV_IMAGE, NON_CANONICAL, GUEST_VA_LIMIT, u64::MAX] {
        bad.push((
            format!("handler {h:#x}"),
            alloc::vec![TrapEntry {
                handler: h,
                ..entry(vector::UD)
            }],
        ));
    }
    for (what, table) in &bad {
        let r = hypercall::set_trap_table(table);
        refused(&format!("trap table with {what}"), r, Status::EINVAL)?;
    }
    const TOO_MANY: usize = 33;
    const _: () = assert!(TOO_MANY as u64 == TRAP_TABLE_MAX + 1);
    let many = [entry(vector::UD); TOO_MANY];
    refused(
        "a trap table of 33 entries",
        hypercall::set_trap_table(&many),
        Status::E2BIG,
    )?;
    // The probe handlers registered at the start must still be there.
    // SAFETY: `ud2` raises #UD, whose probe handler resumes after it.
    let probed = unsafe { probe_at!(0u64; [] "ud2") };
    probed
        .reflected("ud2 after the refused trap tables", &[vector::UD])
        .map_err(|e| format!("a refused trap table changed the one in force: {e}"))?;
    ok()
}

/// `vcpu_set_callbacks` with any reserved flag bit, or a handler outside
/// the lower half: `EINVAL`.
pub fn einval_callbacks() -> PropResult {
    let handler = einval_callbacks as fn() -> PropResult as usize as u64;
    for bit in 0..64 {
        // SAFETY: no pointer is dereferenced by the call; were it accepted,
        // no event is pending, and the callback is cleared below.
        let r = unsafe {
            raw(
                Hypercall::VcpuSetCallbacks as u64,
                [handler, 1 << bit, 0, 0, 0, 0],
            )
        };
        refused(&format!("set_callbacks with flags bit {bit}"), r, Status::EINVAL)?;
    }
    for h in [HV_IMAGE, HV_DIRECT_MAP, NON_CANONICAL, GUEST_VA_LIMIT, u64::MAX] {
        let r = hypercall::set_callbacks(h);
        refused(&format!("set_callbacks to {h:#x}"), r, Status::EINVAL)?;
    }
    hypercall::set_callbacks(0).map_err(|e| format!("clearing the callback: {e}"))?;
    ok()
}

/// `sched_shutdown` with a reason the ABI does not define (including ones
/// whose low 32 bits are a valid reason): `EINVAL`, and the domain lives on.
pub fn einval_shutdown() -> PropResult {
    for reason in [3, 4, 99, 1 << 32, (1 << 32) | 2, 1 << 63, u64::MAX] {
        // SAFETY: no pointer argument; a valid reason would stop this
        // domain, which the missing verdict would show.
        let r = unsafe { raw(Hypercall::SchedShutdown as u64, [reason, 0, 0, 0, 0, 0]) };
        refused(&format!("sched_shutdown({reason:#x})"), r, Status::EINVAL)?;
    }
    ok()
}

/// Counts above the ABI's limits are refused before anything is read:
/// `E2BIG` (console, mmu batch, trap table) or `EINVAL` (poll).
pub fn counts_bounded() -> PropResult {
    install_probes()?;
    let buf = [0u8; 64];
    let b = buf.as_ptr() as u64;
    let self_id = u64::from(DOMID_SELF);
    let cases: [(&str, Hypercall, [u64; 6], Status); 9] = [
        (
            "console_write of 4097 bytes",
            Hypercall::ConsoleWrite,
            [b, CONSOLE_IO_MAX + 1, 0, 0, 0, 0],
            Status::E2BIG,
        ),
        (
            "console_write of 2^64-1 bytes",
            Hypercall::ConsoleWrite,
            [b, u64::MAX, 0, 0, 0, 0],
            Status::E2BIG,
        ),
        (
            "mmu_batch of 513 ops",
            Hypercall::MmuBatch,
            [b, MMU_BATCH_MAX + 1, self_id, 0, 0, 0],
            Status::E2BIG,
        ),
        (
            "mmu_batch of 2^64-1 ops",
            Hypercall::MmuBatch,
            [b, u64::MAX, self_id, 0, 0, 0],
            Status::E2BIG,
        ),
        (
            "trap table of 2^64-1 entries",
            Hypercall::VcpuSetTrapTable,
            [b, u64::MAX, 0, 0, 0, 0],
            Status::E2BIG,
        ),
        (
            "sched_poll of 129 ports",
            Hypercall::SchedPoll,
            [b, POLL_PORTS_MAX + 1, 1, 0, 0, 0],
            Status::EINVAL,
        ),
        (
            "sched_poll of 2^64-1 ports",
            Hypercall::SchedPoll,
            [b, u64::MAX, 1, 0, 0, 0],
            Status::EINVAL,
        ),
        (
            "sched_poll of no ports",
            Hypercall::SchedPoll,
            [b, 0, 1, 0, 0, 0],
            Status::EINVAL,
        ),
        (
            "memory_increase of 0 frames",
            Hypercall::MemoryIncrease,
            [0; 6],
            Status::EINVAL,
        ),
    ];
    for (what, nr, args, want) in cases {
        // SAFETY: every pointer is `buf`, which the hypervisor may only read.
        let r = unsafe { raw(nr as u64, args) };
        refused(what, r, want)?;
    }
    install_probes()?;
    Ok(Pass::Success)
}
