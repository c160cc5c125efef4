//! `assert`: a field of a live object compared with a value.

use super::context::Ctx;
use super::{Done, StepError, diagnostics, expect};
use crate::kube::jsonpath;
use crate::scenario::Assert;

/// Runs an assert step.
pub async fn run(ctx: &Ctx, assert: &Assert) -> Result<Done, StepError> {
    let object = &assert.object;
    let target = match (&object.name, &object.selector) {
        (Some(n), _) => format!("{}/{}", object.kind.to_lowercase(), ctx.render(n)),
        (_, Some(s)) => format!("{} -l {}", object.kind.to_lowercase(), ctx.render(s)),
        _ => object.kind.to_lowercase(),
    };
    let path = ctx.render(&assert.path);
    let looked_at = format!("{target} {path}");
    let Some(found) = ctx.find(object).await? else {
        return Err(StepError::Failed {
            expected: format!("{target} to exist"),
            actual: "not found".into(),
            looked_at,
            output: String::new(),
            diagnostics: None,
        });
    };
    let value = jsonpath::get(&found, &path).map_err(|e| StepError::Invalid(e.to_string()))?;
    let output = expect::show(value);
    match expect::compare(&assert.expect, value, &|s| ctx.render(s)) {
        Ok(()) => Ok(Done { output, looked_at: Some(looked_at), ..Done::default() }),
        Err(m) => {
            let diagnostics = if object.kind == "Pod" { diagnostics::for_pods(ctx, &[found]).await } else { None };
            Err(StepError::Failed { expected: m.expected, actual: m.actual, looked_at, output, diagnostics })
        }
    }
}
