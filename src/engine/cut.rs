//! A fault in place, as the run's context remembers it until it is healed
//! (a network partition, which the `partition` step makes and heals; a node
//! taken down by `nodeDown`): the run heals every cut still in place when its
//! steps end, interrupted or not.

/// What a partition changed in the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cut {
    /// Its name in labels and policy names (`<run id>-<n>`).
    pub id: String,
    /// The pods labelled for it, as (namespace, name).
    pub pods: Vec<(String, String)>,
    /// The NetworkPolicies made for it, as (namespace, name).
    pub policies: Vec<(String, String)>,
    /// The lab nodes taken down (annotated `runbook.dev/down`).
    pub nodes: Vec<String>,
}
