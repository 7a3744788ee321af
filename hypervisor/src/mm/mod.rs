//! Memory management: the physical memory map, the frame allocator and the
//! page-table builder. Everything here is pure logic tested on the host; the
//! kernel glue that applies it to real memory lives beside it behind
//! `cfg(target_os = "none")`.

pub mod frame;
pub mod memmap;
pub mod paging;
