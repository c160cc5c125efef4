//! Maps a request path to what it names, the way the API server's paths are laid
//! out: `/api/v1/namespaces/NS/pods/NAME/log`, `/apis/apps/v1/deployments`, ….

use std::collections::HashMap;

use super::metrics;
use super::resources::{self, ResourceType};
use super::status::{ApiError, ApiResult};

/// What a request path names.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/healthz`, `/readyz`, `/livez`.
    Health,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/GROUP`.
    Group(String),
    /// `/api/v1`, `/apis/GROUP/VERSION`.
    ResourceList(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiIndex,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`.
    OpenApiGroup(String),
    /// A collection: in one namespace, or across all (and cluster-scoped).
    Collection {
        /// The resource type.
        rt: &'static ResourceType,
        /// The namespace, or None for all namespaces and cluster-scoped types.
        ns: Option<String>,
    },
    /// `/apis/metrics.k8s.io/v1beta1/…`: pod or node metrics.
    Metrics(super::metrics::MetricsRoute),
    /// One object, or one of its subresources.
    Object {
        /// The resource type.
        rt: &'static ResourceType,
        /// Namespace ("" for cluster-scoped types).
        ns: String,
        /// Object name.
        name: String,
        /// Subresource (`status`, `scale`, `log`, `exec`, …), if any.
        sub: Option<String>,
    },
}

impl Route {
    /// The warning Kubernetes sends with every request for a deprecated
    /// resource (v1 Endpoints since 1.33).
    pub fn deprecation(&self) -> Option<&'static str> {
        match self {
            Route::Collection { rt, .. } | Route::Object { rt, .. } if rt.kind == "Endpoints" => {
                Some("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
            }
            _ => None,
        }
    }
}

/// Parses a request path into a route.
pub fn parse(path: &str) -> ApiResult<Route> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::no_route(path);
    match segments.as_slice() {
        ["version"] => Ok(Route::Version),
        ["healthz" | "readyz" | "livez", ..] => Ok(Route::Health),
        ["api"] => Ok(Route::CoreVersions),
        ["apis"] => Ok(Route::Groups),
        ["openapi", "v2"] => Ok(Route::OpenApiV2),
        ["openapi", "v3"] => Ok(Route::OpenApiIndex),
        ["openapi", "v3", rest @ ..] => Ok(Route::OpenApiGroup(rest.join("/"))),
        ["apis", group] if resources::GROUPS.contains(group) || *group == metrics::GROUP => {
            Ok(Route::Group(group.to_string()))
        }
        ["apis", metrics::GROUP, metrics::VERSION] => {
            Ok(Route::ResourceList(metrics::GROUP.into(), metrics::VERSION.into()))
        }
        ["apis", metrics::GROUP, metrics::VERSION, rest @ ..] => {
            metrics::route(rest).map(Route::Metrics).ok_or_else(not_found)
        }
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest).ok_or_else(not_found),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest).ok_or_else(not_found),
        _ => Err(not_found()),
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    if resources::versions_of(group).iter().all(|v| *v != version) {
        return None;
    }
    let find = |plural: &str| resources::find(group, version, plural);
    let object = |rt, ns: &str, name: &str, sub: &[&str]| {
        let sub = (!sub.is_empty()).then(|| sub.join("/"));
        if let Some(s) = &sub {
            let first = s.split('/').next().unwrap_or_default();
            let known: &ResourceType = rt;
            if !known.subresources.contains(&first) {
                return None;
            }
        }
        Some(Route::Object { rt, ns: ns.to_string(), name: name.to_string(), sub })
    };
    match rest {
        [] => Some(Route::ResourceList(group.to_string(), version.to_string())),
        ["namespaces", ns, plural, tail @ ..] if group.is_empty() || !tail.is_empty() || find(plural).is_some() => {
            match find(plural) {
                Some(rt) if rt.namespaced => match tail {
                    [] => Some(Route::Collection { rt, ns: Some(ns.to_string()) }),
                    [name, sub @ ..] => object(rt, ns, name, sub),
                },
                // `/api/v1/namespaces/NAME/status` and friends address the namespace itself.
                _ if group.is_empty() && tail.is_empty() => object(find("namespaces")?, "", ns, &[plural]),
                _ => None,
            }
        }
        [plural] => Some(Route::Collection { rt: find(plural)?, ns: None }),
        [plural, name, sub @ ..] => {
            let rt = find(plural)?;
            if rt.namespaced {
                return None;
            }
            object(rt, "", name, sub)
        }
    }
}

/// Query parameters; repeated keys (`command=a&command=b`) keep every value.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    /// Parses a raw query string; tolerates the empty pairs kube-rs sends (`?&a=b`).
    pub fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_default().push(v);
        }
        Ok(Query(map))
    }

    /// The first value of a parameter.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.first()).map(String::as_str)
    }

    /// Every value of a parameter.
    pub fn all(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or_default()
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// An integer parameter; a malformed one is a 400.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| ApiError::bad_request(format!("{key} must be an integer, got {v:?}"))))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(path: &str) -> (String, String, String, Option<String>) {
        match parse(path).unwrap() {
            Route::Object { rt, ns, name, sub } => (rt.plural.to_string(), ns, name, sub),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_map_to_routes() {
        assert_eq!(
            object("/api/v1/namespaces/default/pods/p/log"),
            ("pods".into(), "default".into(), "p".into(), Some("log".into()))
        );
        assert_eq!(object("/api/v1/namespaces/redis"), ("namespaces".into(), "".into(), "redis".into(), None));
        assert_eq!(
            object("/api/v1/namespaces/redis/status"),
            ("namespaces".into(), "".into(), "redis".into(), Some("status".into()))
        );
        assert_eq!(object("/apis/apps/v1/namespaces/d/deployments/x/scale").3, Some("scale".into()));
        assert_eq!(object("/api/v1/persistentvolumes/redis01").0, "persistentvolumes");
        assert!(matches!(
            parse("/api/v1/namespaces/default/configmaps").unwrap(),
            Route::Collection { ns: Some(_), .. }
        ));
        assert!(matches!(parse("/api/v1/pods").unwrap(), Route::Collection { ns: None, .. }));
        assert!(matches!(parse("/apis/apps/v1").unwrap(), Route::ResourceList(..)));
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/api/v1/widgets",
            "/apis/nope/v1/things",
            "/apis/apps/v2/deployments",
            "/api/v1/namespaces/d/pods/p/bogus",
            "/x",
        ] {
            assert_eq!(parse(path).unwrap_err().code, 404, "{path}");
        }
    }

    #[test]
    fn query_tolerates_empty_pairs_and_repeats() {
        let q = Query::parse(Some("&command=redis-cli&command=ping&watch=true")).unwrap();
        assert_eq!(q.all("command"), ["redis-cli", "ping"]);
        assert!(q.flag("watch"));
        assert!(Query::parse(Some("limit=x")).unwrap().int("limit").is_err());
    }
}
