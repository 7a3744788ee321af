//! Host tests of the builder: `elf_writer.rs` assembles ELF64 images in
//! memory with knobs to break them, `fake.rs` is a `BuildTarget` over a
//! `HashMap` of frames that records every mmu operation; `elf.rs`, `abi.rs`
//! and `domain.rs` test the matching modules, `fuzz.rs` throws mutated
//! images at all three.

mod abi;
mod domain;
mod elf;
mod elf_writer;
mod fake;
mod fuzz;
