//! The resource types the lab serves: one static table that discovery, routing,
//! storage and tables all read, so adding a type is one entry here.

/// One API resource (a plural under a group/version), as discovery describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Plural resource name used in URLs (`configmaps`).
    pub plural: &'static str,
    /// Singular name (`configmap`).
    pub singular: &'static str,
    /// Kind of the objects (`ConfigMap`).
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl accepts (`cm`).
    pub short_names: &'static [&'static str],
    /// Subresources served besides the object itself.
    pub subresources: &'static [&'static str],
    /// Whether the object carries a `status` written only through `/status`.
    pub has_status: bool,
}

impl ResourceType {
    /// `apiVersion` as written in objects (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The kind qualified by its group, as Kubernetes' messages name it
    /// (`Deployment.apps`; `Pod` in the core group).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() { self.kind.to_string() } else { format!("{}.{}", self.kind, self.group) }
    }

    /// A stable key naming this resource in the store (`apps/deployments`).
    pub fn key(&self) -> &'static str {
        // The plural is unique across the groups the lab serves, which the
        // `plurals_are_unique` test pins.
        self.plural
    }

    /// Whether objects of this type carry a `spec` whose changes bump `generation`.
    pub fn has_generation(&self) -> bool {
        matches!(self.kind, "Deployment" | "ReplicaSet" | "StatefulSet" | "Pod" | "HorizontalPodAutoscaler")
    }
}

const STATUS: &[&str] = &["status"];

macro_rules! resource {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr,
     $short:expr, $sub:expr, $status:expr) => {
        ResourceType {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            short_names: $short,
            subresources: $sub,
            has_status: $status,
        }
    };
}

/// Every resource type the lab serves.
pub static RESOURCES: &[ResourceType] = &[
    resource!("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], STATUS, true),
    resource!("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], &[], false),
    resource!("", "v1", "secrets", "secret", "Secret", true, &[], &[], false),
    resource!("", "v1", "services", "service", "Service", true, &["svc"], &["status", "proxy"], true),
    resource!("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"], &[], false),
    resource!("", "v1", "pods", "pod", "Pod", true, &["po"], &["status", "log", "exec", "portforward"], true),
    resource!("", "v1", "events", "event", "Event", true, &["ev"], &[], false),
    resource!("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, &["pv"], STATUS, true),
    resource!(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        STATUS,
        true
    ),
    resource!("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"], &[], false),
    resource!("", "v1", "nodes", "node", "Node", false, &["no"], STATUS, true),
    resource!("apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"], &["status", "scale"], true),
    resource!("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], &["status", "scale"], true),
    resource!("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, &["sts"], &["status", "scale"], true),
    resource!(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        STATUS,
        true
    ),
    resource!("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false, &["sc"], &[], false),
    resource!("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[], &[], false),
    resource!("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, &[], &[], false),
    resource!(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        &["netpol"],
        &[],
        false
    ),
];

/// The API groups (besides core) in the order discovery lists them.
pub const GROUPS: &[&str] =
    &["apps", "autoscaling", "storage.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "networking.k8s.io"];

/// Finds a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by its store key.
pub fn by_key(key: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.key() == key)
}

/// Finds a resource by `apiVersion` and `kind`, as written in an object.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The versions served for a group.
pub fn versions_of(group: &str) -> Vec<&'static str> {
    let mut versions: Vec<&'static str> = RESOURCES.iter().filter(|r| r.group == group).map(|r| r.version).collect();
    versions.dedup();
    versions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_are_unique() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert_ne!(a.plural, b.plural, "store keys must be unique");
            }
        }
    }

    #[test]
    fn finds_by_kind_and_path() {
        assert_eq!(by_kind("apps/v1", "Deployment").unwrap().plural, "deployments");
        assert_eq!(find("", "v1", "configmaps").unwrap().kind, "ConfigMap");
        assert!(find("apps", "v1", "configmaps").is_none());
    }
}
