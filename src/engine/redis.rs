//! `redis`: a command sent with the Redis protocol through a port-forward to
//! the pod (one connection, no process per check), the reply parsed and
//! compared. Replies are shown as redis-cli shows them.

use serde_json::Value;

use super::context::Ctx;
use super::exec::running_pod;
use super::redis_client::{changes_connection, field, forget_connection, password, query_pod, show, to_value};
use super::{Done, StepError, expect};
use crate::scenario::Redis;

/// Runs a redis step.
pub async fn run(ctx: &Ctx, step: &Redis) -> Result<Done, StepError> {
    let pod = running_pod(ctx, &step.pod).await?;
    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace).to_string();
    let port = step.port.unwrap_or(6379);
    let password = match &step.auth {
        Some(auth) => Some(password(ctx, auth, Some(&pod), &ns).await?),
        None => None,
    };
    let command: Vec<String> = step.command.iter().map(|c| ctx.render(c)).collect();
    let reply = if step.cluster {
        let mut client = super::cluster_client::ClusterClient::new(ctx, &step.pod, step.auth.as_ref()).await?;
        client.query(&command).await?
    } else {
        let reply = query_pod(ctx, &pod, port, password.clone(), &command).await?;
        // A command that changes the connection itself (AUTH, SELECT…) must
        // not reach a later step's check: that connection is not reused.
        if changes_connection(&command) {
            forget_connection(ctx, &pod, port, password);
        }
        reply
    };
    let output = ctx.redact(&show(&reply, 0));
    let mut value = to_value(&reply);
    let looked_at = format!("`{}` on pod {name}:{port}", command.join(" "));
    if let Some(shape) = &step.expect.cluster_shape {
        return match super::cluster::shape_of_reply(&reply, shape) {
            Ok(summary) => Ok(Done {
                output,
                looked_at: Some(looked_at),
                message: Some(summary),
                resolved_pod: Some(name),
                ..Done::default()
            }),
            Err((expected, actual)) => {
                Err(StepError::Failed { expected, actual, looked_at, output, diagnostics: None })
            }
        };
    }
    if let Some(fields) = &step.expect.fields {
        let mut wrong = Vec::new();
        for (key, want) in fields {
            let got = field(&value, key);
            let want = match want {
                Value::String(s) => Value::String(ctx.render(s)),
                other => other.clone(),
            };
            if !got.as_ref().is_some_and(|g| expect::values_equal(&want, g)) {
                wrong.push(format!("{key}={}", expect::show(got.as_ref())));
            }
        }
        if !wrong.is_empty() {
            let expected: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", expect::show(Some(v)))).collect();
            return Err(StepError::Failed {
                expected: ctx.render(&expected.join(", ")),
                actual: wrong.join(", "),
                looked_at,
                output,
                diagnostics: None,
            });
        }
    }
    if let Some(key) = &step.expect.field {
        let key = ctx.render(key);
        match field(&value, &key) {
            Some(v) => value = v,
            None => {
                return Err(StepError::Failed {
                    expected: format!("a field {key:?} in the reply"),
                    actual: output.clone(),
                    looked_at,
                    output,
                    diagnostics: None,
                });
            }
        }
    }
    match expect::compare(&step.expect, Some(&value), &|s| ctx.render(s)) {
        Ok(()) => Ok(Done { output, looked_at: Some(looked_at), resolved_pod: Some(name), ..Done::default() }),
        Err(m) => Err(StepError::Failed {
            expected: m.expected,
            actual: ctx.redact(&m.actual),
            looked_at,
            output,
            diagnostics: None,
        }),
    }
}
