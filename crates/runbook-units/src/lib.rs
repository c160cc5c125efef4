//! Units that runbook and its embedded lab both read: Kubernetes resource
//! quantities and the durations written in scenario files. A crate of its own
//! so that neither depends on the other for them.

mod duration;
mod quantity;

pub use duration::parse_duration;
pub use quantity::{Quantity, QuantityError, parse_redis_memory};
