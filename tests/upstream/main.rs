//! The upstream tier: runbook, kubectl and the seed's commands against real
//! Kubernetes built on this machine (`scripts/upstream up`, docs/upstream.md).
//!
//! Every test needs that cluster, so every test is ignored by default;
//! `scripts/test` boots it and runs this tier with
//! `RUNBOOK_UPSTREAM_KUBECONFIG` set and `--ignored`, then runs the teardown
//! test on its own (it removes the cluster).

mod cluster;
#[allow(dead_code, unused_macros, unused_imports)] // the lab helpers this tier does not use
#[path = "../integration/common.rs"]
mod common;
mod fidelity;
mod redis_cache;
mod scenarios;
mod teardown;
