//! The `partition` drill on the lab: while it holds, the isolated pod and the
//! others cannot reach each other (real Redis pods, real connections) while
//! the others still reach each other; when its time is up, and when the run
//! is interrupted with Ctrl-C, the cut is healed: no policy, no label, and
//! the pods reach each other again.

use std::time::{Duration, Instant};

use crate::common::{TestLab, requires};
use crate::lab_network_policy::{becomes, reaches, redis_pods};

/// Starts `runbook run` of the fixture `fixture` (partition, node-down)
/// against the lab, its fault lasting `lasts`; its JSON report goes to
/// `FIXTURE.json` in the test dir.
pub fn start_run(t: &TestLab, fixture: &str, lasts: &str) -> tokio::process::Child {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/scenarios/{fixture}.yaml"));
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "-f", &path.display().to_string(), "-n", "default", "--set", &format!("lasts={lasts}")])
        .arg("--report")
        .arg(format!("json={}", t.dir.path().join(format!("{fixture}.json")).display()))
        .arg("--kubeconfig")
        .arg(&t.lab.kubeconfig)
        .env("HOME", t.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Ctrl-C to a run started by [`start_run`]: it must end within 60 s with
/// exit 130; its output.
pub async fn interrupt(run: tokio::process::Child) -> String {
    let pid = nix::unistd::Pid::from_raw(run.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out =
        tokio::time::timeout(Duration::from_secs(60), run.wait_with_output()).await.expect("runbook ends").unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(130), "{text}");
    text
}

/// Waits (at most 30 s) until the cut's policy exists.
async fn cut_in_place(t: &TestLab) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.kubectl(&["get", "networkpolicy", "-o", "name"]).await.trim().is_empty() {
        assert!(Instant::now() < deadline, "no partition policy after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the cut left: policies, and pods still labelled.
async fn traces(t: &TestLab) -> (String, String) {
    let policies = t.kubectl(&["get", "networkpolicy", "-o", "name"]).await;
    let labelled = t.kubectl(&["get", "pods", "-l", "runbook.dev/partition", "-o", "name"]).await;
    (policies.trim().to_string(), labelled.trim().to_string())
}

async fn separated(t: &TestLab, ips: &[String]) {
    becomes("a -> b during the cut", false, async || reaches(t, "a", &ips[1]).await).await;
    assert!(!reaches(t, "b", &ips[0]).await, "b -> a during the cut");
    assert!(!reaches(t, "c", &ips[0]).await, "c -> a during the cut");
    assert!(reaches(t, "b", &ips[2]).await, "b -> c: the others are not cut off from each other");
}

#[tokio::test]
async fn a_partition_cuts_both_ways_while_it_holds_and_is_healed_after() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let ips = redis_pods(&t, &["a", "b", "c"]).await;
    let run = start_run(&t, "partition", "6s");
    cut_in_place(&t).await;
    separated(&t, &ips).await;
    let out = run.wait_with_output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    let doc = crate::common::report(&t.dir.path().join("partition.json"));
    let cut = crate::common::step(&doc, "cut");
    let sides: Vec<&str> = cut["output"].as_str().unwrap().lines().take(3).collect();
    assert_eq!(sides, ["isolated: a", "from: b, c", "direction: both ways"], "{cut}");
    assert!(crate::common::measurement(cut, "partition held") >= 6000.0, "{cut}");
    assert_eq!(traces(&t).await, (String::new(), String::new()), "the cut left something behind");
    becomes("a -> b once healed", true, async || reaches(&t, "a", &ips[1]).await).await;
}

#[tokio::test]
async fn ctrl_c_during_a_partition_heals_it() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let ips = redis_pods(&t, &["a", "b", "c"]).await;
    let run = start_run(&t, "partition", "10m");
    cut_in_place(&t).await;
    separated(&t, &ips).await;
    let text = interrupt(run).await;
    assert_eq!(traces(&t).await, (String::new(), String::new()), "Ctrl-C left the cut in place:\n{text}");
    becomes("a -> b after Ctrl-C", true, async || reaches(&t, "a", &ips[1]).await).await;
}

#[tokio::test]
async fn packet_loss_drops_some_packets_not_all_and_ends_with_the_drill() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let ips = redis_pods(&t, &["a", "b", "c"]).await;
    let run = start_run(&t, "packet-loss", "25s");
    cut_in_place(&t).await;
    let annotation = t
        .kubectl(&["get", "networkpolicy", "-o", "jsonpath={.items[0].metadata.annotations.runbook\\.dev/loss}"])
        .await;
    assert_eq!(annotation.trim(), "30%");
    // Each try is a new connection with a second to answer: a lost SYN
    // (retried after a second) fails it, so about a third fail.
    let mut answered = 0;
    for _ in 0..20 {
        answered += usize::from(reaches(&t, "a", &ips[1]).await);
    }
    assert!((1..20).contains(&answered), "30% loss: some tries answered, not all: {answered}/20");
    let out = run.wait_with_output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    let doc = crate::common::report(&t.dir.path().join("packet-loss.json"));
    let lossy = crate::common::step(&doc, "lossy");
    assert!(lossy["output"].as_str().unwrap().contains("30% of the packets lost (not a cut)"), "{lossy}");
    assert_eq!(traces(&t).await, (String::new(), String::new()), "the loss left something behind");
    becomes("a -> b once the loss is over", true, async || reaches(&t, "a", &ips[1]).await).await;
    for _ in 0..5 {
        assert!(reaches(&t, "a", &ips[1]).await, "every try answers once the loss is over");
    }
}

/// How long `from` takes to connect to Redis at `ip` and send it five
/// PINGs on that connection (six round trips), exec included.
async fn six_round_trips(t: &TestLab, from: &str, ip: &str) -> Duration {
    let started = Instant::now();
    let out = t.kubectl_output(&["exec", from, "--", "redis-cli", "-h", ip, "-r", "5", "ping"], None).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).matches("PONG").count(), 5, "{out:?}");
    started.elapsed()
}

/// The xtables mangle rules in the network namespace of the pod `name`,
/// read from the host (`iptables-legacy -S` through nsenter).
async fn mangle_rules(t: &TestLab, name: &str) -> String {
    let ns = t.kubectl(&["exec", name, "--", "readlink", "/proc/1/ns/net"]).await.trim().to_string();
    let pid = *crate::common::host_pids_in("net", &ns).first().expect("a host process in the pod's network namespace");
    let out = tokio::process::Command::new("nsenter")
        .args([
            format!("--net=/proc/{pid}/ns/net"),
            "iptables-legacy".into(),
            "-t".into(),
            "mangle".into(),
            "-S".into(),
        ])
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn latency_delays_every_packet_between_the_groups_and_ends_with_the_drill() {
    requires!(Root, Kubectl);
    let t = TestLab::with_pods().await;
    let ips = redis_pods(&t, &["a", "b", "c"]).await;
    let before = six_round_trips(&t, "a", &ips[1]).await;
    let run = start_run(&t, "latency", "20s");
    cut_in_place(&t).await;
    let annotation = t
        .kubectl(&["get", "networkpolicy", "-o", "jsonpath={.items[0].metadata.annotations.runbook\\.dev/latency}"])
        .await;
    assert_eq!(annotation.trim(), "200ms");
    // Each round trip crosses the cut twice: 6 × 2 × 200 ms = 2.4 s more.
    becomes("a -> b slowed down", true, async || {
        six_round_trips(&t, "a", &ips[1]).await >= Duration::from_millis(2400)
    })
    .await;
    let slow = six_round_trips(&t, "c", &ips[0]).await;
    assert!(slow >= Duration::from_millis(2400), "c -> a is slowed down too (both ways): {slow:?}");
    assert!(slow < Duration::from_millis(2400) + before + Duration::from_secs(2), "delayed, not more: {slow:?}");
    assert!(mangle_rules(&t, "a").await.contains("-j NFQUEUE --queue-num 7 --queue-bypass"), "queued to the lab");
    let spared = six_round_trips(&t, "b", &ips[2]).await;
    assert!(spared < Duration::from_millis(1200), "b -> c does not cross the cut: {spared:?}");
    let out = run.wait_with_output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    let doc = crate::common::report(&t.dir.path().join("latency.json"));
    let slow_step = crate::common::step(&doc, "slow");
    assert!(
        slow_step["output"].as_str().unwrap().contains("each packet between them delayed 200 ms, replies too"),
        "{slow_step}"
    );
    assert_eq!(traces(&t).await, (String::new(), String::new()), "the latency left something behind");
    becomes("a -> b fast again", true, async || six_round_trips(&t, "a", &ips[1]).await < Duration::from_millis(1200))
        .await;
    let rules = mangle_rules(&t, "a").await;
    assert!(!rules.contains("NFQUEUE"), "the slow link left its rules behind:\n{rules}");
}
