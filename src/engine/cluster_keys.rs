//! Keys written and read back through a Redis Cluster (`redisKeys`, and
//! the count of keys a failover drill lost): each key sent to the master
//! serving its slot, a pipeline per node, so that a few hundred keys cost a
//! round trip per node rather than one or two per key.

use std::collections::BTreeMap;

use redis::Value as Reply;
use serde_json::Value;

use super::cluster_client::ClusterClient;
use super::context::Ctx;
use super::redis_client::{show, to_value};
use super::{Done, StepError};
use crate::scenario::RedisKeys;

/// How many commands go in one pipeline.
const PIPELINE: usize = 500;

/// The cluster slot of a key, as `CLUSTER KEYSLOT` answers: CRC16 (XMODEM)
/// of the key, or of its hash tag (the text between the first `{` and the
/// next `}`, when not empty), modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter().position(|&b| b == b'}').filter(|&close| close > 0).map(|close| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

fn key(prefix: &str, n: u32) -> (String, String) {
    (format!("{prefix}:{n}"), format!("{prefix}-value-{n}"))
}

/// Each keyed command's reply (the key is its second word): sent to
/// `single` when given, else to the master serving the key's slot, in a
/// pipeline per node; a command answered with a redirect (the slots moved
/// meanwhile) is sent again on its own, following it. Server errors come
/// back as `query` shows them.
pub async fn send_keyed(
    client: &mut ClusterClient<'_>,
    single: Option<&str>,
    commands: &[Vec<String>],
) -> Result<Vec<Reply>, StepError> {
    let owners = if single.is_none() { client.slot_owners().await? } else { Vec::new() };
    let owner = |command: &Vec<String>| -> String {
        if let Some(ip) = single {
            return ip.to_string();
        }
        let slot = key_slot(command.get(1).map(String::as_bytes).unwrap_or_default());
        let found = owners.iter().find(|(first, last, _)| (*first..=*last).contains(&slot));
        // A slot no master serves: any node, whose answer says so.
        found.map(|(_, _, ip)| ip.clone()).unwrap_or_else(|| client.ips().first().cloned().unwrap_or_default())
    };
    let mut by_node: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, command) in commands.iter().enumerate() {
        by_node.entry(owner(command)).or_default().push(i);
    }
    let mut replies = vec![Reply::Nil; commands.len()];
    for (ip, indices) in by_node {
        for chunk in indices.chunks(PIPELINE) {
            let batch: Vec<Vec<String>> = chunk.iter().map(|&i| commands[i].clone()).collect();
            for (&i, reply) in chunk.iter().zip(client.pipelined(&ip, &batch).await?) {
                replies[i] = reply;
            }
        }
    }
    for (i, reply) in replies.iter_mut().enumerate() {
        if let Reply::ServerError(e) = reply {
            *reply = if single.is_none() && matches!(e.code(), "MOVED" | "ASK") {
                client.query(&commands[i]).await?
            } else {
                Reply::SimpleString(show(reply, 0))
            };
        }
    }
    Ok(replies)
}

/// Reads keys back; returns the missing or wrong ones.
pub async fn read_back(
    client: &mut ClusterClient<'_>,
    single: Option<&str>,
    prefix: &str,
    count: u32,
) -> Result<Vec<String>, StepError> {
    let keys: Vec<(String, String)> = (0..count).map(|n| key(prefix, n)).collect();
    let gets: Vec<Vec<String>> = keys.iter().map(|(k, _)| vec!["GET".to_string(), k.clone()]).collect();
    let replies = send_keyed(client, single, &gets).await?;
    Ok(keys
        .into_iter()
        .zip(replies)
        .filter(|((_, v), reply)| to_value(reply) != Value::String(v.clone()))
        .map(|((k, _), _)| k)
        .collect())
}

/// Runs a `redisKeys` step: write then read back, or read back only.
pub async fn keys(ctx: &Ctx, step: &RedisKeys) -> Result<Done, StepError> {
    let mut client = ClusterClient::new(ctx, &step.pod, step.auth.as_ref()).await?;
    let prefix = ctx.render(&step.prefix);
    let single = if step.cluster { None } else { client.ips().first().cloned() };
    let mut done = Done::default();
    let render = |t: &str| ctx.render(t);
    let count = step
        .write
        .as_ref()
        .or(step.read.as_ref())
        .map(|c| c.value(&render))
        .transpose()
        .map_err(StepError::Invalid)?
        .unwrap_or(0);
    if let Some(n) = step.write.as_ref().map(|_| count) {
        let sets: Vec<Vec<String>> = (0..n)
            .map(|i| {
                let (k, v) = key(&prefix, i);
                vec!["SET".to_string(), k, v]
            })
            .collect();
        let replies = send_keyed(&mut client, single.as_deref(), &sets).await?;
        if let Some((set, reply)) = sets.iter().zip(&replies).find(|(_, r)| to_value(r) != Value::String("OK".into())) {
            return Err(StepError::failed(
                format!("SET {} to answer OK", set[1]),
                show(reply, 0),
                ctx.describe_pod(&step.pod),
            ));
        }
        // Acknowledged means replicated: every node that took writes waits for a replica.
        let ips = client.connected();
        let mut acknowledged = Vec::new();
        for (ip, reply) in ips.iter().zip(client.on_each(&ips, &["WAIT", "1", "2000"]).await?) {
            if let Reply::Int(n) = reply {
                acknowledged.push(format!("{ip}: {n} replica(s)"));
            }
        }
        done.output =
            format!("wrote {n} keys {prefix}:0..{prefix}:{}\nWAIT: {}", n.saturating_sub(1), acknowledged.join(", "));
    }
    let missing = read_back(&mut client, single.as_deref(), &prefix, count).await?;
    done.measure("keys read back", f64::from(count - missing.len() as u32), "keys");
    if !missing.is_empty() {
        return Err(StepError::Failed {
            expected: format!("all {count} keys {prefix}:* readable"),
            actual: format!(
                "{} missing or wrong, e.g. {}",
                missing.len(),
                missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ),
            looked_at: ctx.describe_pod(&step.pod),
            output: done.output,
            diagnostics: None,
        });
    }
    done.output.push_str(&format!("\nread back {count}/{count} keys"));
    done.output = done.output.trim_start().to_string();
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_computes() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"), "an empty tag hashes the whole key");
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }
}
