//! `cargo xtask run`: the benchmark end to end, on this host when it can attach to rmap walks,
//! else in the guest.
use std::process::Command;

use anyhow::bail;

use crate::guest::{self, GuestArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run on this host even if it cannot attach.
    #[arg(long, conflicts_with = "vm")]
    pub host: bool,
    /// Run in the guest even if this host could attach.
    #[arg(long)]
    pub vm: bool,
    #[command(flatten)]
    pub guest: GuestArgs,
    /// rmap-trace's arguments.
    #[arg(last = true)]
    pub rmap_args: Vec<String>,
}

/// The command run when no arguments are given: trace (filtered to rmap-trace's own workload)
/// while the three workloads run.
const DEFAULT_GUEST: &str = r#"rmap-trace --attach-only --comm rmap-trace --json /tmp/run.json > /tmp/trace.txt 2>&1 &
T=$!
for i in $(seq 300); do grep -q '^attach:' /tmp/trace.txt && break; sleep 0.2; done
rmap-trace workload --types ksm,anon,file
S=$?
kill -TERM $T; wait $T
cat /tmp/trace.txt
exit $S
"#;

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::setup::ensure()?;
    crate::build::host()?;
    let binary = crate::build::host_binary();
    let host_can = !args.vm
        && Command::new(&binary).arg("probe").output().is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("mode ") && l.contains(" available:"))
        });
    if args.host || host_can {
        let mut cmd = Command::new(&binary);
        if args.rmap_args.is_empty() {
            cmd.arg("--attach-only")
        } else {
            cmd.args(&args.rmap_args)
        };
        if !crate::setup::status(&mut cmd)? {
            bail!("rmap-trace failed");
        }
        return Ok(());
    }
    println!(
        "xtask: this host cannot attach to rmap walks (see `rmap-trace probe`); running in the QEMU guest"
    );
    let cmd = if args.rmap_args.is_empty() {
        DEFAULT_GUEST.to_string()
    } else {
        format!(
            "rmap-trace {}\n",
            args.rmap_args
                .iter()
                .map(|a| guest::sh_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    let out = guest::boot(&args.guest, &cmd, true)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    if out.status != 0 {
        bail!("rmap-trace exited with status {} in the guest", out.status);
    }
    Ok(())
}
