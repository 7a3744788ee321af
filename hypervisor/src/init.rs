//! The boot sequence, in order: one place to read how the hypervisor comes
//! up. `kernel_entry` runs on the boot stub's page tables and stack; it reads
//! the boot information, starts the console, the log and the frame allocator,
//! and builds the final page tables. `kernel_main` continues on those tables
//! and a guarded stack: CPU tables, heap, time, ACPI, the local APIC, the
//! boot bundle and the self-checks. Then it builds dom0 from the bundle and
//! enters the run loop (`sched`), which it never leaves.
//!
//! This module holds `unsafe`: `kernel_entry` is exported to the boot stub,
//! it reads the loader's structures before any allocator exists, and the
//! heap is handed its memory here.
#![allow(unsafe_code)]

use crate::arch::{self, cpu::Features, gdt, idt};
use crate::boot::{self, BootError, BootInfo, MULTIBOOT2_BOOTLOADER_MAGIC};
use crate::cmdline::{self, Options, TestAction};
use crate::mm::{self, layout, setup};
use crate::{console, fatal, logger, platform, println, time};
use alloc::vec::Vec;
use log::{LevelFilter, error, info, warn};
use spin::Once;

/// The hypervisor's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

static BOOT: Once<BootInfo> = Once::new();
static OPTIONS: Once<Options> = Once::new();
static FEATURES: Once<Features> = Once::new();

/// Pages of each IST stack.
const IST_STACK_PAGES: u64 = 4;
/// Pages of the ring-0 stack used for interrupts from ring 3.
const RSP0_STACK_PAGES: u64 = 16;

fn read_boot_info(magic: u32, info: u32) -> Result<BootInfo, BootError> {
    let info = u64::from(info);
    let mut read = |pa: u64, buf: &mut [u8]| {
        let end = pa.checked_add(buf.len() as u64);
        match end {
            Some(end) if end <= layout::EARLY_DIRECT_MAP_LIMIT => {
                // SAFETY: the range lies inside the boot stub's 4 GiB direct
                // map, and no frame allocator exists yet to reuse it.
                unsafe { arch::phys::copy_from_phys(pa, buf) };
                Ok(())
            }
            _ => Err(BootError::Unreachable {
                what: "PVH start info",
                addr: pa,
            }),
        }
    };
    if magic == MULTIBOOT2_BOOTLOADER_MAGIC {
        boot::multiboot2::parse(info)
    } else if boot::pvh::is_pvh(&mut read, info) {
        boot::pvh::parse(read, info)
    } else {
        Err(BootError::UnknownProtocol {
            magic,
            info: info.try_into().unwrap_or(u32::MAX),
        })
    }
}

/// First Rust code, called by the boot stub with EAX and EBX of the entry.
#[unsafe(no_mangle)]
pub extern "C" fn kernel_entry(magic: u32, info: u32) -> ! {
    time::mark_boot();
    console::init();
    logger::init(LevelFilter::Info);
    let boot = match read_boot_info(magic, info) {
        Ok(boot) => boot,
        Err(e) => {
            println!("Oxen {VERSION} hypervisor (boot protocol: unknown)");
            error!(target: "boot", "cannot boot: {e}");
            fatal::stop();
        }
    };
    println!(
        "Oxen {VERSION} hypervisor (boot protocol: {})",
        boot.protocol.name()
    );
    let boot = BOOT.call_once(|| boot);

    info!(target: "boot", "command line: '{}'", boot.cmdline());
    if boot.cmdline_truncated {
        warn!(target: "cmdline", "command line longer than {} bytes; the rest is ignored", boot::CMDLINE_MAX);
    }
    let options = OPTIONS.call_once(|| cmdline::parse(boot.cmdline(), |w| warn!(target: "cmdline", "{w}")));
    logger::init(options.loglvl);

    let features = FEATURES.call_once(Features::detect);
    let mut model = [0u8; 48];
    info!(target: "cpu", "{}", arch::cpu::model_name(&mut model));
    info!(target: "cpu", "features {features}");
    arch::cpu::enable_protections(features);
    info!(
        target: "cpu",
        "protections on: NX {}, SMEP {}, SMAP {}, UMIP {}, WP yes",
        yes_no(features.nx),
        yes_no(features.smep),
        yes_no(features.smap),
        yes_no(features.umip)
    );

    info!(target: "mm", "memory map ({} regions):", boot.memory_map.regions().len());
    for region in boot.memory_map.regions() {
        info!(target: "mm", "  {region}");
    }
    if boot.modules_dropped > 0 {
        warn!(target: "boot", "{} boot modules beyond the first {} ignored", boot.modules_dropped, boot::MAX_MODULES);
    }
    let report = setup::init_frames(&boot.memory_map, boot.modules()).unwrap_or_else(|e| {
        error!(target: "mm", "cannot start the frame allocator: {e}");
        fatal::stop()
    });
    info!(
        target: "mm",
        "{} MiB usable; frames: {} total ({} MiB), {} free; bitmap at {}",
        report.usable_bytes >> 20,
        report.total_frames,
        (report.total_frames * layout::PAGE_SIZE) >> 20,
        report.free_frames,
        report.bitmap
    );
    let (root, stack_top) = setup::build_kernel_tables(&boot.memory_map, features).unwrap_or_else(|e| {
        error!(target: "mm", "cannot build the hypervisor page tables: {e}");
        fatal::stop()
    });
    setup::switch_to_kernel_tables(root, stack_top, kernel_main)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn must<T, E: core::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| {
        error!(target: "boot", "{what}: {e}");
        fatal::stop()
    })
}

/// The boot sequence on the hypervisor's own page tables and stack.
extern "C" fn kernel_main() -> ! {
    let boot = BOOT.get().expect("kernel_entry stored the boot information");
    let options = OPTIONS.get().expect("kernel_entry parsed the command line");
    let features = FEATURES.get().expect("kernel_entry detected the features");
    info!(target: "mm", "page tables: direct map at {:#x}, image W^X at {:#x}, identity map dropped", layout::DIRECT_MAP_BASE, layout::KERNEL_VMA);

    // CPU tables.
    let ist = [
        must("IST stack", setup::alloc_stack(IST_STACK_PAGES)),
        must("IST stack", setup::alloc_stack(IST_STACK_PAGES)),
        must("IST stack", setup::alloc_stack(IST_STACK_PAGES)),
    ];
    let rsp0 = must("ring-0 stack", setup::alloc_stack(RSP0_STACK_PAGES));
    let selectors = gdt::init(ist, rsp0);
    idt::init(selectors.kernel_code.0);
    info!(target: "cpu", "GDT, TSS and IDT loaded; NMI, #DF and #MC on IST stacks");

    init_heap();
    let (tsc_hz, source) = time::init();
    let tsc_hz = tsc_hz.max(1);
    info!(
        target: "time",
        "TSC {}.{:03} MHz ({source}); invariant TSC: {}",
        tsc_hz / 1_000_000,
        (tsc_hz / 1_000) % 1_000,
        yes_no(features.invariant_tsc)
    );

    let platform = platform::discover(boot.acpi, options.acpi);
    log_platform(&platform);
    match arch::apic::LocalApic::init(features.x2apic, |pa| setup::map_mmio(pa, layout::PAGE_SIZE).ok()) {
        Some((_, apic)) => info!(
            target: "apic",
            "local APIC id {} version {:#x} in {} mode (registers at {:#x})",
            apic.id,
            apic.version & 0xff,
            if matches!(apic.mode, arch::apic::Mode::X2Apic) { "x2APIC" } else { "xAPIC" },
            apic.phys_base
        ),
        None => {
            warn!(target: "apic", "the local APIC registers could not be mapped; timer interrupts will be unavailable")
        }
    }

    let bundle = crate::bundle::load(boot.modules().first().copied());

    // Guests: syscall entry, per-CPU data, FPU state, guest-memory access,
    // and the timer that preempts them.
    arch::percpu::init_bsp();
    arch::syscall::init();
    arch::uaccess::init(features.smap);
    let (fpu_bytes, xsave) = arch::fpu::init(features.xsave);
    info!(target: "cpu", "guest FPU state: {fpu_bytes} bytes per vCPU ({})", if xsave { "XSAVE" } else { "FXSAVE" });
    if let Some(apic) = arch::apic::local() {
        let per_ms = apic.init_timer(idt::TIMER_VECTOR, tsc_hz, features.tsc_deadline);
        if features.tsc_deadline {
            info!(target: "apic", "timer: TSC-deadline mode");
        } else {
            info!(target: "apic", "timer: one-shot, {per_ms} ticks/ms");
        }
    }
    match time::init_wallclock() {
        Some(t) => info!(
            target: "time",
            "wall clock {:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC (RTC)",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        ),
        None => warn!(target: "time", "no RTC answered: the wall clock starts at 1970"),
    }

    self_check();
    let (total, free) = setup::frame_counts();
    info!(target: "mm", "frames after boot: {total} total, {free} free ({} MiB)", (free * layout::PAGE_SIZE) >> 20);
    run_test_action(options.test);

    crate::hypercall::stats::enable(options.hcstats);
    start_dom0(options, boot, bundle);
    crate::sched::run(options.sched_tslice_ms, options.test == Some(TestAction::Dom0))
}

/// Build dom0 from the bundle's `dom0` entry. Without one, the hypervisor
/// has nothing to run and idles, saying why.
fn start_dom0(options: &Options, boot: &BootInfo, bundle: Option<oxen_bundle::Archive<'static>>) {
    let (Some(archive), Some(range)) = (bundle, boot.modules().first().copied()) else {
        warn!(target: "dom0", "no boot bundle, so no dom0: nothing to run");
        return;
    };
    let Some(entry) = archive.find("dom0") else {
        warn!(target: "dom0", "the boot bundle has no 'dom0' entry: nothing to run");
        return;
    };
    let mem = options
        .dom0_mem
        .unwrap_or(crate::domain::build::DOM0_DEFAULT_BYTES);
    let test_dom0 = cfg!(feature = "test-hooks") && options.test == Some(TestAction::Dom0);
    let cmdline = if test_dom0 { "oxen_test=dom0" } else { "" };
    if let Err(e) = crate::domain::build::build_dom0(entry.data, range, mem, cmdline) {
        error!(target: "dom0", "cannot start dom0: {e}");
    }
}

fn init_heap() {
    let (_, free) = setup::frame_counts();
    let bytes = (free * layout::PAGE_SIZE / 8).min(mm::heap::MAX_HEAP_BYTES) & !(layout::PAGE_SIZE - 1);
    let pages = bytes / layout::PAGE_SIZE;
    let first = must("heap", setup::alloc_contiguous(pages));
    // SAFETY: the frames were just allocated for the heap alone and the
    // direct map covers them read-write for good.
    unsafe { mm::heap::init(layout::phys_to_virt(first.addr()), bytes) };
    info!(target: "mm", "heap: {} KiB at {:#x}", bytes >> 10, first.addr());
}

fn log_platform(p: &platform::Platform) {
    let src = match p.source {
        platform::Source::Acpi => "ACPI MADT",
        platform::Source::Fallback => "defaults, no ACPI",
    };
    let usable = p.cpus().iter().filter(|c| c.usable).count();
    info!(target: "acpi", "{} CPU(s) ({usable} usable) from {src}; local APIC at {:#x}", p.cpus().len(), p.lapic_address);
    for io in p.ioapics() {
        info!(target: "acpi", "I/O APIC {} at {:#x}, GSI base {}", io.id, io.address, io.gsi_base);
    }
}

/// Checks that must hold on every boot: nothing writable is executable,
/// nothing of the hypervisor is reachable from ring 3, the guest half is
/// empty, and the allocators give back what they take.
fn self_check() {
    let audit = setup::audit_live_tables();
    if audit.writable_executable != 0 || audit.user_accessible != 0 || audit.lower_half != 0 {
        panic!(
            "self-check failed: {} writable+executable, {} user-accessible, {} lower-half mappings; first: {:x?}",
            audit.writable_executable, audit.user_accessible, audit.lower_half, audit.first_offender
        );
    }
    info!(
        target: "self-check",
        "no writable+executable mapping ({} mappings walked; none user-accessible; lower half empty)",
        audit.mappings
    );

    let (_, before) = setup::frame_counts();
    let frame = must("self-check frame", setup::alloc_contiguous(1));
    setup::zero_frames(frame, 1);
    {
        let mut frames = setup::FRAMES.lock();
        let frames = frames.as_mut().expect("the allocator is up");
        must("self-check free", frames.free(frame));
    }
    let (_, after) = setup::frame_counts();
    assert_eq!(
        before, after,
        "self-check: a frame allocated and freed changed the free count"
    );

    let (used_before, _) = mm::heap::usage();
    let v: Vec<u64> = (0..1024).collect();
    assert_eq!(v.iter().sum::<u64>(), 1023 * 1024 / 2);
    drop(v);
    let (used_after, _) = mm::heap::usage();
    assert_eq!(
        used_before, used_after,
        "self-check: the heap did not return an allocation"
    );
    info!(target: "self-check", "frame allocator and heap give back what they take");
}

fn run_test_action(action: Option<TestAction>) {
    let Some(action) = action else { return };
    if !cfg!(feature = "test-hooks") {
        warn!(target: "test", "oxen_test= is honoured only in test builds; ignored");
        return;
    }
    match action {
        TestAction::Boot => {
            info!(target: "test", "oxen_test=boot: all checks passed");
            arch::qemu::exit(arch::qemu::ExitCode::Success);
        }
        TestAction::PageFault => {
            static READ_ONLY: u64 = 0;
            info!(target: "test", "oxen_test=pagefault: writing to read-only data");
            arch::selftest::write_to_readonly(&READ_ONLY as *const u64 as u64);
            error!(target: "test", "the write to read-only data did not fault");
        }
        TestAction::Panic => panic!("oxen_test=panic: deliberate panic"),
        TestAction::StackOverflow => {
            info!(target: "test", "oxen_test=stack-overflow: overflowing the boot stack");
            arch::selftest::overflow_stack();
        }
        TestAction::Dom0 => {
            info!(target: "test", "oxen_test=dom0: QEMU exits with dom0's verdict");
            return;
        }
    }
    fatal::stop();
}
