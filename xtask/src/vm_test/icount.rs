//! The icount suite: the overhead bench's guest (`--accel icount`, its default) boots and
//! traces, so that a change to the harness cannot break the bench unseen until someone runs it.
//! One CPU online, both NUMA nodes, the TSC as clocksource at the instruction clock's 1 GHz,
//! and fentry counting every walk of the bench's anon workload (fewer pages).
use super::{Checks, json, kernel_walks};
use crate::guest::{self, GuestArgs, qemu::Accel, qemu::GuestRun};

/// Pages the workload moves, 512 per call as in the bench: two walks each.
const PAGES: u32 = 1024;

fn script() -> String {
    format!(
        r#"echo "online $(cat /sys/devices/system/cpu/online)" > /tmp/machine.txt
echo "nodes $(ls -d /sys/devices/system/node/node[0-9]* | wc -l)" >> /tmp/machine.txt
echo "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)" >> /tmp/machine.txt
dmesg | grep -o 'tsc: Detected [0-9.]* MHz' >> /tmp/machine.txt
rmap-trace --attach-only --attach-mode fentry --comm rmap-trace --interval 600 --json /tmp/ic.json > /tmp/ic.txt 2>&1 &
T=$!
for i in $(seq 300); do grep -q '^attach:' /tmp/ic.txt && break; sleep 0.2; done
rmap-trace workload --types anon --layouts split --pages {PAGES} --move-batch 512 > /tmp/icw.txt 2>&1; echo "workload exit $?" >> /tmp/icw.txt
kill -TERM $T; wait $T
emit machine.txt /tmp/machine.txt
emit ic /tmp/ic.json
emit icw.txt /tmp/icw.txt
"#
    )
}

pub fn run(args: &GuestArgs, c: &mut Checks) -> anyhow::Result<()> {
    let args = GuestArgs {
        accel: Accel::Icount,
        numa_nodes: 2,
        ..args.clone()
    };
    let out = guest::boot(&args, &script(), false)?;
    eprintln!("xtask: guest finished in {:.1} s", out.elapsed.as_secs_f64());
    verify(&out, c)
}

fn text<'a>(run: &'a GuestRun, name: &str) -> &'a str {
    run.outputs.get(name).map_or("", |s| s.trim())
}

fn verify(run: &GuestRun, c: &mut Checks) -> anyhow::Result<()> {
    let machine = text(run, "machine.txt");
    println!(
        "--- guest output, icount ---\n{machine}\n{}",
        text(run, "icw.txt")
    );
    let has = |line: &str| machine.lines().any(|l| l.trim() == line);
    c.check(
        "icount: one CPU online, two NUMA nodes",
        has("online 0") && has("nodes 2"),
        machine.replace('\n', "; "),
    );
    c.check(
        "icount: the TSC is the clocksource, at the instruction clock's 1 GHz",
        has("clocksource tsc") && machine.contains("tsc: Detected 1000.000 MHz"),
        machine.replace('\n', "; "),
    );
    let doc = json(run, "ic")?;
    let walks = kernel_walks(&doc, "anon");
    c.check(
        "icount: fentry counts the anon workload's walks (two per page moved)",
        text(run, "icw.txt").contains("workload exit 0") && walks >= u64::from(PAGES) * 2,
        format!("{walks} anon walks for {PAGES} pages"),
    );
    Ok(())
}
