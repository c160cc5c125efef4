//! The differential fidelity harness: one battery of probes
//! (`fixtures/fidelity/probes.yaml`) run with kubectl against the lab and
//! against upstream Kubernetes, outputs normalized (names, uids, timestamps,
//! IPs, resourceVersions, ages) and compared. It writes the comparison to
//! `target/fidelity.md` (and to `docs/fidelity.md` with
//! `RUNBOOK_FIDELITY_WRITE=1`), and fails when a probe that docs/fidelity.md
//! records as identical is no longer identical. `RUNBOOK_FIDELITY_ONLY`
//! (probe ids, comma-separated) runs only those.
//!
//! A probe is a few kubectl steps in a namespace of its own (`{ns}` in
//! arguments and stdin); every step's exit code, stdout and stderr are
//! compared unless it says `compare: false`. `until` re-runs a step (up to
//! `within` seconds) until its normalized stdout equals that text, for state
//! that settles; the last output is what is compared. `background: true`
//! starts a step (a watch, a port-forward) and goes on with the next ones; it
//! is ended after `within` seconds if it has not ended, and its output is
//! compared after the others. `{port}` is a free local port of each cluster's
//! own, compared as `<port>`.

use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;

use crate::cluster::Upstream;
use crate::common::{TestLab, kubectl_command, kubectl_with};

/// One probe of the battery.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    id: String,
    area: String,
    what: String,
    steps: Vec<Step>,
    /// Why the lab differs, when it is known and stays (also in docs/lab.md).
    #[serde(default)]
    known: Option<String>,
}

/// One kubectl command of a probe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    kubectl: Vec<String>,
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default = "yes")]
    compare: bool,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    within: Option<u64>,
    /// Runs while the next steps do (a watch); its output is compared once
    /// the probe's other steps are done and it has ended.
    #[serde(default)]
    background: bool,
}

fn yes() -> bool {
    true
}

/// A cluster the probes run against.
struct Target<'a> {
    kubeconfig: &'a std::path::Path,
    cache: std::path::PathBuf,
}

impl Target<'_> {
    async fn kubectl(&self, args: &[String], stdin: Option<&str>) -> String {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        outcome(&kubectl_with(self.kubeconfig, &self.cache, &args, stdin).await)
    }

    /// Starts kubectl `args` and lets it run, for at most `lifetime` (then it
    /// is ended, as Ctrl-C would: `exit ended`); its outcome when awaited.
    fn kubectl_in_background(&self, args: Vec<String>, lifetime: Duration) -> tokio::task::JoinHandle<String> {
        use tokio::io::AsyncReadExt;
        let mut cmd = kubectl_command(self.kubeconfig, &self.cache);
        cmd.args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        tokio::spawn(async move {
            let mut child = cmd.spawn().expect("kubectl runs");
            let read = |mut from: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let _ = from.read_to_end(&mut bytes).await;
                    String::from_utf8_lossy(&bytes).into_owned()
                })
            };
            let stdout = read(Box::new(child.stdout.take().expect("piped")));
            let stderr = read(Box::new(child.stderr.take().expect("piped")));
            let code = match tokio::time::timeout(lifetime, child.wait()).await {
                Ok(status) => status.ok().and_then(|s| s.code()).map_or("-1".to_string(), |c| c.to_string()),
                Err(_) => {
                    let _ = child.kill().await;
                    "ended".to_string()
                }
            };
            let (stdout, stderr) = (stdout.await.unwrap_or_default(), stderr.await.unwrap_or_default());
            normalize(&format!("exit {code}\n{stdout}{stderr}"))
        })
    }

    /// Runs a probe in namespace `ns`; returns the compared outputs, one per step.
    async fn run(&self, probe: &Probe, ns: &str) -> Vec<String> {
        // A free local port of this target's own (port-forward), seen as <port>.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
        let fill = |s: &str| s.replace("{ns}", ns).replace("{port}", &port);
        wait_until_namespace_is_gone(self, ns).await;
        self.kubectl(&["create".into(), "namespace".into(), ns.into()], None).await;
        wait_for_default_service_account(self, ns).await;
        let mut outputs = Vec::new();
        let mut background = Vec::new();
        for step in &probe.steps {
            let args: Vec<String> = step.kubectl.iter().map(|a| fill(a)).collect();
            if step.background {
                let lifetime = Duration::from_secs(step.within.unwrap_or(60));
                background.push((args.join(" "), self.kubectl_in_background(args, lifetime)));
                // Time for it to start (a watch to open, a forward to listen)
                // before the next steps go on.
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            let stdin = step.stdin.as_deref().map(fill);
            let deadline = Instant::now() + Duration::from_secs(step.within.unwrap_or(60));
            let mut output = self.kubectl(&args, stdin.as_deref()).await;
            if let Some(want) = &step.until {
                while stdout_of(&output).trim() != want.trim() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    output = self.kubectl(&args, stdin.as_deref()).await;
                }
            }
            if step.compare {
                outputs.push(format!("$ kubectl {}\n{output}", args.join(" ")));
            }
        }
        for (args, task) in background {
            let output = task.await.unwrap_or_else(|e| format!("kubectl did not end: {e}"));
            outputs.push(format!("$ kubectl {args}\n{output}"));
        }
        let outputs = outputs.into_iter().map(|o| o.replace(&port, "<port>")).collect();
        let delete = ["delete", "namespace", ns, "--wait=false"].map(String::from);
        self.kubectl(&delete, None).await;
        outputs
    }
}

/// A kubectl run as compared: its exit code, stdout and stderr, normalized.
fn outcome(out: &std::process::Output) -> String {
    let text = format!(
        "exit {}\n{}{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    normalize(&text)
}

/// A namespace of the same name from an earlier run of the battery may still
/// be terminating (it is deleted without waiting); its pods would show up in
/// this run's outputs, and Kubernetes refuses objects in it.
async fn wait_until_namespace_is_gone(target: &Target<'_>, ns: &str) {
    let args = ["get", "namespace", ns, "--ignore-not-found", "-o", "name"].map(String::from);
    for _ in 0..600 {
        if stdout_of(&target.kubectl(&args, None).await).trim().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pods are refused until a new namespace's default ServiceAccount exists.
async fn wait_for_default_service_account(target: &Target<'_>, ns: &str) {
    let args = ["get", "serviceaccount", "default", "-n", ns].map(String::from);
    for _ in 0..100 {
        if target.kubectl(&args, None).await.starts_with("exit 0") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The output without its first line (`exit N`).
fn stdout_of(output: &str) -> &str {
    output.split_once('\n').map_or("", |(_, rest)| rest)
}

/// What differs between any two runs, or any two clusters, for reasons of
/// identity rather than behaviour, and what replaces it (compiled once: every
/// kubectl output of the battery goes through them).
static NORMALIZATION: std::sync::LazyLock<Vec<(Regex, &'static str)>> = std::sync::LazyLock::new(|| {
    [
        (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uid>"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>"),
        (r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", "<ip>"),
        (r#""resourceVersion": ?"\d+""#, r#""resourceVersion":"<rv>""#),
        (r"\b(fid-[a-z0-9-]+?)-[a-z0-9]{8,10}-[a-z0-9]{5}\b", "$1-<hash>-<id>"),
        (r"-[bcdfghjklmnpqrstvwxz2456789]{5}\b", "-<id>"),
        // An AGE column ends a table row; a quantity (`cpu: 500m`) follows a colon.
        (r"(?m)([^:\s]\s+)\d+[smhd](\d+[smhd])?$", "$1<age>"),
        // …and an event's LAST SEEN begins one.
        (r"(?m)^\d+[smhd](\d+[smhd])?(\s)", "<age>$2"),
        // kubectl's own websocket client sometimes logs this after an exec
        // ends (a race in kubectl, whatever the server): not the cluster's answer.
        (r"(?m)^E\d{4} [\d:.]+ +\d+ websocket\.go:\d+\] Unknown stream id \d+, discarding message\n?", ""),
        (r"https://[^\s/]+", "https://<server>"),
        // The node's name is the cluster's own.
        (r"\brunbook-(lab|upstream)\b", "<node>"),
        // Hash algorithms differ; what the label means does not.
        (r#""pod-template-hash":"[a-z0-9]+""#, r#""pod-template-hash":"<hash>""#),
        // Table columns are as wide as their (normalized) contents.
        (r"[ \t]{2,}", "  "),
    ]
    .into_iter()
    .map(|(pattern, with)| (Regex::new(pattern).unwrap(), with))
    .collect()
});

/// The text with identity replaced (see `NORMALIZATION`).
fn normalize(text: &str) -> String {
    let mut out = text.to_string();
    for (pattern, with) in NORMALIZATION.iter() {
        out = pattern.replace_all(&out, *with).into_owned();
    }
    out.trim_end().to_string()
}

/// Probe ids that docs/fidelity.md records as identical.
fn recorded_identical() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/fidelity.md")).unwrap_or_default();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .filter(|(_, rest)| rest.contains("| identical |"))
        .map(|(id, _)| id.to_string())
        .collect()
}

fn report(probes: &[Probe], results: &[(Vec<String>, Vec<String>)], version: &str) -> String {
    let identical = results.iter().filter(|(lab, up)| lab == up).count();
    let mut doc = format!(
        "Identical: {identical} of {} probes (lab vs Kubernetes {version})\n\n# Fidelity: the lab measured against \
         upstream Kubernetes\n\nGenerated by `tests/upstream/fidelity.rs` from `fixtures/fidelity/probes.yaml` \
         (`RUNBOOK_FIDELITY_WRITE=1` with the upstream tier). Each probe runs kubectl against both clusters; \
         outputs are compared after normalizing names, uids, timestamps, IPs, resourceVersions, ages and the node's name.\n\n\
         | probe | area | verdict | what |\n|---|---|---|---|\n",
        probes.len()
    );
    for (probe, (lab, up)) in probes.iter().zip(results) {
        let verdict = if lab == up { "identical" } else { "different" };
        doc.push_str(&format!("| `{}` | {} | {verdict} | {} |\n", probe.id, probe.area, probe.what));
    }
    doc.push_str("\n## Differences\n");
    for (probe, (lab, up)) in probes.iter().zip(results) {
        if lab == up {
            continue;
        }
        doc.push_str(&format!("\n### `{}`: {}\n\n", probe.id, probe.what));
        match &probe.known {
            Some(why) => doc.push_str(&format!("Known, stays: {why}\n\n")),
            None => doc.push_str("Not yet fixed or explained.\n\n"),
        }
        for (l, u) in lab.iter().zip(up).filter(|(l, u)| l != u) {
            doc.push_str(&format!("Lab:\n\n```\n{l}\n```\n\nKubernetes:\n\n```\n{u}\n```\n\n"));
        }
    }
    doc
}

#[tokio::test]
#[ignore = "needs upstream Kubernetes (scripts/upstream up)"]
async fn the_lab_answers_as_kubernetes_does() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/fidelity/probes.yaml");
    let mut probes: Vec<Probe> = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // While writing probes: `RUNBOOK_FIDELITY_ONLY=id,id` runs those alone
    // (docs/fidelity.md is then left as it is).
    let only = std::env::var("RUNBOOK_FIDELITY_ONLY").ok();
    if let Some(only) = &only {
        probes.retain(|p| only.split(',').any(|id| id == p.id));
    }
    let mut ids: Vec<&str> = probes.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), probes.len(), "probe ids must be unique");

    let upstream = Upstream::get();
    let lab = TestLab::with_pods().await;
    let up = Target { kubeconfig: &upstream.kubeconfig, cache: upstream.dir.path().join("kube-cache") };
    let labt = Target { kubeconfig: &lab.lab.kubeconfig, cache: lab.dir.path().join("kube-cache") };
    // Four probes at a time (each in namespaces of its own), results in order.
    use futures::StreamExt;
    let results: Vec<(Vec<String>, Vec<String>)> = futures::stream::iter(&probes)
        .map(|probe| {
            let (labt, up) = (&labt, &up);
            async move {
                let ns = format!("fid-{}", probe.id);
                tokio::join!(labt.run(probe, &ns), up.run(probe, &ns))
            }
        })
        .buffered(4)
        .collect()
        .await;
    let version = upstream.kubectl(&["version", "-o", "json"]).await;
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    let doc = report(&probes, &results, version["serverVersion"]["gitVersion"].as_str().unwrap_or("?"));
    std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap();
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/fidelity.md"), &doc).unwrap();
    if std::env::var_os("RUNBOOK_FIDELITY_WRITE").is_some() && only.is_none() {
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/fidelity.md"), &doc).unwrap();
    }
    let regressed: Vec<String> = recorded_identical()
        .into_iter()
        .filter(|id| probes.iter().zip(&results).any(|(p, (l, u))| &p.id == id && l != u))
        .collect();
    assert!(regressed.is_empty(), "no longer identical to Kubernetes: {regressed:?}\n(see target/fidelity.md)");
    println!("{}", doc.lines().next().unwrap());
}

#[test]
fn normalization_hides_identity_not_behaviour() {
    let text = "pod/fid-x-7d9f8c6b5-abcde uid 0f8fad5b-d9cb-469f-a165-70867728950e at 2026-11-30T20:00:01Z \
                ip 10.214.0.5 \"resourceVersion\":\"123\" on runbook-upstream\nweb   1/1   1   1   5s\ncpu: 500m";
    assert_eq!(
        normalize(text),
        "pod/fid-x-<hash>-<id> uid <uid> at <time> ip <ip> \"resourceVersion\":\"<rv>\" on <node>\nweb  1/1  1  1  <age>\ncpu: 500m"
    );
    let events = "LAST SEEN   TYPE\n2s          Normal\nreached\nE1201 17:40:07.078334   22847 websocket.go:296] Unknown stream id 1, discarding message";
    assert_eq!(normalize(events), "LAST SEEN  TYPE\n<age>  Normal\nreached");
    assert_ne!(normalize("exit 0\nreplicas: 2"), normalize("exit 0\nreplicas: 1"));
}
