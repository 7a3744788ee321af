//! The two readers of the hypervisor's byte rings: `xm console DOM`, which
//! shows the last [`HISTORY_BYTES`] of a domain's console and then follows
//! it (an [`Attach`] the shell keeps until the operator types Ctrl-], as
//! Xen's console client), and `xm dmesg [-c]`, which prints the hypervisor's
//! log (`-c` remembers where it ended, so the next `xm dmesg` starts there).
//!
//! Both rings are streams (`dom0_abi::ConsoleRead`): a reader names an
//! offset and gets the bytes from there, or from the oldest byte kept.
//! Guest output is shown through [`sanitize`]: a domain cannot send the
//! operator's terminal control sequences.

use alloc::string::String;
use alloc::vec::Vec;

use dom0_abi::{DomId, Status};

use super::{Fail, Next, Xm, hv_fail, is_dom0, name_of, resolve};
use crate::hv::Hv;

/// Console history shown on attach.
pub const HISTORY_BYTES: usize = 2048;
/// The byte that detaches (Ctrl-], as in Xen's `xenconsole`).
pub const ESCAPE: u8 = 0x1d;
/// Bytes asked for per read.
const CHUNK: usize = 4096;
/// Reads per pump at most (a guest that writes without pause cannot keep
/// dom0 in one pump forever).
const READS_MAX: usize = 32;

/// A console being followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attach {
    /// The domain.
    pub domid: DomId,
    /// Its name.
    pub name: String,
    /// The stream offset of the next byte to show.
    pub next: u64,
    /// The last byte shown ended a line.
    pub at_line_start: bool,
}

impl Attach {
    /// Attach to `domid`: print the escape hint and the recent history.
    pub fn start<H: Hv>(hv: &mut H, domid: DomId, name: &str, out: &mut String) -> Result<Attach, Fail> {
        let mut history: Vec<u8> = Vec::new();
        let mut cut = false;
        let mut next = 0;
        let mut buf = [0u8; CHUNK];
        for _ in 0..READS_MAX {
            let (n, after) = hv
                .domctl_console_read(domid, next, &mut buf)
                .map_err(|s| hv_fail(alloc::format!("Reading the console of domain {name}"), s))?;
            let n = n.min(CHUNK);
            cut |= after.saturating_sub(n as u64) > next;
            next = after;
            if n == 0 {
                break;
            }
            history.extend_from_slice(&buf[..n]);
            if history.len() > HISTORY_BYTES {
                history.drain(..history.len() - HISTORY_BYTES);
                cut = true;
            }
        }
        // Start the history at a line start when it was cut short.
        let shown = match (cut, history.iter().position(|&b| b == b'\n')) {
            (true, Some(i)) => &history[i + 1..],
            _ => &history[..],
        };
        say!(
            out,
            "Connected to domain {name} (id={domid}). Escape character is ^] (Ctrl-])."
        );
        say!(
            out,
            "Oxen domains have no console input yet: what you type is not sent to {name}."
        );
        let mut attach = Attach {
            domid,
            name: name.into(),
            next,
            at_line_start: true,
        };
        attach.show(shown, out);
        Ok(attach)
    }

    /// Show what the domain wrote since the last look.
    pub fn pump<H: Hv>(&mut self, hv: &mut H, out: &mut String) -> Result<(), Status> {
        let mut buf = [0u8; CHUNK];
        for _ in 0..READS_MAX {
            let (n, next) = hv.domctl_console_read(self.domid, self.next, &mut buf)?;
            let n = n.min(CHUNK);
            if next.saturating_sub(n as u64) > self.next {
                self.show(b"\n[older console output was lost]\n", out);
            }
            self.next = next;
            if n == 0 {
                break;
            }
            self.show(&buf[..n], out);
        }
        Ok(())
    }

    /// Append guest bytes to `out`, made safe for the terminal.
    fn show(&mut self, bytes: &[u8], out: &mut String) {
        sanitize(bytes, out);
        if let Some(&last) = bytes.iter().rev().find(|&&b| b != b'\r') {
            self.at_line_start = last == b'\n';
        }
    }

    /// Make sure what follows starts on a fresh line.
    pub fn end_line(&mut self, out: &mut String) {
        if !self.at_line_start {
            out.push('\n');
            self.at_line_start = true;
        }
    }
}

/// Guest bytes as text safe for the operator's terminal: printable ASCII,
/// newlines and tabs as they are, carriage returns dropped (the hypervisor
/// turns `\n` into `\r\n`), anything else as `?` (as the hypervisor does
/// with a domain's own console lines).
pub fn sanitize(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        match b {
            b'\n' | b'\t' | 0x20..=0x7e => out.push(char::from(b)),
            b'\r' => {}
            _ => out.push('?'),
        }
    }
}

/// `xm console DOM`.
pub fn attach<H: Hv>(hv: &mut H, spec: &str, quiet: bool, out: &mut String) -> Result<Next, Fail> {
    let info = match resolve(hv, spec) {
        Ok(info) => info,
        Err(_) if quiet => return Err(Fail::Quiet),
        Err(e) => return Err(e),
    };
    if is_dom0(&info) {
        return Err(Fail::error("Domain-0's console is this one."));
    }
    Attach::start(hv, info.domid, name_of(&info), out).map(Next::Attach)
}

/// `xm dmesg [-c]`.
pub fn dmesg<H: Hv>(xm: &mut Xm<'_>, hv: &mut H, clear: bool, out: &mut String) -> Result<Next, Fail> {
    let mut from = xm.dmesg_from;
    let mut buf = [0u8; CHUNK];
    let mut ended_line = true;
    // The log ring is 64 KiB: 16 reads; the limit only stops a log that
    // grows as fast as it is read.
    for _ in 0..READS_MAX {
        let (n, next) = hv
            .sysctl_dmesg(from, &mut buf)
            .map_err(|s| hv_fail("Reading the hypervisor log", s))?;
        let n = n.min(CHUNK);
        from = next;
        if n == 0 {
            break;
        }
        sanitize(&buf[..n], out);
        if let Some(&last) = buf[..n].iter().rev().find(|&&b| b != b'\r') {
            ended_line = last == b'\n';
        }
    }
    if !ended_line {
        out.push('\n');
    }
    if clear {
        xm.dmesg_from = from;
    }
    Ok(Next::Prompt)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::fake::FakeHv;
    use crate::watch::Watch;
    use dom0_abi::DomainConfig;

    fn hv_with_guest() -> FakeHv {
        let mut hv = FakeHv::with_dom0(10_000);
        let config = DomainConfig {
            max_pages: 256,
            initial_pages: 256,
            vcpus: 1,
            flags: 0,
            name: dom0_abi::name_field("web"),
            reserved: 0,
        };
        hv.domctl_create(&config).unwrap();
        hv
    }

    #[test]
    fn attach_shows_the_last_lines_and_follows() {
        let mut hv = hv_with_guest();
        for i in 0..300 {
            hv.console_write(1, alloc::format!("line {i:03}\r\n").as_bytes());
        }
        let mut out = String::new();
        let mut a = Attach::start(&mut hv, 1, "web", &mut out).unwrap();
        assert!(out.starts_with(
            "Connected to domain web (id=1). Escape character is ^] (Ctrl-]).\n\
             Oxen domains have no console input yet: what you type is not sent to web.\n"
        ));
        // The last 2 KiB of 10-byte lines, from a line start, without the \r.
        let history = &out[out.find("line").unwrap()..];
        assert!(history.starts_with("line 096\n"), "{history}");
        assert!(history.ends_with("line 299\n"));
        assert_eq!(history.lines().count(), 204);
        assert_eq!(a.next, 3000);

        let mut more = String::new();
        hv.console_write(1, b"new \x1b[31mred\x07 output");
        a.pump(&mut hv, &mut more).unwrap();
        assert_eq!(more, "new ?[31mred? output");
        assert!(!a.at_line_start);
        a.end_line(&mut more);
        assert!(more.ends_with('\n'));
        let mut nothing = String::new();
        a.pump(&mut hv, &mut nothing).unwrap();
        assert_eq!(nothing, "");
    }

    #[test]
    fn a_reader_that_fell_behind_is_told() {
        let mut hv = hv_with_guest();
        let mut out = String::new();
        let mut a = Attach::start(&mut hv, 1, "web", &mut out).unwrap();
        hv.console_write(1, &alloc::vec![b'x'; 20_000]);
        let mut more = String::new();
        a.pump(&mut hv, &mut more).unwrap();
        assert!(more.starts_with("\n[older console output was lost]\n"));
        assert_eq!(more.matches('x').count(), 16 * 1024);
    }

    #[test]
    fn console_of_dom0_or_of_nothing() {
        let mut hv = hv_with_guest();
        let mut out = String::new();
        assert_eq!(
            attach(&mut hv, "0", false, &mut out).unwrap_err(),
            Fail::Error("Domain-0's console is this one.".into())
        );
        assert_eq!(
            attach(&mut hv, "nosuch", false, &mut out).unwrap_err(),
            Fail::Error("Domain 'nosuch' does not exist.".into())
        );
        assert_eq!(
            attach(&mut hv, "nosuch", true, &mut out).unwrap_err(),
            Fail::Quiet
        );
        hv.fail.push(crate::fake::Fail::Abi11(Status::ENOSYS));
        let e = attach(&mut hv, "web", false, &mut out).unwrap_err();
        assert_eq!(
            e,
            Fail::Error(
                "Reading the console of domain web failed: ENOSYS (no such hypercall); this hypervisor \
                 does not offer it (Oxen ABI 1.1 does)"
                    .into()
            )
        );
    }

    #[test]
    fn dmesg_and_clear() {
        let mut hv = hv_with_guest();
        let mut xm = Xm::new(None, 1000, Watch::new());
        let mut out = String::new();
        dmesg(&mut xm, &mut hv, false, &mut out).unwrap();
        assert_eq!(out, "Oxen 0.1.0 hypervisor\n(XEN) boot log line\n");
        let mut out = String::new();
        dmesg(&mut xm, &mut hv, true, &mut out).unwrap();
        assert!(out.contains("Oxen 0.1.0 hypervisor"));
        hv.log.extend_from_slice(b"later, no newline");
        let mut out = String::new();
        dmesg(&mut xm, &mut hv, false, &mut out).unwrap();
        assert_eq!(out, "later, no newline\n");
    }
}
