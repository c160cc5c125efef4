//! `apply`: server-side apply of templated manifests, one document at a time,
//! reporting each object as kubectl does (created / configured / unchanged).

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::context::{Applied, Ctx};
use super::{Done, StepError};
use crate::scenario::{Apply, Scenario, template};

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

/// Renders and parses the manifests of an apply step: (file shown, document).
pub fn documents(
    ctx_vars: &std::collections::BTreeMap<String, String>,
    scenario: &Scenario,
    apply: &Apply,
) -> Result<Vec<(String, Value)>, StepError> {
    let mut sources: Vec<(String, String)> = Vec::new();
    for f in &apply.files {
        let text = scenario.read(f).map_err(StepError::Invalid)?;
        sources.push((scenario.display_path(f), text));
    }
    if let Some(inline) = &apply.inline {
        sources.push((format!("{} (inline)", scenario.path), inline.clone()));
    }
    let mut docs = Vec::new();
    for (file, text) in sources {
        let rendered =
            template::render(&text, ctx_vars).map_err(|e| StepError::Invalid(format!("{file}: {}", e.message)))?;
        let rendered = yaml11_octals(&rendered);
        for doc in serde_yaml_ng::Deserializer::from_str(&rendered) {
            let value: Value =
                serde::Deserialize::deserialize(doc).map_err(|e| StepError::Invalid(format!("{file}: {e}")))?;
            if !value.is_null() {
                docs.push((file.clone(), value));
            }
        }
    }
    Ok(docs)
}

/// Rewrites YAML 1.1 octal integers (`defaultMode: 0755`) as decimal, so the
/// manifests mean what they mean to kubectl (YAML 1.1), not 755 as YAML 1.2
/// reads them.
pub fn yaml11_octals(text: &str) -> String {
    static OCTAL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?m)^(\s*(?:- )?[A-Za-z0-9_.-]+:[ \t]+)0([0-7]+)([ \t]*(?:#.*)?)$").expect("static regex")
    });
    OCTAL
        .replace_all(text, |c: &regex::Captures| {
            let value = u64::from_str_radix(&c[2], 8).unwrap_or(0);
            format!("{}{value}{}", &c[1], &c[3])
        })
        .into_owned()
}

/// Applies every document; stops at the first the server refuses.
pub async fn run(ctx: &Ctx, scenario: &Scenario, apply: &Apply) -> Result<Done, StepError> {
    let mut lines = Vec::new();
    for (file, mut doc) in documents(&ctx.vars(), scenario, apply)? {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let ns = doc["metadata"]["namespace"].as_str().map(String::from);
        let (api, _, namespaced) = ctx.api(Some(&api_version), &kind, ns.as_deref()).await?;
        stamp(&mut doc, &ctx.render("{{ run_id }}"));
        let applied = Applied {
            api_version,
            kind: kind.clone(),
            namespace: if namespaced { ns.unwrap_or_else(|| ctx.namespace.clone()) } else { String::new() },
            name: name.clone(),
        };
        // Recorded before the request: if the run is interrupted while it is
        // in flight, the object may exist all the same, and cleanup must look.
        {
            let mut all = ctx.applied.lock().unwrap_or_else(|e| e.into_inner());
            if !all.contains(&applied) {
                all.push(applied.clone());
            }
        }
        let before = api.get_opt(&name).await?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let after = api.patch(&name, &params, &Patch::Apply(&doc)).await.map_err(|e| match e {
            kube::Error::Api(s) if matches!(s.code, 400 | 422) => {
                StepError::Invalid(format!("{file}: the server rejected {kind} {name:?}: {}", s.message))
            }
            other => StepError::from(other),
        })?;
        let verb = match before {
            None => "created",
            Some(b) if b.metadata.resource_version == after.metadata.resource_version => "unchanged",
            Some(_) => "configured",
        };
        lines.push(format!("{} {verb}", applied.display()));
    }
    Ok(Done { output: lines.join("\n"), ..Done::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes_read_as_kubectl_reads_them() {
        assert_eq!(yaml11_octals("  defaultMode: 0755\n"), "  defaultMode: 493\n");
        assert_eq!(yaml11_octals("- mode: 0644 # rw\n"), "- mode: 420 # rw\n");
        assert_eq!(yaml11_octals("port: 6379\nname: \"0755\"\nzero: 0\n"), "port: 6379\nname: \"0755\"\nzero: 0\n");
    }
}
