//! What runs inside the guest: the init script and the marker protocol on the console.
//!
//! The guest prints `RMAP-GUEST-READY` once set up, `RMAP-OUT-BEGIN <name>` / `RMAP-OUT-END
//! <name>` around files the host should parse (`emit`: as text; `emit64`: base64, byte for
//! byte), and `RMAP-GUEST-EXIT <status>` at the end.

pub const READY: &str = "RMAP-GUEST-READY";
pub const EXIT: &str = "RMAP-GUEST-EXIT";
pub const OUT_BEGIN: &str = "RMAP-OUT-BEGIN";
pub const OUT_END: &str = "RMAP-OUT-END";

/// Prepended to every /cmd.sh (run by `sh`, so that `exit` ends the script, not init).
/// `phase STEP` says on the console where the script is, with the uptime: a hung guest's last
/// lines then say in which step it hung.
pub const PRELUDE: &str = r#"emit() { echo "RMAP-OUT-BEGIN $1"; cat "$2"; echo; echo "RMAP-OUT-END $1"; }
emit64() { echo "RMAP-OUT-BEGIN $1"; base64 "$2"; echo "RMAP-OUT-END $1"; }
phase() { echo "phase $1 at $(cut -d' ' -f1 /proc/uptime) s"; }
"#;

/// /init: mounts, turns NUMA balancing off (it migrates pages on its own), runs /cmd.sh.
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tracefs nodev /sys/kernel/tracing
mount -t cgroup2 none /sys/fs/cgroup
mount -t tmpfs tmp /tmp
[ -f /proc/sys/kernel/numa_balancing ] && echo 0 > /proc/sys/kernel/numa_balancing
for m in /lib/modules/zsmalloc.ko /lib/modules/zram.ko; do [ -f $m ] && insmod $m; done
echo RMAP-GUEST-READY
sh /cmd.sh
echo "RMAP-GUEST-EXIT $?"
poweroff -f
"#;
