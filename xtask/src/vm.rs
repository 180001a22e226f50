//! `cargo xtask vm -- <rmap-trace args>`: one rmap-trace command line in the guest; its output
//! files come home (`guest/home.rs`).

use crate::guest::{self, RmapRun};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub run: RmapRun,
    /// Also run `rmap-trace workload <ARGS>` once the command has attached, e.g.
    /// `--workload "--types ksm --pages 2000"`.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub workload: Option<String>,
    /// Run this shell command line in the guest instead (debugging: `--sh 'dmesg | tail'`).
    #[arg(long, value_name = "CMD", conflicts_with_all = ["workload", "rmap_args"])]
    pub sh: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::setup::ensure()?;
    if let Some(sh) = &args.sh {
        return guest::run_echoed(&args.run.guest, &format!("{sh}\n"));
    }
    let (line, files) = args.run.line_home();
    let cmd = match &args.workload {
        None => format!("{line}\n"),
        // The workload waits until the tracer printed its attach line, and reports at the end.
        Some(w) => {
            let w: Vec<String> = w.split_whitespace().map(guest::sh_quote).collect();
            format!(
                "(for i in $(seq 300); do grep -q '^attach:' /tmp/trace.txt 2>/dev/null && break; sleep 0.2; done; \
                 rmap-trace workload {} > /tmp/workload.txt 2>&1; echo \"workload exit $?\" >> /tmp/workload.txt) &\n\
                 set -o pipefail\n{} | tee /tmp/trace.txt\nS=$?\nwait\ncat /tmp/workload.txt\nexit $S\n",
                w.join(" "),
                line
            )
        }
    };
    guest::run_echoed_home(&args.run.guest, &cmd, &files)
}
