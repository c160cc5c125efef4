//! How runbook marks what it creates: the field manager of its applies and the
//! labels that `cleanup` and `--keep` find a run's objects by.

use serde_json::{Value, json};

/// The field manager runbook applies as.
pub const FIELD_MANAGER: &str = "runbook";

/// The label every object runbook creates carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "runbook");

/// The label naming the run that last applied an object (`runbook cleanup
/// --run-id` finds a run's leftovers by it).
pub const RUN_ID_LABEL: &str = "runbook.dev/run-id";

/// Labels an object as runbook's, from run `run_id`.
pub fn stamp(doc: &mut Value, run_id: &str) {
    doc["metadata"]["labels"][MANAGED_BY.0] = json!(MANAGED_BY.1);
    doc["metadata"]["labels"][RUN_ID_LABEL] = json!(run_id);
}
