//! `cargo xtask vm -- <rmap-trace args>`: one rmap-trace command line in the guest; its output
//! files come home (`guest/home.rs`).

use crate::guest::{self, RmapRun};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub run: RmapRun,
    /// Also run `rmap-trace workload <ARGS>` once the command has attached, e.g.
    /// `--workload "--types ksm --pages 2000"`; when the workload ends, the command is stopped
    /// with SIGTERM (an `--attach-only` tracer then prints its summary).
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
        Some(w) => with_workload(&line, w),
    };
    guest::run_echoed_home(&args.run.guest, &cmd, &files)
}

/// The guest's script for `line` beside `rmap-trace workload WORKLOAD`: the workload waits
/// until the command printed its attach line, and when it ends the command (if still running)
/// gets SIGTERM, so that a tracer without `--duration` ends with its summary rather than at the
/// guest's timeout. The workload's own output follows the command's.
fn with_workload(line: &str, workload: &str) -> String {
    let w: Vec<String> = workload.split_whitespace().map(guest::sh_quote).collect();
    // `exec` keeps the pid written: the command's own, which the workload's side signals.
    let traced = guest::sh_quote(&format!("echo $$ > /tmp/tracer.pid; exec {line}"));
    format!(
        "(for i in $(seq 300); do grep -q '^attach:' /tmp/trace.txt 2>/dev/null && break; sleep 0.2; done; \
         rmap-trace workload {} > /tmp/workload.txt 2>&1; echo \"workload exit $?\" >> /tmp/workload.txt; \
         P=$(cat /tmp/tracer.pid); \
         if [ \"$(cat /proc/$P/comm 2>/dev/null)\" = rmap-trace ]; then \
         echo 'vm: the workload ended: stopping the tracer (SIGTERM)'; kill -TERM $P; fi) &\n\
         set -o pipefail\nsh -c {traced} | tee /tmp/trace.txt\nS=$?\nwait\ncat /tmp/workload.txt\nexit $S\n",
        w.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use std::{
        io::Read as _,
        os::unix::fs::PermissionsExt as _,
        process::{Command, Stdio},
        time::{Duration, Instant},
    };

    use super::with_workload;

    /// The script run by bash (the host's shell with `pipefail`, as the guest's busybox sh
    /// has; dash has not) with a stand-in `rmap-trace` on PATH: a tracer that
    /// prints its attach line and runs until SIGTERM, whose summary the script's output must
    /// hold once the (short) workload has ended, long before the stand-in's own 60 s.
    #[test]
    fn the_tracer_ends_when_the_workload_ends() {
        let dir = std::env::temp_dir().join(format!("xtask-vm-workload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stub = dir.join("rmap-trace");
        std::fs::write(
            &stub,
            "#!/bin/sh\n\
             if [ \"$1\" = workload ]; then echo \"workload $*\"; exit 0; fi\n\
             trap 'echo summary; exit 0' TERM\n\
             echo 'attach: stand-in'\n\
             i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n\
             echo 'no SIGTERM'; exit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The script's /tmp files are the guest's; here they go to the test's directory.
        let script = with_workload(
            "rmap-trace --attach-only --interval 10",
            "--types ksm --pages 3000",
        )
        .replace("/tmp/", &format!("{}/", dir.display()));
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
        let started = Instant::now();
        let mut child = Command::new("bash")
            .args(["-c", &script])
            .env("PATH", path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let status = child.wait().unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}:\n{out}",
            started.elapsed()
        );
        assert!(status.success(), "{status}:\n{out}");
        for line in [
            "attach: stand-in",
            "stopping the tracer",
            "summary",
            "workload workload --types ksm --pages 3000",
            "workload exit 0",
        ] {
            assert!(out.contains(line), "no {line:?} in:\n{out}");
        }
    }
}
