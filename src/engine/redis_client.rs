//! Talking to Redis in a pod: the password from its Secret, a connection
//! through a port-forward, commands with a deadline, and replies shown as
//! redis-cli shows them or read as JSON. The `redis` check, the cluster and the
//! Sentinel drills all build on it.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use redis::Value as Reply;
use serde_json::Value;

use super::StepError;
use super::context::{Ctx, RedisKey};
use crate::scenario::SecretKey;

/// The Redis password: from the Secret the scenario names, else (a learner
/// who put it elsewhere, as the task allows) wherever `pod` gets it (see
/// [`super::password_source`]). The value joins the redacted secrets.
pub async fn password(ctx: &Ctx, auth: &SecretKey, pod: Option<&Value>, namespace: &str) -> Result<String, StepError> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let (name, key) = (ctx.render(&auth.secret), ctx.render(&auth.key));
    let secret = secrets.get_opt(&name).await?;
    let from_secret = secret.as_ref().and_then(|secret| {
        let data = secret.data.as_ref().and_then(|d| d.get(&key)).map(|b| b.0.clone());
        data.or_else(|| secret.string_data.as_ref().and_then(|d| d.get(&key)).map(|s| s.as_bytes().to_vec()))
    });
    let value = match (from_secret, pod) {
        (Some(bytes), _) => String::from_utf8_lossy(&bytes).into_owned(),
        (None, Some(pod)) => match super::password_source::discover(ctx, pod, namespace).await? {
            Some(found) => {
                ctx.progress(&format!("password from {} (no key {key} in a Secret {name})", found.source));
                found.password
            }
            None => return Err(no_password(&name, &key, secret.is_some(), true)),
        },
        (None, None) => return Err(no_password(&name, &key, secret.is_some(), false)),
    };
    ctx.redactor.lock().unwrap_or_else(|e| e.into_inner()).add(value.clone());
    Ok(value)
}

fn no_password(name: &str, key: &str, secret_exists: bool, looked_at_pod: bool) -> StepError {
    let missing = if secret_exists { format!("no key {key} in Secret {name}") } else { format!("no Secret {name}") };
    let elsewhere = if looked_at_pod {
        ", and the pod gets none from --requirepass, a mounted config file's requirepass or a PASSWORD env var"
    } else {
        ""
    };
    StepError::failed(
        format!("the Redis password (key {key} of Secret {name})"),
        format!("{missing}{elsewhere}"),
        format!("secret/{name}"),
    )
}

/// How long one reply may take: `WAIT` and `CLUSTER` commands legitimately
/// take seconds (the client's default of 500 ms is for caches).
pub const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// How long a Redis that is not accepting connections yet is waited for: a pod
/// without a readiness probe is Ready as soon as its process starts.
pub const CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// A Redis connection to `pod`'s `port` through a port-forward: the one an
/// earlier step of this run opened to the same pod, port and password if it
/// still answers a PING (on a remote cluster a new port-forward costs round
/// trips a PING does not), else a new one, retrying with back-off while the
/// server is not accepting connections yet.
pub async fn connect(
    ctx: &Ctx,
    pod: &Value,
    port: u16,
    password: Option<String>,
) -> Result<redis::aio::MultiplexedConnection, StepError> {
    Ok(proven(ctx, pod, port, password, None).await?.0)
}

/// `command`'s reply from `pod`'s `port`, on the connection [`connect`]
/// would give, with the PING that proves a Redis is behind it sent in the
/// same round trip: on a remote cluster a check costs the port-forward and
/// one exchange.
pub async fn query_pod(
    ctx: &Ctx,
    pod: &Value,
    port: u16,
    password: Option<String>,
    command: &[String],
) -> Result<Reply, StepError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let (_, reply) = proven(ctx, pod, port, password, Some(command)).await?;
    reply.expect("a command was sent").map_err(|e| redis_error(ctx, e, name, port))
}

/// The run's connection to `pod`'s `port` (reused or new, see [`connect`])
/// once a PING shows a Redis behind it, and `command`'s reply when given,
/// sent beside the PING.
async fn proven(
    ctx: &Ctx,
    pod: &Value,
    port: u16,
    password: Option<String>,
    command: Option<&[String]>,
) -> Result<(redis::aio::MultiplexedConnection, Option<Result<Reply, redis::RedisError>>), StepError> {
    let exchange = async |conn: &redis::aio::MultiplexedConnection| {
        let (mut pinged, mut asked) = (conn.clone(), conn.clone());
        let reply = async {
            match command {
                Some(command) => Some(query(&mut asked, command).await),
                None => None,
            }
        };
        let (alive, reply) = tokio::join!(prove(ctx, pod, port, ping(&mut pinged)), reply);
        alive.map(|()| reply)
    };
    let key = connection_key(pod, port, password.clone());
    let cached = ctx.redis_connections.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    if let Some(conn) = cached {
        if let Ok(reply) = exchange(&conn).await {
            return Ok((conn, reply));
        }
        ctx.redis_connections.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
    }
    let (conn, reply) = patiently(ctx, async || {
        let conn = open(ctx, pod, port, password.clone()).await?;
        let reply = exchange(&conn).await?;
        Ok((conn, reply))
    })
    .await?;
    if !key.0.is_empty() {
        ctx.redis_connections.lock().unwrap_or_else(|e| e.into_inner()).insert(key, conn.clone());
    }
    Ok((conn, reply))
}

/// What a reusable connection is kept under (see [`RedisKey`]).
fn connection_key(pod: &Value, port: u16, password: Option<String>) -> RedisKey {
    (pod["metadata"]["uid"].as_str().unwrap_or_default().to_string(), port, password)
}

/// Whether a command changes the state of the connection it is sent on
/// (who it is authenticated as, its database, protocol, name, transaction,
/// subscriptions), so that the connection must not serve another step.
pub fn changes_connection(command: &[String]) -> bool {
    let name = command.first().map(|c| c.to_ascii_uppercase()).unwrap_or_default();
    matches!(
        name.as_str(),
        "AUTH"
            | "SELECT"
            | "HELLO"
            | "CLIENT"
            | "RESET"
            | "MULTI"
            | "WATCH"
            | "SUBSCRIBE"
            | "PSUBSCRIBE"
            | "SSUBSCRIBE"
            | "READONLY"
            | "READWRITE"
            | "ASKING"
            | "MONITOR"
            | "QUIT"
    )
}

/// Drops the reusable connection to `pod`'s `port` (see [`connect`]).
pub fn forget_connection(ctx: &Ctx, pod: &Value, port: u16, password: Option<String>) {
    ctx.redis_connections.lock().unwrap_or_else(|e| e.into_inner()).remove(&connection_key(pod, port, password));
}

/// Tries `attempt` again with back-off while it fails (a Redis not accepting
/// connections yet: a pod without a readiness probe is Ready as soon as its
/// process starts), for at most [`CONNECT_PATIENCE`].
async fn patiently<T>(ctx: &Ctx, mut attempt: impl AsyncFnMut() -> Result<T, StepError>) -> Result<T, StepError> {
    let started = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(StepError::Failed { actual, .. }) if started.elapsed() + delay < CONNECT_PATIENCE => {
                ctx.progress(&format!("Redis not answering yet ({actual}); retrying"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn ping(conn: &mut redis::aio::MultiplexedConnection) -> Result<Reply, redis::RedisError> {
    query(conn, &["PING".to_string()]).await
}

/// Whether a PING's answer shows a Redis behind the connection (an auth
/// error counts: a forwarded port whose server is not listening yet accepts
/// and then drops), within [`HANDSHAKE_TIMEOUT`].
async fn prove(
    ctx: &Ctx,
    pod: &Value,
    port: u16,
    pinged: impl std::future::Future<Output = Result<Reply, redis::RedisError>>,
) -> Result<(), StepError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    // Sometimes such a forward neither answers nor drops (seen on the lab: a
    // check right after a rollout waited the whole 15 s reply timeout): the
    // PING gets a bound of its own, so the connection is tried again.
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, pinged).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(redis_error(ctx, e, name, port)),
        Err(_) => Err(StepError::failed(
            format!("a Redis answering on {name}:{port}"),
            format!("no answer to PING within {HANDSHAKE_TIMEOUT:?}"),
            format!("pod {name} port {port}"),
        )),
    }
}

/// A new connection through a new port-forward (with AUTH when there is a
/// password), not yet proven to reach a Redis.
async fn open(
    ctx: &Ctx,
    pod: &Value,
    port: u16,
    password: Option<String>,
) -> Result<redis::aio::MultiplexedConnection, StepError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or(&ctx.namespace);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut forwarder = pods.portforward(name, &[port]).await?;
    let stream = forwarder.take_stream(port).ok_or_else(|| StepError::infra(format!("no stream for port {port}")))?;
    // The forwarder runs until the stream is dropped with the connection.
    tokio::spawn(async move {
        let _ = forwarder.join().await;
    });
    let mut info = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(p) = password {
        info = info.set_password(p);
    }
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    let made = redis::aio::MultiplexedConnection::new_with_config(&info, stream, config);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, made).await {
        Ok(Ok((conn, driver))) => {
            tokio::spawn(driver);
            Ok(conn)
        }
        Ok(Err(e)) => Err(redis_error(ctx, e, name, port)),
        Err(_) => Err(StepError::failed(
            format!("a Redis answering on {name}:{port}"),
            format!("no answer to AUTH within {HANDSHAKE_TIMEOUT:?}"),
            format!("pod {name} port {port}"),
        )),
    }
}

/// How long a new connection's AUTH and PING may take before it is tried
/// again (well above a round trip to a remote cluster).
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A Redis error as a step error, naming the pod and port.
pub fn redis_error(ctx: &Ctx, e: redis::RedisError, pod: &str, port: u16) -> StepError {
    StepError::failed(
        format!("a Redis answering on {pod}:{port}"),
        ctx.redact(&e.to_string()),
        format!("pod {pod} port {port}"),
    )
}

/// A reply as redis-cli prints it.
pub fn show(reply: &Reply, indent: usize) -> String {
    match reply {
        Reply::Nil => "(nil)".into(),
        Reply::Int(n) => format!("(integer) {n}"),
        Reply::BulkString(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
        Reply::SimpleString(s) => s.clone(),
        Reply::Okay => "OK".into(),
        Reply::Array(items) | Reply::Set(items) if items.is_empty() => "(empty array)".into(),
        Reply::Array(items) | Reply::Set(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{}{}) {}", " ".repeat(if i == 0 { 0 } else { indent }), i + 1, show(v, indent + 3)))
            .collect::<Vec<_>>()
            .join("\n"),
        Reply::Map(pairs) => pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| format!("{}) {} => {}", i + 1, show(k, 0), show(v, 0)))
            .collect::<Vec<_>>()
            .join("\n"),
        Reply::Double(d) => format!("(double) {d}"),
        Reply::Boolean(b) => format!("(boolean) {b}"),
        Reply::ServerError(e) => format!(
            "(error) {}",
            e.details().map(|d| format!("{} {d}", e.code())).unwrap_or_else(|| e.code().to_string())
        ),
        other => format!("{other:?}"),
    }
}

/// A reply as a value to compare: strings, numbers, arrays.
pub fn to_value(reply: &Reply) -> Value {
    match reply {
        Reply::Nil => Value::Null,
        Reply::Int(n) => Value::from(*n),
        Reply::BulkString(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Reply::SimpleString(s) => Value::String(s.clone()),
        Reply::Okay => Value::String("OK".into()),
        Reply::Array(items) | Reply::Set(items) => Value::Array(items.iter().map(to_value).collect()),
        Reply::Map(pairs) => Value::Object(pairs.iter().map(|(k, v)| (plain(&to_value(k)), to_value(v))).collect()),
        Reply::Double(d) => Value::from(*d),
        Reply::Boolean(b) => Value::Bool(*b),
        Reply::ServerError(_) => Value::String(show(reply, 0)),
        other => Value::String(format!("{other:?}")),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field of a reply: a key of a key/value array or map, or of INFO text.
pub fn field(reply: &Value, key: &str) -> Option<Value> {
    match reply {
        Value::Object(map) => map.get(key).cloned(),
        Value::Array(items) => {
            items.chunks(2).find(|pair| pair.len() == 2 && plain(&pair[0]) == key).map(|pair| pair[1].clone())
        }
        Value::String(text) => text.lines().find_map(|l| {
            l.trim_end_matches('\r').strip_prefix(&format!("{key}:")).map(|v| Value::String(v.to_string()))
        }),
        _ => None,
    }
}

/// Sends one command and returns the raw reply (server errors included).
pub async fn query(
    conn: &mut redis::aio::MultiplexedConnection,
    command: &[String],
) -> Result<Reply, redis::RedisError> {
    let mut cmd = redis::cmd(&command[0]);
    for arg in &command[1..] {
        cmd.arg(arg);
    }
    match cmd.query_async::<Reply>(conn).await {
        Ok(v) => Ok(v),
        // A reply the server sent as an error (NOAUTH, WRONGPASS, ERR …) is an
        // answer to compare, shown as redis-cli shows it.
        Err(e) if e.code().is_some() => {
            let detail = e.detail().map(|d| format!(" {d}")).unwrap_or_default();
            Ok(Reply::SimpleString(format!("(error) {}{detail}", e.code().unwrap_or_default())))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_that_change_the_connection_are_known() {
        let cmd = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(changes_connection(&cmd(&["auth", "s3cret"])));
        assert!(changes_connection(&cmd(&["SELECT", "2"])));
        assert!(!changes_connection(&cmd(&["CONFIG", "GET", "maxmemory"])));
        assert!(!changes_connection(&cmd(&["PING"])));
    }

    #[test]
    fn shows_like_redis_cli_and_picks_fields() {
        let reply =
            Reply::Array(vec![Reply::BulkString(b"maxmemory".to_vec()), Reply::BulkString(b"2097152".to_vec())]);
        assert_eq!(show(&reply, 0), "1) \"maxmemory\"\n2) \"2097152\"");
        assert_eq!(field(&to_value(&reply), "maxmemory"), Some(Value::String("2097152".into())));
        let info = Value::String("# Replication\r\nrole:master\r\nconnected_slaves:2\r\n".into());
        assert_eq!(field(&info, "connected_slaves"), Some(Value::String("2".into())));
        assert_eq!(field(&info, "role"), Some(Value::String("master".into())));
    }
}
