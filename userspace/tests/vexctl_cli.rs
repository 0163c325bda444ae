//! Runs the `vexctl` binary: exit codes and message formats without a kernel.

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

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["bogus"],
        &["search", "/tmp", "--k", "x", "--metric", "l2", "1"],
        &["add", "f", "nan"],
    ] {
        let (code, out, err) = vexctl(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(
            err.starts_with("vexctl: ") && err.contains("usage: vexctl"),
            "{err}"
        );
    }
    let (code, out, _) = vexctl(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("expect-search"));
}

#[test]
fn ioctl_failure_exit_1_with_errno_name() {
    // a directory that is not on vexfs: the kernel answers ENOTTY
    let dir = std::env::temp_dir();
    let d = dir.to_str().unwrap();
    let (code, out, err) = vexctl(&["stats", d]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(
        err.trim_end(),
        format!("vexctl: stats {d}: Inappropriate ioctl for device (errno=ENOTTY)")
    );
    let (code, _, err) = vexctl(&["search", d, "--k", "1", "--metric", "l2", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("(errno=ENOTTY)"), "{err}");
    let (code, _, err) = vexctl(&["get", "/nonexistent/vexfs/file"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        "vexctl: get /nonexistent/vexfs/file: No such file or directory (errno=ENOENT)"
    );
}

#[test]
fn expect_search_prints_rank_name_score() {
    let (code, out, err) = vexctl(&[
        "expect-search",
        "--k",
        "3",
        "--metric",
        "l2",
        "0.5,0",
        "a=0,0",
        "b=1,0",
        "c=0.5,0.5",
        "d=10,10",
    ]);
    assert_eq!(code, 0, "{err}");
    // a: 0.25, b: 0.25 (tie -> lower ino, i.e. earlier entry), c: 0.25
    assert_eq!(out, "1 a 0.25\n2 b 0.25\n3 c 0.25\n");
}

#[cfg(feature = "serde")]
#[test]
fn expect_search_json() {
    let (code, out, err) = vexctl(&[
        "--json",
        "expect-search",
        "--k",
        "1",
        "--metric",
        "dot",
        "1",
        "a=2",
        "b=3",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["results"][0]["name"], "b");
    assert_eq!(v["results"][0]["score"], 3.0);
    assert_eq!(v["results"][0]["score_raw"], 3 * 65536);
    assert_eq!(v["nr_candidates"], 2);
}

#[cfg(not(feature = "serde"))]
#[test]
fn json_without_serde_is_usage_error() {
    let (code, _, err) = vexctl(&["--json", "stats", "/tmp"]);
    assert_eq!(code, 2);
    assert!(err.contains("serde"), "{err}");
}
