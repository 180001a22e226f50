//! Running QEMU and watching its serial console.
use std::{
    collections::{BTreeMap, VecDeque},
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::script::{EXIT, OUT_BEGIN, OUT_END, READY};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Tcg,
    Kvm,
    Auto,
    /// TCG with `-icount shift=0`, one CPU online: while the guest runs, its clock (its TSC
    /// included) advances by 1 ns per guest instruction executed, so nothing the host does
    /// shows in the time of guest work; while it idles, with the host's clock.
    Icount,
}

/// What a guest run produced.
#[derive(Debug, Default)]
pub struct GuestRun {
    /// Console lines (after READY), without the marker blocks.
    pub console: Vec<String>,
    /// `RMAP-OUT-BEGIN name` blocks.
    pub outputs: BTreeMap<String, String>,
    /// Exit status of /cmd.sh.
    pub status: i32,
    pub elapsed: Duration,
}

/// How a guest run failed, where a caller acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It never printed the ready marker within its boot timeout.
    NoBoot,
    Other,
}

/// The guest kernel's own command-line words, each with what it is for: a guest that panics
/// or hangs ends the run with every CPU's backtrace in the error report (`run_with`,
/// `dump_hung`) rather than at the timeout in silence.
const KERNEL_WORDS: [(&str, &str); 10] = [
    ("console=ttyS0", "the console on the serial port QEMU captures"),
    (
        "loglevel=1",
        "only emergencies on the console: backtraces come in the panic's replay",
    ),
    (
        "panic=-1",
        "reboot at once on panic, which -no-reboot turns into an exit",
    ),
    ("oops=panic", "an oops ends the run too"),
    (
        "softlockup_panic=1",
        "a soft lockup panics instead of hanging until the timeout",
    ),
    ("softlockup_all_cpu_backtrace=1", "…after every CPU's backtrace"),
    (
        "panic_print=0x60",
        "the panic replays the log (0x20) and asks every CPU for its backtrace (0x40)",
    ),
    (
        "watchdog_thresh=30",
        "a soft lockup is 60 s without scheduling, not 20: a TCG vCPU may be starved",
    ),
    (
        "unknown_nmi_panic",
        "the NMI sent to a hung guest at the timeout panics it",
    ),
    (
        "sysrq_always_enabled",
        "SysRq-l from the monitor prints every CPU's backtrace at the timeout",
    ),
];

/// A failed guest run: what went wrong and the last console lines, with the kernel's report.
#[derive(Debug)]
pub struct GuestFailed {
    pub kind: Failure,
    /// The replayed log shows QEMU's MTTCG text-patching hang (`tcg.rs`).
    pub hang_signature: bool,
    message: String,
}

impl std::fmt::Display for GuestFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GuestFailed {}

pub struct Machine<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub numa_nodes: u32,
    pub memory_mib: u32,
    pub timeout: Duration,
    /// Print console lines as they come.
    pub echo: bool,
    /// Kernel command-line words the kernel needs beyond the console ones.
    pub cmdline: &'a [String],
}

impl Machine<'_> {
    /// The QEMU monitor's socket: beside the initramfs, whose name is this run's own.
    fn monitor(&self) -> std::path::PathBuf {
        self.initrd.with_extension("monitor")
    }

    fn command(&self, accel: Accel) -> anyhow::Result<Command> {
        let mut c = super::emulator::command()?;
        let kvm = accel == Accel::Kvm;
        c.args([
            "-accel",
            match accel {
                Accel::Kvm => "kvm",
                // icount needs one thread for all vCPUs (QEMU refuses MTTCG with it).
                Accel::Icount => "tcg,thread=single",
                Accel::Tcg | Accel::Auto => "tcg",
            },
            "-cpu",
            if kvm { "host" } else { "max" },
        ]);
        if accel == Accel::Icount {
            // softmmu/icount.c: the virtual clock is the instructions executed << shift.
            // `sleep=on`: an idle guest's clock runs with the host's, so that waits in guest
            // scripts take the time they say; the measured phases keep the CPU busy.
            c.args(["-icount", "shift=0,sleep=on"]);
        }
        c.args([
            "-m",
            &format!("{}M", self.memory_mib),
            "-smp",
            &self.numa_nodes.max(2).to_string(),
        ]);
        let per_node = self.memory_mib / self.numa_nodes;
        let cpus = self.numa_nodes.max(2);
        for n in 0..self.numa_nodes {
            c.args(["-object", &format!("memory-backend-ram,id=m{n},size={per_node}M")]);
            // CPUs spread over nodes; node n gets cpu n (and the rest go to node 0).
            let cpu_list = if n == 0 && cpus > self.numa_nodes {
                format!("cpus=0,cpus={}-{}", self.numa_nodes, cpus - 1)
            } else {
                format!("cpus={n}")
            };
            c.args(["-numa", &format!("node,nodeid={n},{cpu_list},memdev=m{n}")]);
        }
        c.arg("-kernel").arg(self.kernel).arg("-initrd").arg(self.initrd);
        let mut append = KERNEL_WORDS.map(|(word, _)| word).join(" ");
        for word in self.cmdline {
            append.push(' ');
            append.push_str(word);
        }
        c.arg("-append").arg(append);
        c.args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
            "-display",
            "none",
            "-monitor",
            &format!("unix:{},server=on,wait=off", self.monitor().display()),
        ]);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // QEMU dies with xtask (killed, or its CI job stopped), never left running.
        // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(c)
    }

    /// Boots, runs /cmd.sh, returns its outputs. Timeouts, panics and a guest that stops
    /// without the exit marker are errors carrying the last console lines.
    pub fn run(&self, accel: Accel) -> anyhow::Result<GuestRun> {
        match accel {
            Accel::Auto if kvm_usable() => match self.run_with(Accel::Kvm, Some(Duration::from_mins(1))) {
                Err(e)
                    if e.downcast_ref::<GuestFailed>()
                        .is_some_and(|f| f.kind == Failure::NoBoot) =>
                {
                    eprintln!("xtask: KVM guest did not boot within 60 s; falling back to TCG");
                    self.run_tcg()
                }
                other => other,
            },
            Accel::Auto | Accel::Tcg => self.run_tcg(),
            other => self.run_with(other, None),
        }
    }

    /// A TCG run, booted again once when it died of QEMU's MTTCG text-patching hang
    /// (`tcg.rs`); any other failure, or the hang twice, is the run's error.
    fn run_tcg(&self) -> anyhow::Result<GuestRun> {
        match self.run_with(Accel::Tcg, None) {
            Err(e)
                if super::tcg::known_hang(
                    e.downcast_ref::<GuestFailed>().is_some_and(|f| f.hang_signature),
                ) =>
            {
                // The first run's report stays in the log, in case it was something else.
                eprintln!(
                    "xtask: {e:#}\nxtask: {}; booting it again (once)",
                    super::tcg::KNOWN_HANG
                );
                self.run_with(Accel::Tcg, None)
            }
            other => other,
        }
    }

    fn run_with(&self, accel: Accel, boot_timeout: Option<Duration>) -> anyhow::Result<GuestRun> {
        let (child, rx) = self.spawn(accel)?;
        let started = Instant::now();
        let mut watch = Watch::default();
        let mut nmi_sent = false;
        let result = loop {
            let limit = match (watch.ready, nmi_sent) {
                (true, false) => self.timeout,
                (true, true) => self.timeout + NMI_PANIC_WAIT,
                (false, _) => boot_timeout.unwrap_or(self.timeout),
            };
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() && watch.ready && !nmi_sent {
                // Hung: make the kernel say where each CPU is before giving up on it.
                nmi_sent = true;
                match dump_hung(&self.monitor()) {
                    Ok(()) => {
                        watch.remember("xtask: timed out; NMI sent to the guest's CPUs".to_string());
                        continue;
                    }
                    Err(e) => log_debug(&format!("NMI through the monitor: {e:#}")),
                }
            }
            if left.is_zero() {
                break Err(if watch.ready {
                    (
                        Failure::Other,
                        format!(
                            "guest timed out after {} s without {EXIT}",
                            self.timeout.as_secs()
                        ),
                    )
                } else {
                    (
                        Failure::NoBoot,
                        format!("guest did not boot within {} s (no {READY})", limit.as_secs()),
                    )
                });
            }
            let line = match rx.recv_timeout(left.min(Duration::from_secs(1))) {
                Ok(l) => l,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err((Failure::Other, format!("qemu exited without {EXIT}")));
                }
            };
            if line.contains("Kernel panic") {
                // Let the panic text and the replayed log arrive, then report: with panic=-1 the
                // guest restarts once they are out, which -no-reboot turns into QEMU's exit
                // (the channel closes); 30 s at most otherwise.
                watch.remember(line);
                let until = Instant::now() + Duration::from_secs(30);
                while let Ok(l) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    watch.panic_text.push(l);
                }
                break Err(if nmi_sent {
                    (
                        Failure::Other,
                        format!(
                            "guest timed out after {} s without {EXIT}; the NMI sent then made it panic",
                            self.timeout.as_secs()
                        ),
                    )
                } else {
                    (Failure::Other, "guest kernel panicked".to_string())
                });
            }
            if let Some(done) = watch.line(line, self.echo) {
                break done.map_err(|e| (Failure::Other, format!("{e:#}")));
            }
        };
        self.finish(child, watch, started.elapsed(), result)
    }

    /// Stops QEMU after a run; its outputs, or what failed with the last console lines.
    fn finish(
        &self,
        mut child: Child,
        watch: Watch,
        elapsed: Duration,
        result: Result<(), (Failure, String)>,
    ) -> anyhow::Result<GuestRun> {
        if let Err(e) = child.kill() {
            // Already exited (poweroff): nothing to stop.
            log_debug(&format!("qemu kill: {e}"));
        }
        child.wait().context("waiting for qemu")?;
        if let Err(e) = std::fs::remove_file(self.monitor()) {
            log_debug(&format!("removing the monitor socket: {e}"));
        }
        let mut run = watch.run;
        run.elapsed = elapsed;
        match result {
            Ok(()) => Ok(run),
            Err((kind, e)) => {
                let tail: Vec<String> = watch.last.into_iter().filter(|l| !l.trim().is_empty()).collect();
                Err(GuestFailed {
                    kind,
                    hang_signature: super::tcg::shows_hang(&watch.panic_text),
                    message: format!(
                        "{e}{}; last console lines:\n  {}{}",
                        super::tcg::signature_note(&watch.panic_text),
                        tail[tail.len().saturating_sub(15)..].join("\n  "),
                        panic_report(&watch.panic_text)
                    ),
                }
                .into())
            }
        }
    }

    /// Starts QEMU; its stdout and stderr lines (the latter prefixed `qemu: `) arrive on the
    /// receiver.
    fn spawn(&self, accel: Accel) -> anyhow::Result<(Child, mpsc::Receiver<String>)> {
        let mut child = self
            .command(accel)?
            .spawn()
            .context("starting qemu-system-x86_64 (run: cargo xtask setup)")?;
        let stdout = child.stdout.take().context("qemu stdout")?;
        let stderr = child.stderr.take().context("qemu stderr")?;
        let (tx, rx) = mpsc::channel::<String>();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
                // The serial console ends lines with CR LF.
                let line = String::from_utf8_lossy(&line).replace('\r', "");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx2.send(format!("qemu: {line}")).is_err() {
                    break;
                }
            }
        });
        Ok((child, rx))
    }
}

/// The console read so far: the markers seen, the outputs, the last lines for error reports.
#[derive(Default)]
struct Watch {
    run: GuestRun,
    last: VecDeque<String>,
    ready: bool,
    /// The output block being read: its name and text so far.
    block: Option<(String, String)>,
    /// What the console printed after "Kernel panic": the replayed log, backtraces included.
    panic_text: Vec<String>,
}

/// The part of the replayed log that says why the guest panicked: from the first `BUG:` or
/// `Oops:` on, or from the NMI sent at a timeout (a boot-time `WARNING:` is not why), else from
/// 30 lines before the replayed panic line (else its last 60 lines); at most 250 lines.
fn panic_report(text: &[String]) -> String {
    if text.is_empty() {
        return String::new();
    }
    let first = text
        .iter()
        .position(|l| l.contains("BUG:") || l.contains("Oops:") || l.contains("NMI received"))
        // Else what led to the panic: the replayed log's own copy of the panic line comes last
        // (after every CPU's backtrace), and the lines before it are the cause.
        .or_else(|| {
            text.iter()
                .rposition(|l| l.contains("Kernel panic"))
                .map(|p| p.saturating_sub(30))
        })
        .unwrap_or(text.len().saturating_sub(60));
    let lines: Vec<&str> = text[first..]
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty())
        .take(250)
        .collect();
    format!("\nthe kernel's report (replayed log):\n  {}", lines.join("\n  "))
}

impl Watch {
    fn remember(&mut self, line: String) {
        if self.last.len() == 40 {
            self.last.pop_front();
        }
        self.last.push_back(line);
    }

    /// Takes one console line; `Some` when the run is over (the exit marker seen).
    fn line(&mut self, line: String, echo: bool) -> Option<anyhow::Result<()>> {
        self.remember(line.clone());
        if let Some((name, buf)) = &mut self.block {
            if line.trim_end() == format!("{OUT_END} {name}") {
                let (name, buf) = self.block.take().expect("in a block");
                self.run.outputs.insert(name, buf);
            } else {
                buf.push_str(&line);
                buf.push('\n');
            }
            return None;
        }
        if let Some(name) = line.trim_end().strip_prefix(&format!("{OUT_BEGIN} ")) {
            self.block = Some((name.to_string(), String::new()));
            return None;
        }
        if !self.ready {
            self.ready = line.contains(READY);
            return None;
        }
        if let Some(code) = line.trim().strip_prefix(EXIT) {
            self.run.status = code.trim().parse().unwrap_or(-1);
            return Some(Ok(()));
        }
        if echo {
            println!("{line}");
        }
        self.run.console.push(line);
        None
    }
}

/// How long a guest hung at its timeout has to panic after the NMI.
const NMI_PANIC_WAIT: Duration = Duration::from_secs(30);

/// Through the QEMU monitor: SysRq-l (every CPU's backtrace into the kernel log), then an NMI
/// to every CPU, which with `unknown_nmi_panic` panics the kernel; the panic replays the log.
fn dump_hung(monitor: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut s = std::os::unix::net::UnixStream::connect(monitor)
        .with_context(|| format!("connecting to {}", monitor.display()))?;
    s.write_all(b"sendkey alt-sysrq-l\n")
        .context("writing to the monitor")?;
    // The backtraces are printed by each CPU in NMI context, then flushed to the log.
    std::thread::sleep(Duration::from_secs(3));
    s.write_all(b"nmi\n").context("writing to the monitor")?;
    // The monitor reads the command before the socket closes.
    std::thread::sleep(Duration::from_millis(500));
    Ok(())
}

fn log_debug(msg: &str) {
    if std::env::var_os("XTASK_DEBUG").is_some() {
        eprintln!("xtask: {msg}");
    }
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
