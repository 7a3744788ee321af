//! `memtest`: exercises the memory interface a PV guest has — `memory_info`,
//! `mmu_batch` (map, protect, unmap and the refusals the ABI promises),
//! `memory_increase` / `memory_decrease` — and trap delivery for #PF and
//! #BP. One line per check, `memtest: <check>: ok` or `... FAILED (why)`,
//! then `memtest: all checks passed` and power-off, or a count of failures
//! and `Crash`. Every access to a test mapping goes through a fault probe,
//! so a broken mapping is a FAILED line rather than a dead guest.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use oxen_guest_sdk::dom0_abi::{
    DOMID_SELF, MMU_EXEC, MMU_FLAGS_ALL, MMU_MAP, MMU_PROTECT, MMU_UNMAP, MMU_WRITE, MmuOp, PAGE_SIZE,
    TrapFrame, vector,
};
use oxen_guest_sdk::probe::{self, Fault};
use oxen_guest_sdk::traps::{self, Action};
use oxen_guest_sdk::{ShutdownReason, Status, hypercall, mem, println, start_info};

oxen_guest_sdk::entry!(main);

/// A fresh region for test mappings, far from everything the builder maps.
const TEST_VA: u64 = 0x0000_2000_0000_0000;
/// Never mapped: reads here must page-fault.
const UNMAPPED_VA: u64 = TEST_VA + 0x10_0000;
/// The two pages of the refused batch.
const BATCH_VA_A: u64 = TEST_VA + 0x20_0000;
const BATCH_VA_B: u64 = TEST_VA + 0x20_1000;
/// Frames to grow and shrink by.
const GROW_FRAMES: u64 = 16;
/// Patterns written through the test mapping and the physmap.
const PATTERN_A: u64 = 0x0123_4567_89ab_cdef;
const PATTERN_B: u64 = 0xfeed_face_cafe_beef;
/// Page-fault error code bits (Intel SDM Vol.3A 5.7): present, write, user.
const PF_PRESENT: u64 = 1 << 0;
const PF_WRITE: u64 = 1 << 1;
const PF_USER: u64 = 1 << 2;
/// `u64`s in a page.
const WORDS_PER_PAGE: u64 = PAGE_SIZE / 8;

/// A check's verdict: a note for `ok (...)`, or why it failed.
type Verdict = Result<Option<String>, String>;

/// Counts checks and failures and prints each verdict.
#[derive(Default)]
struct Tally {
    run: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, name: &str, verdict: Verdict) {
        self.run += 1;
        match verdict {
            Ok(None) => println!("memtest: {name}: ok"),
            Ok(Some(note)) => println!("memtest: {name}: ok ({note})"),
            Err(why) => {
                self.failed += 1;
                println!("memtest: {name}: FAILED ({why})");
            }
        }
    }
}

fn main() -> ShutdownReason {
    let installed = probe::install(&[vector::PF, vector::GP])
        .and_then(|()| traps::set_handler(vector::BP, on_breakpoint));
    if let Err(e) = installed {
        println!("memtest: cannot install trap handlers: {e}");
        return ShutdownReason::Crash;
    }
    let mut t = Tally::default();
    t.check("memory_info matches start_info", check_memory_info());
    let frame = mem::alloc_frame();
    t.check("map a free frame writable at 0x200000000000", check_map(frame));
    t.check("protect it read-only", check_protect(frame));
    t.check("unmap it", check_unmap(frame));
    t.check(
        "#PF handler catches a read of an unmapped address",
        check_unmapped_read(),
    );
    t.check(
        "map W+X refused",
        check_refused(
            &[map(TEST_VA, frame.unwrap_or(0), MMU_WRITE | MMU_EXEC)],
            &[Status::EINVAL],
        ),
    );
    t.check("map with a reserved flag refused", check_reserved_flags(frame));
    t.check("map with nonzero padding refused", check_padding(frame));
    t.check("map of a gfn >= nr_pages refused", check_gfn_out_of_range());
    t.check(
        "batch touching one page twice refused, nothing changed",
        check_duplicate_batch(),
    );
    match grow_headroom() {
        Ok(h) if h >= GROW_FRAMES => {
            let grown = check_increase();
            let first = grown.as_ref().ok().copied();
            t.check(
                "memory_increase(16)",
                grown.map(|g| Some(format!("first new gfn {g:#x}"))),
            );
            t.check("memory_decrease(16)", check_decrease(first));
        }
        Ok(h) => println!("memtest: memory_increase(16): skipped (only {h} frames below max_pages)"),
        Err(e) => t.check("memory_increase(16)", Err(format!("memory_info: {e}"))),
    }
    t.check(
        "memory_increase past max_pages refused",
        check_increase_past_max(),
    );
    t.check("#BP handler resumes after int3", check_breakpoint());
    if t.failed == 0 {
        println!("memtest: all checks passed");
        ShutdownReason::Poweroff
    } else {
        println!("memtest: {} of {} checks FAILED", t.failed, t.run);
        ShutdownReason::Crash
    }
}

// ---- helpers -----------------------------------------------------------

fn map(va: u64, gfn: u64, flags: u32) -> MmuOp {
    MmuOp {
        op: MMU_MAP,
        flags,
        va,
        gfn,
        frame_domid: DOMID_SELF,
        pad: [0; 6],
    }
}

fn protect(va: u64, flags: u32) -> MmuOp {
    MmuOp {
        op: MMU_PROTECT,
        flags,
        va,
        ..MmuOp::default()
    }
}

fn unmap(va: u64) -> MmuOp {
    MmuOp {
        op: MMU_UNMAP,
        va,
        ..MmuOp::default()
    }
}

fn batch(ops: &[MmuOp]) -> Result<(), String> {
    match hypercall::mmu_batch(ops, DOMID_SELF) {
        Ok(n) if n == ops.len() => Ok(()),
        Ok(n) => Err(format!("mmu_batch applied {n} of {} ops", ops.len())),
        Err(e) => Err(format!("mmu_batch: {e}")),
    }
}

/// Read through a probe: test addresses are ordinary RAM or unmapped.
fn read(va: u64) -> Result<u64, Fault> {
    // SAFETY: every address memtest reads is its own RAM (a test mapping or
    // the physmap) or unmapped; reading RAM has no side effect.
    unsafe { probe::read_u64(va) }
}

/// Write through a probe.
fn write(va: u64, value: u64) -> Result<(), Fault> {
    // SAFETY: memtest writes only to frames it took for testing (from the
    // pool or memory_increase), through a test mapping or the physmap;
    // nothing else uses them.
    unsafe { probe::write_u64(va, value) }
}

fn read_ok(va: u64, what: &str) -> Result<u64, String> {
    read(va).map_err(|f| format!("read through {what} faulted: {f}"))
}

fn write_ok(va: u64, value: u64, what: &str) -> Result<(), String> {
    write(va, value).map_err(|f| format!("write through {what} faulted: {f}"))
}

fn expect_eq(got: u64, want: u64, what: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: read {got:#x}, expected {want:#x}"))
    }
}

/// A read of `va` must page-fault as not-present, at `va`, from user mode.
fn expect_not_present(va: u64) -> Result<Fault, String> {
    match read(va) {
        Ok(v) => Err(format!("{va:#x} is still readable (read {v:#x})")),
        Err(f) if f.vector != u64::from(vector::PF) => {
            Err(format!("read of {va:#x} raised {f}, expected #PF"))
        }
        Err(f) if f.fault_addr != va => Err(format!(
            "#PF reports address {:#x}, expected {va:#x}",
            f.fault_addr
        )),
        Err(f) if f.error_code & (PF_PRESENT | PF_USER) != PF_USER => Err(format!(
            "#PF error code {:#x}, expected not-present from user mode",
            f.error_code
        )),
        Err(f) => Ok(f),
    }
}

fn need_frame(frame: Option<u64>) -> Result<u64, String> {
    frame.ok_or_else(|| "the SDK frame pool is empty".to_string())
}

// ---- checks --------------------------------------------------------------

fn check_memory_info() -> Verdict {
    let si = start_info();
    let mi = hypercall::memory_info().map_err(|e| format!("memory_info: {e}"))?;
    if (mi.tot_pages, mi.max_pages, mi.physmap_va) != (si.nr_pages, si.max_pages, si.physmap_va) {
        return Err(format!(
            "memory_info says {} pages, max {}, physmap {:#x}; start_info says {}, {}, {:#x}",
            mi.tot_pages, mi.max_pages, mi.physmap_va, si.nr_pages, si.max_pages, si.physmap_va
        ));
    }
    Ok(Some(format!(
        "{} pages, max {}, {} page-table pages",
        mi.tot_pages, mi.max_pages, mi.pt_pages
    )))
}

fn check_map(frame: Option<u64>) -> Verdict {
    let gfn = need_frame(frame)?;
    let phys = mem::frame_va(gfn);
    batch(&[map(TEST_VA, gfn, MMU_WRITE)])?;
    write_ok(TEST_VA, PATTERN_A, "the new mapping")?;
    expect_eq(read_ok(TEST_VA, "the new mapping")?, PATTERN_A, "the new mapping")?;
    expect_eq(
        read_ok(phys, "the physmap")?,
        PATTERN_A,
        "the physmap after a write through the mapping",
    )?;
    write_ok(phys + 8, PATTERN_B, "the physmap")?;
    expect_eq(
        read_ok(TEST_VA + 8, "the new mapping")?,
        PATTERN_B,
        "the mapping after a write through the physmap",
    )?;
    Ok(Some(format!("gfn {gfn:#x}")))
}

fn check_protect(frame: Option<u64>) -> Verdict {
    need_frame(frame)?;
    batch(&[protect(TEST_VA, 0)])?;
    expect_eq(
        read_ok(TEST_VA, "the read-only mapping")?,
        PATTERN_A,
        "the read-only mapping",
    )?;
    match write(TEST_VA, PATTERN_B) {
        Ok(()) => Err("a write through the read-only mapping succeeded".to_string()),
        Err(f) if f.vector != u64::from(vector::PF) => Err(format!("the write raised {f}, expected #PF")),
        Err(f)
            if f.error_code & (PF_PRESENT | PF_WRITE) != PF_PRESENT | PF_WRITE || f.fault_addr != TEST_VA =>
        {
            Err(format!(
                "the write raised {f}, expected a protection #PF on a write at {TEST_VA:#x}"
            ))
        }
        Err(f) => {
            expect_eq(
                read_ok(TEST_VA, "the read-only mapping")?,
                PATTERN_A,
                "the page after the refused write",
            )?;
            Ok(Some(format!("write refused: {f}")))
        }
    }
}

fn check_unmap(frame: Option<u64>) -> Verdict {
    let gfn = need_frame(frame)?;
    batch(&[unmap(TEST_VA)])?;
    expect_not_present(TEST_VA)?;
    expect_eq(
        read_ok(mem::frame_va(gfn), "the physmap")?,
        PATTERN_A,
        "the frame after the unmap",
    )?;
    Ok(None)
}

fn check_unmapped_read() -> Verdict {
    let f = expect_not_present(UNMAPPED_VA)?;
    Ok(Some(format!("{f} at rip {:#x}", f.rip)))
}

/// The batch must fail with one of `want`, and change nothing at its VAs.
fn check_refused(ops: &[MmuOp], want: &[Status]) -> Verdict {
    match hypercall::mmu_batch(ops, DOMID_SELF) {
        Ok(n) => {
            // Undo what was wrongly applied so later checks start clean.
            for op in ops {
                let _ = hypercall::mmu_batch(&[unmap(op.va)], DOMID_SELF);
            }
            Err(format!("accepted ({n} ops applied)"))
        }
        Err(e) if !want.contains(&e) => Err(format!("refused with {e}, expected {}", names(want))),
        Err(e) => {
            for op in ops {
                expect_not_present(op.va).map_err(|why| format!("refused with {}, but {why}", e.name()))?;
            }
            Ok(Some(e.name().to_string()))
        }
    }
}

fn names(statuses: &[Status]) -> String {
    statuses
        .iter()
        .map(|s| s.name())
        .collect::<alloc::vec::Vec<_>>()
        .join(" or ")
}

fn check_reserved_flags(frame: Option<u64>) -> Verdict {
    let gfn = need_frame(frame)?;
    for bit in [!MMU_FLAGS_ALL & (MMU_FLAGS_ALL + 1), 1 << 31] {
        check_refused(&[map(TEST_VA, gfn, bit)], &[Status::EINVAL])
            .map_err(|e| format!("flags {bit:#x}: {e}"))?;
    }
    Ok(Some("EINVAL".to_string()))
}

fn check_padding(frame: Option<u64>) -> Verdict {
    let gfn = need_frame(frame)?;
    let mut op = map(TEST_VA, gfn, 0);
    op.pad[0] = 1;
    check_refused(&[op], &[Status::EINVAL])
}

fn check_gfn_out_of_range() -> Verdict {
    let tot = hypercall::memory_info()
        .map_err(|e| format!("memory_info: {e}"))?
        .tot_pages;
    let mut seen = String::new();
    for gfn in [tot, u64::MAX] {
        let v = check_refused(&[map(TEST_VA, gfn, 0)], &[Status::EINVAL, Status::EACCES])
            .map_err(|e| format!("gfn {gfn:#x}: {e}"))?;
        if let Some(name) = v {
            if !seen.is_empty() {
                seen.push_str(", ");
            }
            seen.push_str(&format!("gfn {gfn:#x}: {name}"));
        }
    }
    Ok(Some(seen))
}

fn check_duplicate_batch() -> Verdict {
    let a = need_frame(mem::alloc_frame())?;
    let b = need_frame(mem::alloc_frame())?;
    let ops = [
        map(BATCH_VA_A, a, MMU_WRITE),
        map(BATCH_VA_B, b, MMU_WRITE),
        protect(BATCH_VA_B, 0),
    ];
    let refused = hypercall::mmu_batch(&ops, DOMID_SELF);
    let left_a = read(BATCH_VA_A).is_ok();
    let left_b = read(BATCH_VA_B).is_ok();
    if left_a || left_b {
        let _ = hypercall::mmu_batch(&[unmap(BATCH_VA_A)], DOMID_SELF);
        let _ = hypercall::mmu_batch(&[unmap(BATCH_VA_B)], DOMID_SELF);
    }
    match refused {
        Ok(n) => Err(format!("accepted ({n} ops applied)")),
        Err(e) if left_a || left_b => Err(format!(
            "refused with {}, but the batch left mappings behind",
            e.name()
        )),
        Err(e) => {
            expect_not_present(BATCH_VA_A)?;
            expect_not_present(BATCH_VA_B)?;
            Ok(Some(e.name().to_string()))
        }
    }
}

/// Frames the domain may still grow by.
fn grow_headroom() -> Result<u64, Status> {
    hypercall::memory_info().map(|mi| mi.max_pages.saturating_sub(mi.tot_pages))
}

/// Grow by `GROW_FRAMES`; check the count and that the new frames are
/// zeroed and usable through the physmap. The first new gfn.
fn check_increase() -> Result<u64, String> {
    let before = hypercall::memory_info()
        .map_err(|e| format!("memory_info: {e}"))?
        .tot_pages;
    let first = hypercall::memory_increase(GROW_FRAMES).map_err(|e| format!("memory_increase: {e}"))?;
    if first != before {
        return Err(format!(
            "first new gfn {first:#x}, expected {before:#x} (the old tot_pages)"
        ));
    }
    let after = hypercall::memory_info()
        .map_err(|e| format!("memory_info: {e}"))?
        .tot_pages;
    expect_eq(after, before + GROW_FRAMES, "tot_pages after memory_increase")?;
    for gfn in first..first + GROW_FRAMES {
        let va = mem::frame_va(gfn);
        for word in 0..WORDS_PER_PAGE {
            let v = read_ok(va + word * 8, "the physmap")?;
            if v != 0 {
                return Err(format!("new frame {gfn:#x} is not zeroed: word {word} is {v:#x}"));
            }
        }
        write_ok(va, PATTERN_A ^ gfn, "the physmap")?;
        write_ok(va + PAGE_SIZE - 8, PATTERN_B ^ gfn, "the physmap")?;
        expect_eq(read_ok(va, "the physmap")?, PATTERN_A ^ gfn, "a new frame")?;
        expect_eq(
            read_ok(va + PAGE_SIZE - 8, "the physmap")?,
            PATTERN_B ^ gfn,
            "a new frame",
        )?;
    }
    Ok(first)
}

fn check_decrease(first_new: Option<u64>) -> Verdict {
    let first = first_new.ok_or_else(|| "memory_increase failed, nothing to give back".to_string())?;
    let tot = hypercall::memory_decrease(GROW_FRAMES).map_err(|e| format!("memory_decrease: {e}"))?;
    expect_eq(tot, first, "tot_pages returned by memory_decrease")?;
    let now = hypercall::memory_info()
        .map_err(|e| format!("memory_info: {e}"))?
        .tot_pages;
    expect_eq(now, first, "tot_pages after memory_decrease")?;
    for gfn in [first, first + GROW_FRAMES - 1] {
        expect_not_present(mem::frame_va(gfn))
            .map_err(|why| format!("given-back frame {gfn:#x} is still in the physmap: {why}"))?;
    }
    Ok(Some("given-back frames left the physmap".to_string()))
}

fn check_increase_past_max() -> Verdict {
    let mi = hypercall::memory_info().map_err(|e| format!("memory_info: {e}"))?;
    let count = mi.max_pages.saturating_sub(mi.tot_pages) + 1;
    let result = hypercall::memory_increase(count);
    let now = hypercall::memory_info()
        .map_err(|e| format!("memory_info: {e}"))?
        .tot_pages;
    match result {
        Ok(first) => Err(format!(
            "memory_increase({count}) succeeded (first gfn {first:#x}), max_pages {}",
            mi.max_pages
        )),
        Err(Status::ENOMEM) if now == mi.tot_pages => Ok(Some(format!("memory_increase({count}): ENOMEM"))),
        Err(Status::ENOMEM) => Err(format!(
            "ENOMEM, but tot_pages changed from {} to {now}",
            mi.tot_pages
        )),
        Err(e) => Err(format!("refused with {e}, expected ENOMEM")),
    }
}

static BP_HITS: AtomicU64 = AtomicU64::new(0);
static BP_RIP: AtomicU64 = AtomicU64::new(0);

/// #BP is a trap: the frame's rip is already past the `int3`.
fn on_breakpoint(frame: &mut TrapFrame) -> Action {
    BP_HITS.fetch_add(1, SeqCst);
    BP_RIP.store(frame.iret.rip, SeqCst);
    Action::Resume
}

fn check_breakpoint() -> Verdict {
    BP_HITS.store(0, SeqCst);
    let after: u64;
    probe::begin();
    // SAFETY: `int3` raises #BP, whose handler resumes right after it; were
    // #GP delivered instead (a DPL-0 IDT gate), the probe handler resumes at
    // the same label. No register but the declared outputs changes.
    unsafe {
        core::arch::asm!(
            "lea {t}, [rip + 2f]",
            "mov qword ptr [{p}], {t}",
            "int3",
            "2:",
            "lea {after}, [rip + 2b]",
            p = in(reg) probe::landing_pad(),
            t = out(reg) _,
            after = out(reg) after,
        );
    }
    if let Some(f) = probe::end() {
        return Err(format!("int3 raised {f} instead of #BP"));
    }
    let hits = BP_HITS.load(SeqCst);
    let rip = BP_RIP.load(SeqCst);
    if hits != 1 {
        return Err(format!("the #BP handler ran {hits} times"));
    }
    expect_eq(rip, after, "the #BP frame's rip")?;
    Ok(Some(format!("resumed at {rip:#x}")))
}
