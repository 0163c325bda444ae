//! Runs `vexctl bench` without a kernel: usage errors and the failure on a
//! directory that is not on vexfs. (The KTAP document itself is tested on an
//! in-memory model in `src/bench.rs`.)
#![cfg(feature = "userspace")]

use std::path::PathBuf;
use std::process::Command;

fn vexctl(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_vexctl"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A fresh directory under the temp dir (not on vexfs), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("vexctl-bench-{}-{}", tag, std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn bench_usage_errors_exit_2() {
    for args in [
        &["bench"][..],
        &["bench", "/a", "/b"],
        &["bench", "/m", "--k", "0"],
        &["bench", "/m", "--k", "257"],
        &["bench", "/m", "--n", "abc"],
        &["bench", "/m", "--n", "2", "--reps", "3"],
        &["bench", "/m", "--frobnicate"],
        &["--json", "bench", "/m"],
    ] {
        let (code, out, err) = vexctl(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.starts_with("vexctl: "), "{args:?}: {err}");
        assert!(err.contains("usage: vexctl"), "{args:?}: {err}");
    }
    let (code, out, _) = vexctl(&["bench", "--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage: vexctl bench DIR"), "{out}");
    let (_, out, _) = vexctl(&["--help"]);
    assert!(out.contains("  bench DIR "), "{out}");
}

#[test]
fn bench_on_a_non_vexfs_dir_fails_with_enotty() {
    let t = TempDir::new("plain");
    let (code, out, err) = vexctl(&["bench", t.path(), "--n", "10", "--reps", "2"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "no KTAP for an unusable DIR: {out}");
    let mut lines = err.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!(
            "vexctl: bench {}: Inappropriate ioctl for device (errno=ENOTTY)",
            t.path()
        )
    );
    assert_eq!(
        lines.next().unwrap(),
        "vexctl: bench: DIR must be on a mounted vexfs"
    );
    // nothing was created in DIR
    assert_eq!(std::fs::read_dir(&t.0).unwrap().count(), 0);

    // a missing DIR whose parent is not on vexfs is not created
    let missing = t.0.join("sub");
    let m = missing.to_str().unwrap();
    let (code, _, err) = vexctl(&["bench", m]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "vexctl: bench {}: Inappropriate ioctl for device (errno=ENOTTY)",
            t.path()
        )),
        "{err}"
    );
    assert!(!missing.exists());

    // DIR is a regular file
    let f = t.0.join("file");
    std::fs::write(&f, b"x").unwrap();
    let (code, _, err) = vexctl(&["bench", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("(errno=ENOTDIR)"), "{err}");

    let (code, _, err) = vexctl(&["bench", "/nonexistent/vexfs/dir"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        "vexctl: bench /nonexistent/vexfs: No such file or directory (errno=ENOENT)"
    );
}
