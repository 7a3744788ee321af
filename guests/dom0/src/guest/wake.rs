//! How dom0 sleeps until there is something to do, without busy polling.
//!
//! With event channels (ABI 1.1, the SDK's `event` module) dom0 binds
//! `VIRQ_CONSOLE` (serial input waits) and `VIRQ_DOM_EXC` (a domain shut
//! down or crashed) with a handler that only notes the wake-up, and sleeps
//! in `event::block_until` on both ports: with the timeout the shell asks
//! for (following a console, waiting for a shutdown), else a one-second
//! safety net (a VIRQ the hypervisor failed to raise costs at most that).
//! Each round of the loop starts with [`Waker::arm`], which forgets older
//! wake-ups, before it reads the console and looks at the domains: an event
//! that arrives after that look sets the flag again, and the next sleep
//! returns at once, so none is lost.
//!
//! Without them (a hypervisor older than 1.1, or binding fails) dom0 falls
//! back to `sched_block`, which the hypervisor ends on console input or a
//! domain state change, and to `sched_yield` when a timeout is asked for.

use core::sync::atomic::{AtomicBool, Ordering};

use dom0_abi::{Status, Virq};
use oxen_guest_sdk::{event, hypercall};

/// Longest sleep without a timeout asked for.
const SAFETY_NET_NS: u64 = 1_000_000_000;

/// Set by the handler of dom0's two ports.
static WOKEN: AtomicBool = AtomicBool::new(false);

/// The handler: note the wake-up (handler context: nothing more).
fn woken(_port: u32) {
    WOKEN.store(true, Ordering::SeqCst);
}

/// dom0's way of sleeping.
#[derive(Debug)]
pub struct Waker {
    /// The console and domain-exception ports, or `None`: block instead.
    ports: Option<[u32; 2]>,
}

impl Waker {
    /// Bind the VIRQs; on failure, fall back to blocking. The second value
    /// says why events are not used, for the console.
    pub fn new() -> (Waker, Option<Status>) {
        let console = event::bind_virq(Virq::Console);
        let dom_exc = event::bind_virq(Virq::DomExc);
        let bound = match (console, dom_exc) {
            (Ok(c), Ok(d)) => event::bind_handler(c, woken)
                .and_then(|()| event::bind_handler(d, woken))
                .map(|()| [c, d]),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        match bound {
            Ok(ports) => (Waker { ports: Some(ports) }, None),
            Err(why) => {
                for port in [console, dom_exc].into_iter().flatten() {
                    let _ = event::close(port);
                }
                (Waker { ports: None }, Some(why))
            }
        }
    }

    /// Start a round: forget the wake-ups seen so far (the caller looks at
    /// everything after this).
    pub fn arm(&self) {
        WOKEN.store(false, Ordering::SeqCst);
    }

    /// Sleep until something may have happened, or `timeout_ns` passed.
    pub fn wait(&mut self, timeout_ns: Option<u64>) {
        match (self.ports, timeout_ns) {
            (Some(ports), timeout) => {
                let timeout = timeout.unwrap_or(SAFETY_NET_NS).clamp(1, SAFETY_NET_NS);
                event::block_until(&ports, timeout, || WOKEN.swap(false, Ordering::SeqCst));
            }
            (None, Some(_)) => hypercall::sched_yield(),
            (None, None) => hypercall::sched_block(),
        }
    }
}
