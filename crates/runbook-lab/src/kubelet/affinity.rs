//! Node selectors, node affinity and inter-pod (anti-)affinity, as the
//! scheduler's NodeAffinity and InterPodAffinity plugins read them.

use std::sync::Arc;

use serde_json::Value;

use crate::api::selectors::LabelSelector;

/// Whether `node` satisfies the pod's `nodeSelector` and its required node
/// affinity (terms ORed, a term's expressions ANDed).
pub fn node_matches(pod: &Value, node: &Value) -> bool {
    let labels = &node["metadata"]["labels"];
    let selected = pod["spec"]["nodeSelector"].as_object().into_iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let required = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let terms = required["nodeSelectorTerms"].as_array();
    selected && terms.is_none_or(|terms| terms.iter().any(|t| node_term_matches(t, node)))
}

fn node_term_matches(term: &Value, node: &Value) -> bool {
    let expressions = term["matchExpressions"].as_array().into_iter().flatten();
    let fields = term["matchFields"].as_array().into_iter().flatten();
    let labels = &node["metadata"]["labels"];
    let has_any = term["matchExpressions"].as_array().is_some_and(|a| !a.is_empty())
        || term["matchFields"].as_array().is_some_and(|a| !a.is_empty());
    // An empty term matches no node (v1.NodeSelectorTerm's contract).
    has_any
        && expressions.into_iter().all(|e| requirement_holds(e, labels[e["key"].as_str().unwrap_or_default()].as_str()))
        && fields
            .into_iter()
            .all(|e| e["key"] == "metadata.name" && requirement_holds(e, node["metadata"]["name"].as_str()))
}

/// One `NodeSelectorRequirement` against a label's value (None: no label).
fn requirement_holds(requirement: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = requirement["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let number = |text: Option<&str>| text.and_then(|t| t.parse::<i64>().ok());
    match requirement["operator"].as_str().unwrap_or_default() {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => matches!((number(value), number(values.first().copied())), (Some(v), Some(bound)) if v > bound),
        "Lt" => matches!((number(value), number(values.first().copied())), (Some(v), Some(bound)) if v < bound),
        _ => false,
    }
}

/// A pod (anti-)affinity term, read relative to the pod that carries it.
pub struct Term {
    /// None: the term has no selector and selects no pod.
    selector: Option<LabelSelector>,
    /// None: every namespace (an empty namespaceSelector).
    namespaces: Option<Vec<String>>,
    /// The node label that makes a domain.
    pub topology_key: String,
}

impl Term {
    /// The term `term` of `owner` (whose namespace is the default).
    pub fn of(owner: &Value, term: &Value) -> Term {
        let listed: Vec<String> =
            term["namespaces"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(String::from)).collect();
        let all_namespaces = term["namespaceSelector"].as_object().is_some_and(|s| s.is_empty()) && listed.is_empty();
        let namespaces = if all_namespaces {
            None
        } else if listed.is_empty() {
            Some(vec![owner["metadata"]["namespace"].as_str().unwrap_or("default").to_string()])
        } else {
            Some(listed)
        };
        Term {
            selector: selector_of(&term["labelSelector"]),
            namespaces,
            topology_key: term["topologyKey"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Whether the term selects `pod`.
    pub fn selects(&self, pod: &Value) -> bool {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        self.namespaces.as_ref().is_none_or(|list| list.iter().any(|n| n == ns))
            && self.selector.as_ref().is_some_and(|s| s.matches(pod))
    }
}

/// A label selector object, None when absent (or not understood): as in
/// the API, a missing selector selects nothing where an empty one selects all.
pub fn selector_of(selector: &Value) -> Option<LabelSelector> {
    if selector.is_null() {
        return None;
    }
    LabelSelector::from_object(selector).ok()
}

fn required<'a>(pod: &'a Value, kind: &str) -> impl Iterator<Item = &'a Value> {
    pod["spec"]["affinity"][kind]["requiredDuringSchedulingIgnoredDuringExecution"].as_array().into_iter().flatten()
}

/// Whether `placed` runs in the same topology domain as `node` (its node
/// has the term's label with `node`'s value).
pub fn same_domain(term: &Term, placed: &Value, node: &Value, nodes: &[Arc<Value>]) -> bool {
    let Some(domain) = node["metadata"]["labels"][&term.topology_key].as_str() else { return false };
    let home = nodes.iter().find(|n| n["metadata"]["name"] == placed["spec"]["nodeName"]);
    home.is_some_and(|n| n["metadata"]["labels"][&term.topology_key].as_str() == Some(domain))
}

/// The InterPodAffinity filter's reason for refusing `node`, if any, checked
/// in its order: the pod's affinity, its anti-affinity, the existing pods'.
pub fn inter_pod_violation(pod: &Value, node: &Value, placed: &[&Value], nodes: &[Arc<Value>]) -> Option<&'static str> {
    for raw in required(pod, "podAffinity") {
        let term = Term::of(pod, raw);
        let satisfied = placed.iter().any(|p| term.selects(p) && same_domain(&term, p, node, nodes));
        // The first pod of a group that wants to be together may go anywhere.
        let first_of_group = !placed.iter().any(|p| term.selects(p)) && term.selects(pod);
        if !satisfied && !first_of_group {
            return Some("node(s) didn't match pod affinity rules");
        }
    }
    for raw in required(pod, "podAntiAffinity") {
        let term = Term::of(pod, raw);
        if placed.iter().any(|p| term.selects(p) && same_domain(&term, p, node, nodes)) {
            return Some("node(s) didn't match pod anti-affinity rules");
        }
    }
    // Another pod's anti-affinity that the new pod would break.
    for other in placed {
        for raw in required(other, "podAntiAffinity") {
            let term = Term::of(other, raw);
            if term.selects(pod) && same_domain(&term, other, node, nodes) {
                return Some("node(s) didn't satisfy existing pods anti-affinity rules");
            }
        }
    }
    None
}
