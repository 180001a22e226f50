//! Files an rmap-trace command line writes in the guest (`--json`, `--csv`, `--hlog`, `--plot`,
//! `-o`), brought home: the guest writes them under /tmp/out, sends them base64-encoded on the
//! console, and the host writes them at the paths the user gave, relative to where xtask runs.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;

use super::qemu::GuestRun;

/// Options whose value is a file rmap-trace writes.
const OUTPUT_OPTIONS: [&str; 6] = ["--json", "--csv", "--hlog", "--plot", "--output", "-o"];

/// A file to bring home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeFile {
    /// Its name in the console protocol.
    pub name: String,
    /// Where rmap-trace writes it in the guest.
    pub guest: String,
    /// Where it goes on the host, as given.
    pub host: PathBuf,
}

/// `args` with each output file moved under /tmp/out in the guest, and the files to bring home.
pub fn redirect(args: &[String]) -> (Vec<String>, Vec<HomeFile>) {
    let mut out = Vec::with_capacity(args.len());
    let mut files = Vec::new();
    let take = |host: &str, files: &mut Vec<HomeFile>| {
        let n = files.len();
        let base = Path::new(host)
            .file_name()
            .map_or_else(|| "file".into(), |b| b.to_string_lossy().into_owned());
        let guest = format!("/tmp/out/{n}-{base}");
        files.push(HomeFile {
            name: format!("home-{n}"),
            guest: guest.clone(),
            host: PathBuf::from(host),
        });
        guest
    };
    let mut iter = args.iter().peekable();
    while let Some(a) = iter.next() {
        if let Some((flag, value)) = a.split_once('=')
            && OUTPUT_OPTIONS.contains(&flag)
        {
            out.push(format!("{flag}={}", take(value, &mut files)));
        } else if OUTPUT_OPTIONS.contains(&a.as_str())
            && let Some(value) = iter.next_if(|v| !v.starts_with('-'))
        {
            out.push(a.clone());
            out.push(take(value, &mut files));
        } else {
            out.push(a.clone());
        }
    }
    (out, files)
}

/// Guest shell lines that send each file written home (the files not written are not sent).
pub fn send_lines(files: &[HomeFile]) -> String {
    let mut s = String::new();
    for f in files {
        s.push_str(&format!(
            "[ -f {g} ] && emit64 {n} {g}\n",
            g = f.guest,
            n = f.name
        ));
    }
    s
}

/// The host paths checked before the guest boots: each one's directory must exist.
pub fn check(files: &[HomeFile]) -> anyhow::Result<()> {
    for f in files {
        let dir = f
            .host
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            bail!(
                "{}: no directory {} on this host",
                f.host.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Writes the files the guest sent at their host paths; says which ones it did not send.
pub fn write(run: &GuestRun, files: &[HomeFile]) -> anyhow::Result<()> {
    for f in files {
        let Some(text) = run.outputs.get(&f.name) else {
            eprintln!(
                "xtask: the guest wrote no {} (rmap-trace's output above says why)",
                f.host.display()
            );
            continue;
        };
        let bytes = decode(text).with_context(|| format!("{}: the guest's copy", f.host.display()))?;
        std::fs::write(&f.host, &bytes).with_context(|| format!("writing {}", f.host.display()))?;
        eprintln!(
            "xtask: wrote {} ({} bytes, from the guest)",
            f.host.display(),
            bytes.len()
        );
    }
    Ok(())
}

/// base64 over console lines.
fn decode(text: &str) -> anyhow::Result<Vec<u8>> {
    let joined: String = text.split_whitespace().collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(joined)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn output_files_are_moved_and_listed() {
        let (args, files) = redirect(&strings(&[
            "--types",
            "ksm",
            "--hlog",
            "a.hlog",
            "--json=out/a.json",
            "--csv",
            "-",
            "--plot",
        ]));
        assert_eq!(
            args,
            strings(&[
                "--types",
                "ksm",
                "--hlog",
                "/tmp/out/0-a.hlog",
                "--json=/tmp/out/1-a.json",
                "--csv",
                "-",
                "--plot"
            ])
        );
        assert_eq!(files.len(), 2);
        assert_eq!(
            (files[1].host.as_path(), files[1].name.as_str()),
            (Path::new("out/a.json"), "home-1")
        );
        assert!(send_lines(&files).contains("[ -f /tmp/out/0-a.hlog ] && emit64 home-0 /tmp/out/0-a.hlog\n"));
    }

    #[test]
    fn sent_files_decode_across_lines() {
        assert_eq!(decode("aGVsbG8s\nIHdvcmxk\nCg==\n").unwrap(), b"hello, world\n");
        assert!(decode("not base64!").is_err());
    }
}
