//! Project tasks: `cargo xtask <command>`. One module per command; the guest harness in `guest/`.
mod apt;
mod bench;
mod build;
mod cache;
mod cmd;
mod compare_kernels;
mod debian;
mod debroot;
mod deploy_check;
mod dist;
mod guest;
mod kbuild;
mod oci;
mod run;
mod setup;
mod test;
mod toolchain;
mod validator;
mod vm;
mod vm_test;
mod workload_out;

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "rmap-trace project tasks")]
enum Xtask {
    /// Check and install the prerequisites (the pinned eBPF toolchain and bpf-linker of
    /// ebpf-toolchain.toml, their LLVM majors checked to agree; QEMU) and print their versions.
    Setup,
    /// rmap-trace's own cost: tracer overhead in the guest, host pipeline capacity, memory.
    Bench(bench::Args),
    /// Build rmap-trace (with its eBPF object) for this host.
    Build,
    /// Build everything and run rmap-trace: on this host if it can attach to rmap walks,
    /// else in the QEMU guest (and say so).
    Run(run::Args),
    /// All tests: unit tests, the real eBPF object on this host, and the guest suite.
    Test(test::Args),
    /// Build our guest kernel from Debian's linux-source-6.1 with patches of kernel/patches/.
    Kernel(kbuild::Args),
    /// The benchmark on our kernel without and with ksm-rmap-pgoff, compared side by side.
    CompareKernels(compare_kernels::Args),
    /// Run an rmap-trace command line in the QEMU guest: `cargo xtask vm -- probe`.
    Vm(vm::Args),
    /// The integration suite in the QEMU guest.
    VmTest(vm_test::Args),
    /// The install tarball (static binary, systemd unit, man page, completions) and the
    /// container image (OCI archive), checked.
    Dist(dist::Args),
    /// The Kubernetes manifests, Prometheus rules and Grafana dashboard of deploy/, checked.
    DeployCheck,
}

fn main() -> ExitCode {
    let result = match Xtask::parse() {
        Xtask::Setup => setup::ensure(),
        Xtask::Bench(args) => bench::run(&args),
        Xtask::Build => setup::ensure().and_then(|()| build::host()),
        Xtask::Run(args) => run::run(&args),
        Xtask::Test(args) => test::run(args),
        Xtask::Kernel(args) => kbuild::run(&args),
        Xtask::CompareKernels(args) => compare_kernels::run(&args),
        Xtask::Vm(args) => vm::run(&args),
        Xtask::VmTest(args) => vm_test::run(&args),
        Xtask::Dist(args) => dist::run(args),
        Xtask::DeployCheck => deploy_check::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
