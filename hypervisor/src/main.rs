//! The bootable Oxen image. Everything lives in the `oxen_hypervisor`
//! library; this binary only links it with the boot stub
//! (`arch/x86_64/boot.S`, which calls `init::kernel_entry`) under
//! `linker.ld`. The stub is assembled here so that the linker always keeps
//! it, whatever the library's codegen units.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use oxen_hypervisor as _;

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("arch/x86_64/boot.S"), options(att_syntax));

/// On the host the binary is only a placeholder, so that workspace-wide
/// `cargo build`/`clippy` work; the hypervisor itself is bare-metal only.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the Oxen hypervisor runs on bare metal: build it with `cargo xtask build`");
    std::process::exit(1);
}
