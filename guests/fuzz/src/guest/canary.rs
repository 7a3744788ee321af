//! `mode=canary`: the domain that runs beside the fuzzer and must come
//! through untouched. It offers an unbound event-channel port to every
//! domain that might be the fuzzer (IDs 1..=16 but itself), keeps a heap
//! buffer with a known pattern and its memory size, and every second checks
//! both and prints `canary: alive (N s)`. It stops with `canary: alive at
//! end` when the fuzzer signals on one of those ports (or its end of the
//! channel goes away), when the toolstack asks it to shut down
//! (VIRQ_CONTROL), or after `seconds=S` (default 600); a broken pattern or
//! a changed memory size is `canary: CORRUPTED (...)` and `Crash`.

use super::link::PEERS;
use alloc::vec::Vec;
use fuzz::number;
use oxen_guest_sdk::dom0_abi::EVTCHN_INTERDOMAIN;
use oxen_guest_sdk::event::{self, ControlRequest};
use oxen_guest_sdk::time::NS_PER_SEC;
use oxen_guest_sdk::{ShutdownReason, cmdline, domid, hypercall, now_ns, println};

/// Default lifetime, in seconds.
const DEFAULT_SECONDS: u64 = 600;
/// Words in the pattern buffer (256 KiB).
const PATTERN_WORDS: usize = 32 * 1024;
/// How often the canary looks for new peers while it waits.
const TICK_NS: u64 = NS_PER_SEC / 10;

/// The pattern word at index `i`.
fn pattern(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xc0ff_ee00_c0ff_ee00
}

/// VIRQ_CONTROL: the toolstack asks; say goodbye and do as asked.
fn control(request: ControlRequest) {
    if let Some(reason) = request.shutdown {
        println!("canary: alive at end (shutdown requested: {})", reason.name());
        hypercall::shutdown(reason);
    }
}

/// Whether the pattern and the memory size are as they were: why not.
fn check(buf: &[u64], tot_pages: u64) -> Result<(), alloc::string::String> {
    if let Some(i) = (0..buf.len()).find(|&i| buf[i] != pattern(i)) {
        return Err(alloc::format!(
            "word {i} of the pattern is {:#x}, not {:#x}",
            buf[i],
            pattern(i)
        ));
    }
    match hypercall::memory_info() {
        Ok(mi) if mi.tot_pages == tot_pages => Ok(()),
        Ok(mi) => Err(alloc::format!("tot_pages is {}, was {tot_pages}", mi.tot_pages)),
        Err(e) => Err(alloc::format!("memory_info failed: {e}")),
    }
}

/// The ports offered to possible fuzzers, and the events seen on each
/// when it was offered.
#[derive(Default)]
struct Offers {
    peers: Vec<u16>,
    ports: Vec<u32>,
    baseline: Vec<u64>,
}

impl Offers {
    /// Offer a port to every possible peer that has none yet; domains that
    /// do not exist yet (ESRCH) get one on a later round.
    fn offer(&mut self, me: u16) {
        for d in PEERS.filter(|d| *d != me) {
            if self.peers.contains(&d) {
                continue;
            }
            if let Ok(p) = hypercall::evtchn_alloc_unbound(d) {
                self.peers.push(d);
                self.ports.push(p);
                self.baseline.push(event::events_received(p));
            }
        }
    }

    /// The ports that saw an event since they were offered.
    fn fired(&self) -> impl Iterator<Item = u32> + '_ {
        self.ports
            .iter()
            .zip(&self.baseline)
            .filter(|&(&p, &b)| event::events_received(p) > b)
            .map(|(&p, _)| p)
    }
}

/// The canary.
pub fn run() -> ShutdownReason {
    let seconds = number(cmdline(), "seconds").unwrap_or(DEFAULT_SECONDS);
    event::on_control(control);
    let me = domid();
    let mut offers = Offers::default();
    offers.offer(me);
    let buf: Vec<u64> = (0..PATTERN_WORDS).map(pattern).collect();
    let tot_pages = match hypercall::memory_info() {
        Ok(mi) => mi.tot_pages,
        Err(e) => {
            println!("canary: memory_info failed: {e}");
            return ShutdownReason::Crash;
        }
    };
    println!("canary: alive, domain {me}, up to {seconds} s");
    let started = now_ns();
    let mut second = 0;
    loop {
        offers.offer(me);
        let next = started + (second + 1) * NS_PER_SEC;
        let left = next.saturating_sub(now_ns()).clamp(1, TICK_NS);
        let woke = event::block_until(&offers.ports, left, || offers.fired().next().is_some());
        if let Err(why) = check(&buf, tot_pages) {
            println!("canary: CORRUPTED ({why})");
            return ShutdownReason::Crash;
        }
        if woke {
            // A send leaves the channel connected; the fuzzer's domain going
            // away leaves our end unbound (and pending).
            let connected = offers
                .fired()
                .find(|&p| event::status(p).is_ok_and(|s| s.state == EVTCHN_INTERDOMAIN));
            if let Some(port) = connected {
                println!("canary: alive at end (the fuzzer signalled it is done)");
                // The fuzzer waits for this before it shuts down.
                let _ = event::send(port);
            } else {
                println!("canary: alive at end (the fuzzer's domain went away without a word)");
            }
            return ShutdownReason::Poweroff;
        }
        if now_ns() >= next {
            second += 1;
            if second >= seconds {
                println!("canary: alive at end ({seconds} s are up)");
                return ShutdownReason::Poweroff;
            }
            println!("canary: alive ({second} s)");
        }
    }
}
