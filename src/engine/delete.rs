//! `delete`: remove an object (its dependents in the background, as kubectl
//! does) and wait until it is gone.

use std::time::Duration;

use kube::api::DeleteParams;

use super::context::Ctx;
use super::{Done, StepError, wait};
use crate::scenario::{Delete, ObjectRef};

/// Deletes by name, or every object matching the selector.
pub async fn run(ctx: &Ctx, delete: &Delete, timeout: Duration) -> Result<Done, StepError> {
    let object = &delete.object;
    let ignore_missing = delete.ignore_missing.unwrap_or(true);
    let ns = object.namespace.as_deref().map(|n| ctx.render(n));
    let (api, _, _) = ctx.api(object.api_version.as_deref(), &object.kind, ns.as_deref()).await?;
    let names: Vec<String> = match (&object.name, &object.selector) {
        (Some(n), _) => vec![ctx.render(n)],
        (_, Some(s)) => api
            .list(&kube::api::ListParams::default().labels(&ctx.render(s)))
            .await?
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect(),
        _ => vec![],
    };
    let kind = object.kind.to_lowercase();
    let mut lines = Vec::new();
    for name in names {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => lines.push(format!("{kind} \"{name}\" deleted")),
            Err(kube::Error::Api(s)) if s.code == 404 && ignore_missing => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(StepError::failed(
                    format!("{kind} {name} to exist"),
                    "not found",
                    format!("{kind}/{name}"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let one = ObjectRef { name: Some(name.clone()), selector: None, ..object.clone() };
        wait::deleted(ctx, &one, timeout).await?;
    }
    Ok(Done { output: lines.join("\n"), ..Done::default() })
}
