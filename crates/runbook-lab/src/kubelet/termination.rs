//! The termination message: what a container writes to its
//! `terminationMessagePath` (default `/dev/termination-log`) becomes
//! `state.terminated.message`; with `FallbackToLogsOnError`, a failed
//! container without one reports the end of its log. Containers of a pod
//! share one root in the lab, so they share the file (docs/lab.md).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The kubelet's limits: 4096 bytes from the file, 80 lines or 2048 bytes of log.
const MAX_MESSAGE: usize = 4096;
const MAX_LOG_LINES: usize = 80;
const MAX_LOG_BYTES: usize = 2048;

/// The file of container `spec` as the lab sees it through the sandbox.
fn file_of(sandbox_pid: u32, spec: &Value) -> PathBuf {
    let path = spec["terminationMessagePath"].as_str().unwrap_or("/dev/termination-log");
    Path::new(&format!("/proc/{sandbox_pid}/root")).join(path.trim_start_matches('/'))
}

/// Empties the file before the container starts, as a fresh mount would be.
pub fn reset(sandbox_pid: u32, spec: &Value) {
    let file = file_of(sandbox_pid, spec);
    if let Some(parent) = file.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(&file, b"");
    // World-writable, as the kubelet makes it: written here by the host's
    // root, it must stay writable by any user of the container (the pod's
    // root included, which is no one on the host).
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666));
}

/// The message for a container that ended with `exit_code`, if any.
pub fn message(sandbox_pid: u32, spec: &Value, exit_code: i64, log: &Path) -> Option<String> {
    let mut written = std::fs::read(file_of(sandbox_pid, spec)).unwrap_or_default();
    written.truncate(MAX_MESSAGE);
    let written = String::from_utf8_lossy(&written).into_owned();
    if !written.is_empty() {
        return Some(written);
    }
    let fallback = spec["terminationMessagePolicy"] == "FallbackToLogsOnError" && exit_code != 0;
    let text = || super::logfile::View::default().render(&std::fs::read(log).unwrap_or_default());
    fallback.then(|| log_tail(&String::from_utf8_lossy(&text()))).filter(|m| !m.is_empty())
}

fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(MAX_LOG_LINES)..].join("\n");
    let start = tail.len().saturating_sub(MAX_LOG_BYTES);
    let start = (start..=tail.len()).find(|&i| tail.is_char_boundary(i)).unwrap_or(tail.len());
    tail[start..].to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_file_wins_and_logs_stand_in_only_on_error_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let record = |text: &str| format!("2026-12-01T10:00:00.000000000Z stderr F {text}\n");
        std::fs::write(&log, record("line 1") + &record("fatal: no config")).unwrap();
        // Our own pid's root is the host's /: point the path at the temp dir.
        let path = dir.path().join("termination-log");
        let spec = json!({"terminationMessagePath": path, "terminationMessagePolicy": "FallbackToLogsOnError"});
        let me = std::process::id();
        reset(me, &spec);
        assert_eq!(message(me, &spec, 1, &log).as_deref(), Some("line 1\nfatal: no config"));
        assert_eq!(message(me, &spec, 0, &log), None);
        std::fs::write(&path, "bye").unwrap();
        assert_eq!(message(me, &spec, 0, &log).as_deref(), Some("bye"));
        let file_only = json!({"terminationMessagePath": path});
        std::fs::write(&path, "").unwrap();
        assert_eq!(message(me, &file_only, 1, &log), None);
    }
}
