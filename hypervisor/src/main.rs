//! The bootable Oxen image. Everything lives in the `oxen_hypervisor`
//! library; this binary only links it with the boot stub
//! (`arch/x86_64/boot.S`, which calls `init::kernel_entry`) under
//! `linker.ld`. The stub is assembled here so that the linker always keeps
//! it, whatever the library's codegen units.
#![no_std]
#![no_main]

use oxen_hypervisor as _;

core::arch::global_asm!(include_str!("arch/x86_64/boot.S"), options(att_syntax));
