//! Part of the drops suite: a burst of walks faster than the reader — every page of a 20,000-page
//! anon region moved to the other node, 512 per `move_pages` call (two walks a page: the
//! migration's and the removal of its migration entries) — watched through a 4 KiB ring
//! buffer that drops records. The summary must count every walk anyway: as many as a second
//! tracer with a 16 MiB ring received as CSV records, dropping none. (Not simply 2 × pages: a
//! page that was faulted in on the target node is not moved, and the workload's thread may
//! change nodes while it faults the region in.)
use super::{Checks, counter, json, kernel_walks, row};
use crate::guest::qemu::GuestRun;

/// Pages of the burst: 40,000 walks.
pub const PAGES: u32 = 20_000;

/// The guest script's part (needs `attached` from the drops script).
pub fn script() -> String {
    format!(
        r#"rmap-trace --attach-only --attach-mode fentry --comm rmap-trace --ringbuf-kib 4 --min-duration-us 0 --interval 600 --json /tmp/burst.json > /tmp/burst.txt 2>&1 &
B=$!
attached /tmp/burst.txt || echo "burst tracer did not attach"
rmap-trace --attach-only --attach-mode fentry --comm rmap-trace --ringbuf-kib 16384 --interval 600 --json /tmp/bref.json --csv /tmp/bref.csv > /tmp/bref.txt 2>&1 &
R=$!
attached /tmp/bref.txt || echo "burst reference tracer did not attach"
rmap-trace workload --types anon --layouts split --pages {PAGES} --move-batch 512 > /tmp/bw.txt 2>&1; echo "burst workload exit $?" >> /tmp/bw.txt
kill -TERM $B $R; wait $B $R
echo $(( $(wc -l < /tmp/bref.csv) - 1 )) > /tmp/bref.n
emit burst /tmp/burst.json
emit bref /tmp/bref.json
emit bref.n /tmp/bref.n
emit burst.txt /tmp/burst.txt
emit bw.txt /tmp/bw.txt
"#
    )
}

pub fn verify(run: &GuestRun, c: &mut Checks) -> anyhow::Result<()> {
    let text = |n: &str| run.outputs.get(n).map_or("", |s| s.trim());
    println!(
        "--- guest output, burst ---\n{}\n{}",
        text("bw.txt"),
        text("burst.txt")
    );
    let doc = json(run, "burst")?;
    let reference = json(run, "bref")?;
    let want: u64 = text("bref.n").parse().unwrap_or(0);
    let ref_drops = counter(&reference, "ringbuf_drops");
    let count = row(&doc["types"], "anon")
        .and_then(|r| r["count"].as_u64())
        .unwrap_or(0);
    let (kernel, drops) = (kernel_walks(&doc, "anon"), counter(&doc, "ringbuf_drops"));
    c.check(
        "burst of 40,000 walks through a 4 KiB ring: the summary counts every walk, drops or not",
        text("bw.txt").contains("burst workload exit 0")
            && want > u64::from(PAGES)
            && ref_drops == 0
            && count == want
            && kernel == want
            && drops > 0,
        format!(
            "summary {count}, kernel {kernel}; the 16 MiB ring's records {want} (dropped {ref_drops}); the 4 KiB ring dropped {drops}"
        ),
    );
    let note = text("burst.txt")
        .lines()
        .find(|l| l.contains(" walks; ") && l.contains(" dropped"))
        .unwrap_or("<no coverage note>");
    c.check(
        "burst: the record-based tables say how many walks they cover",
        note.contains(&format!("of {want} walks; {drops} dropped")),
        note.to_string(),
    );
    Ok(())
}
