//! `pingpong`: two domUs bounce an event-channel notification back and
//! forth and time the round trip. The same image plays both parts, chosen
//! by the command line:
//!
//! ```text
//! role=ping [peer=D | peer_offset=+1] [rounds=N]
//! role=pong [peer=D | peer_offset=-1] [rounds=N] [close_after=K | die_after=K] [bind_late=1]
//! ```
//!
//! **Rendezvous** (there is no xenstore): dom0 starts the configs under
//! `auto/` in name order, one right after the other, so `ping.cfg` gets
//! some domain ID N and `pong.cfg` (or `pong-close.cfg`, `pong-die.cfg`,
//! `pong-late.cfg`) N + 1; each side names the other by `peer_offset` from
//! its own ID (defaults: ping +1, pong -1), or by `peer=` outright. Pong offers a port
//! to ping with `evtchn_alloc_unbound(ping)`, retrying for [`RENDEZVOUS_NS`]
//! should ping's domain not exist (`ESRCH`), and prints `pingpong: pong
//! listening on port P`. Ping cannot learn P, but
//! ports are handed out lowest first and a fresh guest holds only a few
//! (the SDK's `VIRQ_CONTROL` port, perhaps the timer's), so it tries
//! `evtchn_bind_interdomain(pong, P)` for P in 1 ..= [`PROBE_PORTS`]: only
//! the port offered to it binds (the others fail with `EINVAL`, and all of
//! them with `ESRCH` while pong does not exist), retrying for
//! [`RENDEZVOUS_NS`] until pong is up.
//!
//! **A handler bound late** (`bind_late=1`): pong binds its handler only
//! once ping's first notification has come in, and prints `pingpong: pong
//! bound its handler after N notification(s)`. Ping may bind and send as
//! soon as the port is offered, so this ordering also happens by chance (a
//! preemption between `evtchn_alloc_unbound` and `bind_handler`); the SDK
//! hands the handler what came in before it, and the round goes on.
//!
//! **The bounce.** Ping sends and waits for pong's answer, `rounds` times
//! (default 100000), timing each round trip with `rdtsc`; pong's handler
//! answers each notification. Ping prints
//! `pingpong: N round trips, median X tsc ticks, p99 Y, Z ns each` (Z from
//! system time over the whole run); each side then powers off.
//!
//! **The peer going away.** With `close_after=K` pong answers K rounds,
//! closes its port on the next notification instead of answering, stays up
//! for a second and powers off; with `die_after=K` it crashes itself
//! there instead, and dom0 destroys it. Either way ping's port becomes
//! unbound and pending, so ping's wait for that round ends, and its next
//! send fails with `ENOTCONN`. Pong never answers the notification it
//! closes or dies on, so the wake-up ping took for that round was the close
//! notification: ping counts it out and prints `pingpong: peer closed after
//! K rounds: ENOTCONN`, or `peer gone` when pong's domain no longer exists
//! (it asks with `evtchn_alloc_unbound(pong)`, `ESRCH` once pong is gone),
//! and powers off.
//!
//! **Never hang**: every wait has a timeout; running out prints `pingpong:
//! timed out waiting for the peer` and crashes.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use oxen_guest_sdk::dom0_abi::{DOMID_MAX, EVTCHN_INTERDOMAIN};
use oxen_guest_sdk::time::{NS_PER_SEC, rdtsc};
use oxen_guest_sdk::{DomId, ShutdownReason, Status, cmdline_value, domid, event, now_ns, println, sleep_ms};

oxen_guest_sdk::entry!(main);

/// Round trips by default.
const DEFAULT_ROUNDS: u64 = 100_000;
/// How long either side looks for the other at the start.
const RENDEZVOUS_NS: u64 = 2 * NS_PER_SEC;
/// Pause between two rendezvous attempts.
const RETRY_MS: u64 = 10;
/// Pong's ports ping tries to bind to: 1 ..= this.
const PROBE_PORTS: u32 = 8;
/// Longest wait for one answer (dom0 must notice a crashed pong and
/// destroy it within this, too).
const ROUND_TIMEOUT_NS: u64 = 5 * NS_PER_SEC;
/// Longest pong waits for the next notification (ping's rendezvous included).
const IDLE_TIMEOUT_NS: u64 = 10 * NS_PER_SEC;
/// How long pong stays up after closing its port.
const LINGER_MS: u64 = 1000;

fn main() -> ShutdownReason {
    let rounds = match number("rounds") {
        Ok(n) => n.unwrap_or(DEFAULT_ROUNDS).max(1),
        Err(why) => return usage(&why),
    };
    match cmdline_value("role") {
        Some("ping") => match peer(1) {
            Ok(pong) => ping(pong, rounds),
            Err(why) => usage(&why),
        },
        Some("pong") => match (peer(-1), PongPlan::from_cmdline()) {
            (Ok(ping), Ok(plan)) => pong(ping, rounds, &plan),
            (Err(why), _) | (_, Err(why)) => usage(&why),
        },
        _ => usage("role= must be ping or pong"),
    }
}

fn usage(why: &str) -> ShutdownReason {
    println!("pingpong: {why}");
    println!(
        "pingpong: usage: role=ping|pong [peer=D | peer_offset=N] [rounds=N] [close_after=K | die_after=K] [bind_late=1]"
    );
    ShutdownReason::Crash
}

/// `key=N` from the command line: `Ok(None)` when absent.
fn number(key: &str) -> Result<Option<u64>, String> {
    match cmdline_value(key) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{key}={v} is not a number")),
    }
}

/// The other domain: `peer=D`, or our own ID plus `peer_offset=N`
/// (`default_offset` without either).
fn peer(default_offset: i64) -> Result<DomId, String> {
    if let Some(v) = cmdline_value("peer") {
        return v
            .parse::<DomId>()
            .ok()
            .filter(|&d| d <= DOMID_MAX)
            .ok_or_else(|| format!("peer={v} is not a domain ID"));
    }
    let offset = match cmdline_value("peer_offset") {
        Some(v) => v
            .trim_start_matches('+')
            .parse::<i64>()
            .map_err(|_| format!("peer_offset={v} is not a number"))?,
        None => default_offset,
    };
    i64::from(domid())
        .checked_add(offset)
        .and_then(|d| DomId::try_from(d).ok())
        .filter(|&d| d <= DOMID_MAX && d != domid())
        .ok_or_else(|| format!("peer_offset={offset} from domain {} is no domain ID", domid()))
}

/// Call `attempt` until it succeeds or [`RENDEZVOUS_NS`] passed; the last
/// error otherwise.
fn retry<T>(mut attempt: impl FnMut() -> Result<T, Status>) -> Result<T, Status> {
    let deadline = now_ns() + RENDEZVOUS_NS;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if now_ns() >= deadline => return Err(e),
            Err(_) => sleep_ms(RETRY_MS),
        }
    }
}

fn timed_out() -> ShutdownReason {
    println!("pingpong: timed out waiting for the peer");
    ShutdownReason::Crash
}

// ---- ping ------------------------------------------------------------------

fn ping(pong: DomId, rounds: u64) -> ShutdownReason {
    let bound = retry(|| {
        (1..=PROBE_PORTS)
            .find_map(|p| event::bind_interdomain(pong, p).ok().map(|local| (local, p)))
            .ok_or(Status::ESRCH)
    });
    let Ok((port, remote_port)) = bound else {
        return timed_out();
    };
    println!("pingpong: ping bound port {port} to domain {pong}'s port {remote_port}");
    let capacity = usize::try_from(rounds).unwrap_or(usize::MAX);
    let mut ticks: Vec<u64> = Vec::with_capacity(capacity);
    let start_ns = now_ns();
    // `wakes`: waits that ended with a wake-up, one per round so far.
    for wakes in 0..rounds {
        let t0 = rdtsc();
        if let Err(e) = event::send(port) {
            // The last wake-up was the close notification (see the crate docs).
            return peer_left(pong, wakes.saturating_sub(1), e);
        }
        if !event::wait_timeout(port, ROUND_TIMEOUT_NS) {
            // No wake-up at all: a closed port would have raised one, but
            // look before calling it a hang.
            return match event::status(port) {
                Ok(s) if s.state != EVTCHN_INTERDOMAIN => peer_left(pong, wakes, Status::ENOTCONN),
                _ => timed_out(),
            };
        }
        ticks.push(rdtsc().wrapping_sub(t0));
    }
    let wall_ns = now_ns() - start_ns;
    ticks.sort_unstable();
    let at = |per_mille: usize| ticks[(ticks.len() - 1) * per_mille / 1000];
    println!(
        "pingpong: {rounds} round trips, median {} tsc ticks, p99 {}, {} ns each",
        at(500),
        at(990),
        wall_ns / rounds
    );
    ShutdownReason::Poweroff
}

/// The peer closed its end after `rounds` answered round trips: say whether
/// its domain is still there, and power off.
fn peer_left(pong: DomId, rounds: u64, status: Status) -> ShutdownReason {
    let how = match event::alloc_unbound(pong) {
        Ok(probe) => {
            let _ = event::close(probe);
            "closed"
        }
        Err(Status::ESRCH) => "gone",
        Err(_) => "closed",
    };
    println!("pingpong: peer {how} after {rounds} rounds: {}", status.name());
    ShutdownReason::Poweroff
}

// ---- pong ------------------------------------------------------------------

/// Notifications received.
static RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Notifications answered.
static ANSWERED: AtomicU64 = AtomicU64::new(0);
/// Answer this many in all; later notifications (ping's end closing as it
/// goes away) are ignored.
static ROUNDS: AtomicU64 = AtomicU64::new(u64::MAX);
/// Answer this many, then close (`u64::MAX`: never).
static CLOSE_AFTER: AtomicU64 = AtomicU64::new(u64::MAX);
/// Answer this many, then crash (`u64::MAX`: never).
static DIE_AFTER: AtomicU64 = AtomicU64::new(u64::MAX);
/// Set once the port is closed.
static CLOSED: AtomicU32 = AtomicU32::new(0);
/// The status of a failed answer (0: none).
static SEND_ERROR: AtomicU64 = AtomicU64::new(0);

/// What pong does besides answering, from the command line.
struct PongPlan {
    /// `close_after=K`.
    close_after: Option<u64>,
    /// `die_after=K`.
    die_after: Option<u64>,
    /// `bind_late=1`.
    bind_late: bool,
}

impl PongPlan {
    fn from_cmdline() -> Result<PongPlan, String> {
        Ok(PongPlan {
            close_after: number("close_after")?,
            die_after: number("die_after")?,
            bind_late: number("bind_late")?.is_some_and(|n| n != 0),
        })
    }
}

fn pong(ping: DomId, rounds: u64, plan: &PongPlan) -> ShutdownReason {
    ROUNDS.store(rounds, SeqCst);
    CLOSE_AFTER.store(plan.close_after.unwrap_or(u64::MAX), SeqCst);
    DIE_AFTER.store(plan.die_after.unwrap_or(u64::MAX), SeqCst);
    let Ok(port) = retry(|| event::alloc_unbound(ping)) else {
        return timed_out();
    };
    if plan.bind_late && !first_notification(port) {
        return timed_out();
    }
    // Counted before binding: the handler answers at once, and the bounce
    // goes on while this domain gets to its next line.
    let before = event::events_received(port);
    if let Err(e) = event::bind_handler(port, on_ping) {
        println!("pingpong: pong cannot handle port {port}: {e}");
        return ShutdownReason::Crash;
    }
    if plan.bind_late {
        println!("pingpong: pong bound its handler after {before} notification(s)");
    }
    println!("pingpong: pong listening on port {port} for domain {ping}");
    let mut seen = 0;
    loop {
        let progressed = event::block_until(&[port], IDLE_TIMEOUT_NS, || {
            RECEIVED.load(SeqCst) != seen || CLOSED.load(SeqCst) != 0
        });
        if !progressed {
            return timed_out();
        }
        seen = RECEIVED.load(SeqCst);
        if ANSWERED.load(SeqCst) >= rounds {
            println!("pingpong: pong answered {rounds} round trips");
            return ShutdownReason::Poweroff;
        }
        if let Ok(e) = Status::try_from(SEND_ERROR.load(SeqCst)) {
            println!("pingpong: pong cannot answer: {e}");
            return ShutdownReason::Crash;
        }
        if CLOSED.load(SeqCst) != 0 {
            sleep_ms(LINGER_MS);
            println!("pingpong: pong powers off {LINGER_MS} ms after closing");
            return ShutdownReason::Poweroff;
        }
    }
}

/// Wait, for at most [`RENDEZVOUS_NS`], until ping's first notification
/// on `port` has come in (taken by the SDK with no handler to run, or
/// still pending); whether it did.
fn first_notification(port: u32) -> bool {
    let deadline = now_ns() + RENDEZVOUS_NS;
    while event::events_received(port) == 0 && !event::is_pending(port) {
        if now_ns() >= deadline {
            return false;
        }
        sleep_ms(1);
    }
    true
}

/// A notification from ping: answer it, or close or crash instead once the
/// command line says so.
fn on_ping(port: u32) {
    let answered = ANSWERED.load(SeqCst);
    RECEIVED.fetch_add(1, SeqCst);
    if answered >= ROUNDS.load(SeqCst) {
        return;
    }
    if answered >= DIE_AFTER.load(SeqCst) {
        println!("pingpong: pong crashing itself after {answered} rounds");
        oxen_guest_sdk::hypercall::shutdown(ShutdownReason::Crash);
    }
    if answered >= CLOSE_AFTER.load(SeqCst) {
        if CLOSED.swap(1, SeqCst) == 0 {
            println!("pingpong: pong closing its port after {answered} rounds");
            let _ = event::close(port);
        }
        return;
    }
    match event::send(port) {
        Ok(()) => {
            ANSWERED.fetch_add(1, SeqCst);
        }
        Err(e) => SEND_ERROR.store(e as u64, SeqCst),
    }
}
