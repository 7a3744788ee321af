//! Starting a domain from its config (`config.rs`) and the boot bundle, as
//! `xm create` does: find the kernel in the bundle, check it, create an
//! empty domain, give it the config's scheduler parameters, build it with
//! `oxen_builder` over a [`DomainTarget`] (`foreign.rs`), give vCPU 0 its
//! registers and unpause it (unless it is to stay paused). A failure after
//! the domain exists destroys the half-built domain before it is reported.
//! `watch.rs` takes over once the domain runs. [`find_config`] is where
//! `xm create NAME` looks for the config file.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use dom0_abi::{DomId, DomainConfig, SchedParams, Status, VcpuContext, name_field};
use oxen_builder::{BuildError, BuildParams, ElfError, Image, build, pages_needed};
use oxen_bundle::{Archive, Entry};

use crate::config::{Config, PAGES_PER_MIB};
use crate::foreign::{DomainTarget, TargetError};
use crate::hv::Hv;

/// The folder of the bundle whose configs start at boot.
pub const AUTO_DIR: &str = "auto/";

/// The configs under `auto/` in the bundle, sorted by name: the domains
/// dom0 starts at boot.
pub fn auto_configs<'a>(bundle: &Archive<'a>) -> Vec<Entry<'a>> {
    let mut configs: Vec<Entry<'a>> = bundle
        .entries()
        .filter(|e| e.is_file() && e.name.starts_with(AUTO_DIR))
        .collect();
    configs.sort_by(|a, b| a.name.cmp(b.name));
    configs
}

/// The folder of the bundle that holds the configs `xm create` names.
pub const CONFIG_DIR: &str = "configs/";

/// The bundle paths `xm create NAME` tries, in order: the name as given,
/// under `configs/`, then both with `.cfg` appended (so `xm create hello`
/// finds `configs/hello.cfg`), then under `auto/`.
pub fn config_candidates(name: &str) -> Vec<String> {
    let name = name.trim_start_matches('/');
    let mut out: Vec<String> = Vec::new();
    let mut push = |path: String| {
        if !out.contains(&path) {
            out.push(path);
        }
    };
    push(name.into());
    push(alloc::format!("{CONFIG_DIR}{name}"));
    if !name.ends_with(".cfg") {
        push(alloc::format!("{name}.cfg"));
        push(alloc::format!("{CONFIG_DIR}{name}.cfg"));
    }
    push(alloc::format!("{AUTO_DIR}{name}"));
    if !name.ends_with(".cfg") {
        push(alloc::format!("{AUTO_DIR}{name}.cfg"));
    }
    out
}

/// The config file `xm create NAME` means: the first of
/// [`config_candidates`] that is a file in the bundle; `Err` with every
/// path tried when none is.
pub fn find_config<'a>(bundle: &Archive<'a>, name: &str) -> Result<Entry<'a>, Vec<String>> {
    let candidates = config_candidates(name);
    candidates
        .iter()
        .find_map(|path| bundle.find(path).filter(Entry::is_file))
        .ok_or(candidates)
}

/// Whether a new domain runs at once or stays paused (`xm create -p`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Unpause it once built.
    Running,
    /// Leave it paused; `xm unpause` lets it run.
    Paused,
}

/// Create, build and start the domain `config` describes, with its kernel
/// from `bundle`; `tsc_khz` goes into its `StartInfo`. Returns the new
/// domain's ID. On failure no domain is left behind (unless destroying the
/// half-built one failed too, which the error says).
pub fn start_domain<H: Hv>(
    hv: &mut H,
    bundle: &Archive<'_>,
    config: &Config,
    tsc_khz: u64,
) -> Result<DomId, StartError> {
    create_domain(hv, bundle, config, tsc_khz, Start::Running)
}

/// [`start_domain`], leaving the domain paused when `start` says so.
pub fn create_domain<H: Hv>(
    hv: &mut H,
    bundle: &Archive<'_>,
    config: &Config,
    tsc_khz: u64,
    start: Start,
) -> Result<DomId, StartError> {
    let fail = |cause| StartError {
        cause,
        domid: None,
        cleanup: None,
    };
    let kernel = config.kernel.as_str();
    // Bundle names are relative; accept the absolute spelling too.
    let entry = bundle
        .find(kernel)
        .or_else(|| bundle.find(kernel.trim_start_matches('/')))
        .filter(Entry::is_file)
        .ok_or_else(|| {
            fail(Cause::KernelMissing {
                kernel: kernel.into(),
            })
        })?;
    let image = Image::parse(entry.data).map_err(|error| {
        fail(Cause::BadImage {
            kernel: kernel.into(),
            error,
        })
    })?;
    let needed_pages = pages_needed(&image);
    if needed_pages > config.initial_pages() {
        return Err(fail(Cause::TooLittleMemory {
            kernel: kernel.into(),
            needed_pages,
            memory_mib: config.memory_mib,
        }));
    }

    let domain = DomainConfig {
        max_pages: config.max_pages(),
        initial_pages: config.initial_pages(),
        vcpus: config.vcpus,
        flags: 0,
        name: name_field(&config.name),
        reserved: 0,
    };
    let domid = hv.domctl_create(&domain).map_err(|status| {
        fail(Cause::Create {
            name: config.name.clone(),
            memory_mib: config.memory_mib,
            status,
        })
    })?;

    build_and_run(hv, domid, entry.data, config, tsc_khz, start).map_err(|cause| StartError {
        cause,
        domid: Some(domid),
        cleanup: hv.domctl_destroy(domid).err(),
    })?;
    Ok(domid)
}

/// The steps after `domctl_create`: any error leaves a domain to destroy.
fn build_and_run<H: Hv>(
    hv: &mut H,
    domid: DomId,
    image: &[u8],
    config: &Config,
    tsc_khz: u64,
    start: Start,
) -> Result<(), Cause> {
    if let Some(params) = config.sched_params() {
        hv.domctl_sched_set(domid, &params)
            .map_err(|status| Cause::Sched { params, status })?;
    }
    let params = BuildParams {
        image,
        domid,
        nr_pages: config.initial_pages(),
        max_pages: config.max_pages(),
        vcpus: config.vcpus,
        flags: 0,
        name: &config.name,
        cmdline: &config.extra,
        tsc_khz,
        module_len: 0,
    };
    let mut target = DomainTarget::new(hv, domid, params.nr_pages);
    let built = build(&mut target, &params);
    let unmapped = target.finish();
    let built = built.map_err(Cause::Build)?;
    unmapped.map_err(Cause::Unmap)?;

    let context = VcpuContext {
        rip: built.entry,
        rsp: built.stack_top,
        rdi: built.start_info_va,
        ..VcpuContext::default()
    };
    hv.domctl_set_vcpu_context(domid, &context)
        .map_err(Cause::SetContext)?;
    match start {
        Start::Running => hv.domctl_unpause(domid).map_err(Cause::Unpause),
        Start::Paused => Ok(()),
    }
}

/// Why a domain could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartError {
    /// What went wrong.
    pub cause: Cause,
    /// The half-built domain, if one had been created (it was destroyed).
    pub domid: Option<DomId>,
    /// Why destroying the half-built domain failed, if it did.
    pub cleanup: Option<Status>,
}

/// What went wrong while starting a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// dom0 has no boot bundle at all.
    NoBundle {
        /// The path.
        kernel: String,
    },
    /// `kernel` names no file in the bundle.
    KernelMissing {
        /// The path.
        kernel: String,
    },
    /// The kernel is not a loadable image.
    BadImage {
        /// The path.
        kernel: String,
        /// Why.
        error: ElfError,
    },
    /// `memory` is too small for the kernel.
    TooLittleMemory {
        /// The path.
        kernel: String,
        /// Frames the image, start_info and stack need.
        needed_pages: u64,
        /// `memory`.
        memory_mib: u64,
    },
    /// `domctl_create` failed.
    Create {
        /// The domain's name.
        name: String,
        /// `memory`.
        memory_mib: u64,
        /// What the hypervisor said.
        status: Status,
    },
    /// `domctl_sched_set` with the config's `cpu_weight` / `cpu_cap` failed.
    Sched {
        /// What was asked for.
        params: SchedParams,
        /// What the hypervisor said.
        status: Status,
    },
    /// The builder refused the image or its target failed.
    Build(BuildError<TargetError>),
    /// Unmapping dom0's foreign mappings after the build failed.
    Unmap(TargetError),
    /// `domctl_set_vcpu_context` failed.
    SetContext(Status),
    /// `domctl_unpause` failed.
    Unpause(Status),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::NoBundle { kernel } => {
                write!(f, "dom0 has no boot bundle to take kernel '{kernel}' from")
            }
            Cause::KernelMissing { kernel } => write!(f, "kernel '{kernel}' is not in the boot bundle"),
            Cause::BadImage { kernel, error } => {
                write!(f, "kernel '{kernel}' is not a usable image: {error}")
            }
            Cause::TooLittleMemory {
                kernel,
                needed_pages,
                memory_mib,
            } => write!(
                f,
                "kernel '{kernel}' needs {needed_pages} pages ({} MiB) for its image, start_info and stack, \
                 but memory = {memory_mib}",
                needed_pages.div_ceil(PAGES_PER_MIB)
            ),
            Cause::Create {
                name,
                status: Status::EEXIST,
                ..
            } => write!(f, "a domain named '{name}' already exists"),
            Cause::Create {
                memory_mib,
                status: Status::ENOMEM,
                ..
            } => write!(
                f,
                "the hypervisor has not enough free memory for {memory_mib} MiB: {}",
                Status::ENOMEM
            ),
            Cause::Create { status, .. } => write!(f, "the hypervisor refused to create it: {status}"),
            Cause::Sched { params, status } => write!(
                f,
                "setting its scheduler parameters (cpu_weight = {}, cpu_cap = {}) failed: {status}",
                params.weight, params.cap
            ),
            Cause::Build(e) => write!(f, "{e}"),
            Cause::Unmap(e) => write!(f, "{e}"),
            Cause::SetContext(status) => write!(f, "setting its initial vCPU registers failed: {status}"),
            Cause::Unpause(status) => write!(f, "unpausing it failed: {status}"),
        }
    }
}

impl StartError {
    /// The error of starting `config` when dom0 has no boot bundle.
    pub fn no_bundle(config: &Config) -> StartError {
        StartError {
            cause: Cause::NoBundle {
                kernel: config.kernel.clone(),
            },
            domid: None,
            cleanup: None,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cause)?;
        match (self.domid, self.cleanup) {
            (Some(domid), None) => write!(f, " (half-built domain {domid} destroyed)"),
            (Some(domid), Some(status)) => {
                write!(
                    f,
                    "; destroying the half-built domain {domid} failed too: {status}"
                )
            }
            (None, _) => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap in a test is a failed assertion
mod tests {
    use super::*;
    use crate::fake::{Fail, FakeHv, bundle, test_image};
    use alloc::string::ToString;
    use alloc::vec;
    use dom0_abi::{
        GUEST_STACK_TOP, GUEST_START_INFO_VA, MMU_MAP_SHARED_INFO, START_INFO_MAGIC, StartInfo, field_str,
    };
    use zerocopy::FromBytes;

    fn hello() -> Config {
        Config::parse(
            "auto/hello.cfg",
            b"name = 'hello'\nmemory = 4\nkernel = 'images/hello.elf'\nextra = 'greeting=hi'\n",
        )
        .unwrap()
        .config
    }

    fn start(hv: &mut FakeHv, files: &[(&str, &[u8])], config: &Config) -> Result<DomId, StartError> {
        let bytes = bundle(files);
        let archive = Archive::parse(&bytes).unwrap();
        start_domain(hv, &archive, config, 2_000_000)
    }

    #[test]
    fn a_domain_is_built_and_started() {
        let image = test_image(3 * 4096 + 100, (1, 0));
        let mut hv = FakeHv::new(10_000);
        let domid = start(&mut hv, &[("images/hello.elf", &image)], &hello()).unwrap();

        let d = hv.domain(domid);
        assert_eq!(d.config.initial_pages, 4 * 256);
        assert_eq!(d.config.max_pages, 4 * 256);
        assert_eq!(field_str(&d.config.name), "hello");
        assert!(d.running, "unpaused");
        assert_eq!(hv.free_pages, 10_000 - 4 * 256);
        assert!(hv.scratch.is_empty(), "every foreign mapping is gone");

        // The image bytes landed in frames 0.. and start_info after them.
        let text = &image[0x1000..];
        assert_eq!(&d.frame(0)[..], &text[..4096]);
        assert_eq!(&d.frame(3)[..100], &text[3 * 4096..]);
        assert!(d.frame(3)[100..].iter().all(|&b| b == 0));
        let (info, _) = StartInfo::read_from_prefix(&d.frame(4)[..]).unwrap();
        assert_eq!(info.magic, START_INFO_MAGIC);
        assert_eq!(info.domid, u32::from(domid));
        assert_eq!(info.nr_pages, 1024);
        assert_eq!(info.tsc_khz, 2_000_000);
        assert_eq!(field_str(&info.name), "hello");
        assert_eq!(field_str(&info.cmdline), "greeting=hi");

        // Its mappings: the image, the shared info, and the physmap of all its frames.
        assert!(d.mappings.iter().any(|op| op.op == MMU_MAP_SHARED_INFO));
        assert!(d.mappings.iter().all(|op| op.frame_domid == domid));
        assert!(d.mappings.len() >= 1024 + 4 + 1 + 16);

        let ctx = d.context.unwrap();
        assert_eq!(
            (ctx.rip, ctx.rsp, ctx.rdi),
            (0x40_0000, GUEST_STACK_TOP, GUEST_START_INFO_VA)
        );
        // 5 frames written through the window: one map, one unmap.
        assert_eq!(hv.self_batches, 2);
    }

    #[test]
    fn a_large_image_moves_the_window_in_batches() {
        let image = test_image(200 * 4096, (1, 0));
        let mut hv = FakeHv::new(100_000);
        let mut config = hello();
        config.memory_mib = 8;
        let domid = start(&mut hv, &[("images/hello.elf", &image)], &config).unwrap();
        let d = hv.domain(domid);
        for gfn in [0u64, 63, 64, 150, 199] {
            let off = usize::try_from(gfn).unwrap() * 4096;
            assert_eq!(
                &d.frame(gfn)[..],
                &image[0x1000 + off..0x1000 + off + 4096],
                "frame {gfn}"
            );
        }
        // 201 frames (200 image + start_info) in windows of 64: 4 maps and 4 unmaps.
        assert_eq!(hv.self_batches, 8);
        assert!(hv.scratch.is_empty());
    }

    #[test]
    fn a_missing_kernel_creates_nothing() {
        let mut hv = FakeHv::new(10_000);
        let e = start(&mut hv, &[("images/other.elf", b"x")], &hello()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel 'images/hello.elf' is not in the boot bundle"
        );
        assert_eq!(hv.created, 0);
    }

    #[test]
    fn an_unparsable_image_creates_nothing() {
        let mut hv = FakeHv::new(10_000);
        let truncated = &test_image(8192, (1, 0))[..100];
        let e = start(&mut hv, &[("images/hello.elf", truncated)], &hello()).unwrap_err();
        assert!(matches!(e.cause, Cause::BadImage { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("kernel 'images/hello.elf' is not a usable image: truncated ELF image"),
            "{e}"
        );
        assert_eq!(hv.created, 0);
    }

    #[test]
    fn too_little_memory_creates_nothing() {
        let image = test_image(1100 * 4096, (1, 0));
        let mut hv = FakeHv::new(10_000);
        let e = start(&mut hv, &[("images/hello.elf", &image)], &hello()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel 'images/hello.elf' needs 1117 pages (5 MiB) for its image, start_info and stack, \
             but memory = 4"
        );
        assert_eq!(hv.created, 0);
    }

    #[test]
    fn an_image_the_builder_refuses_destroys_the_domain() {
        let image = test_image(4096, (9, 0));
        let mut hv = FakeHv::new(10_000);
        let e = start(&mut hv, &[("images/hello.elf", &image)], &hello()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "wrong guest ABI: the image was built for Oxen ABI 9.0 but this hypervisor speaks ABI {}.{} \
                 (half-built domain 1 destroyed)",
                dom0_abi::ABI_VERSION_MAJOR,
                dom0_abi::ABI_VERSION_MINOR
            )
        );
        assert_eq!(e.domid, Some(1));
        assert_eq!(hv.created, 1);
        assert!(hv.domains.is_empty());
        assert_eq!(hv.free_pages, 10_000, "every frame came back");
    }

    #[test]
    fn out_of_memory_at_create() {
        let image = test_image(4096, (1, 0));
        let mut hv = FakeHv::new(1000);
        let e = start(&mut hv, &[("images/hello.elf", &image)], &hello()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the hypervisor has not enough free memory for 4 MiB: ENOMEM (out of memory)"
        );
        assert!(hv.domains.is_empty());
    }

    #[test]
    fn a_duplicate_name_is_refused() {
        let image = test_image(4096, (1, 0));
        let mut hv = FakeHv::new(10_000);
        start(&mut hv, &[("images/hello.elf", &image)], &hello()).unwrap();
        let e = start(&mut hv, &[("images/hello.elf", &image)], &hello()).unwrap_err();
        assert_eq!(e.to_string(), "a domain named 'hello' already exists");
    }

    #[test]
    fn failures_after_create_destroy_the_domain() {
        let image = test_image(3 * 4096, (1, 0));
        let cases = [
            (
                Fail::TargetMmu(Status::ENOMEM),
                "building the domain failed: mmu_batch of ",
            ),
            (
                Fail::ForeignMap(Status::EACCES),
                "building the domain failed: mapping frames 0..64 of domain 1",
            ),
            (
                Fail::SetContext(Status::EINVAL),
                "setting its initial vCPU registers failed: EINVAL",
            ),
            (Fail::Unpause(Status::ESRCH), "unpausing it failed: ESRCH"),
        ];
        for (fail, message) in cases {
            let mut hv = FakeHv::new(10_000);
            hv.fail = vec![fail];
            let e = start(&mut hv, &[("images/hello.elf", &image)], &hello()).unwrap_err();
            assert!(e.to_string().starts_with(message), "{fail:?}: {e}");
            assert!(e.to_string().ends_with("(half-built domain 1 destroyed)"), "{e}");
            assert!(hv.domains.is_empty(), "{fail:?}");
            assert!(hv.scratch.is_empty(), "{fail:?}");
            assert_eq!(hv.free_pages, 10_000);
        }
    }

    #[test]
    fn a_failed_cleanup_is_reported() {
        let image = test_image(4096, (1, 0));
        let mut hv = FakeHv::new(10_000);
        hv.fail = vec![Fail::Unpause(Status::EINVAL), Fail::Destroy(Status::EBUSY)];
        let e = start(&mut hv, &[("images/hello.elf", &image)], &hello()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unpausing it failed: EINVAL (invalid argument); destroying the half-built domain 1 failed too: \
             EBUSY (busy)"
        );
    }

    #[test]
    fn auto_configs_are_sorted_files_under_auto() {
        let bytes = bundle(&[
            ("auto/memtest.cfg", b"m"),
            ("images/hello.elf", b"x"),
            ("auto/greeter.cfg", b"g"),
            ("auto.cfg", b"n"),
            ("auto/hello.cfg", b"h"),
        ]);
        let archive = Archive::parse(&bytes).unwrap();
        let names: Vec<&str> = auto_configs(&archive).iter().map(|e| e.name).collect();
        assert_eq!(names, ["auto/greeter.cfg", "auto/hello.cfg", "auto/memtest.cfg"]);
    }
}
