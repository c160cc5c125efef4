//! `apply`: server-side apply of templated manifests, one document at a time,
//! reporting each object as kubectl does (created / configured / unchanged).

use kube::api::{Patch, PatchParams};

use super::context::{Applied, Ctx};
use super::{Done, StepError};
use crate::k8s::labels::{FIELD_MANAGER, stamp};
use crate::scenario::{Apply, Scenario, manifest};

/// Applies every document; stops at the first the server refuses.
pub async fn run(ctx: &Ctx, scenario: &Scenario, apply: &Apply) -> Result<Done, StepError> {
    let mut lines = Vec::new();
    for (file, mut doc) in manifest::step_documents(&ctx.vars(), scenario, apply).map_err(StepError::Invalid)? {
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
