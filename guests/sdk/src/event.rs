//! Event channels as a guest sees them (ABI 1.1, dom0-abi `event.rs`): the
//! upcall entry and its dispatcher, per-port handlers and counters, waiting
//! with a timeout, the bind/send/close helpers, and the `VIRQ_CONTROL`
//! handling every guest gets at start (`rt.rs` calls `start`).
//!
//! **Delivery.** The first handler bound registers `oxen_event_entry` with
//! `vcpu_set_callbacks`. The hypervisor enters it like a trap (a
//! [`TrapFrame`](dom0_abi::TrapFrame) with vector `EVENT_VECTOR` below the
//! red zone, every register as interrupted) with `evtchn_upcall_mask` set.
//! The entry saves the general registers as the trap trampoline
//! (`traps.rs`) does, calls `upcall`, restores them and makes the `iret`
//! hypercall. The stub is a copy of that trampoline rather than a call into
//! it because the trap dispatcher indexes its table by exception vector;
//! both are short and must stay alike. `upcall` runs [`dispatch_pending`]
//! (clear `evtchn_upcall_pending`, swap `evtchn_pending_sel` to 0, take
//! `pending & !mask` of each selected word, clear those pending bits, and
//! deliver each port: count it, latch it for [`wait`], call its handler),
//! then unmasks upcalls and looks at `evtchn_upcall_pending` once more,
//! going round again while it is set. An event that arrives between the
//! unmask and the `iret` nests a second upcall on the same stack; it cannot
//! be lost.
//!
//! **A handler bound late.** A port exists, and can fire, before its
//! handler does: a peer may bind and send as soon as `evtchn_alloc_unbound`
//! returns, a VIRQ may fire right after `evtchn_bind_virq`. A scan that
//! meets a port without a handler counts and latches the event as usual
//! and also marks it unhandled; [`bind_handler`] (with upcalls masked, so
//! no scan runs in between) installs the handler and runs it at once if
//! the port has an unhandled event, so that event is not lost. A [`wait`]
//! that takes the latch takes the unhandled mark too: the event was seen.
//!
//! **Waiting** never depends on what `sched_block` wakes for: [`block_until`]
//! masks upcalls, runs whatever is pending inline, tests its condition and
//! sleeps in `sched_poll` on the ports it was given (plus the control port),
//! whose pending bits stay set while upcalls are masked, so a wake-up cannot
//! slip in between the test and the sleep. Every wait can have a timeout.
//!
//! Handlers run in upcall context, inside a wait, or inside [`bind_handler`]
//! for an event that came before them: they must be short,
//! must not allocate (the heap lock may be held by the code they
//! interrupted) and may print (the console falls back to a private buffer).
//!
//! On an ABI 1.0 hypervisor the event hypercalls fail with `ENOSYS`: the
//! bind helpers return it, `start` skips the control port silently, and
//! waits fall back to `sched_yield` until their timeout.

use crate::{hypercall, info, time};
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use dom0_abi::{
    DomId, EVTCHN_PORTS, EvtchnStatus, GUEST_VA_LIMIT, Hypercall, PAGE_SIZE, POLL_PORTS_MAX, SharedInfo,
    ShutdownReason, Status, VcpuInfo, Virq,
};

/// A port's handler: called with the port number each time it fires.
pub type Handler = fn(u32);

/// The vCPU whose `vcpu_info` the SDK uses: guests run one vCPU.
pub(crate) const VCPU: u32 = 0;

/// 64-bit words in the pending and mask bitmaps.
const WORDS: usize = EVTCHN_PORTS / 64;

/// Ports one [`block_until`] polls at most: the caller's, then the control port.
const POLL_MAX: usize = 128;
const _: () = assert!(POLL_MAX as u64 == POLL_PORTS_MAX);

/// Handlers by port, as `fn` addresses (0: none). Atomics, not a lock: the
/// dispatcher may interrupt code that is binding a handler.
static HANDLERS: [AtomicUsize; EVTCHN_PORTS] = [const { AtomicUsize::new(0) }; EVTCHN_PORTS];
/// Events delivered, by port.
static RECEIVED: [AtomicU64; EVTCHN_PORTS] = [const { AtomicU64::new(0) }; EVTCHN_PORTS];
/// One bit per port: it fired since [`wait`] last consumed it.
static LATCHED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
/// One bit per port: it fired while it had no handler, and no [`wait`] took
/// the event; [`bind_handler`] hands it to the handler.
static UNHANDLED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// Whether the upcall entry is registered.
static CALLBACK: AtomicU8 = AtomicU8::new(CALLBACK_NONE);
const CALLBACK_NONE: u8 = 0;
const CALLBACK_SET: u8 = 1;
const CALLBACK_REFUSED: u8 = 2;

/// How many SDK sections (upcalls, waits) hold upcalls masked now.
static MASKED_SECTIONS: AtomicU32 = AtomicU32::new(0);

/// The `VIRQ_CONTROL` port (0: not bound).
static CONTROL_PORT: AtomicU32 = AtomicU32::new(0);
/// The control handler set by [`on_control`] (0: `default_control`).
static CONTROL_HANDLER: AtomicUsize = AtomicUsize::new(0);

// ---- The shared-info page --------------------------------------------------

/// The shared-info page, where the builder mapped it: `None` before the
/// runtime stored `start_info` (and on the host), or when the address is not
/// a page-aligned lower-half address.
pub(crate) fn shared_info_ptr() -> Option<*mut SharedInfo> {
    let va = info::try_start_info()?.shared_info_va;
    let usable = va != 0 && va.is_multiple_of(PAGE_SIZE) && va.checked_add(PAGE_SIZE)? <= GUEST_VA_LIMIT;
    usable.then_some(va as *mut SharedInfo)
}

/// Atomic views of the words of the shared-info page that the hypervisor
/// writes too. Every method's pointer lies in the page, which the builder
/// maps read-write for the domain's whole life (dom0_abi
/// `GUEST_SHARED_INFO_VA`), at a field offset that dom0-abi's layout asserts
/// keep naturally aligned; the guest only ever touches these words through
/// atomics, and the hypervisor updates them with atomic operations too.
#[derive(Clone, Copy)]
struct Page(*mut SharedInfo);

impl Page {
    fn get() -> Option<Page> {
        shared_info_ptr().map(Page)
    }

    fn byte(self, offset: usize) -> *mut u8 {
        self.0.cast::<u8>().wrapping_add(offset)
    }

    fn vcpu_field(self, field: usize) -> *mut u8 {
        let vcpu =
            core::mem::offset_of!(SharedInfo, vcpu_info) + VCPU as usize * core::mem::size_of::<VcpuInfo>();
        self.byte(vcpu + field)
    }

    fn upcall_pending(self) -> &'static AtomicU8 {
        let p = self.vcpu_field(core::mem::offset_of!(VcpuInfo, evtchn_upcall_pending));
        // SAFETY: a byte of the mapped shared-info page (see `Page`).
        unsafe { AtomicU8::from_ptr(p) }
    }

    fn upcall_mask(self) -> &'static AtomicU8 {
        let p = self.vcpu_field(core::mem::offset_of!(VcpuInfo, evtchn_upcall_mask));
        // SAFETY: a byte of the mapped shared-info page (see `Page`).
        unsafe { AtomicU8::from_ptr(p) }
    }

    fn pending_sel(self) -> &'static AtomicU64 {
        let p = self.vcpu_field(core::mem::offset_of!(VcpuInfo, evtchn_pending_sel));
        // SAFETY: an 8-aligned word of the mapped shared-info page (see `Page`).
        unsafe { AtomicU64::from_ptr(p.cast()) }
    }

    fn pending(self, word: usize) -> &'static AtomicU64 {
        let p = self.byte(core::mem::offset_of!(SharedInfo, evtchn_pending) + (word % WORDS) * 8);
        // SAFETY: word `word % WORDS` of the pending bitmap, 8-aligned, in
        // the mapped shared-info page (see `Page`).
        unsafe { AtomicU64::from_ptr(p.cast()) }
    }

    fn mask(self, word: usize) -> &'static AtomicU64 {
        let p = self.byte(core::mem::offset_of!(SharedInfo, evtchn_mask) + (word % WORDS) * 8);
        // SAFETY: word `word % WORDS` of the mask bitmap, 8-aligned, in the
        // mapped shared-info page (see `Page`).
        unsafe { AtomicU64::from_ptr(p.cast()) }
    }

    fn shutdown_request(self) -> &'static AtomicU32 {
        let p = self.byte(core::mem::offset_of!(SharedInfo, shutdown_request));
        // SAFETY: a 4-aligned word of the mapped shared-info page (see `Page`).
        unsafe { AtomicU32::from_ptr(p.cast()) }
    }

    fn mem_target_pages(self) -> &'static AtomicU64 {
        let p = self.byte(core::mem::offset_of!(SharedInfo, mem_target_pages));
        // SAFETY: an 8-aligned word of the mapped shared-info page (see `Page`).
        unsafe { AtomicU64::from_ptr(p.cast()) }
    }
}

/// The event words one scan works on: the shared-info page, or a fake in
/// the unit tests.
trait EventBits {
    /// Clear `evtchn_upcall_pending`.
    fn clear_upcall_pending(&self);
    /// Swap `evtchn_pending_sel` with 0.
    fn take_pending_sel(&self) -> u64;
    /// Pending word `word`.
    fn pending(&self, word: usize) -> u64;
    /// Mask word `word`.
    fn mask(&self, word: usize) -> u64;
    /// Clear `bits` of pending word `word` (atomically: the hypervisor may
    /// set others meanwhile).
    fn clear_pending(&self, word: usize, bits: u64);
}

impl EventBits for Page {
    fn clear_upcall_pending(&self) {
        self.upcall_pending().store(0, SeqCst);
    }

    fn take_pending_sel(&self) -> u64 {
        self.pending_sel().swap(0, SeqCst)
    }

    fn pending(&self, word: usize) -> u64 {
        Page::pending(*self, word).load(SeqCst)
    }

    fn mask(&self, word: usize) -> u64 {
        Page::mask(*self, word).load(SeqCst)
    }

    fn clear_pending(&self, word: usize, bits: u64) {
        Page::pending(*self, word).fetch_and(!bits, SeqCst);
    }
}

/// One scan: clear the upcall flag, take the selector, and hand every
/// pending, unmasked port to `deliver` after clearing its pending bit.
/// Masked ports stay pending. Returns how many ports were delivered.
fn scan(bits: &impl EventBits, mut deliver: impl FnMut(u32)) -> usize {
    bits.clear_upcall_pending();
    let mut sel = bits.take_pending_sel();
    let mut delivered = 0;
    while sel != 0 {
        let word = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        let mut ready = bits.pending(word) & !bits.mask(word);
        if ready == 0 {
            continue;
        }
        bits.clear_pending(word, ready);
        while ready != 0 {
            let bit = ready.trailing_zeros();
            ready &= ready - 1;
            // `word < 64` and `bit < 64`, so the port is below 4096.
            deliver(u32::try_from(word).unwrap_or(0) * 64 + bit);
            delivered += 1;
        }
    }
    delivered
}

// ---- Per-port bookkeeping ----------------------------------------------------

/// The table index of `port`: `EINVAL` for port 0 and ports past the last.
fn index(port: u32) -> Result<usize, Status> {
    match usize::try_from(port) {
        Ok(i) if i > 0 && i < EVTCHN_PORTS => Ok(i),
        _ => Err(Status::EINVAL),
    }
}

/// The bitmap word and bit of a port index.
fn word_bit(i: usize) -> (usize, u64) {
    (i / 64, 1u64 << (i % 64))
}

/// The handler bound to table index `i`.
fn handler_at(i: usize) -> Option<Handler> {
    let raw = HANDLERS.get(i)?.load(SeqCst);
    if raw == 0 {
        return None;
    }
    // SAFETY: `HANDLERS` only ever holds 0 or a value `set_slot` made from
    // a `Handler` with `as usize`; a function pointer round-trips through
    // `usize` unchanged on x86-64, and functions live as long as the image.
    Some(unsafe { core::mem::transmute::<usize, Handler>(raw) })
}

/// Store `handler` (or none) for table index `i`.
fn set_slot(i: usize, handler: Option<Handler>) {
    if let Some(slot) = HANDLERS.get(i) {
        slot.store(handler.map_or(0, |h| h as usize), SeqCst);
    }
}

/// Count `port`, latch it for [`wait`], and call its handler (or, with
/// none bound, keep the event for the next one).
fn deliver(port: u32) {
    let Ok(i) = index(port) else { return };
    RECEIVED[i].fetch_add(1, SeqCst);
    let (w, bit) = word_bit(i);
    LATCHED[w].fetch_or(bit, SeqCst);
    match handler_at(i) {
        Some(handler) => handler(port),
        None => {
            UNHANDLED[w].fetch_or(bit, SeqCst);
        }
    }
}

/// Whether `port` fired since the last call, clearing the latch (and the
/// unhandled mark: the caller has seen the event).
fn take_latched(port: u32) -> bool {
    let Ok(i) = index(port) else { return false };
    let (w, bit) = word_bit(i);
    UNHANDLED[w].fetch_and(!bit, SeqCst);
    LATCHED[w].fetch_and(!bit, SeqCst) & bit != 0
}

/// Install `handler` for table index `i` and run it once if the port fired
/// while it had none. Call it with upcalls masked, so that no scan runs
/// between the two steps.
fn attach(i: usize, handler: Handler) {
    set_slot(i, Some(handler));
    let (w, bit) = word_bit(i);
    if UNHANDLED[w].fetch_and(!bit, SeqCst) & bit != 0 {
        // `i` is an index below `EVTCHN_PORTS`, so it fits.
        handler(u32::try_from(i).unwrap_or(0));
    }
}

/// Events delivered on `port` since the domain started (0 for a bad port).
pub fn events_received(port: u32) -> u64 {
    index(port).map_or(0, |i| RECEIVED[i].load(SeqCst))
}

// ---- Upcalls -------------------------------------------------------------------

core::arch::global_asm!(
    ".pushsection .text.oxen_event,\"ax\",@progbits",
    ".balign 16",
    ".global oxen_event_entry",
    ".type oxen_event_entry, @function",
    "oxen_event_entry:",
    // rsp is at the TrapFrame; save every general register below it, as
    // the trap trampoline (traps.rs) does.
    "push rsi",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rbx, rsp",
    "and rsp, -16",
    "cld",
    "call {upcall}",
    "mov rsp, rbx",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "pop rsi",
    // rsp is at the frame again: rax, rcx, r11, rip, rflags, rsp come back
    // from it.
    "mov eax, {iret}",
    "syscall",
    "ud2",
    ".size oxen_event_entry, . - oxen_event_entry",
    ".popsection",
    upcall = sym upcall,
    iret = const Hypercall::Iret as u64,
);

unsafe extern "C" {
    fn oxen_event_entry();
}

/// Called by `oxen_event_entry` with upcalls masked (delivery set the mask).
extern "C" fn upcall() {
    MASKED_SECTIONS.fetch_add(1, SeqCst);
    dispatch_pending();
    MASKED_SECTIONS.fetch_sub(1, SeqCst);
    unmask_upcalls();
}

/// Deliver every pending, unmasked event now: count and latch each port and
/// run its handler. Call it with upcalls masked (the upcall, [`block_until`]).
pub fn dispatch_pending() -> usize {
    Page::get().map_or(0, |page| scan(&page, deliver))
}

/// Mask upcalls for an SDK section; the previous mask, for [`restore_upcalls`].
fn mask_upcalls() -> u8 {
    MASKED_SECTIONS.fetch_add(1, SeqCst);
    Page::get().map_or(1, |page| page.upcall_mask().swap(1, SeqCst))
}

/// End the section [`mask_upcalls`] began: put the mask back as it was;
/// when that unmasks, deliver what arrived meanwhile first.
fn restore_upcalls(previous: u8) {
    MASKED_SECTIONS.fetch_sub(1, SeqCst);
    if previous == 0 {
        unmask_upcalls();
    }
}

/// Clear the upcall mask; while an upcall is pending, mask again and
/// deliver, so nothing waits for the next entry into the hypervisor.
fn unmask_upcalls() {
    let Some(page) = Page::get() else { return };
    loop {
        page.upcall_mask().store(0, SeqCst);
        if page.upcall_pending().load(SeqCst) == 0 {
            return;
        }
        page.upcall_mask().store(1, SeqCst);
        dispatch_pending();
    }
}

/// Register the upcall entry (once) and let upcalls in, unless an SDK
/// section holds them masked (it unmasks when it ends).
fn ensure_callback() {
    if CALLBACK.load(SeqCst) != CALLBACK_NONE {
        return;
    }
    let entry = oxen_event_entry as *const () as u64;
    if hypercall::set_callbacks(entry).is_ok() {
        CALLBACK.store(CALLBACK_SET, SeqCst);
        if MASKED_SECTIONS.load(SeqCst) == 0 {
            unmask_upcalls();
        }
    } else {
        // Events are then seen only by waits, which scan inline.
        CALLBACK.store(CALLBACK_REFUSED, SeqCst);
    }
}

// ---- Handlers, masks, pending bits ------------------------------------------

/// Call `handler` each time `port` fires (replacing any handler it had),
/// and once now if the port fired while it had no handler and no wait took
/// that event (see "A handler bound late" in the module docs); registers
/// the upcall entry on first use (normally at start, for the control port)
/// and lets upcalls in. `EINVAL` for a bad port.
pub fn bind_handler(port: u32, handler: Handler) -> Result<(), Status> {
    let i = index(port)?;
    let previous = mask_upcalls();
    attach(i, handler);
    restore_upcalls(previous);
    ensure_callback();
    Ok(())
}

/// Remove `port`'s handler: its events are only counted and latched (and
/// kept for the next handler bound, unless a wait takes them).
pub fn unbind(port: u32) {
    if let Ok(i) = index(port) {
        set_slot(i, None);
    }
}

/// Mask `port`: it can still become pending, but raises no upcall.
pub fn mask(port: u32) {
    if let (Ok(i), Some(page)) = (index(port), Page::get()) {
        let (w, bit) = word_bit(i);
        page.mask(w).fetch_or(bit, SeqCst);
    }
}

/// Unmask `port`: clear its mask bit, then `evtchn_unmask` so that an event
/// that came while it was masked is delivered.
pub fn unmask(port: u32) -> Result<(), Status> {
    let i = index(port)?;
    if let Some(page) = Page::get() {
        let (w, bit) = word_bit(i);
        page.mask(w).fetch_and(!bit, SeqCst);
    }
    hypercall::evtchn_unmask(port)
}

/// Whether `port`'s pending bit is set (an event not yet dispatched).
pub fn is_pending(port: u32) -> bool {
    match (index(port), Page::get()) {
        (Ok(i), Some(page)) => {
            let (w, bit) = word_bit(i);
            page.pending(w).load(SeqCst) & bit != 0
        }
        _ => false,
    }
}

/// Clear `port`'s pending bit, its latch and its unhandled mark: forget an
/// event without running its handler.
pub fn clear_pending(port: u32) {
    if let (Ok(i), Some(page)) = (index(port), Page::get()) {
        let (w, bit) = word_bit(i);
        page.pending(w).fetch_and(!bit, SeqCst);
    }
    take_latched(port);
}

/// Take a pending event on a masked `port`, which no scan delivers: clear
/// its bit and count it. (An unmasked port's event goes through the scan,
/// so that its handler runs.)
fn take_masked_pending(port: u32) -> bool {
    let (Ok(i), Some(page)) = (index(port), Page::get()) else {
        return false;
    };
    let (w, bit) = word_bit(i);
    if page.mask(w).load(SeqCst) & bit == 0 {
        return false;
    }
    let was = page.pending(w).fetch_and(!bit, SeqCst) & bit != 0;
    if was {
        RECEIVED[i].fetch_add(1, SeqCst);
    }
    was
}

// ---- Waiting ---------------------------------------------------------------------

/// Run pending handlers until `done()` holds or `timeout_ns` of system time
/// passed (0: no limit); `true` if `done()` held. Sleeps in `sched_poll` on
/// `ports` (and the control port, so a shutdown request is honoured), so
/// `done` should only change when one of them fires. Upcalls stay masked
/// meanwhile; handlers run here instead. Without event channels (ABI 1.0),
/// or when the hypervisor refuses the list (a port closed meanwhile), it
/// yields in a loop until `done()` or the timeout.
pub fn block_until(ports: &[u32], timeout_ns: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = (timeout_ns != 0).then(|| time::now_ns().saturating_add(timeout_ns));
    let mut list = [0u32; POLL_MAX];
    let n = poll_list(ports, CONTROL_PORT.load(SeqCst), &mut list);
    let previous = mask_upcalls();
    let met = loop {
        dispatch_pending();
        if done() {
            break true;
        }
        let sleep_ns = match deadline {
            None => 0,
            Some(deadline) => match deadline.checked_sub(time::now_ns()) {
                Some(left) if left > 0 => left,
                _ => break false,
            },
        };
        let slept = if n == 0 && sleep_ns == 0 {
            hypercall::sched_block();
            Ok(true)
        } else {
            hypercall::sched_poll(&list[..n], sleep_ns)
        };
        if slept.is_err() {
            // ABI 1.0 (ENOSYS), or a list the hypervisor refused: let
            // others run and look again.
            hypercall::sched_yield();
        }
    };
    restore_upcalls(previous);
    met
}

/// `ports` and then `control` (if bound and not already there), as many as
/// fit in `out`; how many were written.
fn poll_list(ports: &[u32], control: u32, out: &mut [u32]) -> usize {
    let mut n = 0;
    let extra = (control != 0 && !ports.contains(&control)).then_some(control);
    for port in ports.iter().copied().chain(extra) {
        if let Some(slot) = out.get_mut(n) {
            *slot = port;
            n += 1;
        }
    }
    n
}

/// Block until `port` fires (an event since the last wait on it), however
/// long that takes.
pub fn wait(port: u32) {
    wait_timeout(port, 0);
}

/// Block until `port` fires or `timeout_ns` of system time passed (0: no
/// limit); `true` if it fired. Consumes the event: a delivered one's latch,
/// or the pending bit of a masked port.
pub fn wait_timeout(port: u32, timeout_ns: u64) -> bool {
    block_until(&[port], timeout_ns, || {
        take_latched(port) || take_masked_pending(port)
    })
}

// ---- Binding and sending ------------------------------------------------------

/// A port raised for `virq` on this vCPU.
pub fn bind_virq(virq: Virq) -> Result<u32, Status> {
    hypercall::evtchn_bind_virq(virq, VCPU)
}

/// A new port that domain `remote` may bind to.
pub fn alloc_unbound(remote: DomId) -> Result<u32, Status> {
    hypercall::evtchn_alloc_unbound(remote)
}

/// Connect to port `remote_port` that domain `remote` allocated for us: our port.
pub fn bind_interdomain(remote: DomId, remote_port: u32) -> Result<u32, Status> {
    hypercall::evtchn_bind_interdomain(remote, remote_port)
}

/// A port that signals this domain's own vCPU `vcpu`.
pub fn bind_ipi(vcpu: u32) -> Result<u32, Status> {
    hypercall::evtchn_bind_ipi(vcpu)
}

/// Notify the other end of `port` (`ENOTCONN` once it has closed).
pub fn send(port: u32) -> Result<(), Status> {
    hypercall::evtchn_send(port)
}

/// Close `port` and forget its handler and any latched or unhandled event.
pub fn close(port: u32) -> Result<(), Status> {
    unbind(port);
    let result = hypercall::evtchn_close(port);
    take_latched(port);
    result
}

/// What `port` is (`EVTCHN_*` state, remote end).
pub fn status(port: u32) -> Result<EvtchnStatus, Status> {
    hypercall::evtchn_status(port)
}

// ---- VIRQ_CONTROL -------------------------------------------------------------

/// What the toolstack asks of this domain (`SharedInfo::shutdown_request`
/// and `mem_target_pages`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlRequest {
    /// A shutdown, with its reason.
    pub shutdown: Option<ShutdownReason>,
    /// The memory to balloon to, in pages.
    pub mem_target_pages: Option<u64>,
}

impl ControlRequest {
    /// Decode the raw words: `shutdown_request` is 0 or 1 + the reason (an
    /// unknown reason reads as none), `mem_target_pages` 0 or the target.
    pub fn decode(shutdown_request: u32, mem_target_pages: u64) -> ControlRequest {
        let shutdown = shutdown_request
            .checked_sub(1)
            .and_then(|r| ShutdownReason::try_from(u64::from(r)).ok());
        ControlRequest {
            shutdown,
            mem_target_pages: (mem_target_pages != 0).then_some(mem_target_pages),
        }
    }
}

/// The toolstack's current request, read from the shared-info page.
pub fn control_request() -> ControlRequest {
    match Page::get() {
        Some(page) => ControlRequest::decode(
            page.shutdown_request().load(SeqCst),
            page.mem_target_pages().load(SeqCst),
        ),
        None => ControlRequest::default(),
    }
}

/// Handle `VIRQ_CONTROL` with `handler` instead of the default (which
/// honours a shutdown request and ignores memory targets). It runs in
/// handler context (see the module docs) with the current request.
pub fn on_control(handler: fn(ControlRequest)) {
    CONTROL_HANDLER.store(handler as usize, SeqCst);
}

/// The `VIRQ_CONTROL` port, if the SDK bound one at start.
pub fn control_port() -> Option<u32> {
    Some(CONTROL_PORT.load(SeqCst)).filter(|&p| p != 0)
}

/// The default control handler: shut down as asked, saying so.
fn default_control(request: ControlRequest) {
    if let Some(reason) = request.shutdown {
        crate::println!("{}: shutdown requested ({})", info::name(), reason.name());
        hypercall::shutdown(reason);
    }
}

/// `VIRQ_CONTROL` fired: pass the request to the control handler.
fn control_event(_port: u32) {
    let raw = CONTROL_HANDLER.load(SeqCst);
    let handler: fn(ControlRequest) = if raw == 0 {
        default_control
    } else {
        // SAFETY: `CONTROL_HANDLER` only holds 0 or a `fn(ControlRequest)`
        // stored by `on_control` with `as usize`; function pointers
        // round-trip through `usize` on x86-64.
        unsafe { core::mem::transmute::<usize, fn(ControlRequest)>(raw) }
    };
    handler(control_request());
}

/// Start-up (`rt.rs`, before the guest's main): bind `VIRQ_CONTROL` and
/// handle it, then act on a request made before the port existed. Any
/// failure (`ENOSYS` from an ABI 1.0 hypervisor) leaves the guest without
/// a control port, silently.
#[cfg_attr(not(target_os = "none"), allow(dead_code))] // Used by the guest runtime (rt.rs).
pub(crate) fn start() {
    let Ok(port) = bind_virq(Virq::Control) else {
        return;
    };
    CONTROL_PORT.store(port, SeqCst);
    if bind_handler(port, control_event).is_ok() {
        control_event(port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::{Cell, RefCell};
    use std::vec::Vec;

    /// Event words in plain memory.
    #[derive(Default)]
    struct Fake {
        upcall_pending: Cell<u8>,
        sel: Cell<u64>,
        pending: RefCell<Vec<u64>>,
        mask: RefCell<Vec<u64>>,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                pending: RefCell::new(std::vec![0; WORDS]),
                mask: RefCell::new(std::vec![0; WORDS]),
                ..Fake::default()
            }
        }

        /// What the hypervisor does for an event on `port`.
        fn raise(&self, port: usize) {
            let (w, bit) = word_bit(port);
            self.pending.borrow_mut()[w] |= bit;
            if self.mask.borrow()[w] & bit == 0 {
                self.sel.set(self.sel.get() | 1 << w);
                self.upcall_pending.set(1);
            }
        }
    }

    impl EventBits for Fake {
        fn clear_upcall_pending(&self) {
            self.upcall_pending.set(0);
        }
        fn take_pending_sel(&self) -> u64 {
            self.sel.replace(0)
        }
        fn pending(&self, word: usize) -> u64 {
            self.pending.borrow()[word]
        }
        fn mask(&self, word: usize) -> u64 {
            self.mask.borrow()[word]
        }
        fn clear_pending(&self, word: usize, bits: u64) {
            self.pending.borrow_mut()[word] &= !bits;
        }
    }

    #[test]
    fn a_scan_delivers_pending_unmasked_ports_in_order() {
        let f = Fake::new();
        f.mask.borrow_mut()[2] = 1 << 1; // port 129 is masked
        for port in [3, 1, 64 * 2 + 1, 64 * 2 + 5, 4095] {
            f.raise(port);
        }
        let mut seen = Vec::new();
        let n = scan(&f, |p| seen.push(p));
        assert_eq!(seen, [1, 3, 133, 4095]);
        assert_eq!(n, 4);
        assert_eq!(f.upcall_pending.get(), 0);
        assert_eq!(f.sel.get(), 0);
        // The masked port is still pending; the rest were cleared.
        assert_eq!(f.pending.borrow()[2], 1 << 1);
        assert_eq!(f.pending.borrow()[0], 0);
        assert_eq!(f.pending.borrow()[63], 0);
        // Nothing new: nothing delivered.
        assert_eq!(scan(&f, |_| panic!("nothing is pending")), 0);
    }

    #[test]
    fn a_selector_bit_without_pending_ports_is_harmless() {
        let f = Fake::new();
        f.sel.set(1 << 7 | 1 << 63);
        f.upcall_pending.set(1);
        assert_eq!(scan(&f, |_| panic!("nothing is pending")), 0);
        assert_eq!((f.sel.get(), f.upcall_pending.get()), (0, 0));
    }

    static CALLS: AtomicU64 = AtomicU64::new(0);
    fn count_call(port: u32) {
        assert_eq!(port, 77);
        CALLS.fetch_add(1, SeqCst);
    }

    #[test]
    fn delivery_counts_latches_and_calls_the_handler() {
        set_slot(77, Some(count_call));
        deliver(77);
        deliver(77);
        assert_eq!(events_received(77), 2);
        assert_eq!(CALLS.load(SeqCst), 2);
        assert!(take_latched(77));
        assert!(!take_latched(77));
        set_slot(77, None);
        deliver(77);
        assert_eq!(CALLS.load(SeqCst), 2);
        assert_eq!(events_received(77), 3);
        // Ports out of range are refused or ignored.
        assert_eq!(index(0), Err(Status::EINVAL));
        let past = u32::try_from(EVTCHN_PORTS).expect("4096 fits");
        assert_eq!(index(past), Err(Status::EINVAL));
        deliver(0);
        assert_eq!(events_received(0), 0);
        assert!(!take_latched(u32::MAX));
    }

    static LATE_CALLS: AtomicU64 = AtomicU64::new(0);
    fn count_late_call(port: u32) {
        assert_eq!(port, 78);
        LATE_CALLS.fetch_add(1, SeqCst);
    }

    /// The pingpong rendezvous: the peer's first event came before the
    /// handler was bound. The handler gets it when it is bound, once.
    #[test]
    fn an_event_before_the_handler_reaches_it_when_it_is_bound() {
        deliver(78);
        assert_eq!(LATE_CALLS.load(SeqCst), 0);
        attach(78, count_late_call);
        assert_eq!(LATE_CALLS.load(SeqCst), 1);
        // Handed over once: binding again (or a replacement) runs nothing.
        attach(78, count_late_call);
        assert_eq!(LATE_CALLS.load(SeqCst), 1);
        // Later events go to the handler as they come, and only then.
        deliver(78);
        assert_eq!(LATE_CALLS.load(SeqCst), 2);
        attach(78, count_late_call);
        assert_eq!(LATE_CALLS.load(SeqCst), 2);
        // An event a wait took is not handed over again.
        set_slot(78, None);
        deliver(78);
        assert!(take_latched(78));
        attach(78, count_late_call);
        assert_eq!(LATE_CALLS.load(SeqCst), 2);
        set_slot(78, None);
    }

    #[test]
    fn poll_lists_add_the_control_port_once() {
        let mut out = [0u32; 4];
        assert_eq!(poll_list(&[5, 6], 1, &mut out), 3);
        assert_eq!(out[..3], [5, 6, 1]);
        assert_eq!(poll_list(&[1, 6], 1, &mut out), 2);
        assert_eq!(poll_list(&[5], 0, &mut out), 1);
        assert_eq!(poll_list(&[1, 2, 3, 4, 5], 9, &mut out), 4);
        assert_eq!(poll_list(&[], 0, &mut out), 0);
    }

    #[test]
    fn control_requests_decode() {
        assert_eq!(ControlRequest::decode(0, 0), ControlRequest::default());
        assert_eq!(
            ControlRequest::decode(1 + ShutdownReason::Reboot as u32, 0).shutdown,
            Some(ShutdownReason::Reboot)
        );
        assert_eq!(
            ControlRequest::decode(1, 0).shutdown,
            Some(ShutdownReason::Poweroff)
        );
        assert_eq!(ControlRequest::decode(99, 0).shutdown, None);
        assert_eq!(ControlRequest::decode(0, 2048).mem_target_pages, Some(2048));
    }
}
