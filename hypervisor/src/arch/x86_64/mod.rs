//! x86-64: the one place that holds `asm!`, MSRs, control registers, ports,
//! descriptor tables and entry stubs. Portable subsystems reach the hardware
//! only through the safe functions re-exported here.
#![allow(unsafe_code)]

pub mod apic;
pub mod cpu;
pub mod fpu;
pub mod gdt;
pub mod guest;
pub mod idt;
pub mod paging;
pub mod percpu;
pub mod phys;
pub mod pit;
pub mod port;
pub mod qemu;
pub mod rtc;
pub mod selftest;
pub mod serial;
pub mod syscall;
pub mod uaccess;
