//! One pod's life: images, volumes, sandbox and network, init containers in
//! order, then the containers under supervision, until the pod is deleted.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::KubeletCtx;
use super::container::{self, ContainerPlan};
use super::image;
use super::process::{MountView, SpawnMode, host_child};
use super::sandbox::{SandboxMount, SandboxSpec};
use super::status::{self, ContainerView, PodView};
use super::userland::Userland;
use super::volumes;
use crate::api::objects;
use crate::api::resources::by_key;

/// A container's environment, in order.
pub type Env = Vec<(String, String)>;

/// A running pod, as the kubelet and the exec/log/port-forward endpoints see it.
pub struct PodHandle {
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
    /// The pod's uid.
    pub uid: String,
    /// The pod's directory in the state dir.
    pub dir: PathBuf,
    /// The node the pod is bound to.
    pub node: String,
    /// Pid of the sandbox (0 until it runs).
    pub sandbox_pid: AtomicU32,
    /// What the kubelet knows of the pod.
    pub view: Mutex<PodView>,
    /// The environment each container last started with (for exec).
    pub envs: Mutex<Vec<(String, Env)>>,
    /// Process groups of the running containers.
    pub groups: Mutex<std::collections::HashSet<u32>>,
    /// What each container sees of the pod's mounts, by container name.
    pub mount_views: Mutex<std::collections::HashMap<String, MountView>>,
    terminate: CancellationToken,
    grace: AtomicI64,
    done: CancellationToken,
}

impl PodHandle {
    /// Starts the worker for `pod`.
    pub fn start(ctx: Arc<KubeletCtx>, pod: &Value) -> Arc<PodHandle> {
        let (ns, name) = objects::ns_name(pod);
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
        let view = PodView { host_ip: crate::bootstrap::node_ip(&node), ..PodView::default() };
        let handle = Arc::new(PodHandle {
            ns,
            name,
            dir: ctx.state_dir.join("pods").join(&uid),
            uid: uid.clone(),
            sandbox_pid: AtomicU32::new(0),
            node,
            view: Mutex::new(view),
            envs: Mutex::new(Vec::new()),
            groups: Mutex::new(Default::default()),
            mount_views: Mutex::new(Default::default()),
            terminate: CancellationToken::new(),
            grace: AtomicI64::new(30),
            done: CancellationToken::new(),
        });
        let worker = handle.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            run(&ctx, &worker, pod).await;
            ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
            worker.done.cancel();
        });
        handle
    }

    /// Asks the pod to stop within `grace` seconds (0: at once).
    pub fn terminate(&self, grace: i64) {
        let current = self.grace.load(Ordering::SeqCst);
        if !self.terminate.is_cancelled() || grace < current {
            self.grace.store(grace, Ordering::SeqCst);
        }
        self.terminate.cancel();
    }

    /// SIGKILLs every process of the pod now (the lab is going away).
    pub fn kill_now(&self) {
        for group in self.groups.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            super::process::signal_group(*group, nix::sys::signal::Signal::SIGKILL);
        }
        let sandbox = self.sandbox_pid.load(Ordering::SeqCst);
        if sandbox != 0 {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(sandbox as i32), nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Waits until the worker has stopped everything.
    pub async fn finished(&self) {
        self.done.cancelled().await
    }

    /// The grace period asked for.
    pub fn grace(&self) -> i64 {
        self.grace.load(Ordering::SeqCst)
    }

    /// Whether termination was asked for.
    pub fn terminating(&self) -> &CancellationToken {
        &self.terminate
    }

    /// Updates the view and publishes the status.
    pub fn update(&self, ctx: &KubeletCtx, change: impl FnOnce(&mut PodView)) {
        // Published under the lock: two containers that change the view at
        // once must publish in the order they changed it, or the older view
        // (one container still waiting) can be written last and stay.
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut view);
        // A node that is down posts nothing; it posts the view when back.
        if !ctx.down_nodes.contains(&self.node) {
            status::publish(&ctx.store, &self.ns, &self.name, &self.uid, &view);
        }
    }
}

async fn run(ctx: &Arc<KubeletCtx>, handle: &Arc<PodHandle>, pod: Value) {
    let mut ip: Option<Ipv4Addr> = None;
    let mut sandbox: Option<tokio::process::Child> = None;
    let result = run_until_deleted(ctx, handle, &pod, &mut ip, &mut sandbox).await;
    if let Err(e) = result {
        ctx.event(&pod, "Warning", "FailedCreatePodSandBox", &format!("{e:#}"));
    }
    if let Some(mut s) = sandbox {
        let _ = s.kill().await;
    }
    ctx.cgroups.remove_pod(pod["metadata"]["uid"].as_str().unwrap_or_default());
    if let Some(ip) = ip {
        ctx.network.release(ip);
    }
    let _ = std::fs::remove_dir_all(&handle.dir);
    // Only this pod's object: after a forced deletion its successor of the
    // same name may exist already.
    let still_this =
        ctx.store.get("pods", &handle.ns, &handle.name).is_some_and(|p| p["metadata"]["uid"] == handle.uid.as_str());
    if handle.terminate.is_cancelled()
        && still_this
        && let Some(pods) = by_key("pods")
    {
        let _ = objects::finalize_delete(&ctx.store, pods, &handle.ns, &handle.name);
    }
}

/// Waits `d`, or less if the pod is being deleted; true when it is.
async fn pause(handle: &PodHandle, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = handle.terminate.cancelled() => true,
    }
}

async fn run_until_deleted(
    ctx: &Arc<KubeletCtx>,
    handle: &Arc<PodHandle>,
    pod: &Value,
    ip_slot: &mut Option<Ipv4Addr>,
    sandbox_slot: &mut Option<tokio::process::Child>,
) -> anyhow::Result<()> {
    let spec = &pod["spec"];
    let list = |key: &str| spec[key].as_array().cloned().unwrap_or_default();
    let (inits, mains) = (list("initContainers"), list("containers"));
    handle.update(ctx, |v| {
        v.start_time = Some(objects::now());
        v.init = inits.iter().map(|c| view_of(c, "PodInitializing")).collect();
        v.containers = mains
            .iter()
            .map(|c| view_of(c, if inits.is_empty() { "ContainerCreating" } else { "PodInitializing" }))
            .collect();
        v.initialized = inits.is_empty();
    });

    // Images: an image the lab cannot run fails as a missing image does.
    let mut backoff = Duration::from_secs(5);
    let images = loop {
        match resolve_images(ctx, &inits, &mains) {
            Ok(images) => break images,
            Err((container_name, image, why)) => {
                let init = inits.iter().any(|c| c["name"] == container_name.as_str());
                let event = |kind: &str, reason: &str, message: &str| {
                    ctx.container_event(pod, &container_name, init, kind, reason, message);
                };
                event("Warning", "Failed", &format!("Failed to pull image \"{image}\": {why}"));
                event("Warning", "Failed", "Error: ErrImagePull");
                set_waiting(ctx, handle, &container_name, "ErrImagePull", &why);
                if pause(handle, Duration::from_secs(2)).await {
                    return Ok(());
                }
                event("Normal", "BackOff", &format!("Back-off pulling image \"{image}\""));
                set_waiting(
                    ctx,
                    handle,
                    &container_name,
                    "ImagePullBackOff",
                    &format!("Back-off pulling image \"{image}\": {why}"),
                );
                if pause(handle, backoff).await {
                    return Ok(());
                }
                backoff = (backoff * 2).min(Duration::from_secs(300));
            }
        }
    };

    // Volumes: wait for missing ConfigMaps/Secrets/claims as the kubelet does.
    let volumes = loop {
        match volumes::prepare(&ctx.store, &ctx.state_dir, &handle.dir, pod) {
            Ok(v) => break v,
            Err(why) => {
                ctx.event(pod, "Warning", "FailedMount", &format!("MountVolume.SetUp failed: {why}"));
                if pause(handle, Duration::from_secs(2)).await {
                    return Ok(());
                }
            }
        }
    };
    let mut mounts: Vec<SandboxMount> = Vec::new();
    for c in inits.iter().chain(&mains) {
        for m in volumes::mounts_for(c, &volumes).map_err(anyhow::Error::msg)? {
            if !mounts.iter().any(|x| x.target == m.target) {
                mounts.push(m);
            }
        }
    }

    for (_, info) in &images {
        if let (Some(program), Some(target)) = (&info.host_program, info.entrypoint.first())
            && !mounts.iter().any(|m| &m.target == target)
        {
            mounts.push(SandboxMount { source: program.into(), target: target.clone(), read_only: true });
        }
    }
    record_mount_views(handle, inits.iter().chain(&mains), &images, &volumes, &mounts)?;
    let ip = ctx.network.allocate()?;
    *ip_slot = Some(ip);
    let image_dirs: Vec<String> = images.iter().flat_map(|(_, info)| info.dirs.clone()).collect();
    // One root per pod: its first app container's image decides the userland
    // (docs/lab.md: containers of a pod share a root filesystem).
    let userland = images.get(inits.len()).map_or(Userland::Host, |(_, info)| info.userland);
    let image_root = userland.root(&ctx.state_dir.join("userlands"))?;
    let (child, pid) = start_sandbox(ctx, handle, pod, ip, mounts, image_dirs, image_root).await?;
    *sandbox_slot = Some(child);
    handle.sandbox_pid.store(pid, Ordering::SeqCst);
    ctx.network.attach(pid, ip).await?;
    handle.update(ctx, |v| v.pod_ip = Some(ip.to_string()));
    // As a network plugin would: no container runs before its policies hold.
    ctx.policies.program_now(ctx, handle).await;

    let restart_policy = spec["restartPolicy"].as_str().unwrap_or("Always").to_string();
    // Init containers run one at a time, each to success.
    for (i, c) in inits.iter().enumerate() {
        let plan = ContainerPlan::new(c, images[i].1.clone(), true, &restart_policy);
        if !container::run_init(ctx, handle, pod, i, plan).await {
            return Ok(());
        }
    }
    handle.update(ctx, |v| {
        v.initialized = true;
        for c in &mut v.containers {
            c.state = json!({"waiting": {"reason": "ContainerCreating"}});
        }
    });
    let mut supervisors = Vec::new();
    for (i, c) in mains.iter().enumerate() {
        let plan = ContainerPlan::new(c, images[inits.len() + i].1.clone(), false, &restart_policy);
        let (ctx, handle, pod) = (ctx.clone(), handle.clone(), pod.clone());
        supervisors.push(tokio::spawn(async move { container::supervise(&ctx, &handle, &pod, i, plan).await }));
    }
    for s in supervisors {
        let _ = s.await;
    }
    // All containers ended without restart (restartPolicy Never/OnFailure).
    if !handle.terminate.is_cancelled() {
        let failed = handle
            .view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .containers
            .iter()
            .any(|c| c.terminated_code() != Some(0));
        handle.update(ctx, |v| v.final_phase = Some(if failed { "Failed" } else { "Succeeded" }));
        handle.terminate.cancelled().await;
    }
    Ok(())
}

fn view_of(c: &Value, reason: &str) -> ContainerView {
    ContainerView::waiting(c["name"].as_str().unwrap_or_default(), c["image"].as_str().unwrap_or_default(), reason)
}

fn set_waiting(ctx: &KubeletCtx, handle: &PodHandle, container: &str, reason: &str, message: &str) {
    handle.update(ctx, |v| {
        for c in v.init.iter_mut().chain(v.containers.iter_mut()).filter(|c| c.name == container) {
            c.state = json!({"waiting": {"reason": reason, "message": message}});
        }
    });
}

type ResolvedImages = Vec<(String, image::ImageInfo)>;

fn resolve_images(
    ctx: &KubeletCtx,
    inits: &[Value],
    mains: &[Value],
) -> Result<ResolvedImages, (String, String, String)> {
    inits
        .iter()
        .chain(mains)
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            let img = c["image"].as_str().unwrap_or_default().to_string();
            image::resolve(&img, &ctx.built_images).map(|info| (name.clone(), info)).map_err(|why| (name, img, why))
        })
        .collect()
}

fn hosts_file(pod: &Value, ip: Ipv4Addr) -> String {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let fqdn = match (pod["spec"]["hostname"].as_str(), pod["spec"]["subdomain"].as_str()) {
        (Some(host), Some(sub)) => {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
            format!("{host}.{sub}.{ns}.svc.cluster.local\t{host}")
        }
        _ => name.to_string(),
    };
    format!(
        "# Kubernetes-managed hosts file (runbook lab).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{fqdn}\n"
    )
}

fn resolv_conf(pod: &Value) -> String {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    format!(
        "search {ns}.svc.cluster.local svc.cluster.local cluster.local\nnameserver {}\noptions ndots:5\n",
        super::network::GATEWAY
    )
}

/// Notes, for each container, the pod's mount points it does not have (the
/// other containers' volumes and programs): each container sees its own
/// (docs/lab.md).
fn record_mount_views<'a>(
    handle: &PodHandle,
    containers: impl Iterator<Item = &'a Value>,
    images: &[(String, image::ImageInfo)],
    volumes: &[(String, PathBuf)],
    pod_mounts: &[SandboxMount],
) -> anyhow::Result<()> {
    let mut views = handle.mount_views.lock().unwrap_or_else(|e| e.into_inner());
    for (c, (_, info)) in containers.zip(images) {
        let mut own: Vec<String> =
            volumes::mounts_for(c, volumes).map_err(anyhow::Error::msg)?.into_iter().map(|m| m.target).collect();
        own.extend(info.host_program.as_ref().and(info.entrypoint.first()).cloned());
        let hidden = pod_mounts.iter().map(|m| m.target.clone()).filter(|t| !own.contains(t)).collect();
        let name = c["name"].as_str().unwrap_or_default().to_string();
        views.insert(name, MountView { hidden, main_pid: None });
    }
    Ok(())
}

impl PodHandle {
    /// What container `name` sees of the pod's mounts.
    pub fn mount_view(&self, name: &str) -> MountView {
        self.mount_views.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned().unwrap_or_default()
    }

    /// Records the running main process of container `name` (or none).
    pub fn set_main_pid(&self, name: &str, pid: Option<u32>) {
        if let Some(view) = self.mount_views.lock().unwrap_or_else(|e| e.into_inner()).get_mut(name) {
            view.main_pid = pid;
        }
    }
}

async fn start_sandbox(
    ctx: &KubeletCtx,
    handle: &PodHandle,
    pod: &Value,
    ip: Ipv4Addr,
    mounts: Vec<SandboxMount>,
    image_dirs: Vec<String>,
    image_root: PathBuf,
) -> anyhow::Result<(tokio::process::Child, u32)> {
    std::fs::create_dir_all(&handle.dir)?;
    let hostname = pod["spec"]["hostname"].as_str().unwrap_or(&handle.name).to_string();
    let spec = SandboxSpec {
        rootfs: handle.dir.join("rootfs"),
        hostname,
        hosts: hosts_file(pod, ip),
        resolv_conf: resolv_conf(pod),
        mounts,
        image_dirs,
        image_root,
        // The pod's own ID range, keyed by its address (unique in the lab).
        id_base: Some(super::userns::base_for_slot((u32::from(ip) & 0xffff) as u16)),
    };
    let spec_path = handle.dir.join("sandbox.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    let mut cmd = tokio::process::Command::new(&ctx.sandbox_program);
    cmd.arg("__sandbox")
        .arg(&spec_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    host_child(&mut cmd, SpawnMode::HOST_HELPER);
    let mut child =
        cmd.spawn().with_context(|| format!("starting the pod sandbox ({})", ctx.sandbox_program.display()))?;
    let pid = child.id().context("sandbox pid")?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    match ready {
        Ok(Ok(Some(line))) if line == "ready" => Ok((child, pid)),
        Ok(Ok(Some(line))) if line.starts_with("ready without a user namespace") => {
            let why = line.trim_start_matches("ready ");
            ctx.event(pod, "Warning", "UserNamespaceUnavailable", &format!("the pod runs {why}"));
            Ok((child, pid))
        }
        _ => {
            let _ = child.kill().await;
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = stderr.read_to_string(&mut err).await;
            }
            anyhow::bail!("the pod sandbox did not start: {}", err.trim())
        }
    }
}
