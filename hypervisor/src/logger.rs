//! The one `log` facade of the hypervisor: every line carries the uptime,
//! the CPU, the level and the subsystem (`mm`, `boot`, `apic` ...), taken
//! from the module path, and goes to the console. `loglvl=` sets the level.

use crate::{arch, console, time};
use core::sync::atomic::{AtomicBool, Ordering};
use log::{LevelFilter, Log, Metadata, Record};

struct Logger;

static LOGGER: Logger = Logger;
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Install the logger at `level` (callable again to change the level).
pub fn init(level: LevelFilter) {
    if !INSTALLED.swap(true, Ordering::AcqRel) {
        let _ = log::set_logger(&LOGGER);
    }
    log::set_max_level(level);
}

/// The subsystem a log target names: `oxen_hypervisor::mm::frame` is `mm`,
/// `oxen_hypervisor::arch::x86_64::apic` is `apic`; explicit targets stay.
pub fn subsystem(target: &str) -> &str {
    let Some(path) = target.strip_prefix("oxen_hypervisor::") else {
        return if target == "oxen_hypervisor" {
            "oxen"
        } else {
            target
        };
    };
    let path = path.strip_prefix("arch::x86_64::").unwrap_or(path);
    path.split("::").next().unwrap_or(path)
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARN ",
            log::Level::Info => "INFO ",
            log::Level::Debug => "DEBUG",
            log::Level::Trace => "TRACE",
        };
        let cpu = arch::cpu::current_cpu();
        let sub = subsystem(record.target());
        match time::uptime_us() {
            Some(us) => console::write_fmt(format_args!(
                "[{:5}.{:06}] cpu{cpu} {level} {sub}: {}\n",
                us / 1_000_000,
                us % 1_000_000,
                record.args()
            )),
            None => console::write_fmt(format_args!(
                "[    ?.??????] cpu{cpu} {level} {sub}: {}\n",
                record.args()
            )),
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::subsystem;

    #[test]
    fn subsystems_from_module_paths() {
        assert_eq!(subsystem("oxen_hypervisor::mm::frame"), "mm");
        assert_eq!(subsystem("oxen_hypervisor::arch::x86_64::apic"), "apic");
        assert_eq!(subsystem("oxen_hypervisor::init"), "init");
        assert_eq!(subsystem("oxen_hypervisor"), "oxen");
        assert_eq!(subsystem("bundle"), "bundle");
    }
}
