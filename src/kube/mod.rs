//! Kubernetes helpers shared by the engine and the lab.

pub mod client;
pub mod conditions;
pub mod jsonpath;
pub mod leftovers;
pub mod quantity;
pub mod retry;
