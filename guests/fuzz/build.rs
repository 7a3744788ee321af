//! Links the guest image with the SDK's `guest.ld` (guest target only; host
//! builds are untouched). Every guest crate has this same build script.

use std::path::Path;

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = Path::new(&dir).join("../sdk/guest.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if target_os == "none" {
        let script = script.canonicalize().expect("guests/sdk/guest.ld exists");
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
}
