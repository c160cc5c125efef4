//! What every action needs: the client, the namespace, parameter values, API
//! resolution, the objects applied so far, and a way to report progress.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::Value;

use super::StepError;
use super::read_cache::{self, ReadCache};
use crate::report::event::{Mark, Traffic, epoch_ms};
use crate::report::{Event, Redactor, Reporters};
use crate::scenario::{ObjectRef, PodRef, template};

/// The apiVersion of the built-in kinds, so scenarios need not write it
/// (and runbook need not discover them: see [`Ctx::api`]).
pub fn default_api_version(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Pod"
        | "ConfigMap"
        | "Secret"
        | "Service"
        | "Namespace"
        | "PersistentVolume"
        | "PersistentVolumeClaim"
        | "ServiceAccount"
        | "Endpoints"
        | "Event"
        | "Node" => "v1",
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "HorizontalPodAutoscaler" => "autoscaling/v2",
        "StorageClass" => "storage.k8s.io/v1",
        "Job" | "CronJob" => "batch/v1",
        _ => return None,
    })
}

/// An object the run applied (for cleanup and leftovers).
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// apiVersion.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Applied {
    /// `kind/name` in kubectl's form (`deployment.apps/redis`).
    pub fn display(&self) -> String {
        let group = self.api_version.split_once('/').map(|(g, _)| g).unwrap_or_default();
        crate::k8s::leftovers::kubectl_name(group, &self.kind, &self.name)
    }
}

tokio::task_local! {
    static HELD: HeldProgress;
}

/// The progress messages of a step run side by side with others, held until
/// the step's turn in the report (the reporters show one step at a time, in
/// scenario order).
#[derive(Clone, Default)]
pub struct HeldProgress(Arc<Mutex<Vec<String>>>);

impl HeldProgress {
    /// Runs `work` with its progress messages held here.
    pub async fn scope<F: std::future::Future>(&self, work: F) -> F::Output {
        HELD.scope(self.clone(), work).await
    }

    /// The messages held so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The run's shared state.
pub struct Ctx {
    /// The cluster.
    pub client: kube::Client,
    /// The namespace steps default to.
    pub namespace: String,
    /// Parameter values, and values captured by earlier steps.
    vars: Mutex<BTreeMap<String, String>>,
    /// Hides secrets in everything reported.
    pub redactor: Mutex<Redactor>,
    /// Objects applied so far, in order.
    pub applied: Mutex<Vec<Applied>>,
    /// Whether waits are capped (verify reads the state as it is).
    pub wait_cap: Option<std::time::Duration>,
    resources: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
    reporters: Arc<Mutex<Reporters>>,
    current_step: Mutex<String>,
    measured: Mutex<Vec<crate::report::event::Measurement>>,
    drill: Mutex<(Vec<Mark>, Option<Traffic>)>,
    /// Redis connections opened in this run, by pod uid, port and password:
    /// a later step on the same pod reuses its port-forward (see
    /// `redis_client::connect`).
    pub redis_connections: Mutex<HashMap<RedisKey, redis::aio::MultiplexedConnection>>,
    /// The kubeconfig a `command` step's program gets (the run's context
    /// current, the run's namespace), when the run was given one.
    pub kubeconfig: Option<kube::config::Kubeconfig>,
    /// The context's name, for `RUNBOOK_CONTEXT`.
    pub context_name: String,
    /// The parameters given with `--set` (or a suite's `set`), which a
    /// `discover` step keeps as given.
    pub given: std::collections::BTreeSet<String>,
    /// Whether the run only verifies: `discover` looks for what plays a role
    /// only then (in `run` runbook deploys the objects under its own names).
    pub verifying: bool,
    /// The LISTs that answer reads, when the run only verifies (see
    /// [`super::read_cache`]); `run` changes what it reads, so reads live.
    pub reads: Option<Arc<ReadCache>>,
    /// Network partitions in place, healed by their step or, if it was cut
    /// short, when the steps end.
    pub cuts: Mutex<Vec<super::cut::Cut>>,
}

/// What a reusable Redis connection is for: the pod (by uid, so a replaced
/// pod never gets its predecessor's connection), the port and the password.
pub type RedisKey = (String, u16, Option<String>);

impl Ctx {
    /// A context for one run.
    pub fn new(
        client: kube::Client,
        namespace: String,
        vars: BTreeMap<String, String>,
        redactor: Redactor,
        reporters: Arc<Mutex<Reporters>>,
        wait_cap: Option<std::time::Duration>,
    ) -> Self {
        Ctx {
            client,
            namespace,
            vars: Mutex::new(vars),
            redactor: Mutex::new(redactor),
            applied: Mutex::new(Vec::new()),
            wait_cap,
            resources: Mutex::new(HashMap::new()),
            reporters,
            current_step: Mutex::new(String::new()),
            measured: Mutex::new(Vec::new()),
            drill: Mutex::default(),
            redis_connections: Mutex::new(HashMap::new()),
            kubeconfig: None,
            context_name: String::new(),
            given: Default::default(),
            verifying: false,
            reads: None,
            cuts: Mutex::new(Vec::new()),
        }
    }

    /// Renders `{{ name }}` references with the parameters and captures.
    pub fn render(&self, text: &str) -> String {
        template::render(text, &self.vars()).unwrap_or_else(|_| text.to_string())
    }

    /// The parameters and captured values.
    pub fn vars(&self) -> BTreeMap<String, String> {
        self.vars.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a captured value for later steps.
    pub fn set_var(&self, name: &str, value: String) {
        self.vars.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), value);
    }

    /// Sets the step progress messages belong to.
    pub fn set_step(&self, id: &str) {
        *self.current_step.lock().unwrap_or_else(|e| e.into_inner()) = id.to_string();
    }

    /// Keeps a step's measurements for its report even when the step fails
    /// (a drill's figures matter most then).
    pub fn keep_measurements(&self, measurements: &[crate::report::event::Measurement]) {
        self.measured.lock().unwrap_or_else(|e| e.into_inner()).extend(measurements.iter().cloned());
    }

    /// Takes the measurements kept for the current step.
    pub fn take_measurements(&self) -> Vec<crate::report::event::Measurement> {
        std::mem::take(&mut *self.measured.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records a moment of the current step's drill (shown on its timeline).
    pub fn mark(&self, what: impl Into<String>) {
        let what = self.redact(&what.into());
        self.drill.lock().unwrap_or_else(|e| e.into_inner()).0.push(Mark { at_ms: epoch_ms(), what });
    }

    /// Keeps the current step's drill traffic (requests or writes over time).
    pub fn keep_traffic(&self, traffic: Option<Traffic>) {
        self.drill.lock().unwrap_or_else(|e| e.into_inner()).1 = traffic;
    }

    /// Takes the current step's drill moments and traffic.
    pub fn take_drill(&self) -> (Vec<Mark>, Option<Traffic>) {
        std::mem::take(&mut *self.drill.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reports what a long step is doing (held back for a step that runs
    /// side by side with others: see [`HeldProgress`]).
    pub fn progress(&self, message: &str) {
        let message = self.redact(message);
        if HELD.try_with(|held| held.0.lock().unwrap_or_else(|e| e.into_inner()).push(message.clone())).is_ok() {
            return;
        }
        let id = self.current_step.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.reporters.lock().unwrap_or_else(|e| e.into_inner()).emit(&Event::StepProgress { id, message });
    }

    /// Hides secrets in a text.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.lock().unwrap_or_else(|e| e.into_inner()).redact(text)
    }

    /// The API for a kind: discovered once per run, namespaced or not.
    pub async fn api(
        &self,
        api_version: Option<&str>,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(Api<DynamicObject>, ApiResource, bool), StepError> {
        let api_version = match api_version {
            Some(v) => v.to_string(),
            None => default_api_version(kind)
                .ok_or_else(|| StepError::Invalid(format!("kind {kind:?} needs an apiVersion")))?
                .to_string(),
        };
        let key = (api_version.clone(), kind.to_string());
        let cached = self.resources.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let (resource, namespaced) = match cached {
            Some(found) => found,
            None if default_api_version(kind) == Some(api_version.as_str()) => {
                // A built-in kind at its usual version needs no discovery
                // request: a round trip saved per kind, which on a remote
                // cluster is most of a quick check.
                let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
                let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
                let namespaced = !matches!(kind, "Namespace" | "PersistentVolume" | "Node" | "StorageClass");
                self.resources.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (resource.clone(), namespaced));
                (resource, namespaced)
            }
            None => {
                let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
                let gvk = GroupVersionKind::gvk(group, version, kind);
                let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk).await.map_err(|e| match e {
                    kube::Error::Api(s) if s.code == 404 => {
                        StepError::Invalid(format!("the cluster does not serve {api_version} {kind}"))
                    }
                    other => StepError::from(other),
                })?;
                let namespaced = caps.scope == Scope::Namespaced;
                self.resources.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (resource.clone(), namespaced));
                (resource, namespaced)
            }
        };
        let ns = namespace.map(String::from).unwrap_or_else(|| self.namespace.clone());
        let api = if namespaced {
            Api::namespaced_with(self.client.clone(), &ns, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        Ok((api, resource, namespaced))
    }

    /// Finds an object by name, or the first (by name) matching a selector,
    /// preferring one not being deleted (a pod replaced during a rollout).
    pub async fn find(&self, object: &ObjectRef) -> Result<Option<Value>, StepError> {
        let mut items = self.find_all(object).await?;
        items.sort_by_key(|o| !o["metadata"]["deletionTimestamp"].is_null());
        Ok(items.into_iter().next())
    }

    /// The object a reference names (none or one), or every object its
    /// selector matches, by name; from the run's reads when it keeps them.
    pub async fn find_all(&self, object: &ObjectRef) -> Result<Vec<Value>, StepError> {
        let ns = object.namespace.as_deref().map(|n| self.render(n));
        let (api, _, _) = self.api(object.api_version.as_deref(), &object.kind, ns.as_deref()).await?;
        let name = object.name.as_deref().map(|n| self.render(n));
        let selector = self.render(object.selector.as_deref().unwrap_or_default());
        if let Some(items) = self.kept_list(object).await? {
            let found = match &name {
                Some(name) => Some(read_cache::named(&items, name).into_iter().collect()),
                None => read_cache::selected(&items, &selector),
            };
            if let Some(mut found) = found {
                found.sort_by(|a, b| a["metadata"]["name"].as_str().cmp(&b["metadata"]["name"].as_str()));
                return Ok(found);
            }
        }
        let to_json = |o: DynamicObject| serde_json::to_value(o).unwrap_or(Value::Null);
        if let Some(name) = &name {
            return Ok(api.get_opt(name).await?.into_iter().map(to_json).collect());
        }
        let mut items = api.list(&ListParams::default().labels(&selector)).await?.items;
        items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(items.into_iter().map(to_json).collect())
    }

    /// Every object of `object`'s kind in its namespace, from the run's
    /// reads: `None` when the run keeps none, or when the LIST failed.
    pub async fn kept_list(&self, object: &ObjectRef) -> Result<Option<Arc<Vec<Value>>>, StepError> {
        let Some(reads) = &self.reads else { return Ok(None) };
        let ns = object.namespace.as_deref().map(|n| self.render(n));
        let (api, resource, namespaced) = self.api(object.api_version.as_deref(), &object.kind, ns.as_deref()).await?;
        let namespace = if namespaced { ns.unwrap_or_else(|| self.namespace.clone()) } else { String::new() };
        Ok(reads.list((resource.api_version, object.kind.clone(), namespace), &api).await)
    }

    /// The pods a reference names, Running ones first.
    pub async fn pods(&self, pod: &PodRef) -> Result<Vec<Value>, StepError> {
        let object = ObjectRef {
            api_version: Some("v1".into()),
            kind: "Pod".into(),
            name: pod.name.clone(),
            selector: if pod.name.is_some() { None } else { Some(pod.selector.clone().unwrap_or_default()) },
            namespace: pod.namespace.clone(),
        };
        let mut items = self.find_all(&object).await?;
        if let Some(node) = &pod.node {
            let node = self.render(node);
            items.retain(|p| p["spec"]["nodeName"].as_str() == Some(node.as_str()));
        }
        items.sort_by_key(|p| {
            (!crate::k8s::conditions::pod_running(p), p["metadata"]["name"].as_str().unwrap_or_default().to_string())
        });
        Ok(items)
    }

    /// The Running pods a reference names, by name.
    pub async fn running_pods(&self, pod: &PodRef) -> Result<Vec<Value>, StepError> {
        Ok(self.pods(pod).await?.into_iter().filter(crate::k8s::conditions::pod_running).collect())
    }

    /// What a wait loop runs before it looks again (see
    /// [`crate::poll::when_looking_again`]): the run's reads are forgotten.
    pub fn looking_again_hook(&self) -> Arc<dyn Fn() + Send + Sync> {
        let reads = self.reads.clone();
        Arc::new(move || {
            if let Some(reads) = &reads {
                reads.invalidate();
            }
        })
    }

    /// An object reference as kubectl would name it (`deployment/x`,
    /// `pod -l app=x`).
    pub fn describe_object(&self, object: &ObjectRef) -> String {
        match (&object.name, &object.selector) {
            (Some(n), _) => format!("{}/{}", object.kind.to_lowercase(), self.render(n)),
            (_, Some(s)) => format!("{} -l {}", object.kind.to_lowercase(), self.render(s)),
            _ => object.kind.to_lowercase(),
        }
    }

    /// How a pod reference reads in messages (`pod -l app=redis`).
    pub fn describe_pod(&self, pod: &PodRef) -> String {
        let which = match (&pod.name, &pod.selector) {
            (Some(n), _) => format!("pod {}", self.render(n)),
            (_, Some(s)) => format!("pod -l {}", self.render(s)),
            _ => "pod".into(),
        };
        match &pod.node {
            Some(node) => format!("{which} --field-selector spec.nodeName={}", self.render(node)),
            None => which,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_kinds_get_the_resource_names_the_api_serves() {
        // The plurals `kubectl api-resources` lists for these kinds.
        let served = [
            ("Pod", "pods"),
            ("ConfigMap", "configmaps"),
            ("Secret", "secrets"),
            ("Service", "services"),
            ("Namespace", "namespaces"),
            ("PersistentVolume", "persistentvolumes"),
            ("PersistentVolumeClaim", "persistentvolumeclaims"),
            ("ServiceAccount", "serviceaccounts"),
            ("Endpoints", "endpoints"),
            ("Event", "events"),
            ("Node", "nodes"),
            ("Deployment", "deployments"),
            ("ReplicaSet", "replicasets"),
            ("StatefulSet", "statefulsets"),
            ("DaemonSet", "daemonsets"),
            ("HorizontalPodAutoscaler", "horizontalpodautoscalers"),
            ("StorageClass", "storageclasses"),
            ("Job", "jobs"),
            ("CronJob", "cronjobs"),
        ];
        for (kind, plural) in served {
            let version = default_api_version(kind).expect("built in");
            let (group, version) = version.split_once('/').unwrap_or(("", version));
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            assert_eq!(resource.plural, plural, "{kind}");
        }
    }
}
