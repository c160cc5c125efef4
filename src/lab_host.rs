//! How runbook hosts its embedded lab (the `runbook-lab` crate): runbook's own
//! binary is the pods' sandbox program (its hidden `__sandbox` command), and
//! the counter-service binary built beside it is the `counter-service` image.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::lab::LabConfig;

/// A lab configuration with runbook as its sandbox program and its built
/// images, state under `state_dir`.
pub fn lab_config(state_dir: PathBuf) -> anyhow::Result<LabConfig> {
    let runbook = runbook_binary()?;
    Ok(LabConfig { built_images: built_images(&runbook), sandbox_program: Some(runbook), ..LabConfig::new(state_dir) })
}

/// The runbook binary: `$RUNBOOK_BIN`, the current executable when it is
/// runbook, or runbook beside it (tests and benches run from target/*/deps).
pub fn runbook_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("RUNBOOK_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    if exe.file_name().is_some_and(|n| n == "runbook") {
        return Ok(exe);
    }
    let dir = exe.parent().context("the executable has no directory")?;
    for candidate in [dir.join("runbook"), dir.join("../runbook")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    anyhow::bail!("cannot find the runbook binary to run pod sandboxes; set RUNBOOK_BIN")
}

/// Images built from this repository, found beside the runbook binary (cargo
/// puts every binary of the workspace in one directory): `counter-service`.
pub fn built_images(runbook: &Path) -> Vec<(String, PathBuf)> {
    let Some(dir) = runbook.parent() else { return Vec::new() };
    match std::fs::canonicalize(dir.join("counter-service")) {
        Ok(path) => vec![("counter-service".to_string(), path)],
        Err(_) => Vec::new(),
    }
}
