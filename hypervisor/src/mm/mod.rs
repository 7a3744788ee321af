//! Memory management: the physical memory map, the frame allocator, the
//! page-table builder and the layout constants (pure logic, tested on the
//! host), and the kernel glue that applies them to real memory (`setup`,
//! `heap`, bare-metal only).

pub mod frame;
pub mod layout;
pub mod memmap;
pub mod paging;

#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod setup;
