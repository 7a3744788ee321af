//! The fuzzer's end of the event channel to the canary (`canary.rs`): at
//! start the canary offers an unbound port to every domain that might be
//! the fuzzer, and the fuzzer binds the one offered to it; at the end the
//! fuzzer sends on it and waits for the canary's answer, so that the canary
//! sees the channel still connected ("the fuzzer signalled it is done")
//! rather than closed by the fuzzer's domain going away.

use oxen_guest_sdk::dom0_abi::DOMID_SELF;
use oxen_guest_sdk::time::{self, NS_PER_SEC};
use oxen_guest_sdk::{domid, event, hypercall, now_ns, println};

/// How long the fuzzer looks for the canary's offer, and waits for its answer.
const WAIT_NS: u64 = 5 * NS_PER_SEC;
/// Domain IDs the fuzzer looks for the canary among.
pub const PEERS: core::ops::RangeInclusive<u16> = 1..=16;
/// Ports the canary may have offered us.
const PORTS: core::ops::RangeInclusive<u32> = 1..=24;
/// Domain IDs are `u16`; `DOMID_SELF` is never a peer.
const _: () = assert!(*PEERS.end() < DOMID_SELF);

/// A connected channel to the canary.
pub struct Link {
    /// Our port.
    pub port: u32,
    /// The canary's domain.
    pub peer: u16,
}

/// Bind to the port the canary offered us, waiting for it a little (the
/// canary may start after us).
pub fn to_canary() -> Option<Link> {
    let me = domid();
    let deadline = now_ns() + WAIT_NS;
    loop {
        for peer in PEERS.filter(|&d| d != me) {
            for port in PORTS {
                if let Ok(local) = hypercall::evtchn_bind_interdomain(peer, port) {
                    return Some(Link { port: local, peer });
                }
            }
        }
        if now_ns() > deadline {
            return None;
        }
        time::sleep_ms(20);
    }
}

impl Link {
    /// Tell the canary the run is over and wait (a little) for its answer.
    pub fn tell_canary(&self) {
        event::clear_pending(self.port);
        if let Err(e) = hypercall::evtchn_send(self.port) {
            println!("fuzz: cannot tell the canary we are done: {e}");
            return;
        }
        if !event::wait_timeout(self.port, WAIT_NS) {
            println!("fuzz: the canary did not answer");
        }
    }
}
