//! Host tests of the shell as an operator sees it: bytes typed in, text
//! out, over the fake hypervisor and a bundle with `configs/hello.cfg`.

use super::*;
use crate::fake::{FakeHv, XorShift, bundle, test_image};
use crate::watch::Watch;
use alloc::string::ToString;
use alloc::vec::Vec;
use dom0_abi::domstate;
use oxen_bundle::Archive;

const HELLO_CFG: &[u8] = b"name = 'hello'\nmemory = 4\nkernel = 'images/hello.elf'\nextra = 'greeting=hi'\n";
const BROKEN_CFG: &[u8] = b"name = 'broken'\nmemory 4\n";
const NOKERNEL_CFG: &[u8] = b"name = 'nokernel'\nmemory = 4\nkernel = 'images/nosuch.elf'\n";
const SEC: u64 = 1_000_000_000;

/// The boot bundle the tests use.
fn bundle_bytes() -> Vec<u8> {
    let image = test_image(4096, (1, 0));
    bundle(&[
        ("configs/hello.cfg", HELLO_CFG),
        ("configs/broken.cfg", BROKEN_CFG),
        ("configs/nokernel.cfg", NOKERNEL_CFG),
        ("images/hello.elf", &image),
    ])
}

/// A started shell over `bytes`, its greeting taken.
fn shell<'a>(bytes: &'a [u8], hv: &mut FakeHv) -> Shell<'a> {
    let archive = Archive::parse(bytes).unwrap();
    let mut xm = Xm::new(Some(archive), 2_000_000, Watch::new());
    xm.boot_free_pages = Some(hv.free_pages);
    xm.test_mode = true;
    let mut sh = Shell::new(xm);
    sh.start();
    let greeting = sh.take_output();
    assert!(greeting.ends_with(PROMPT), "{greeting:?}");
    sh
}

/// Type `text`, then let the shell look at the domains once: the output.
fn typed(sh: &mut Shell<'_>, hv: &mut FakeHv, text: &[u8], now_ns: u64) -> String {
    sh.input_all(hv, text, now_ns);
    sh.tick(hv, now_ns);
    sh.take_output()
}

/// Run one command line; the output without the echo, the final prompt
/// checked and removed.
fn run(sh: &mut Shell<'_>, hv: &mut FakeHv, line: &str) -> String {
    let out = typed(sh, hv, alloc::format!("{line}\r").as_bytes(), 0);
    let body = out
        .strip_prefix(&alloc::format!("{line}\n"))
        .unwrap_or_else(|| panic!("echo of {line:?} in {out:?}"));
    body.strip_suffix(PROMPT)
        .unwrap_or_else(|| panic!("prompt after {line:?} in {out:?}"))
        .to_string()
}

const HEADER: &str = "Name                                        ID   Mem VCPUs      State   Time(s)\n";
const DOM0_ROW: &str = "Domain-0                                     0    32     1     r-----      1.5\n";

#[test]
fn list_in_xms_format() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    let want = alloc::format!("{HEADER}{DOM0_ROW}");
    assert_eq!(run(&mut sh, &mut hv, "xm list"), want);
    assert_eq!(run(&mut sh, &mut hv, "list"), want);
    assert_eq!(run(&mut sh, &mut hv, "xm list Domain-0"), want);
    assert_eq!(run(&mut sh, &mut hv, "xm list 0"), want);
    assert_eq!(
        run(&mut sh, &mut hv, "xm list nosuch"),
        "Error: Domain 'nosuch' does not exist.\n"
    );
    let long = run(&mut sh, &mut hv, "xm list -l");
    assert!(
        long.starts_with("(domain\n    (domid 0)\n    (name Domain-0)\n    (memory 32)\n"),
        "{long}"
    );
    assert!(long.contains("    (weight 256)\n    (cap 0)\n"), "{long}");
    assert_eq!(run(&mut sh, &mut hv, "xm list --long 0"), long);
}

#[test]
fn create_with_overrides_then_destroy() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    assert_eq!(
        run(&mut sh, &mut hv, "xm create -p hello name=web memory=8"),
        "Using config file \"configs/hello.cfg\".\nStarted domain web (id=1)\n"
    );
    assert_eq!(hv.free_pages, 100_000 - 8 * 256);
    assert_eq!(
        run(&mut sh, &mut hv, "xm list web"),
        alloc::format!(
            "{HEADER}web                                          1     8     1     --p---      0.0\n"
        )
    );
    let long = run(&mut sh, &mut hv, "xm list -l web");
    assert!(
        long.contains("(memory 8)") && long.contains("(args greeting=hi)"),
        "{long}"
    );
    assert_eq!(run(&mut sh, &mut hv, "xm destroy web"), "");
    assert_eq!(
        run(&mut sh, &mut hv, "xm list"),
        alloc::format!("{HEADER}{DOM0_ROW}")
    );
    assert_eq!(hv.free_pages, 100_000);
    // `hello`, `hello.cfg` and `configs/hello.cfg` all find it.
    for name in ["hello.cfg", "configs/hello.cfg", "hello"] {
        let out = run(&mut sh, &mut hv, &alloc::format!("create {name} -p"));
        assert!(
            out.starts_with("Using config file \"configs/hello.cfg\".\nStarted domain hello"),
            "{out}"
        );
        assert_eq!(run(&mut sh, &mut hv, "destroy hello"), "");
    }
}

#[test]
fn create_errors_are_sentences() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    assert_eq!(
        run(&mut sh, &mut hv, "xm create nosuch"),
        "Error: Unable to open config file: nosuch (the boot bundle has none of nosuch, configs/nosuch, \
         nosuch.cfg, configs/nosuch.cfg, auto/nosuch, auto/nosuch.cfg)\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm create broken"),
        "Using config file \"configs/broken.cfg\".\nError: configs/broken.cfg:2: expected '=' after 'memory'\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm create nokernel"),
        "Using config file \"configs/nokernel.cfg\".\nError: Domain 'nokernel' could not be created: kernel \
         'images/nosuch.elf' is not in the boot bundle\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm create hello memory=lots"),
        "Using config file \"configs/hello.cfg\".\nError: override 'memory=lots': memory = lots is not a number\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm create hello memory=1000000"),
        "Using config file \"configs/hello.cfg\".\nError: Domain 'hello' could not be created: the hypervisor \
         has not enough free memory for 1000000 MiB: ENOMEM (out of memory)\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm create hello cpu_cap=300"),
        "Using config file \"configs/hello.cfg\".\nError: Domain 'hello' could not be created: setting its \
         scheduler parameters (cpu_weight = 256, cpu_cap = 300) failed: EINVAL (invalid argument) \
         (half-built domain 1 destroyed)\n"
    );
    assert!(hv.domains.keys().all(|&d| d == 0), "nothing is left behind");
    assert_eq!(hv.free_pages, 100_000);
}

#[test]
fn the_config_scheduler_settings_are_applied_at_create() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    run(&mut sh, &mut hv, "create hello cpu_weight=512 cpu_cap=50");
    assert_eq!((hv.domain(1).sched.weight, hv.domain(1).sched.cap), (512, 50));
    assert_eq!(
        run(&mut sh, &mut hv, "sched-credit"),
        "Name                                ID Weight  Cap\n\
         Domain-0                             0    256    0\n\
         hello                                1    512   50\n"
    );
    assert_eq!(run(&mut sh, &mut hv, "xm sched-credit -d Domain-0 -w 512"), "");
    assert!(
        run(&mut sh, &mut hv, "xm sched-credit")
            .contains("Domain-0                             0    512    0")
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm sched-credit -d Domain-0 -w 0"),
        "Error: Invalid weight 0: the credit scheduler takes 1 to 65535.\n"
    );
    assert!(run(&mut sh, &mut hv, "xm sched-credit -w 5").starts_with("Error: No domain given.\n\nUsage:"));
}

#[test]
fn lifecycle_pause_unpause_shutdown_wait() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    run(&mut sh, &mut hv, "xm create hello on_poweroff=preserve");
    assert_eq!(hv.domain(1).state, domstate::RUNNING);
    assert_eq!(run(&mut sh, &mut hv, "xm pause hello"), "");
    assert!(run(&mut sh, &mut hv, "xm list hello").contains(" --p--- "));
    assert_eq!(run(&mut sh, &mut hv, "xm unpause 1"), "");
    assert!(run(&mut sh, &mut hv, "xm list hello").contains(" r----- "));
    assert_eq!(
        run(&mut sh, &mut hv, "xm pause Domain-0"),
        "Error: Cannot pause privileged domain Domain-0.\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm destroy 0"),
        "Error: Cannot destroy privileged domain Domain-0.\n"
    );

    // A guest that takes its time: the shell waits, looking every tick.
    hv.cooperative = false;
    let out = typed(&mut sh, &mut hv, b"xm shutdown -w hello\r", 0);
    assert_eq!(out, "xm shutdown -w hello\n");
    assert_eq!(sh.timeout_ns(), Some(WAIT_POLL_NS));
    assert_eq!(hv.domain(1).shutdown_request, Some(ShutdownReason::Poweroff));
    assert_eq!(typed(&mut sh, &mut hv, b"typed ahead", SEC), "");
    hv.shut_down(1, 0);
    let out = typed(&mut sh, &mut hv, b"", 2 * SEC);
    assert_eq!(
        out,
        "dom0: domain 1 ('hello') powered off\n\
         dom0: domain 1 kept as it is (on_poweroff = preserve); it holds its memory until destroyed\n\
         Domain hello terminated\n[root@oxen ~]# "
    );
    assert!(run(&mut sh, &mut hv, "xm list hello").contains(" ---s-- "));
    assert_eq!(
        run(&mut sh, &mut hv, "xm shutdown hello"),
        "Error: Domain hello has already shut down.\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm unpause hello"),
        "Error: Cannot unpause domain hello: it has shut down.\n"
    );
    assert_eq!(run(&mut sh, &mut hv, "xm destroy hello"), "");
    assert_eq!(hv.free_pages, 100_000);
}

#[test]
fn shutdown_all_and_ctrl_c_while_waiting() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    run(&mut sh, &mut hv, "create hello name=a");
    run(&mut sh, &mut hv, "create hello name=b");
    let out = typed(&mut sh, &mut hv, b"xm shutdown -a -w\r", 0);
    assert!(out.ends_with(
        "dom0: domain 2 destroyed\nDomain a terminated\nDomain b terminated\nAll domains terminated\n[root@oxen ~]# "
    ));
    assert!(hv.domains.keys().all(|&d| d == 0));

    run(&mut sh, &mut hv, "create hello");
    hv.cooperative = false;
    typed(&mut sh, &mut hv, b"reboot -w hello\r", 0);
    assert_eq!(hv.domain(3).shutdown_request, Some(ShutdownReason::Reboot));
    assert_eq!(
        typed(&mut sh, &mut hv, b"\x03", 0),
        "^C\nInterrupted.\n[root@oxen ~]# "
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm shutdown 0"),
        "Error: Cannot shut down privileged domain Domain-0; 'xm poweroff' stops dom0.\n"
    );
}

#[test]
fn console_follows_until_ctrl_bracket() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    let out = typed(&mut sh, &mut hv, b"xm create hello -c\r", 0);
    assert_eq!(
        out,
        "xm create hello -c\nUsing config file \"configs/hello.cfg\".\nStarted domain hello (id=1)\n\
         Connected to domain hello (id=1). Escape character is ^] (Ctrl-]).\n\
         Oxen domains have no console input yet: what you type is not sent to hello.\n"
    );
    assert_eq!(sh.timeout_ns(), Some(CONSOLE_POLL_NS));
    hv.console_write(1, b"hello from hello (domain 1)\r\nhalf a ");
    assert_eq!(
        typed(&mut sh, &mut hv, b"", 0),
        "hello from hello (domain 1)\nhalf a "
    );
    assert_eq!(typed(&mut sh, &mut hv, b"ignored input", 0), "");
    hv.console_write(1, b"line\n");
    assert_eq!(typed(&mut sh, &mut hv, b"\x1d", 0), "line\n[root@oxen ~]# ");
    assert_eq!(sh.timeout_ns(), None);

    // Attach again: the history, then the domain powers off and is
    // destroyed: its last words are shown, and the prompt comes back.
    let out = typed(&mut sh, &mut hv, b"console hello\r", 0);
    assert!(
        out.ends_with("what you type is not sent to hello.\nhello from hello (domain 1)\nhalf a line\n"),
        "{out}"
    );
    hv.console_write(1, b"goodbye");
    hv.shut_down(1, 0);
    assert_eq!(
        typed(&mut sh, &mut hv, b"", 0),
        "goodbye\ndom0: domain 1 ('hello') powered off\ndom0: domain 1 destroyed\n[root@oxen ~]# "
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm console hello"),
        "Error: Domain 'hello' does not exist.\n"
    );
    assert_eq!(run(&mut sh, &mut hv, "xm console -q hello"), "");
    assert_eq!(
        run(&mut sh, &mut hv, "xm console 0"),
        "Error: Domain-0's console is this one.\n"
    );
}

#[test]
fn messages_do_not_garble_the_line_being_typed() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    run(&mut sh, &mut hv, "create hello");
    let out = typed(&mut sh, &mut hv, b"xm li", 0);
    assert_eq!(out, "xm li");
    hv.shut_down(1, 0);
    let out = typed(&mut sh, &mut hv, b"", 0);
    let blank = " ".repeat(PROMPT.len() + 5);
    assert_eq!(
        out,
        alloc::format!(
            "\r{blank}\rdom0: domain 1 ('hello') powered off\ndom0: domain 1 destroyed\n[root@oxen ~]# xm li"
        )
    );
    let out = typed(&mut sh, &mut hv, b"st\r", 0);
    assert!(out.starts_with("st\nName "), "the line was kept: {out}");
}

#[test]
fn errors_usage_and_garbage() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    assert_eq!(
        run(&mut sh, &mut hv, "foo"),
        "Error: 'foo' is not a valid command.\nType 'help' for a list of commands.\n"
    );
    assert_eq!(run(&mut sh, &mut hv, "xm foo"), run(&mut sh, &mut hv, "foo"));
    assert_eq!(
        run(&mut sh, &mut hv, "xm destroy"),
        "Error: 'xm destroy' requires 1 argument.\n\nUsage: xm destroy <Domain>\n\nTerminate a domain immediately.\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm destroy nosuch"),
        "Error: Domain 'nosuch' does not exist.\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm create 'x"),
        "Error: No closing quotation\n"
    );
    assert_eq!(run(&mut sh, &mut hv, ""), "");
    assert_eq!(run(&mut sh, &mut hv, "   "), "");
    assert_eq!(
        run(&mut sh, &mut hv, "help destroy"),
        "Usage: xm destroy <Domain>\n\nTerminate a domain immediately.\n"
    );
    assert_eq!(
        run(&mut sh, &mut hv, "xm destroy --help"),
        run(&mut sh, &mut hv, "help destroy")
    );
    assert_eq!(
        run(&mut sh, &mut hv, "help nosuch"),
        run(&mut sh, &mut hv, "nosuch")
    );
    let help = run(&mut sh, &mut hv, "help");
    assert!(help.starts_with("Usage: xm <subcommand> [args]\n"), "{help}");
    assert!(help.contains(" poweroff "), "{help}");
    assert_eq!(run(&mut sh, &mut hv, "xm"), help);

    // Garbage and a 2000-character line: the prompt comes back.
    let garbage: Vec<u8> = (0u8..=255)
        .chain(b"\x1b[5~\x1b[\x1bO\r".iter().copied())
        .collect();
    let out = typed(&mut sh, &mut hv, &garbage, 0);
    assert!(
        out.ends_with("\nError: No closing quotation\n[root@oxen ~]# "),
        "{out:?}"
    );
    let long = "x".repeat(2000);
    let out = typed(&mut sh, &mut hv, alloc::format!("{long}\r").as_bytes(), 0);
    assert!(out.contains("is not a valid command"), "{out}");
    assert!(out.ends_with(PROMPT));
    assert_eq!(
        run(&mut sh, &mut hv, "xm list"),
        alloc::format!("{HEADER}{DOM0_ROW}")
    );
}

#[test]
fn uptime_from_dom0s_clock() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    typed(&mut sh, &mut hv, b"create hello -p\r", 5 * SEC);
    let out = typed(&mut sh, &mut hv, b"uptime\r", 3725 * SEC);
    assert_eq!(
        out,
        "uptime\nName                                ID Uptime\n\
         Domain-0                             0  1:02:05\n\
         hello                                1  1:02:00\n[root@oxen ~]# "
    );
    let out = typed(&mut sh, &mut hv, b"uptime -s hello\r", 90_000 * SEC);
    assert_eq!(
        out,
        "uptime -s hello\n up 1 day,  0:59, hello (1)\n[root@oxen ~]# "
    );
}

#[test]
fn memory_vcpus_info_dmesg_domid() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    run(&mut sh, &mut hv, "create hello -p maxmem=16");
    assert_eq!(run(&mut sh, &mut hv, "mem-set hello 8"), "");
    assert_eq!(hv.domain(1).mem_target, Some(8 * 256));
    assert_eq!(run(&mut sh, &mut hv, "mem-max hello 32m"), "");
    assert_eq!(hv.domain(1).config.max_pages, 32 * 256);
    assert_eq!(run(&mut sh, &mut hv, "vcpu-set hello 1"), "");
    assert_eq!(
        run(&mut sh, &mut hv, "vcpu-set hello 2"),
        "Error: Cannot set hello to 2 vCPUs: it has only 1 vCPU (vcpus = 1 in its config).\n"
    );
    assert_eq!(run(&mut sh, &mut hv, "vcpu-pin hello all all"), "");
    assert_eq!(run(&mut sh, &mut hv, "vcpu-pin hello 0 0"), "");
    let list = run(&mut sh, &mut hv, "vcpu-list");
    assert_eq!(
        list,
        "Name                                ID  VCPU   CPU State   Time(s) Affinity\n\
         Domain-0                             0     0    0   r--       1.5  all\n\
         hello                                1     0    0   ---       0.0  all\n"
    );
    assert!(run(&mut sh, &mut hv, "info").contains("xen_scheduler          : credit\n"));
    assert_eq!(
        run(&mut sh, &mut hv, "dmesg"),
        "Oxen 0.1.0 hypervisor\n(XEN) boot log line\n"
    );
    assert_eq!(run(&mut sh, &mut hv, "domid hello"), "1\n");
    assert_eq!(run(&mut sh, &mut hv, "domname 1"), "hello\n");
    assert_eq!(
        run(&mut sh, &mut hv, "domname 7"),
        "Error: Domain '7' does not exist.\n"
    );
}

#[test]
fn a_10_hypervisor_gets_sentences() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    hv.fail.push(crate::fake::Fail::Abi11(Status::ENOSYS));
    assert_eq!(
        run(&mut sh, &mut hv, "dmesg"),
        "Error: Reading the hypervisor log failed: ENOSYS (no such hypercall); this hypervisor does not offer it \
         (Oxen ABI 1.1 does)\n"
    );
    // xm list still works: the vCPU count comes from getinfo.
    assert_eq!(
        run(&mut sh, &mut hv, "list"),
        alloc::format!("{HEADER}{DOM0_ROW}")
    );
}

#[test]
fn restart_from_the_same_config_and_overrides() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    run(
        &mut sh,
        &mut hv,
        "create hello name=again on_reboot=restart memory=2",
    );
    hv.shut_down(1, 1);
    let out = typed(&mut sh, &mut hv, b"", 20 * SEC);
    assert!(
        out.contains("dom0: domain 1 ('again'): on_reboot = restart; started again as domain 2\n"),
        "{out}"
    );
    assert_eq!(hv.domain(2).config.initial_pages, 512);
    hv.shut_down(2, 1);
    let out = typed(&mut sh, &mut hv, b"", 21 * SEC);
    assert!(
        out.contains("restarting too fast (1.0 s since its last restart)"),
        "{out}"
    );
    assert!(hv.domains.keys().all(|&d| d == 0));
}

#[test]
fn poweroff_checks_domains_and_memory() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    run(&mut sh, &mut hv, "create hello -p");
    run(&mut sh, &mut hv, "destroy hello");
    let out = typed(&mut sh, &mut hv, b"xm poweroff\r", 0);
    assert_eq!(
        out,
        "xm poweroff\ndom0: all domains stopped; free memory 100000 frames, 100000 before: restored\n\
         dom0: oxen_test=dom0: success; shutting down (poweroff)\n"
    );
    assert_eq!(sh.finished(), Some(ShutdownReason::Poweroff));
    assert_eq!(
        typed(&mut sh, &mut hv, b"list\r", 0),
        "",
        "nothing runs after poweroff"
    );

    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    run(&mut sh, &mut hv, "create hello -p");
    let out = typed(&mut sh, &mut hv, b"poweroff\r", 0);
    assert!(out.contains("dom0: domain 1 ('hello') still exists"), "{out}");
    assert!(out.contains("LEAKED 1024 frames"), "{out}");
    assert!(out.ends_with("dom0: oxen_test=dom0: failure; shutting down (crash)\n"));
    assert_eq!(sh.finished(), Some(ShutdownReason::Crash));
}

#[test]
fn fuzz_random_input_never_breaks_the_shell() {
    let bytes = bundle_bytes();
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for round in 0..100 {
        let mut hv = FakeHv::with_dom0(100_000);
        hv.cooperative = round % 2 == 0;
        let mut sh = shell(&bytes, &mut hv);
        // Some domains to act on, by name or ID.
        run(&mut sh, &mut hv, "create hello -p");
        run(&mut sh, &mut hv, "create hello name=web");
        let mut now = 0;
        for _ in 0..50 {
            let len = usize::try_from(rng.next() % 300).unwrap();
            let chunk: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            sh.input_all(&mut hv, &chunk, now);
            if rng.next().is_multiple_of(4) {
                // Command words too, so commands actually run.
                let words = [
                    "list -l\r",
                    "destroy web\r",
                    "pause 1\r",
                    "console 1\r",
                    "shutdown -w web\r",
                    "dmesg\r",
                    "vcpu-pin 1 all 0\r",
                    "sched-credit -d 1 -w 7\r",
                    "create hello -c\r",
                    "uptime\r",
                    "soak 2\r",
                ];
                let w = words[usize::try_from(rng.next() % words.len() as u64).unwrap()];
                sh.input_all(&mut hv, w.as_bytes(), now);
            }
            sh.tick(&mut hv, now);
            let out = sh.take_output();
            assert!(out.len() < 1 << 20, "round {round}");
            now += 10_000_000;
        }
        assert_eq!(sh.finished(), None, "round {round}");
        // Leave whatever mode it is in; the shell still answers.
        sh.input_all(&mut hv, b"\x1d\x03\x15", now);
        let out = typed(&mut sh, &mut hv, b"xm list 0\r", now);
        assert!(out.contains(DOM0_ROW.trim_end()), "round {round}: {out:?}");
    }
}

#[test]
fn a_line_runs_after_its_echo_is_shown() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    let input = b"create hello -p\rlist\r";
    let used = sh.input(&mut hv, input, 0);
    assert_eq!(used, 16, "up to the first Enter");
    assert_eq!(sh.take_output(), "create hello -p\n");
    assert!(hv.domains.len() == 1, "not run yet");
    sh.run_pending(&mut hv, 0);
    assert!(sh.take_output().starts_with("Using config file"));
    assert_eq!(hv.domains.len(), 2);
    let used = sh.input(&mut hv, &input[16..], 0);
    assert_eq!(used, 5);
    sh.tick(&mut hv, 0);
    assert!(
        sh.take_output()
            .contains("hello                                        1")
    );
}

/// Let the shell run an `xm soak` to its end, powering each domain off
/// (or, with `stop` false, leaving it to run); `each` is called before
/// every tick. The output after the command's first lines, and the ticks.
fn soak_to_the_end(
    sh: &mut Shell<'_>,
    hv: &mut FakeHv,
    stop: bool,
    mut each: impl FnMut(&mut FakeHv, u32),
) -> (String, u32) {
    let mut out = String::new();
    let mut now = 0;
    for tick in 0..100_000 {
        if sh.timeout_ns().is_none() {
            return (out, tick);
        }
        each(hv, tick);
        let running: Vec<DomId> = hv.domains.keys().copied().filter(|&d| d != 0).collect();
        if stop {
            for domid in running {
                hv.shut_down(domid, 0);
            }
        }
        now += crate::xm::soak::POLL_NS;
        sh.tick(hv, now);
        out.push_str(&sh.take_output());
    }
    panic!("the soak did not end: {out}");
}

#[test]
fn soak_creates_and_destroys_and_checks_the_frames() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    let out = typed(&mut sh, &mut hv, b"xm soak 2500\r", 0);
    assert_eq!(
        out,
        "xm soak 2500\nUsing config file \"configs/hello.cfg\".\n\
         soak: 2500 cycles of 'hello' (4 MiB each), 100000 frames free at the start; Ctrl-C stops\n"
    );
    assert_eq!(hv.domain(1).state, domstate::RUNNING, "the first cycle started");
    assert_eq!(sh.timeout_ns(), Some(crate::xm::soak::POLL_NS));
    let (out, ticks) = soak_to_the_end(&mut sh, &mut hv, true, |_, _| {});
    assert_eq!(ticks, 2500);
    assert_eq!(hv.created, 2500);
    assert_eq!(hv.destroyed.len(), 2500);
    assert_eq!(
        out,
        "soak: 1000 cycles, 100000 frames free (start 100000)\n\
         soak: 2000 cycles, 100000 frames free (start 100000)\n\
         soak: 2500 cycles, 100000 frames free (start 100000)\n\
         soak: 2500 cycles of 'hello' in 250.0 s (10.0 cycles/s): 2500 powered off\n\
         soak: 2500 cycles done, free frames 100000 == start 100000: restored\n[root@oxen ~]# "
    );
    assert!(hv.domains.keys().all(|&d| d == 0));
    // The watch knows nothing of them: poweroff is clean.
    assert!(typed(&mut sh, &mut hv, b"xm poweroff\r", 0).contains("success"));
}

#[test]
fn soak_destroys_a_domain_that_keeps_running_and_reports_a_leak() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    typed(&mut sh, &mut hv, b"soak 3 hello\r", 0);
    // Nobody stops the domains: each is destroyed once it has run for the
    // limit; a frame goes missing on the way.
    let (out, _) = soak_to_the_end(&mut sh, &mut hv, false, |hv, tick| {
        if tick == 5 {
            hv.free_pages -= 1;
        }
    });
    assert!(
        out.contains("soak: 3 cycles of 'hello' in ") && out.contains("3 destroyed while running\n"),
        "{out}"
    );
    assert!(
        out.ends_with(
            "soak: 3 cycles done, free frames 99999 != start 100000: LEAKED 1 frames\n[root@oxen ~]# "
        ),
        "{out}"
    );
}

#[test]
fn soak_stops_on_a_failure_or_ctrl_c() {
    let bytes = bundle_bytes();
    let mut hv = FakeHv::with_dom0(100_000);
    let mut sh = shell(&bytes, &mut hv);
    // Creating fails (name taken): nothing is left behind.
    run(&mut sh, &mut hv, "create hello -p");
    let out = typed(&mut sh, &mut hv, b"soak 5\r", 0);
    assert!(
        out.contains(
            "Error: soak: cycle 1: domain 'hello' could not be created: a domain named 'hello' already exists\n\
             soak: 0 cycles of 'hello' in 0.0 s (0.0 cycles/s): no domain ran\n\
             soak: stopped after 0 of 5 cycles, free frames 98976 == start 98976: restored\n[root@oxen ~]# "
        ),
        "{out}"
    );
    run(&mut sh, &mut hv, "destroy hello");

    // Destroying fails: the soak stops and says so.
    typed(&mut sh, &mut hv, b"soak 5\r", 0);
    hv.shut_down(2, 0);
    hv.fail = vec![crate::fake::Fail::Destroy(Status::EBUSY)];
    let out = typed(&mut sh, &mut hv, b"", SEC);
    assert!(
        out.starts_with("Error: soak: cannot destroy domain 2: EBUSY (busy)\n"),
        "{out}"
    );
    assert!(out.contains("stopped after 0 of 5 cycles"), "{out}");
    assert!(hv.domains.keys().all(|&d| d == 0), "destroyed on the second try");

    // Ctrl-C: the domain under way is destroyed.
    typed(&mut sh, &mut hv, b"soak 5\r", 0);
    hv.shut_down(3, 0);
    typed(&mut sh, &mut hv, b"typed ahead is ignored\r", SEC);
    assert_eq!(hv.domain(4).state, domstate::RUNNING);
    let out = typed(&mut sh, &mut hv, b"\x03", 2 * SEC);
    assert!(out.starts_with("^C\nsoak: 1 cycles of 'hello' in 2.0 s (0.5 cycles/s): 1 powered off\n"));
    assert!(
        out.ends_with(
            "soak: stopped after 1 of 5 cycles, free frames 100000 == start 100000: restored\n[root@oxen ~]# "
        ),
        "{out}"
    );
    assert!(hv.domains.keys().all(|&d| d == 0));

    assert!(run(&mut sh, &mut hv, "soak").starts_with("Error: 'xm soak' requires 1 or 2 arguments."));
    assert!(run(&mut sh, &mut hv, "soak 0").starts_with("Error: Invalid argument.\n\nUsage: xm soak"));
    assert!(run(&mut sh, &mut hv, "soak nosuch").starts_with("Error: Invalid argument."));
    assert!(run(&mut sh, &mut hv, "soak 1 nosuch").starts_with("Error: Unable to open config file: nosuch"));
    assert!(run(&mut sh, &mut hv, "soak 1 broken").contains("expected '=' after 'memory'"));
}
