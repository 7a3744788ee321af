//! The event-channel round trip between two domains on one CPU
//! (`role=pong` and `role=ping`, started in that order so that ping's
//! domain ID is pong's + 1).
//!
//! **Rendezvous.** Pong allocates an unbound port for domain `own + 1`
//! (retrying while that domain does not exist yet); ping binds to it by
//! probing pong's ports 1..=8 with `evtchn_bind_interdomain`, retrying
//! until one accepts. Both mask upcalls and wait by polling their pending
//! bit and sleeping in `sched_block`, which returns once an event marked
//! their upcall pending.
//!
//! **One round trip** (ping's view, `evtchn_roundtrip`): send, wait for
//! pong's answer, from before the send to after it arrived. It holds two
//! domain switches, and where they fall depends on the scheduler: a woken
//! domain may preempt the sender inside its `evtchn_send`, or wait until
//! the sender blocks. Either way each domain's turn runs inside one
//! hypercall of the other, the longest of that domain's iteration. Ping
//! times that call (`evtchn_ping_span`: entering the hypervisor, the switch
//! to pong, pong's whole turn, the switch back), and pong times its turn
//! between two such calls (`evtchn_pong_turn`: returning, the pending
//! check, its send, the wait). `cargo xtask bench` derives one domain
//! switch from them: (ping_span - pong_turn) / 2, from a hypercall's entry
//! in one domain to its return in the other (a preempting send's own work
//! included).

use crate::shared::Page;
use crate::stats::Samples;
use crate::tsc;
use core::sync::atomic::Ordering::SeqCst;
use oxen_guest_sdk::dom0_abi::{DomId, Hypercall, Status};
use oxen_guest_sdk::{domid, hypercall, println};

/// Ports of pong that ping tries.
const PROBE_PORTS: u32 = 8;
/// Attempts (each followed by a yield) before the rendezvous gives up.
const RENDEZVOUS_TRIES: u32 = 200_000;

/// One hypercall's TSC window (both 0: none yet).
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    start: u64,
    end: u64,
}

impl Span {
    fn ticks(self) -> u64 {
        self.end.wrapping_sub(self.start)
    }

    /// Keep whichever of the two calls took longer.
    fn longer(self, other: Span) -> Span {
        if other.ticks() > self.ticks() { other } else { self }
    }
}

impl From<tsc::Timed> for Span {
    fn from(t: tsc::Timed) -> Span {
        Span {
            start: t.start,
            end: t.end,
        }
    }
}

/// Wait until `port` is pending, consuming it; the longest `sched_block`
/// call it made (none if the event was already there).
fn wait(page: Page, port: u32) -> Span {
    let mut longest = Span::default();
    loop {
        page.upcall_pending().store(0, SeqCst);
        page.pending_sel().store(0, SeqCst);
        if page.take_pending(port) {
            return longest;
        }
        // SAFETY: no pointer arguments; sched_block returns 0.
        let t = unsafe { tsc::hypercall(Hypercall::SchedBlock as u64, 0, 0, 0) };
        longest = longest.longer(t.into());
    }
}

/// Send on `port`, timed.
fn send(port: u32) -> Result<Span, Status> {
    // SAFETY: no pointer arguments.
    let t = unsafe { tsc::hypercall(Hypercall::EvtchnSend as u64, u64::from(port), 0, 0) };
    Status::from_ret(t.ret).map(|_| t.into())
}

/// The shared-info page and masked upcalls, or an error line.
fn prepare(role: &str) -> Option<Page> {
    let Some(page) = Page::get() else {
        println!("bench: {role} error=no-shared-info");
        return None;
    };
    page.upcall_mask().store(1, SeqCst);
    Some(page)
}

/// `role=pong`: answer `total` events, timing its own work.
pub fn pong(warmup: usize, n: usize) {
    let Some(page) = prepare("pong") else { return };
    let Some(ping) = domid().checked_add(1) else {
        return;
    };
    let mut tries = 0;
    let port = loop {
        match hypercall::evtchn_alloc_unbound(ping) {
            Ok(port) => break port,
            Err(Status::ESRCH) if tries < RENDEZVOUS_TRIES => {
                tries += 1;
                hypercall::sched_yield();
            }
            Err(status) => {
                println!("bench: pong error=alloc_unbound-{}", status.name());
                return;
            }
        }
    };
    println!("bench: pong ready on port {port} for domain {ping}");
    let mut turn = Samples::new("evtchn_pong_turn", n);
    let total = warmup + n;
    let mut inside_send = 0u64;
    let mut previous: Option<Span> = None;
    wait(page, port);
    for i in 0..total {
        let sent = match send(port) {
            Ok(span) => span,
            Err(status) => {
                println!("bench: pong error=send-{}", status.name());
                return;
            }
        };
        if i + 1 == total {
            break;
        }
        let blocked = wait(page, port);
        // The call ping's turn ran inside: this iteration's longest.
        let span = sent.longer(blocked);
        if i >= warmup {
            if span.start == sent.start {
                inside_send += 1;
            }
            if let Some(p) = previous {
                turn.push(span.start.wrapping_sub(p.end));
            }
        }
        previous = Some(span);
    }
    println!(
        "bench: pong note: ping's turn ran inside pong's send in {inside_send} of {}",
        n - 1
    );
    turn.report(tsc::overhead());
}

/// `role=ping`: find pong, then time `n` round trips after `warmup`.
pub fn ping(warmup: usize, n: usize) {
    let Some(page) = prepare("ping") else { return };
    let Some(pong) = domid().checked_sub(1) else {
        return;
    };
    let Some(port) = rendezvous(pong) else {
        println!("bench: ping error=no-port-of-domain-{pong}");
        return;
    };
    println!("bench: ping bound port {port} to domain {pong}");
    let mut round_trip = Samples::new("evtchn_roundtrip", n);
    let mut span = Samples::new("evtchn_ping_span", n);
    let mut inside_send = 0u64;
    for i in 0..warmup + n {
        let start = tsc::now();
        let sent = match send(port) {
            Ok(span) => span,
            Err(status) => {
                println!("bench: ping error=send-{}", status.name());
                return;
            }
        };
        let blocked = wait(page, port);
        let end = tsc::now();
        if i < warmup {
            continue;
        }
        round_trip.push(end.wrapping_sub(start));
        // The call pong's turn ran inside: this round trip's longest.
        let longest = sent.longer(blocked);
        if longest.start == sent.start {
            inside_send += 1;
        }
        span.push(longest.ticks());
    }
    println!("bench: ping note: pong's turn ran inside ping's send in {inside_send} of {n}");
    // `now()` pairs bracket the round trip as the timed hypercalls do.
    let overhead = tsc::overhead();
    round_trip.report(overhead);
    span.report(overhead);
}

/// Bind to the port `pong` allocated for us, retrying until it exists.
fn rendezvous(pong: DomId) -> Option<u32> {
    for _ in 0..RENDEZVOUS_TRIES {
        for remote in 1..=PROBE_PORTS {
            if let Ok(port) = hypercall::evtchn_bind_interdomain(pong, remote) {
                return Some(port);
            }
        }
        hypercall::sched_yield();
    }
    None
}
