//! Kubernetes helpers of the engine and the CLI: connecting (the embedded lab
//! or a kubeconfig), retries, conditions, field paths, labels, leftovers.

pub mod client;
pub mod conditions;
pub mod jsonpath;
pub mod labels;
pub mod leftovers;
pub mod retry;

/// Now, as a Kubernetes timestamp (RFC 3339, whole seconds, UTC).
pub fn timestamp_now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
