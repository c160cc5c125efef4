//! Integration tests: the real binary, real kubectl and kube-rs against the
//! embedded lab. One harness binary; modules by theme.

mod architecture;
mod authoring;
mod browser;
mod cli_docs;
mod common;
mod counter_service;
mod engine;
mod faults;
mod grading_batch;
mod grading_corpus;
mod host_command;
mod lab_api_kube;
mod lab_api_kubectl;
mod lab_cli;
mod lab_fidelity;
mod lab_isolation;
mod lab_metrics;
mod lab_network_policy;
mod lab_nodes;
mod lab_pods;
mod lab_stateful;
mod lab_users;
mod node_down;
mod on_failure;
mod partition;
mod redis_cluster;
mod redis_sentinel;
mod repeat;
mod reports;
mod suites;
mod trust;
