//! runbook: deploys and verifies Redis on Kubernetes. The binary is a thin
//! shell around this library so tests and benchmarks drive the same code.

pub mod cli;
pub mod counter;
pub mod engine;
pub mod exit;
pub mod interrupt;
pub mod kube;
pub mod lab;
pub mod report;
pub mod scenario;
