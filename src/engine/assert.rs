//! `assert`: a field of a live object compared with a value, or a live
//! object compared with a partial one (`contains`, see [`super::partial`]).

use super::context::Ctx;
use super::{Done, StepError, diagnostics, expect};
use crate::k8s::jsonpath;
use crate::scenario::Assert;

/// Runs an assert step.
pub async fn run(ctx: &Ctx, assert: &Assert) -> Result<Done, StepError> {
    let object = &assert.object;
    let target = ctx.describe_object(object);
    let path = ctx.render(&assert.path);
    let looked_at =
        if assert.contains.is_some() { format!("{target} (its fields)") } else { format!("{target} {path}") };
    if assert.all {
        return every(ctx, assert, &target, &path).await;
    }
    let Some(found) = ctx.find(object).await? else {
        return Err(StepError::failed(format!("{target} to exist"), "not found", looked_at));
    };
    if let Some(part) = &assert.contains {
        let differences = super::partial::differences(part, &found, &|s| ctx.render(s));
        return match holds(&differences) {
            Ok(()) => {
                Ok(Done { output: "every field given holds".into(), looked_at: Some(looked_at), ..Done::default() })
            }
            Err(m) => Err(StepError::Failed {
                expected: m.expected,
                actual: m.actual,
                looked_at,
                output: differences.join("\n"),
                diagnostics: None,
            }),
        };
    }
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

/// Every object a selector matches must satisfy the expectation.
async fn every(ctx: &Ctx, assert: &Assert, target: &str, path: &str) -> Result<Done, StepError> {
    let object = &assert.object;
    let every = crate::scenario::ObjectRef { name: None, ..object.clone() };
    let items = ctx.find_all(&every).await?;
    let looked_at = format!("{target} {path} (every match)");
    if items.is_empty() {
        return Err(StepError::failed(format!("{target} to match something"), "no match", looked_at));
    }
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for item in items {
        let name = item["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let value = item;
        let outcome = match &assert.contains {
            Some(part) => {
                let differences = super::partial::differences(part, &value, &|s| ctx.render(s));
                lines.push(format!("{name}: {}", if differences.is_empty() { "holds" } else { "differs" }));
                holds(&differences)
            }
            None => {
                let found = jsonpath::get(&value, path).map_err(|e| StepError::Invalid(e.to_string()))?;
                lines.push(format!("{name}: {}", expect::show(found)));
                expect::compare(&assert.expect, found, &|s| ctx.render(s))
            }
        };
        if let Err(m) = outcome {
            failures.push((name, m));
        }
    }
    let output = lines.join("\n");
    match failures.first() {
        None => Ok(Done { output, looked_at: Some(looked_at), ..Done::default() }),
        Some((name, m)) => Err(StepError::Failed {
            expected: format!("every match: {}", m.expected),
            actual: format!(
                "{name}: {}{}",
                m.actual,
                if failures.len() > 1 { format!(" (and {} more)", failures.len() - 1) } else { String::new() }
            ),
            looked_at,
            output,
            diagnostics: None,
        }),
    }
}

/// A partial object's differences as a check's outcome: the first few in
/// `actual`, how many in all.
fn holds(differences: &[String]) -> Result<(), expect::Mismatch> {
    if differences.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = differences.iter().take(3).map(String::as_str).collect();
    let more = differences.len().saturating_sub(3);
    Err(expect::Mismatch {
        expected: "every field given in contains".into(),
        actual: format!(
            "{} field(s) differ: {}{}",
            differences.len(),
            shown.join("; "),
            if more > 0 { format!("; and {more} more") } else { String::new() }
        ),
    })
}
