//! The W^X check from outside: at a moment a scenario picks
//! (`qmp_check_after = "TEXT"`, when TEXT appears on the serial console) the
//! runner holds the machine still, asks QEMU for the page tables the CPU is
//! using (`info tlb` through QMP's `human-monitor-command`), and fails the
//! scenario on any upper-half page (the hypervisor's half, at or above
//! [`UPPER_HALF`]) that is writable and executable, or that ring 3 may
//! touch. Lower-half mappings belong to the guests and are not judged. This
//! is Hedron's `qemu-boot` integration test, for Oxen.
//!
//! **Holding the machine.** The boot scenarios leave QEMU right after the
//! line they are checked after, far faster than a QMP round trip, so the
//! check cannot race the hypervisor. QEMU starts with the CPU held (`-S`),
//! a QMP socket and a gdbstub socket ([`qemu::monitor_args`]). Through the
//! gdbstub the checker puts a breakpoint on every instruction that writes
//! the `isa-debug-exit` port ([`exit_sites`]: `out %eax,(%dx)` right after
//! `mov $0xf4,%dx`), then lets the CPU go. When the text appears it stops
//! the machine with QMP `stop`, reads `info tlb`, and resumes it (gdb
//! detach: the breakpoints go and the CPU runs on). Should the hypervisor
//! reach an exit first, the breakpoint holds it there, before QEMU is gone:
//! the checker waits a moment for the text (its bytes left the serial port
//! before the exit), checks, and detaches, and the exit happens.
//!
//! `info tlb` prints one line per leaf mapping, `VADDR: PADDR FLAGS` with
//! nine flag characters in this order (QEMU `target/i386/monitor.c`,
//! `print_pte`): X (NX set), G (global), P (large page), D (dirty),
//! A (accessed), C (PCD), T (PWT), U (user), W (writable); `-` when clear.
//! The flags are the leaf entry's own.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Context, Result, error};
use crate::qemu;

/// Where the hypervisor's half of every address space starts.
pub const UPPER_HALF: u64 = 0xffff_8000_0000_0000;
/// The I/O port of `isa-debug-exit` (`qemu::DEBUG_EXIT_DEVICE`).
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// How long the checker waits for QEMU's sockets to appear.
const CONNECT_LIMIT: Duration = Duration::from_secs(15);
/// How often the checker looks at the console and the gdbstub.
const POLL: Duration = Duration::from_millis(2);
/// How long the text may take to show up once the hypervisor is held at
/// an exit (it was written to the serial port before).
const LATE_TEXT: Duration = Duration::from_secs(2);
/// Limit for one QMP answer (`info tlb` of a big machine is long).
const QMP_LIMIT: Duration = Duration::from_secs(60);

/// One leaf mapping from `info tlb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Virtual address.
    pub va: u64,
    /// Physical address.
    pub pa: u64,
    /// NX set.
    pub nx: bool,
    /// Global.
    pub global: bool,
    /// A large page (2 MiB or 1 GiB).
    pub large: bool,
    /// Accessible from ring 3.
    pub user: bool,
    /// Writable.
    pub writable: bool,
}

/// Parses the text of `info tlb`: every non-empty line must be a mapping.
pub fn parse_tlb(text: &str) -> std::result::Result<Vec<Mapping>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| parse_line(line).ok_or_else(|| format!("cannot read this 'info tlb' line: {line:?}")))
        .collect()
}

/// One `info tlb` line: `ffff800000000000: 0000000000000000 XGPDA---W`.
fn parse_line(line: &str) -> Option<Mapping> {
    let (va, rest) = line.split_once(':')?;
    let mut words = rest.split_whitespace();
    let (pa, flags) = (words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    let flags = flags.as_bytes();
    let expected = b"XGPDACTUW";
    if flags.len() != expected.len() || !flags.iter().zip(expected).all(|(f, e)| f == e || *f == b'-') {
        return None;
    }
    let set = |i: usize| flags[i] != b'-';
    Some(Mapping {
        va: u64::from_str_radix(va.trim(), 16).ok()?,
        pa: u64::from_str_radix(pa, 16).ok()?,
        nx: set(0),
        global: set(1),
        large: set(2),
        user: set(7),
        writable: set(8),
    })
}

/// What is wrong with the upper half: one line per offending mapping.
pub fn violations(mappings: &[Mapping]) -> Vec<String> {
    let mut out = Vec::new();
    for m in mappings.iter().filter(|m| m.va >= UPPER_HALF) {
        if m.writable && !m.nx {
            out.push(format!("{:#x} -> {:#x} is writable and executable", m.va, m.pa));
        }
        if m.user {
            out.push(format!("{:#x} -> {:#x} is accessible from ring 3", m.va, m.pa));
        }
    }
    out
}

/// The address of every `out %eax,(%dx)` (and `out %al,(%dx)`) that
/// follows, within a few bytes, a load of the debug-exit port into `dx`
/// (`mov $0xf4,%dx` or `mov $0xf4,%edx`), in the executable segments of the
/// ELF image `elf`. A false match is harmless: a breakpoint that is never
/// reached.
pub fn exit_sites(elf: &[u8]) -> Result<Vec<u64>> {
    let field = |at: usize, len: usize| -> Result<u64> {
        let bytes = elf.get(at..at + len).context("the hypervisor ELF is truncated")?;
        let mut word = [0u8; 8];
        word[..len].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(word))
    };
    if elf.get(..5) != Some(&b"\x7fELF\x02"[..]) {
        return Err(error("the hypervisor image is not an ELF64 file"));
    }
    let port = DEBUG_EXIT_PORT.to_le_bytes();
    let loads: [Vec<u8>; 2] = [
        vec![0x66, 0xba, port[0], port[1]],
        vec![0xba, port[0], port[1], 0, 0],
    ];
    let (phoff, phentsize, phnum) = (field(0x20, 8)?, field(0x36, 2)?, field(0x38, 2)?);
    let mut sites = Vec::new();
    for i in 0..phnum {
        let ph = usize::try_from(phoff + i * phentsize).context("program header offset")?;
        let (kind, flags) = (field(ph, 4)?, field(ph + 4, 4)?);
        if kind != 1 || flags & 1 == 0 {
            continue; // Not a PT_LOAD with PF_X.
        }
        let offset = usize::try_from(field(ph + 8, 8)?).context("segment offset")?;
        let vaddr = field(ph + 16, 8)?;
        let size = usize::try_from(field(ph + 32, 8)?).context("segment size")?;
        let code = elf
            .get(offset..offset + size)
            .context("a segment runs past the end of the ELF")?;
        for load in &loads {
            for at in (0..code.len()).filter(|&at| code[at..].starts_with(load)) {
                let after = at + load.len();
                let window = code.get(after..(after + 8).min(code.len())).unwrap_or_default();
                if let Some(k) = window.iter().position(|&b| b == 0xef || b == 0xee) {
                    sites.push(vaddr + (after + k) as u64);
                }
            }
        }
    }
    sites.sort_unstable();
    sites.dedup();
    Ok(sites)
}

/// The sockets of one QEMU run, in a private temporary directory (Unix
/// socket paths must stay short), removed when dropped.
#[derive(Debug)]
pub struct Monitor {
    dir: PathBuf,
}

impl Monitor {
    /// A fresh socket directory.
    pub fn new() -> Result<Monitor> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("oxen-qmp-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Monitor { dir })
    }

    /// The QMP socket.
    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    /// The gdbstub socket.
    pub fn gdb(&self) -> PathBuf {
        self.dir.join("gdb.sock")
    }

    /// QEMU arguments for both sockets, the CPU held at reset.
    pub fn qemu_args(&self) -> Vec<OsString> {
        qemu::monitor_args(&self.qmp(), &self.gdb())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects to a Unix socket QEMU is about to create.
fn connect(path: &Path, alive: &dyn Fn() -> bool) -> std::result::Result<UnixStream, String> {
    let limit = Instant::now() + CONNECT_LIMIT;
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= limit || !alive() => {
                return Err(format!("cannot connect to {}: {e}", path.display()));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// A QMP connection: one JSON object per line each way.
struct Qmp {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Qmp {
    fn open(path: &Path, alive: &dyn Fn() -> bool) -> std::result::Result<Qmp, String> {
        let stream = connect(path, alive)?;
        stream
            .set_read_timeout(Some(QMP_LIMIT))
            .map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        let mut qmp = Qmp {
            writer: stream,
            reader,
        };
        let greeting = qmp.line()?;
        if !greeting.contains("\"QMP\"") {
            return Err(format!("QMP greeted with {greeting:?}"));
        }
        qmp.execute(r#"{"execute":"qmp_capabilities"}"#)?;
        Ok(qmp)
    }

    fn line(&mut self) -> std::result::Result<String, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("QMP closed the connection".to_string()),
            Ok(_) => Ok(line),
            Err(e) => Err(format!("reading QMP: {e}")),
        }
    }

    /// Sends a command; its answer line (events in between are skipped).
    fn execute(&mut self, command: &str) -> std::result::Result<String, String> {
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .map_err(|e| format!("writing to QMP: {e}"))?;
        loop {
            let line = self.line()?;
            if line.contains("\"return\"") {
                return Ok(line);
            }
            if line.contains("\"error\"") {
                return Err(format!("QMP refused {command}: {}", line.trim()));
            }
        }
    }

    /// The text an HMP command prints.
    fn human(&mut self, command: &str) -> std::result::Result<String, String> {
        let request =
            format!(r#"{{"execute":"human-monitor-command","arguments":{{"command-line":"{command}"}}}}"#);
        let answer = self.execute(&request)?;
        json_string_after(&answer, "\"return\"").ok_or_else(|| format!("cannot read QMP's answer {answer:?}"))
    }
}

/// The JSON string value that follows `key` (and a colon) in `json`.
fn json_string_after(json: &str, key: &str) -> Option<String> {
    let rest = json.get(json.find(key)? + key.len()..)?.trim_start();
    let mut chars = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?.chars();
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
}

/// A gdbstub connection (GDB remote serial protocol, acknowledged mode).
struct Gdb {
    stream: UnixStream,
}

impl Gdb {
    fn send(&mut self, packet: &str) -> std::result::Result<(), String> {
        let sum = packet.bytes().fold(0u8, u8::wrapping_add);
        self.stream
            .write_all(format!("${packet}#{sum:02x}").as_bytes())
            .map_err(|e| format!("writing to the gdbstub: {e}"))?;
        // The stub acknowledges with '+'.
        let mut ack = [0u8; 1];
        self.stream
            .set_read_timeout(Some(QMP_LIMIT))
            .map_err(|e| e.to_string())?;
        self.stream
            .read_exact(&mut ack)
            .map_err(|e| format!("no acknowledgement from the gdbstub: {e}"))?;
        if ack[0] != b'+' {
            return Err(format!(
                "the gdbstub answered {:?} instead of '+'",
                ack[0] as char
            ));
        }
        Ok(())
    }

    /// The next packet, if one starts within `wait`.
    fn receive(&mut self, wait: Duration) -> std::result::Result<Option<String>, String> {
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => return Err("the gdbstub closed the connection".to_string()),
                Ok(_) if byte[0] == b'$' => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(format!("reading the gdbstub: {e}")),
            }
        }
        self.stream
            .set_read_timeout(Some(QMP_LIMIT))
            .map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        loop {
            self.stream
                .read_exact(&mut byte)
                .map_err(|e| format!("reading the gdbstub: {e}"))?;
            if byte[0] == b'#' {
                break;
            }
            body.push(byte[0]);
        }
        let mut sum = [0u8; 2];
        self.stream
            .read_exact(&mut sum)
            .map_err(|e| format!("reading the gdbstub: {e}"))?;
        self.stream
            .write_all(b"+")
            .map_err(|e| format!("writing to the gdbstub: {e}"))?;
        Ok(Some(String::from_utf8_lossy(&body).into_owned()))
    }

    /// Sends a packet and waits for its answer.
    fn request(&mut self, packet: &str) -> std::result::Result<String, String> {
        self.send(packet)?;
        self.receive(QMP_LIMIT)?
            .ok_or_else(|| format!("the gdbstub did not answer {packet}"))
    }
}

/// Reads the page tables through QMP and judges them: a summary, or why
/// the check fails.
fn judge(qmp: &mut Qmp) -> std::result::Result<String, String> {
    let text = qmp.human("info tlb")?;
    let mappings = parse_tlb(&text)?;
    let upper = mappings.iter().filter(|m| m.va >= UPPER_HALF).count();
    if upper == 0 {
        return Err(format!(
            "'info tlb' shows no upper-half mapping ({} lines)",
            mappings.len()
        ));
    }
    let bad = violations(&mappings);
    if bad.is_empty() {
        Ok(format!(
            "{upper} upper-half mappings: none writable and executable, none user-accessible ({} lower-half mappings not judged)",
            mappings.len() - upper
        ))
    } else {
        let shown: Vec<&str> = bad.iter().take(5).map(String::as_str).collect();
        Err(format!(
            "{} bad upper-half mapping(s) of {upper}: {}",
            bad.len(),
            shown.join("; ")
        ))
    }
}

/// What the checker reports: a summary when the page tables passed.
pub type Verdict = std::result::Result<String, String>;

/// Runs the check on a QEMU started with `monitor.qemu_args()`: lets the
/// CPU go, waits for `seen()` (the trigger text is on the console), holds
/// the machine, judges `info tlb`, and lets it run on. `alive()` says
/// whether QEMU still runs; `elf` is the hypervisor image it boots.
pub fn check(
    monitor: &Monitor,
    elf: &[u8],
    trigger: &str,
    seen: &dyn Fn() -> bool,
    alive: &dyn Fn() -> bool,
    deadline: Instant,
) -> Verdict {
    let sites = exit_sites(elf).map_err(|e| e.to_string())?;
    let mut qmp = Qmp::open(&monitor.qmp(), alive)?;
    let mut gdb = match connect(&monitor.gdb(), alive) {
        Ok(stream) => Gdb { stream },
        Err(e) => {
            // Without the stub nothing holds the CPU: let it go and report.
            let _ = qmp.execute(r#"{"execute":"cont"}"#);
            return Err(e);
        }
    };
    let mut set = 0;
    for site in &sites {
        if gdb.request(&format!("Z0,{site:x},1"))? == "OK" {
            set += 1;
        }
    }
    if set == 0 {
        let _ = qmp.execute(r#"{"execute":"cont"}"#);
        return Err(format!(
            "the gdbstub took none of {} exit breakpoints",
            sites.len()
        ));
    }
    gdb.send("c")?;
    let verdict = loop {
        if seen() {
            qmp.execute(r#"{"execute":"stop"}"#)?;
            break judge(&mut qmp).map(|s| format!("{s}; machine stopped at the text"));
        }
        if let Some(stop) = gdb.receive(POLL)? {
            // Held at an exit: the text, if it came, is on its way.
            let limit = Instant::now() + LATE_TEXT;
            while !seen() && Instant::now() < limit {
                thread::sleep(POLL);
            }
            if seen() {
                break judge(&mut qmp).map(|s| format!("{s}; machine held at its exit"));
            }
            break Err(format!(
                "the hypervisor reached an exit ({stop}) before '{trigger}' appeared"
            ));
        }
        if !alive() {
            return Err(format!("QEMU exited before '{trigger}' appeared"));
        }
        if Instant::now() >= deadline {
            return Err(format!("'{trigger}' did not appear in time"));
        }
    };
    // Let the machine run on: detaching removes the breakpoints and resumes
    // the CPU; QMP `cont` makes sure, should the stub not have.
    let _ = gdb.send("D");
    if qmp
        .execute(r#"{"execute":"query-status"}"#)
        .is_ok_and(|s| !s.contains("\"running\": true"))
    {
        let _ = qmp.execute(r#"{"execute":"cont"}"#);
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of `info tlb` captured from real runs (QEMU 7.2, q35; the
    /// `dom0-auto` boot stopped after "dom0: started 'memtest'", and one
    /// line of a `pvh-q35` boot): guest pages, the direct map in 4 KiB and
    /// 2 MiB pages, the local APIC, the hypervisor image (text executable
    /// and read-only, data writable and NX).
    const SAMPLE: &str = "\
0000000000400000: 0000000000140000 ----A--U-
0000000000401000: 0000000000141000 ----A--U-
0000080000000000: 0000000000187000 X---A--U-
0000100000000000: 0000000000140000 X------UW
0000100000001000: 0000000000141000 X------UW
ffff800000000000: 0000000000000000 XGPDA---W
ffff800000200000: 0000000000200000 XG-------
ffff800000201000: 0000000000201000 XG-------
ffff800000277000: 0000000000277000 XG-DA---W
ffff800003a00000: 0000000003a00000 XGPDA---W
ffff80003fa00000: 000000003fa00000 XGP-A---W
fffffd0000000000: 00000000fee00000 XG-DACT-W
fffffe0000001000: 000000000010c000 XG------W
ffffffff80200000: 0000000000200000 -G--A----
ffffffff8020c000: 000000000020c000 -G--A----
ffffffff80230000: 0000000000230000 -G--A----
ffffffff80248000: 0000000000248000 XG------W
ffffffff80249000: 0000000000249000 XG------W
";

    #[test]
    fn a_captured_sample_parses_and_passes() {
        let mappings = parse_tlb(SAMPLE).expect("the sample is valid");
        assert_eq!(mappings.len(), 18);
        let first_upper = mappings[5];
        assert_eq!(
            first_upper,
            Mapping {
                va: UPPER_HALF,
                pa: 0,
                nx: true,
                global: true,
                large: true,
                user: false,
                writable: true,
            }
        );
        let text = mappings[13];
        assert_eq!(text.va, 0xffff_ffff_8020_0000);
        assert!(!text.nx && !text.writable && text.global && !text.large);
        // Guest pages are user pages, writable ones too: not judged.
        assert!(mappings[3].user && mappings[3].writable);
        assert!(violations(&mappings).is_empty());
    }

    #[test]
    fn bad_upper_half_pages_are_found() {
        let text = format!(
            "{SAMPLE}ffffffff80250000: 0000000000250000 -G-DA---W\nffff800000300000: 0000000000300000 XG-----U-\n\
             0000000000402000: 0000000000142000 -------UW\n"
        );
        let bad = violations(&parse_tlb(&text).expect("valid"));
        assert_eq!(
            bad,
            [
                "0xffffffff80250000 -> 0x250000 is writable and executable",
                "0xffff800000300000 -> 0x300000 is accessible from ring 3",
            ]
        );
    }

    #[test]
    fn junk_is_refused() {
        for bad in [
            "PG disabled",
            "ffff800000000000: 0000000000000000",
            "ffff800000000000: 0000000000000000 XGPDA---W extra",
            "ffff800000000000: 0000000000000000 XGPDA---Q",
            "ffff800000000000: 0000000000000000 WGPDA---X",
            "zzzz: 0000000000000000 XGPDA---W",
        ] {
            assert!(parse_tlb(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_tlb("\n\n"), Ok(Vec::new()));
    }

    #[test]
    fn qmp_strings_are_unescaped() {
        let answer = r#"{"return": "a: b\r\nc\t\"d\"\\ \u0041\n"}"#;
        assert_eq!(
            json_string_after(answer, "\"return\"").as_deref(),
            Some("a: b\r\nc\t\"d\"\\ A\n")
        );
        assert_eq!(json_string_after(r#"{"return": {}}"#, "\"return\""), None);
    }

    /// A minimal ELF64 whose one executable segment holds `code` at `vaddr`.
    fn elf_with(code: &[u8], vaddr: u64, exec: bool) -> Vec<u8> {
        let mut elf = vec![0u8; 0x78];
        elf[..5].copy_from_slice(b"\x7fELF\x02");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let ph = 0x40;
        elf[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        elf[ph + 4..ph + 8].copy_from_slice(&(if exec { 5u32 } else { 4 }).to_le_bytes());
        elf[ph + 8..ph + 16].copy_from_slice(&0x78u64.to_le_bytes());
        elf[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
        elf[ph + 32..ph + 40].copy_from_slice(&(code.len() as u64).to_le_bytes());
        elf.extend_from_slice(code);
        elf
    }

    #[test]
    fn exit_sites_are_found_in_code() -> Result<()> {
        // What rustc emits for `outl(0xf4, 0x10)` and for a computed value:
        // mov $0xf4,%dx; mov $0x10,%eax; out %eax,(%dx) / ... mov $0xf4,%edx; out.
        let code = [
            0x90, 0x66, 0xba, 0xf4, 0x00, 0xb8, 0x10, 0x00, 0x00, 0x00, 0xef, 0xc3, // site at 10
            0x83, 0xf0, 0x11, 0xba, 0xf4, 0x00, 0x00, 0x00, 0xef, // site at 20
            0x66, 0xba, 0xf8, 0x03, 0xee, // the serial port: not a site
        ];
        let base = 0xffff_ffff_8020_0000;
        assert_eq!(exit_sites(&elf_with(&code, base, true))?, [base + 10, base + 20]);
        assert!(exit_sites(&elf_with(&code, base, false))?.is_empty());
        assert!(exit_sites(b"not an elf").is_err());
        Ok(())
    }
}
