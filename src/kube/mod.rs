//! Kubernetes helpers shared by the engine and the lab.

pub mod quantity;
