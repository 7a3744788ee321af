//! COM1, the hypervisor's console device, driven through `uart_16550`.
//!
//! `console.rs` owns the one [`Serial`] behind a lock; [`emergency_write`] is
//! the lock-free path that fatal reports use when the lock may be held.

use super::port::{inb, outb};
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550};

/// I/O port base of COM1.
pub const COM1: u16 = 0x3f8;
/// Line status register offset; bit 5 is "transmit holding register empty"
/// (PC16550D datasheet, LSR).
const LSR: u16 = 5;
const LSR_THRE: u8 = 1 << 5;
const LSR_DATA_READY: u8 = 1 << 0;

/// The console UART.
pub struct Serial {
    uart: Uart16550<PioBackend>,
}

impl Serial {
    /// Initialise COM1 at 115200 8N1; `None` when no UART answers.
    pub fn com1() -> Option<Self> {
        // SAFETY: COM1's eight ports belong to the console alone; `console.rs`
        // creates exactly one `Serial`, behind its lock.
        let mut uart = unsafe { Uart16550::new_port(COM1) }.ok()?;
        let config = Config {
            baud_rate: BaudRate::Baud115200,
            ..Config::DEFAULT
        };
        uart.init(config).ok()?;
        Some(Self { uart })
    }

    /// Send every byte, waiting for the transmitter as needed.
    pub fn write(&mut self, bytes: &[u8]) {
        self.uart.send_bytes_exact(bytes);
    }

    /// One received byte, if any is waiting.
    pub fn try_read(&mut self) -> Option<u8> {
        self.uart.try_receive_byte().ok()
    }
}

/// Write straight to COM1 without any lock, for panics and exception
/// reports. Waits a bounded time for the transmitter so that a missing UART
/// cannot hang the report.
pub fn emergency_write(bytes: &[u8]) {
    for &byte in bytes {
        for _ in 0..100_000 {
            if inb(COM1 + LSR) & LSR_THRE != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        outb(COM1, byte);
    }
}

/// Whether a received byte is waiting (lock-free peek used by idle loops).
pub fn input_ready() -> bool {
    inb(COM1 + LSR) & LSR_DATA_READY != 0
}
