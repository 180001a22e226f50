//! `rmap-trace bpf-stats` (hidden, for `cargo xtask bench overhead`): run count and run time of
//! every BPF program loaded on the host, whoever loaded it (rmap-trace's, bpftrace's), one line
//! each. The kernel only counts while `kernel.bpf_stats_enabled` is 1 (kernel/bpf/syscall.c,
//! `bpf_stats_enabled_key`; the trampoline and `bpf_prog_run` time each run then): what the
//! program bodies cost, without the attach mechanism (kprobe handlers, trampolines) around them.
use anyhow::Context as _;

pub fn run() -> anyhow::Result<()> {
    for info in aya::programs::loaded_programs() {
        let info = info.context("reading a loaded program's info (BPF_OBJ_GET_INFO_BY_FD)")?;
        let runs = info.run_count();
        if runs == 0 {
            continue;
        }
        let ns = info.run_time().as_nanos();
        println!(
            "bpf-stats: id {} name {} runs {runs} ns {ns} ns/run {:.0}",
            info.id(),
            info.name_as_str().unwrap_or("?"),
            ns as f64 / runs as f64
        );
    }
    Ok(())
}
