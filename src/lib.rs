//! runbook: deploys and verifies Redis on Kubernetes. The binary is a thin
//! shell around this library so tests and benchmarks drive the same code.

pub mod cli;
pub mod engine;
pub mod exit;
pub mod interrupt;
pub mod k8s;
pub mod lab_host;
pub mod poll;
pub mod report;
pub mod scenario;

/// The embedded lab cluster (its own crate, `runbook-lab`).
pub use runbook_lab as lab;
