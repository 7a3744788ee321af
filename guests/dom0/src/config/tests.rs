//! Host tests of the config parser: good configs, every error, comments,
//! quoting, whitespace, overrides and unknown keys.

use super::*;
use alloc::string::ToString;

const FILE: &str = "configs/web.cfg";

fn parse(text: &str) -> Result<Parsed, ConfigError> {
    Config::parse(FILE, text.as_bytes())
}

fn config(text: &str) -> Config {
    let parsed = parse(text).unwrap();
    assert_eq!(parsed.warnings, [], "{text}");
    parsed.config
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

const MINIMAL: &str = "name = 'web'\nmemory = 64\nkernel = 'images/web.elf'\n";

#[test]
fn minimal_config_takes_xl_defaults() {
    let c = config(MINIMAL);
    assert_eq!(
        c,
        Config {
            name: "web".into(),
            memory_mib: 64,
            maxmem_mib: None,
            vcpus: 1,
            kernel: "images/web.elf".into(),
            extra: String::new(),
            on_poweroff: Action::Destroy,
            on_reboot: Action::Restart,
            on_crash: Action::Destroy,
            cpu_weight: None,
            cpu_cap: None,
        }
    );
    assert_eq!(c.sched_params(), None);
    assert_eq!(c.maxmem_mib(), 64);
    assert_eq!(c.initial_pages(), 64 * 256);
    assert_eq!(c.max_pages(), 64 * 256);
}

#[test]
fn full_config() {
    let c = config(
        r#"# A web server.
name    = "web-1.example_2"
memory  = 128
maxmem  = 256
vcpus   = 8
kernel  = "images/web.elf"
extra   = "console=hvc0 root=/dev/xvda1"
on_poweroff = 'preserve'
on_reboot   = 'rename-restart'
on_crash    = 'coredump-destroy'
"#,
    );
    assert_eq!(c.name, "web-1.example_2");
    assert_eq!((c.memory_mib, c.maxmem_mib(), c.vcpus), (128, 256, 8));
    assert_eq!(c.max_pages(), 256 * 256);
    assert_eq!(c.extra, "console=hvc0 root=/dev/xvda1");
    assert_eq!(
        (c.on_poweroff, c.on_reboot, c.on_crash),
        (Action::Preserve, Action::RenameRestart, Action::CoredumpDestroy)
    );
}

#[test]
fn scheduler_settings() {
    let c = config(&alloc::format!("{MINIMAL}cpu_weight = 512\ncpu_cap = 50\n"));
    assert_eq!((c.cpu_weight, c.cpu_cap), (Some(512), Some(50)));
    let p = c.sched_params().unwrap();
    assert_eq!((p.weight, p.cap, p.reserved), (512, 50, 0));
    let c = config(&alloc::format!("{MINIMAL}cpu_cap = 0\n"));
    let p = c.sched_params().unwrap();
    assert_eq!(
        (p.weight, p.cap),
        (256, 0),
        "the weight not given is Xen's default"
    );
    let c = config(&alloc::format!("{MINIMAL}cpu_weight = '1'\n"));
    assert_eq!(c.sched_params().map(|p| (p.weight, p.cap)), Some((1, 0)));
    assert_eq!(
        error(&alloc::format!("{MINIMAL}cpu_weight = 0\n")),
        "configs/web.cfg:4: cpu_weight = 0 is out of range: 1 to 65535"
    );
    assert_eq!(
        error(&alloc::format!("{MINIMAL}cpu_weight = 65536\n")),
        "configs/web.cfg:4: cpu_weight = 65536 is out of range: 1 to 65535"
    );
    assert_eq!(
        error(&alloc::format!("{MINIMAL}cpu_cap = -1\n")),
        "configs/web.cfg:4: cpu_cap = -1 is out of range: 0 to 65535 %"
    );
    let mut c = config(MINIMAL);
    c.apply_override("cpu_weight=1024").unwrap();
    c.apply_override("cpu_cap=25").unwrap();
    assert_eq!((c.cpu_weight, c.cpu_cap), (Some(1024), Some(25)));
    assert!(c.apply_override("cpu_weight=heavy").is_err());
}

#[test]
fn comments_whitespace_and_line_ends() {
    let c = config(
        "\r\n  # leading comment\r\n\tname='web'   # trailing comment\r\n\n\nmemory=\t0x40 ; vcpus = 2\r\n\
         kernel = 'images/#not-a-comment.elf'#comment\n# the end",
    );
    assert_eq!(c.name, "web");
    assert_eq!(c.memory_mib, 64);
    assert_eq!(c.vcpus, 2);
    assert_eq!(c.kernel, "images/#not-a-comment.elf");
}

#[test]
fn quoting_and_escapes() {
    let c = config(&alloc::format!(
        "{MINIMAL}extra = 'it\\'s \"quoted\"\\tand\\\\ \\q'\non_crash = \"preserve\""
    ));
    assert_eq!(c.extra, "it's \"quoted\"\tand\\ \\q");
    assert_eq!(c.on_crash, Action::Preserve);
    let c = config(&alloc::format!("{MINIMAL}extra = \"a='b' # not a comment\""));
    assert_eq!(c.extra, "a='b' # not a comment");
    // Numbers may be quoted, as xm converts them; `_` groups digits.
    let c = config("name='w'\nkernel='k'\nmemory = \"1_024\"\nmaxmem = '2048'\nvcpus=+1");
    assert_eq!((c.memory_mib, c.maxmem_mib), (1024, Some(2048)));
}

#[test]
fn lists_are_parsed_and_ignored_with_a_warning() {
    let parsed = parse(&alloc::format!(
        "{MINIMAL}vif = [ 'bridge=xenbr0', \"mac=00:16:3e:00:00:01\" ]\n\
         disk = [ 'file:/a,xvda,w',   # first\n\
                  'file:/b,xvdb,w',\n\
         ]\ncpus = (1, 2)\nlocaltime = 0\npae = True\nvcpus = 2\n"
    ))
    .unwrap();
    assert_eq!(parsed.config.vcpus, 2);
    let shown: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "configs/web.cfg:4: 'vif' is not supported by Oxen yet; ignored",
            "configs/web.cfg:5: 'disk' is not supported by Oxen yet; ignored",
            "configs/web.cfg:8: 'cpus' is not supported by Oxen yet; ignored",
            "configs/web.cfg:9: unknown setting 'localtime' ignored",
            "configs/web.cfg:10: unknown setting 'pae' ignored",
        ]
    );
}

#[test]
fn a_repeated_key_warns_and_the_last_wins() {
    let parsed = parse(&alloc::format!("{MINIMAL}memory = 32\n")).unwrap();
    assert_eq!(parsed.config.memory_mib, 32);
    assert_eq!(
        parsed.warnings[0].to_string(),
        "configs/web.cfg:4: 'memory' is set again; this replaces the value from line 2"
    );
}

#[test]
fn value_errors_name_the_line_and_the_value() {
    let with = |line: &str| error(&alloc::format!("{MINIMAL}{line}\n"));
    assert_eq!(
        with("memory = \"lots\""),
        "configs/web.cfg:4: memory = \"lots\" is not a number"
    );
    assert_eq!(
        with("memory = 1.5"),
        "configs/web.cfg:4: memory = 1.5 is not a number"
    );
    assert_eq!(
        with("memory = [1]"),
        "configs/web.cfg:4: memory = [1] is not a number"
    );
    assert_eq!(
        with("memory = 0"),
        "configs/web.cfg:4: memory = 0 is out of range: 1 to 16777216 MiB"
    );
    assert_eq!(
        with("memory = -4"),
        "configs/web.cfg:4: memory = -4 is out of range: 1 to 16777216 MiB"
    );
    assert_eq!(
        with("memory = 99999999999999999999999"),
        "configs/web.cfg:4: memory = 99999999999999999999999 is out of range: 1 to 16777216 MiB"
    );
    assert_eq!(
        with("vcpus = 9"),
        "configs/web.cfg:4: vcpus = 9 is out of range: 1 to 8"
    );
    assert_eq!(
        with("vcpus = 0"),
        "configs/web.cfg:4: vcpus = 0 is out of range: 1 to 8"
    );
    assert_eq!(
        with("kernel = images/x.elf"),
        "configs/web.cfg:4: kernel = images/x.elf is not a string; put it in quotes: \
         kernel = \"images/x.elf\""
    );
    assert_eq!(
        with("kernel = ''"),
        "configs/web.cfg:4: kernel is empty; name an image in the boot bundle"
    );
    assert_eq!(
        with("name = 'a b'"),
        "configs/web.cfg:4: name = 'a b' is not a valid domain name: use 1 to 31 characters of \
         A-Z a-z 0-9 _ . -"
    );
    assert!(with("name = ''").contains("not a valid domain name"));
    assert!(with(&alloc::format!("name = '{}'", "n".repeat(32))).contains("not a valid domain name"));
    assert_eq!(
        parse(&alloc::format!("{MINIMAL}name = '{}'", "n".repeat(31)))
            .unwrap()
            .config
            .name
            .len(),
        31
    );
    assert_eq!(
        with(&alloc::format!("extra = '{}'", "x".repeat(512))),
        "configs/web.cfg:4: extra is 512 bytes long; at most 511 fit"
    );
    assert_eq!(
        config(&alloc::format!("{MINIMAL}extra = '{}'", "x".repeat(511)))
            .extra
            .len(),
        511
    );
    assert_eq!(
        with("extra = 'a\\0b'"),
        "configs/web.cfg:4: extra contains a NUL character"
    );
    assert_eq!(
        with("on_crash = 'explode'"),
        "configs/web.cfg:4: on_crash = 'explode' is not one of destroy, restart, preserve, \
         rename-restart, coredump-destroy, coredump-restart"
    );
    assert_eq!(
        with("maxmem = 32"),
        "configs/web.cfg:4: maxmem = 32 is less than memory = 64"
    );
}

#[test]
fn missing_settings_name_the_file() {
    assert_eq!(
        error("memory = 64\nkernel = 'k'"),
        "configs/web.cfg: 'name' is not set; every domain needs one, such as name = \"web\""
    );
    assert_eq!(
        error("name = 'w'\nkernel = 'k'"),
        "configs/web.cfg: 'memory' is not set; every domain needs one, such as memory = 64 (MiB)"
    );
    assert_eq!(
        error("name = 'w'\nmemory = 1"),
        "configs/web.cfg: 'kernel' is not set; every domain needs one, such as \
         kernel = \"images/web.elf\""
    );
    assert!(error("").contains("'name' is not set"));
    assert!(error("# only a comment\n").contains("'name' is not set"));
}

#[test]
fn syntax_errors() {
    assert_eq!(
        error("name = 'web'\nmemory 64\n"),
        "configs/web.cfg:2: expected '=' after 'memory'"
    );
    assert_eq!(
        error("name = 'web'\n= 64\n"),
        "configs/web.cfg:2: expected a setting such as memory = 64, found '= 64'"
    );
    assert_eq!(
        error("1abc = 3"),
        "configs/web.cfg:1: expected a setting such as memory = 64, found '1abc = 3'"
    );
    assert_eq!(error("memory =\n"), "configs/web.cfg:1: 'memory =' has no value");
    assert_eq!(
        error("memory = # comment\n"),
        "configs/web.cfg:1: 'memory =' has no value"
    );
    assert_eq!(
        error("vif = [ = ]"),
        "configs/web.cfg:1: unexpected '=' where a value belongs"
    );
    assert_eq!(
        error("\nname = 'web\nmemory = 1"),
        "configs/web.cfg:2: a string is not closed (missing quote)"
    );
    assert_eq!(
        error("name = 'web' 'more'"),
        "configs/web.cfg:1: unexpected ''more'' after the value of name"
    );
    assert_eq!(
        error("memory = 64 MiB"),
        "configs/web.cfg:1: unexpected 'MiB' after the value of memory"
    );
    assert_eq!(
        error("\nvif = [ 'a',\n 'b'\n"),
        "configs/web.cfg:2: a list is not closed (missing ']')"
    );
    assert_eq!(
        error("vif = [ 'a' 'b' ]"),
        "configs/web.cfg:1: expected ',' or ']' between list items, found '''"
    );
    assert_eq!(
        error("x = [[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]"),
        "configs/web.cfg:1: lists are nested more than 16 deep"
    );
    assert_eq!(
        Config::parse(FILE, b"name = 'w'\nextra = '\xff'\n")
            .unwrap_err()
            .to_string(),
        "configs/web.cfg:2: the file is not UTF-8 text"
    );
}

#[test]
fn overrides() {
    let mut c = config(MINIMAL);
    c.apply_override("memory=128").unwrap();
    assert_eq!(
        (c.memory_mib, c.maxmem_mib()),
        (128, 128),
        "maxmem follows memory when unset"
    );
    c.apply_override(" name = web2 ").unwrap();
    assert_eq!(c.name, "web2");
    c.apply_override("extra=\"a b = c\"").unwrap();
    assert_eq!(c.extra, "a b = c");
    c.apply_override("extra='single'").unwrap();
    assert_eq!(c.extra, "single");
    c.apply_override("on_crash=preserve").unwrap();
    assert_eq!(c.on_crash, Action::Preserve);
    c.apply_override("maxmem=256").unwrap();
    assert_eq!(c.maxmem_mib(), 256);

    let before = c.clone();
    let fails = |c: &mut Config, text: &str| {
        let e = c.apply_override(text).unwrap_err().to_string();
        assert_eq!(*c, before, "a failed override changes nothing");
        e
    };
    assert_eq!(
        fails(&mut c, "memory=lots"),
        "override 'memory=lots': memory = lots is not a number"
    );
    assert_eq!(
        fails(&mut c, "memory=512"),
        "override 'memory=512': maxmem = 256 is less than memory = 512"
    );
    assert_eq!(
        fails(&mut c, "colour=blue"),
        "override 'colour=blue': 'colour' is not a setting a config can have"
    );
    assert_eq!(fails(&mut c, "memory"), "override 'memory': expected key=value");
    assert_eq!(fails(&mut c, "=5"), "override '=5': expected key=value");
    assert!(fails(&mut c, "name=a/b").contains("not a valid domain name"));
    assert!(fails(&mut c, "vcpus=0").contains("out of range"));
}

#[test]
fn integers() {
    assert_eq!(parse_int("42"), Some(42));
    assert_eq!(parse_int("0x10"), Some(16));
    assert_eq!(parse_int("-0X1f"), Some(-31));
    assert_eq!(parse_int("1_000"), Some(1000));
    assert_eq!(parse_int(" 7 "), Some(7));
    assert_eq!(parse_int("99999999999999999999999"), Some(i64::MAX));
    for bad in [
        "", "-", "0x", "1__0", "_1", "1_", "1.5", "12a", "0x1g", "True", "--1",
    ] {
        assert_eq!(parse_int(bad), None, "{bad}");
    }
}

#[test]
fn actions_round_trip() {
    for a in Action::ALL {
        assert_eq!(Action::from_name(a.name()), Some(a));
    }
    assert_eq!(Action::from_name("Destroy"), None);
}

/// Every config shipped in the repository's `configs/` parses without a
/// warning, and the boot-time ones say what the boot tests expect.
#[test]
fn the_repository_configs_parse_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut found = Vec::new();
    for dir in [root.clone(), root.join("auto")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "cfg") {
                let shown = path.strip_prefix(&root).unwrap().display().to_string();
                let parsed = Config::parse(&shown, &std::fs::read(&path).unwrap()).unwrap();
                assert_eq!(parsed.warnings, [], "{shown}");
                found.push((shown, parsed.config));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let summary: Vec<(&str, &str, u64, u64, &str)> = found
        .iter()
        .map(|(f, c)| {
            (
                f.as_str(),
                c.name.as_str(),
                c.memory_mib,
                c.maxmem_mib(),
                c.kernel.as_str(),
            )
        })
        .collect();
    // Other configs come and go with their scenarios; these are the ones
    // dom0's own tests rely on.
    for want in [
        ("auto/greeter.cfg", "greeter", 8, 8, "images/hello.elf"),
        ("auto/hello.cfg", "hello", 4, 4, "images/hello.elf"),
        ("auto/memtest.cfg", "memtest", 16, 32, "images/memtest.elf"),
        ("bad-abi.cfg", "bad-abi", 4, 4, "images/bad-abi.elf"),
        ("hello.cfg", "hello", 4, 4, "images/hello.elf"),
        ("hostile-crash.cfg", "hostile-crash", 8, 8, "images/hostile.elf"),
        ("hostile.cfg", "hostile", 8, 8, "images/hostile.elf"),
        ("spin.cfg", "spin", 4, 4, "images/spinner.elf"),
        ("truncated.cfg", "truncated", 4, 4, "images/truncated.elf"),
    ] {
        assert!(summary.contains(&want), "{want:?} in {summary:?}");
    }
    let extra = |file: &str| {
        found
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, c)| c.extra.as_str())
    };
    assert_eq!(extra("auto/hello.cfg"), Some("greeting=hello-from-hello"));
    assert_eq!(extra("auto/greeter.cfg"), Some("greeting=greetings-from-greeter"));
    assert_eq!(extra("hostile-crash.cfg"), Some("mode=crash"));
    assert_eq!(extra("hello.cfg"), extra("auto/hello.cfg"));
    assert_eq!(extra("spin.cfg"), Some("seconds=60"));
}
