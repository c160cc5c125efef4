//! The lab's object store: objects as JSON, one global resource version, and a
//! bounded history of changes that watches resume from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::broadcast;

/// How many past changes the store keeps for watches that resume; older
/// resource versions get 410 Gone, as from a compacted etcd.
pub const HISTORY_LIMIT: usize = 20_000;

/// What a change did to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// The object was created.
    Added,
    /// The object was updated.
    Modified,
    /// The object was removed.
    Deleted,
}

impl ChangeType {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change to one object, as watches deliver it.
#[derive(Debug, Clone)]
pub struct Change {
    /// Resource version at which the change happened.
    pub rv: u64,
    /// Store key of the resource type.
    pub resource: &'static str,
    /// What happened.
    pub kind: ChangeType,
    /// The object after the change (before it, for deletions).
    pub object: Arc<Value>,
    /// The object before an update (watches with selectors need it).
    pub previous: Option<Arc<Value>>,
}

/// Namespace ("" for cluster-scoped) and name of an object.
pub type ObjectKey = (String, String);

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: HashMap<&'static str, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Change>,
}

/// The object store. Cheap to share: clone the `Arc` around it.
pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
}

/// Why a write was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteError {
    /// Create of an existing object.
    Exists,
    /// Update or delete of a missing object.
    Missing,
    /// Update whose `resourceVersion` is not the current one.
    Stale,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(4096);
        Store { inner: Mutex::new(Inner::default()), changes }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current resource version.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, resource: &'static str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let inner = self.lock();
        inner.objects.get(resource)?.get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// All objects of a type (in one namespace, or all when `ns` is None), sorted
    /// by namespace and name, with the resource version they were read at.
    pub fn list(&self, resource: &'static str, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let items = match inner.objects.get(resource) {
            None => Vec::new(),
            Some(map) => match ns {
                None => map.values().cloned().collect(),
                Some(ns) => map
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
            },
        };
        (items, inner.rv)
    }

    /// Creates an object; sets its resourceVersion.
    pub fn create(&self, resource: &'static str, mut object: Value) -> Result<Arc<Value>, WriteError> {
        let key = object_key(&object);
        let mut inner = self.lock();
        if inner.objects.get(resource).is_some_and(|m| m.contains_key(&key)) {
            return Err(WriteError::Exists);
        }
        inner.rv += 1;
        set_rv(&mut object, inner.rv);
        let object = Arc::new(object);
        inner.objects.entry(resource).or_default().insert(key, object.clone());
        self.record(&mut inner, resource, ChangeType::Added, object.clone(), None);
        Ok(object)
    }

    /// Replaces an object. With `expected_rv`, refuses when the stored version differs.
    pub fn update(
        &self,
        resource: &'static str,
        mut object: Value,
        expected_rv: Option<&str>,
    ) -> Result<Arc<Value>, WriteError> {
        let key = object_key(&object);
        let mut inner = self.lock();
        let current = inner.objects.get(resource).and_then(|m| m.get(&key)).ok_or(WriteError::Missing)?;
        if let Some(expected) = expected_rv
            && !expected.is_empty()
            && rv_of(current) != expected
        {
            return Err(WriteError::Stale);
        }
        if **current == object_with_rv(&object, current) {
            // A no-op write keeps its resource version and sends no event,
            // as the API server does.
            return Ok(current.clone());
        }
        inner.rv += 1;
        set_rv(&mut object, inner.rv);
        let object = Arc::new(object);
        let previous = inner.objects.entry(resource).or_default().insert(key, object.clone());
        self.record(&mut inner, resource, ChangeType::Modified, object.clone(), previous);
        Ok(object)
    }

    /// Removes an object and returns it.
    pub fn delete(&self, resource: &'static str, ns: &str, name: &str) -> Result<Arc<Value>, WriteError> {
        let mut inner = self.lock();
        let removed = inner
            .objects
            .get_mut(resource)
            .and_then(|m| m.remove(&(ns.to_string(), name.to_string())))
            .ok_or(WriteError::Missing)?;
        inner.rv += 1;
        let mut object = (*removed).clone();
        set_rv(&mut object, inner.rv);
        let object = Arc::new(object);
        self.record(&mut inner, resource, ChangeType::Deleted, object.clone(), None);
        Ok(object)
    }

    fn record(
        &self,
        inner: &mut Inner,
        resource: &'static str,
        kind: ChangeType,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let change = Change { rv: inner.rv, resource, kind, object, previous };
        if inner.history.len() == HISTORY_LIMIT {
            inner.history.pop_front();
        }
        inner.history.push_back(change.clone());
        // Sent under the lock so subscribers see changes in resource-version order.
        let _ = self.changes.send(change);
    }

    /// Subscribes to changes after `since`: returns the changes already in history
    /// and a receiver for later ones, or None when `since` is older than the history.
    pub fn subscribe(&self, since: u64) -> Option<(Vec<Change>, broadcast::Receiver<Change>)> {
        let inner = self.lock();
        let oldest = inner.history.front().map(|c| c.rv).unwrap_or(inner.rv + 1);
        if since + 1 < oldest && since < inner.rv {
            return None;
        }
        let backlog = inner.history.iter().filter(|c| c.rv > since).cloned().collect();
        Some((backlog, self.changes.subscribe()))
    }

    /// Drops history so that resuming from older versions gets 410 (for tests).
    pub fn compact(&self) {
        self.lock().history.clear();
    }
}

fn object_key(object: &Value) -> ObjectKey {
    let meta = &object["metadata"];
    (meta["namespace"].as_str().unwrap_or_default().to_string(), meta["name"].as_str().unwrap_or_default().to_string())
}

fn set_rv(object: &mut Value, rv: u64) {
    object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
}

/// The object's `metadata.resourceVersion`, or "".
pub fn rv_of(object: &Value) -> &str {
    object["metadata"]["resourceVersion"].as_str().unwrap_or_default()
}

fn object_with_rv(object: &Value, current: &Value) -> Value {
    let mut copy = object.clone();
    copy["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "data": {"a": "1"}})
    }

    #[test]
    fn versions_grow_and_stale_updates_conflict() {
        let store = Store::new();
        let a = store.create("configmaps", cm("a")).unwrap();
        assert_eq!(rv_of(&a), "1");
        assert_eq!(store.create("configmaps", cm("a")), Err(WriteError::Exists));
        let mut changed = (*a).clone();
        changed["data"]["a"] = json!("2");
        let b = store.update("configmaps", changed.clone(), Some("1")).unwrap();
        assert_eq!(rv_of(&b), "2");
        assert_eq!(store.update("configmaps", changed, Some("1")), Err(WriteError::Stale));
    }

    #[test]
    fn noop_update_keeps_version() {
        let store = Store::new();
        let a = store.create("configmaps", cm("a")).unwrap();
        let again = store.update("configmaps", (*a).clone(), None).unwrap();
        assert_eq!(rv_of(&again), "1");
    }

    #[test]
    fn resume_from_compacted_history_is_refused() {
        let store = Store::new();
        store.create("configmaps", cm("a")).unwrap();
        store.create("configmaps", cm("b")).unwrap();
        let (backlog, _) = store.subscribe(1).unwrap();
        assert_eq!(backlog.len(), 1);
        store.compact();
        store.create("configmaps", cm("c")).unwrap();
        assert!(store.subscribe(1).is_none());
        assert!(store.subscribe(2).is_some());
    }

    #[test]
    fn list_by_namespace() {
        let store = Store::new();
        store.create("configmaps", cm("a")).unwrap();
        let mut other = cm("b");
        other["metadata"]["namespace"] = json!("other");
        store.create("configmaps", other).unwrap();
        assert_eq!(store.list("configmaps", Some("default")).0.len(), 1);
        assert_eq!(store.list("configmaps", None).0.len(), 2);
    }
}
