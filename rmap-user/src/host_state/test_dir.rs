//! A fresh directory under the system temp dir for the unit tests, removed on drop.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct TestDir(PathBuf);

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl TestDir {
    pub fn new(name: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("rmap-state-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).expect("creating a test directory");
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("removing {}: {e}", self.0.display());
        }
    }
}
