//! Port I/O. The only ports the hypervisor touches are its own devices (COM1,
//! the PIT, the legacy PIC, QEMU's debug-exit port), so these accessors are
//! safe to call: a port write here cannot break memory safety.

use x86_64::instructions::port::Port;

/// Read a byte from `port`.
pub fn inb(port: u16) -> u8 {
    // SAFETY: the hypervisor owns every legacy device it addresses; reading a
    // port has no memory effect.
    unsafe { Port::<u8>::new(port).read() }
}

/// Write a byte to `port`.
pub fn outb(port: u16, value: u8) {
    // SAFETY: as for `inb`; none of the hypervisor's devices does DMA.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// Write a 32-bit value to `port`.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { Port::<u32>::new(port).write(value) }
}

/// Read a 32-bit value from `port`.
pub fn inl(port: u16) -> u32 {
    // SAFETY: as for `inb`.
    unsafe { Port::<u32>::new(port).read() }
}
