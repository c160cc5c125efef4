//! Finding the password a Redis pod really runs with, when the Secret a
//! scenario names does not exist: a learner may follow the task another
//! valid way (seed 004 writes `requirepass` into the config file; seed 003
//! injects `${REDIS_PASSWORD}` from an env var). Looked at, in order: the
//! containers' `--requirepass` arguments, `requirepass` lines in the
//! ConfigMaps and Secrets mounted as volumes, then env vars whose name says
//! PASS; `$(VAR)` and `${VAR}` are resolved from the container's env.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde_json::Value;

use super::StepError;
use super::context::Ctx;

/// A password and where it was found (`requirepass in ConfigMap redis-config`).
pub struct Found {
    /// The password.
    pub password: String,
    /// Where it came from, for the step's output.
    pub source: String,
}

/// The password `pod`'s Redis container gets, if any can be found.
pub async fn discover(ctx: &Ctx, pod: &Value, ns: &str) -> Result<Option<Found>, StepError> {
    let spec = &pod["spec"];
    let containers: Vec<&Value> = spec["containers"].as_array().into_iter().flatten().collect();
    // The Redis container first: a pod may have sidecars with passwords of their own.
    let mut ordered: Vec<&Value> = containers.iter().copied().filter(|c| is_redis(c)).collect();
    ordered.extend(containers.iter().copied().filter(|c| !is_redis(c)));
    for container in &ordered {
        let words: Vec<&str> = ["command", "args"]
            .iter()
            .flat_map(|k| container[k].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        if let Some(i) = words.iter().position(|w| *w == "--requirepass")
            && let Some(value) = words.get(i + 1)
            && let Some(password) = resolve(ctx, container, value, ns).await?
        {
            return Ok(Some(Found { password, source: format!("--requirepass of container {}", name(container)) }));
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let (kind, object, files) = if let Some(name) = volume["configMap"]["name"].as_str() {
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
            let files = api.get_opt(name).await?.and_then(|c| c.data).unwrap_or_default();
            ("ConfigMap", name, files.into_values().collect::<Vec<_>>())
        } else if let Some(name) = volume["secret"]["secretName"].as_str() {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let data = api.get_opt(name).await?.and_then(|s| s.data).unwrap_or_default();
            ("Secret", name, data.into_values().map(|b| String::from_utf8_lossy(&b.0).into_owned()).collect())
        } else {
            continue;
        };
        for text in files {
            let Some(value) = requirepass_line(&text) else { continue };
            for container in &ordered {
                if let Some(password) = resolve(ctx, container, &value, ns).await? {
                    return Ok(Some(Found { password, source: format!("requirepass in {kind} {object}") }));
                }
            }
        }
    }
    for container in &ordered {
        for var in container["env"].as_array().into_iter().flatten() {
            let var_name = var["name"].as_str().unwrap_or_default();
            if var_name.to_ascii_uppercase().contains("PASS")
                && let Some(password) = env_value(ctx, container, var_name, ns).await?
            {
                return Ok(Some(Found {
                    password,
                    source: format!("env {var_name} of container {}", name(container)),
                }));
            }
        }
    }
    Ok(None)
}

fn is_redis(container: &Value) -> bool {
    super::roles::container_runs(container, crate::scenario::Program::RedisServer)
}

fn name(container: &Value) -> &str {
    container["name"].as_str().unwrap_or_default()
}

/// The value of the last `requirepass` line of a config file (Redis keeps the
/// last), quotes removed.
fn requirepass_line(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "requirepass").then(|| words.next().map(|w| w.trim_matches('"').to_string()))?
        })
        .next_back()
}

/// A literal password, or the env var that `$(VAR)`, `${VAR}` or `$VAR` names.
async fn resolve(ctx: &Ctx, container: &Value, value: &str, ns: &str) -> Result<Option<String>, StepError> {
    let var = value
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .or_else(|| value.strip_prefix("${").and_then(|v| v.strip_suffix('}')))
        .or_else(|| value.strip_prefix('$'));
    match var {
        Some(var) => env_value(ctx, container, var, ns).await,
        None if value.is_empty() => Ok(None),
        None => Ok(Some(value.to_string())),
    }
}

/// An env var of the container: a literal `value`, a `secretKeyRef`, or a key
/// of a Secret named by `envFrom`.
async fn env_value(ctx: &Ctx, container: &Value, var: &str, ns: &str) -> Result<Option<String>, StepError> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret_key = |name: &str, key: &str| {
        let (secrets, name, key) = (secrets.clone(), name.to_string(), key.to_string());
        async move {
            let secret = secrets.get_opt(&name).await?;
            Ok::<_, StepError>(
                secret
                    .and_then(|s| s.data)
                    .and_then(|d| d.get(&key).map(|b| String::from_utf8_lossy(&b.0).into_owned())),
            )
        }
    };
    for env in container["env"].as_array().into_iter().flatten() {
        if env["name"] != var {
            continue;
        }
        if let Some(value) = env["value"].as_str() {
            return Ok(Some(value.to_string()));
        }
        let from = &env["valueFrom"]["secretKeyRef"];
        if let (Some(name), Some(key)) = (from["name"].as_str(), from["key"].as_str()) {
            return secret_key(name, key).await;
        }
    }
    for source in container["envFrom"].as_array().into_iter().flatten() {
        if let Some(name) = source["secretRef"]["name"].as_str() {
            let prefix = source["prefix"].as_str().unwrap_or_default();
            if let Some(key) = var.strip_prefix(prefix)
                && let Some(value) = secret_key(name, key).await?
            {
                return Ok(Some(value));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::requirepass_line;

    #[test]
    fn the_last_requirepass_line_counts() {
        let config = "port 6379\n# requirepass old\nrequirepass \"first\"\n  requirepass second\nmasterauth x\n";
        assert_eq!(requirepass_line(config).as_deref(), Some("second"));
        assert_eq!(requirepass_line("requirepass ${REDIS_PASSWORD}\n").as_deref(), Some("${REDIS_PASSWORD}"));
        assert_eq!(requirepass_line("maxmemory 2mb\n"), None);
    }
}
