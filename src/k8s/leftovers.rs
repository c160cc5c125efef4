//! Finding and removing what runbook created, by its labels: every object a
//! run applies carries `app.kubernetes.io/managed-by=runbook` and the run's
//! id, so leftovers of an interrupted or killed run can be found later, in
//! any resource type the cluster serves, without a record of the run.

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::{ApiResource, Discovery, Scope, verbs};

use super::labels::{MANAGED_BY, RUN_ID_LABEL};
use crate::poll::{Poller, Probe};

/// One labelled object.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// Its resource type.
    pub resource: ApiResource,
    /// Its namespace (None when cluster-scoped).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// The run that last applied it.
    pub run_id: Option<String>,
}

impl Labelled {
    /// `kind.group/name -n namespace`, as kubectl names objects.
    pub fn display(&self) -> String {
        let what = kubectl_name(&self.resource.group, &self.resource.kind, &self.name);
        match &self.namespace {
            Some(ns) => format!("{what} -n {ns}"),
            None => what,
        }
    }

    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }

    fn is_namespace(&self) -> bool {
        self.resource.group.is_empty() && self.resource.kind == "Namespace"
    }
}

/// `kind.group/name` as kubectl prints it (`deployment.apps/redis`,
/// `configmap/my-redis-config` for the core group).
pub fn kubectl_name(group: &str, kind: &str, name: &str) -> String {
    let kind = kind.to_lowercase();
    if group.is_empty() { format!("{kind}/{name}") } else { format!("{kind}.{group}/{name}") }
}

/// The label selector for runbook's objects, or one run's.
pub fn selector(run_id: Option<&str>) -> String {
    let managed = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    match run_id {
        Some(id) => format!("{managed},{RUN_ID_LABEL}={id}"),
        None => managed,
    }
}

/// What a search found, and the resource types it could not search (an
/// aggregated API that is down, a type the user may not list).
#[derive(Debug, Default)]
pub struct Search {
    /// The labelled objects.
    pub found: Vec<Labelled>,
    /// `resource: why`, for each type that could not be listed.
    pub unsearchable: Vec<String>,
}

/// Every object matching `selector` in every listable, deletable resource type
/// (only in `namespace` when given; cluster-scoped objects are then left out).
/// Discovery failing is an error; one resource type failing is noted.
pub async fn find(client: &kube::Client, selector: &str, namespace: Option<&str>) -> anyhow::Result<Search> {
    // Aggregated discovery is two requests; servers before 1.26 get one per group.
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => d,
        Err(_) => Discovery::new(client.clone()).run().await?,
    };
    let mut types = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            let listable = caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::DELETE);
            // Events are records, not things runbook made; they expire.
            if listable && resource.kind != "Event" {
                types.push((resource, caps.scope == Scope::Namespaced));
            }
        }
    }
    Ok(find_in(client, selector, namespace, &types).await)
}

/// Every object matching `selector` among the given resource types
/// (`namespaced` or not), without discovery: for a caller that knows which
/// types it created.
pub async fn find_in(
    client: &kube::Client,
    selector: &str,
    namespace: Option<&str>,
    types: &[(ApiResource, bool)],
) -> Search {
    let params = ListParams::default().labels(selector);
    let mut search = Search::default();
    for (resource, namespaced) in types {
        let api: Api<DynamicObject> = match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, resource),
            (_, None) => Api::all_with(client.clone(), resource),
            (false, Some(_)) => continue,
        };
        let list = match api.list(&params).await {
            Ok(list) => list,
            Err(e) => {
                search.unsearchable.push(format!("{}: {e}", resource.plural));
                continue;
            }
        };
        for object in list.items {
            search.found.push(Labelled {
                resource: resource.clone(),
                namespace: object.metadata.namespace.clone(),
                name: object.metadata.name.clone().unwrap_or_default(),
                run_id: object.metadata.labels.as_ref().and_then(|l| l.get(RUN_ID_LABEL)).cloned(),
            });
        }
    }
    search
}

/// Deletes the objects (namespaces last, so their contents go first and are
/// reported one by one) and waits up to `patience` until they are gone.
/// Returns the ones still there.
pub async fn remove(client: &kube::Client, objects: &[Labelled], patience: Duration) -> Vec<Labelled> {
    let mut ordered: Vec<&Labelled> = objects.iter().filter(|o| !o.is_namespace()).collect();
    ordered.extend(objects.iter().filter(|o| o.is_namespace()));
    for object in &ordered {
        // Not found is fine: a namespace or an owner took it already.
        let _ = object.api(client).delete(&object.name, &DeleteParams::background()).await;
    }
    let mut remaining: Vec<Labelled> = ordered.into_iter().cloned().collect();
    let _ = Poller::new(patience)
        .until(async |_| {
            let mut still = Vec::new();
            for object in remaining.drain(..) {
                if !matches!(object.api(client).get_opt(&object.name).await, Ok(None)) {
                    still.push(object);
                }
            }
            remaining = still;
            Ok::<_, std::convert::Infallible>(if remaining.is_empty() {
                Probe::Ready(())
            } else {
                Probe::NotYet(format!("{} still present", remaining.len()))
            })
        })
        .await;
    remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_name_runbook_and_the_run() {
        assert_eq!(selector(None), "app.kubernetes.io/managed-by=runbook");
        assert_eq!(selector(Some("ab12cd34")), "app.kubernetes.io/managed-by=runbook,runbook.dev/run-id=ab12cd34");
    }

    #[test]
    fn objects_are_named_as_kubectl_names_them() {
        let pv = Labelled {
            resource: ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "PersistentVolume".into(),
                plural: "persistentvolumes".into(),
            },
            namespace: None,
            name: "redis01".into(),
            run_id: None,
        };
        assert_eq!(pv.display(), "persistentvolume/redis01");
        let deploy = Labelled {
            resource: ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                plural: "deployments".into(),
            },
            namespace: Some("counter".into()),
            ..pv
        };
        assert_eq!(deploy.display(), "deployment.apps/redis01 -n counter");
    }
}
