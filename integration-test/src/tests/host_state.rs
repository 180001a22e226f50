//! The host-state journal and KSM's lock as root: a KSM run is refused while another process
//! owns KSM's settings, and a journal of another user is never replayed.
use std::{
    fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::Path,
    process::Command,
};

use rmap_user::host_state::{
    self, Change, Host, JournalDir,
    journal::{Entry, Journal},
    lock,
};

use crate::{TempDir, require_root, rmap_trace_bin};

const KNOBS: [&str; 4] = ["run", "sleep_millisecs", "pages_to_scan", "max_page_sharing"];

fn knobs() -> Vec<String> {
    KNOBS
        .iter()
        .map(|k| fs::read_to_string(Path::new("/sys/kernel/mm/ksm").join(k)).unwrap_or_default())
        .collect()
}

/// While this process holds KSM's lock (as a run between its check and its journal would), a
/// KSM workload is refused in one line naming this process, and KSM is left as it was.
#[test]
fn a_second_ksm_owner_is_refused_naming_the_first() {
    require_root();
    let dir = host_state::current_dir().unwrap();
    let held = lock::ksm(&dir).expect("no other rmap-trace owns KSM during the tests");
    let before = knobs();
    let out = Command::new(rmap_trace_bin())
        .args([
            "workload",
            "--types",
            "ksm",
            "--pages",
            "64",
            "--trigger",
            "compact",
        ])
        .output()
        .unwrap();
    drop(held);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let me = format!("another rmap-trace (pid {}, ", std::process::id());
    assert!(err.lines().last().is_some_and(|l| l.contains(&me)), "{err}");
    assert_eq!(knobs(), before);
}

/// A journal that another user (nobody) owns, or that is a link to root's file, is reported
/// and not replayed, even when every change in it is allowed.
#[test]
fn journals_root_did_not_write_are_not_replayed() {
    require_root();
    let t = TempDir(std::env::temp_dir().join(format!("rmap-journals-{}", std::process::id())));
    let (ksm, journals) = (t.0.join("ksm"), t.0.join("journals"));
    fs::create_dir_all(&ksm).unwrap();
    fs::create_dir_all(&journals).unwrap();
    fs::set_permissions(&journals, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(ksm.join("run"), "1").unwrap();
    let host = Host {
        ksm: ksm.clone(),
        ..Host::real()
    };
    let dir = JournalDir {
        path: journals.clone(),
        owner: 0,
    };
    let j = Journal {
        pid: 4_194_500,
        start_time: 1,
        entries: vec![Entry {
            id: 1,
            change: Change::Ksm {
                dir: ksm.clone(),
                knobs: vec![("run".into(), 0)],
            },
        }],
    };
    let nobody = journals.join("1.json");
    j.save_at(&nobody).unwrap();
    std::os::unix::fs::chown(&nobody, Some(65_534), Some(65_534)).unwrap();
    assert_eq!(fs::metadata(&nobody).unwrap().uid(), 65_534);
    let elsewhere = t.0.join("root.json");
    j.save_at(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, journals.join("2.json")).unwrap();
    let r = host_state::recover(&dir, &host, Path::new("/proc")).unwrap();
    let bad: Vec<String> = r.bad.iter().map(ToString::to_string).collect();
    assert!(r.runs.is_empty(), "{:?}", r.runs);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("is owned by uid 65534, not 0"), "{bad:?}");
    assert!(bad[1].contains("is a symbolic link"), "{bad:?}");
    assert_eq!(fs::read_to_string(ksm.join("run")).unwrap(), "1");
}
