//! Where a lab started from the command line keeps its files: the kubeconfig,
//! the pid file of a detached lab, its log, and (later) volume data.

use std::path::{Path, PathBuf};

/// The default state dir: `$XDG_RUNTIME_DIR/runbook/lab`, else
/// `$XDG_DATA_HOME/runbook/lab`, else `~/.local/share/runbook/lab`.
pub fn default_state_dir() -> PathBuf {
    let from_env = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(runtime) = from_env("XDG_RUNTIME_DIR") {
        return runtime.join("runbook/lab");
    }
    if let Some(data) = from_env("XDG_DATA_HOME") {
        return data.join("runbook/lab");
    }
    let home = from_env("HOME").unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/runbook/lab")
}

/// Path of the pid file of a detached lab.
pub fn pid_file(dir: &Path) -> PathBuf {
    dir.join("lab.pid")
}

/// Path of the kubeconfig.
pub fn kubeconfig(dir: &Path) -> PathBuf {
    dir.join("kubeconfig")
}

/// Path of a detached lab's log.
pub fn log_file(dir: &Path) -> PathBuf {
    dir.join("lab.log")
}

/// The pid recorded in the pid file, if the file exists and holds a number.
pub fn read_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file(dir)).ok()?.trim().parse().ok()
}

/// Whether a process with this pid is alive and is a runbook lab (so a stale
/// pid file whose number was reused by another program is not mistaken for it).
pub fn is_lab_process(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.first().is_some_and(|a| a.ends_with(b"runbook"))
        && args.iter().any(|a| *a == b"lab")
        && args.iter().any(|a| *a == b"up")
}
