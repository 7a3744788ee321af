//! The end of the line: panics and hypervisor exceptions come here. A panic
//! is a hypervisor bug; it is reported with the CPU in context and this CPU
//! stops (the others too, once SMP exists). In test builds QEMU is then told
//! to exit with the failure code so that a test never hangs.

use crate::arch;
use core::fmt::Write;

/// Stop after a fatal report.
pub fn stop() -> ! {
    #[cfg(feature = "test-hooks")]
    arch::qemu::exit(arch::qemu::ExitCode::Failure);
    arch::cpu::halt_forever()
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    arch::cpu::disable_interrupts();
    let mut out = crate::console::EmergencyWriter;
    let _ = write!(
        out,
        "\nFATAL: hypervisor panic on cpu{}",
        arch::cpu::current_cpu()
    );
    if let Some(loc) = info.location() {
        let _ = write!(out, " at {}:{}", loc.file(), loc.line());
    }
    let _ = writeln!(out, ":\n  {}", info.message());
    stop()
}
