//! `runbook lab up/down/status` as a user runs them: the real binary.

use crate::common::requires;
use std::process::Command;

fn runbook(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_runbook")).args(args).arg("--state-dir").arg(dir).output().unwrap()
}

fn lab_processes_for(dir: &std::path::Path) -> usize {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .count()
}

#[test]
fn up_detached_status_down_then_up_again() {
    requires!(Root);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let up = runbook(&["lab", "up", "--detach"], &dir);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let stdout = String::from_utf8_lossy(&up.stdout);
    let export = format!("export KUBECONFIG={}", dir.join("kubeconfig").display());
    assert!(stdout.lines().any(|l| l == export), "{stdout}");

    let status = runbook(&["lab", "status"], &dir);
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stdout));
    assert!(String::from_utf8_lossy(&status.stdout).contains("healthy:    yes"));

    let again = runbook(&["lab", "up", "--detach"], &dir);
    assert_eq!(again.status.code(), Some(3), "a second lab on the same state dir is refused");

    let down = runbook(&["lab", "down"], &dir);
    assert!(down.status.success());
    assert_eq!(lab_processes_for(&dir), 0, "lab down leaves no process behind");
    assert_eq!(runbook(&["lab", "status"], &dir).status.code(), Some(1));

    let up = runbook(&["lab", "up", "--detach"], &dir);
    assert!(up.status.success(), "a second lab up works");
    assert!(runbook(&["lab", "down"], &dir).status.success());
    assert_eq!(lab_processes_for(&dir), 0);
}

#[test]
fn usage_errors_exit_3() {
    let out = Command::new(env!("CARGO_BIN_EXE_runbook")).args(["lab", "up", "--port", "notaport"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
}
