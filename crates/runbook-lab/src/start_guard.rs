//! Undoing a lab start that did not finish. `Lab::start` awaits (the network
//! namespace, the listener), so a caller may drop it half-way: `runbook run
//! --lab` does when Ctrl-C comes while the lab starts. Without this guard the
//! state dir stayed behind, and the userland prebuild (a thread still writing
//! into it) could even bring back a dir that was just removed.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::kubelet::network::LabNetwork;

/// Cleans up on drop unless [`StartGuard::finish`] handed its parts to a `Lab`.
pub(crate) struct StartGuard {
    pub state_dir: PathBuf,
    pub discard_state: bool,
    pub shutdown: CancellationToken,
    pub network: Option<Arc<LabNetwork>>,
    pub prebuild: Option<std::thread::JoinHandle<()>>,
    finished: bool,
}

impl StartGuard {
    pub fn new(state_dir: PathBuf, discard_state: bool, shutdown: CancellationToken) -> Self {
        StartGuard { state_dir, discard_state, shutdown, network: None, prebuild: None, finished: false }
    }

    /// The start succeeded: the `Lab` owns the prebuild thread from now on.
    pub fn finish(mut self) -> Option<std::thread::JoinHandle<()>> {
        self.finished = true;
        self.prebuild.take()
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.shutdown.cancel();
        if let Some(network) = &self.network {
            network.kill_now();
        }
        // The prebuild writes into the state dir: let it end before removing it.
        wait_for_prebuild(&mut self.prebuild);
        if self.discard_state {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}

/// Blocks until the userland prebuild thread (if any) has ended; it builds
/// two small roots, well under a second.
pub(crate) fn wait_for_prebuild(prebuild: &mut Option<std::thread::JoinHandle<()>>) {
    if let Some(handle) = prebuild.take() {
        let _ = handle.join();
    }
}
