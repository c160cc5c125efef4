//! Verify reads the cluster as it is, and on a remote cluster every read is a
//! round trip: so one LIST per kind and namespace answers every later read of
//! that kind by name or by label selector, and the kinds a scenario reads are
//! listed together before its first step (see [`ReadCache::prefetch`]).
//!
//! What a step reads is then the state at that LIST, never older than the
//! run: a step that saw something not hold yet and will look again (a wait,
//! an `eventually`, a retry) calls [`ReadCache::invalidate`], so its next
//! look, and every later step's, is a fresh LIST. Secrets are never listed
//! (a grader reads the one Secret a check names, not all of them).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::api::{Api, DynamicObject, ListParams};
use runbook_lab::api::selectors::LabelSelector;
use serde_json::Value;
use tokio::sync::OnceCell;

/// A kind in a namespace: apiVersion, kind, namespace ("" cluster-wide).
pub type ListKey = (String, String, String);

/// A LIST's items (with their kind and apiVersion set, as a GET returns
/// them), or `None` when the LIST failed (the caller then reads as usual, so
/// its error, or its success where only GET is allowed, is the API's own).
type Listed = Option<Arc<Vec<Value>>>;

/// The LISTs of one run, each made once until invalidated.
#[derive(Default)]
pub struct ReadCache {
    lists: Mutex<HashMap<ListKey, Arc<OnceCell<Listed>>>>,
}

impl ReadCache {
    /// Forgets every LIST: the next read of each kind lists it again.
    pub fn invalidate(&self) {
        self.lists.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Every object of the kind `api` serves, listed once (concurrent readers
    /// share one LIST); `None` when the kind is not cached or the LIST failed.
    pub async fn list(&self, key: ListKey, api: &Api<DynamicObject>) -> Listed {
        if key.1 == "Secret" {
            return None;
        }
        let cell = self.lists.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().clone();
        cell.get_or_init(|| async {
            let list = api.list(&ListParams::default()).await.ok()?;
            let (api_version, kind) = (&key.0, &key.1);
            let items = list
                .items
                .into_iter()
                .map(|o| {
                    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
                    v["kind"] = Value::String(kind.clone());
                    v["apiVersion"] = Value::String(api_version.clone());
                    v
                })
                .collect();
            Some(Arc::new(items))
        })
        .await
        .clone()
    }
}

/// The object named `name` among `items`.
pub fn named(items: &[Value], name: &str) -> Option<Value> {
    items.iter().find(|o| o["metadata"]["name"].as_str() == Some(name)).cloned()
}

/// The objects among `items` a label selector (as `kubectl -l` takes it)
/// matches; `None` when the selector does not parse, so that the API's own
/// error reaches the user.
pub fn selected(items: &[Value], selector: &str) -> Option<Vec<Value>> {
    let selector = LabelSelector::parse(selector).ok()?;
    Some(items.iter().filter(|o| selector.matches(o)).cloned().collect())
}

/// The kinds a scenario's steps name (`kind:` anywhere in them), and pods
/// whenever a step names pods, but never Secrets: what verify lists before
/// its first step (those that `built_in` says need no discovery).
pub fn kinds_named(steps: &[Value], built_in: impl Fn(&str) -> bool) -> BTreeSet<String> {
    fn walk(value: &Value, found: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("kind", Value::String(kind)) => {
                            found.insert(kind.clone());
                        }
                        ("pod" | "pods" | "podsReady", _) => {
                            found.insert("Pod".into());
                        }
                        _ => {}
                    }
                    walk(v, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    steps.iter().for_each(|s| walk(s, &mut found));
    found.retain(|k| k != "Secret" && built_in(k));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, app: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": app}}})
    }

    #[test]
    fn finds_by_name_and_by_selector_as_the_api_would() {
        let items = vec![pod("a", "redis"), pod("b", "web"), pod("c", "redis")];
        assert_eq!(named(&items, "b").unwrap()["metadata"]["name"], "b");
        assert!(named(&items, "z").is_none());
        let names =
            |v: Vec<Value>| v.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(names(selected(&items, "app=redis").unwrap()), ["a", "c"]);
        assert_eq!(names(selected(&items, "app in (web),app!=redis").unwrap()), ["b"]);
        assert_eq!(names(selected(&items, "").unwrap()), ["a", "b", "c"]);
        assert!(selected(&items, "app in (").is_none(), "an unparsable selector goes to the API");
    }

    #[test]
    fn lists_the_built_in_kinds_a_scenario_names_but_never_secrets() {
        let steps = vec![
            json!({"assert": {"object": {"kind": "Deployment", "name": "x"}}}),
            json!({"redis": {"pod": {"selector": "app=x"}, "auth": {"secret": "s", "key": "k"}}}),
            json!({"assert": {"object": {"kind": "Secret", "name": "s"}}}),
            json!({"assert": {"object": {"kind": "Widget", "apiVersion": "example.com/v1", "name": "w"}}}),
        ];
        let kinds: Vec<String> = kinds_named(&steps, |k| k != "Widget").into_iter().collect();
        assert_eq!(kinds, ["Deployment", "Pod"]);
    }
}
