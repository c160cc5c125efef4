//! What a run needs before its first step, shared by one run (`run.rs`)
//! and a suite of them (`suite_run.rs`): the flags
//! `run` adds to `verify`, the connection, run ids, the run's namespace, and
//! the exit code of several runs.

use std::time::Duration;

use super::out::outln;
use crate::k8s::client;
use crate::report::event::Mode;

/// What `run` adds to `verify`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RunFlags {
    pub keep: bool,
    pub allow_disruption: bool,
    pub ephemeral_namespace: bool,
    pub cleanup_timeout: Duration,
    pub repeat: u32,
    pub pause_on_failure: bool,
    pub parallel: u32,
}

/// When a run's connection learns whether the cluster answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checked {
    /// Before [`connect`] returns.
    Now,
    /// With the run's first reads, when the run has nothing to do before
    /// them (a single verify: one round trip less on a remote cluster); the
    /// run stops with the same message if the cluster does not answer.
    WithTheRun,
}

/// Connects for a run (read-only for verify; the lab when no kubeconfig
/// exists, for run) and says why that cluster unless quiet; `None` when
/// interrupted first, which changed nothing.
pub(super) async fn connect(
    choice: &client::ClusterChoice,
    mode: Mode,
    checked: Checked,
    interrupt: &tokio_util::sync::CancellationToken,
    quiet: bool,
) -> anyhow::Result<Option<client::Connection>> {
    let (read_only, lab_fallback) = (mode == Mode::Verify, mode == Mode::Run);
    let connecting = async {
        match checked {
            Checked::Now => client::connect(choice, read_only, lab_fallback).await,
            Checked::WithTheRun => client::connect_unchecked(choice, read_only, lab_fallback).await,
        }
    };
    let conn = tokio::select! {
        conn = connecting => conn?,
        _ = interrupt.cancelled() => {
            eprintln!("interrupted before the run started: nothing was changed");
            return Ok(None);
        }
    };
    if let Some(note) = &conn.note
        && !quiet
    {
        outln!("{note}")?;
    }
    Ok(Some(conn))
}

/// The exit code that says most about several runs: an interruption first,
/// then the highest (invalid 3, infrastructure 2, failed 1), else 0.
pub(super) fn most_serious(codes: &[u8]) -> u8 {
    if codes.contains(&crate::exit::INTERRUPTED) {
        crate::exit::INTERRUPTED
    } else {
        codes.iter().copied().max().unwrap_or(0)
    }
}

/// `<scenario>-<run id>`, within the 63 characters of a namespace name.
pub(super) fn ephemeral_name(scenario: &str, run_id: &str) -> String {
    let stem: String = scenario.chars().take(63 - run_id.len() - 1).collect();
    format!("{}-{run_id}", stem.trim_end_matches('-'))
}

/// One namespace for the run: `-n` and `--set namespace=` must agree, and a
/// scenario with a `namespace` parameter (one that creates its namespace)
/// gets the chosen one. Returns the parameter overrides to use.
pub(super) fn namespace_overrides(
    scenario: &crate::scenario::Scenario,
    choice: &mut crate::k8s::client::ClusterChoice,
    set: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let from_set = set.iter().rev().find(|(k, _)| k == "namespace").map(|(_, v)| v.clone());
    let mut overrides = set.to_vec();
    match (&choice.namespace, &from_set) {
        (Some(n), Some(s)) if n != s => {
            return Err(format!("-n {n} and --set namespace={s} disagree: give one of them"));
        }
        (None, Some(s)) => choice.namespace = Some(s.clone()),
        (None, None) => choice.namespace = scenario.file.namespace.clone(),
        _ => {}
    }
    if scenario.file.parameters.contains_key("namespace")
        && from_set.is_none()
        && let Some(n) = &choice.namespace
    {
        overrides.push(("namespace".into(), n.clone()));
    }
    Ok(overrides)
}

/// Creates the run's own namespace, labelled as everything runbook creates,
/// so that cleanup (and `runbook cleanup --run-id`) removes it.
pub(super) async fn create_namespace(client: &kube::Client, name: &str, run_id: &str) -> anyhow::Result<()> {
    use crate::k8s::labels::{FIELD_MANAGER, stamp};
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut doc = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    stamp(&mut doc, run_id);
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&doc))
        .await
        .map_err(|e| anyhow::anyhow!("creating the run's namespace {name}: {e}"))?;
    Ok(())
}

/// Eight random characters from Kubernetes' `generateName` alphabet (no
/// vowels, no look-alikes): valid in a label value and a namespace name.
pub(super) fn new_run_id() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..8).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_serious_exit_code_wins() {
        assert_eq!(most_serious(&[0, 0]), 0);
        assert_eq!(most_serious(&[0, 1, 0]), 1);
        assert_eq!(most_serious(&[1, 2, 0]), 2);
        assert_eq!(most_serious(&[3, 130, 1]), 130);
    }
}
