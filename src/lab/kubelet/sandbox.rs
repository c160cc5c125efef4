//! The pod sandbox: a small process (`runbook __sandbox SPEC`) that owns a pod's
//! namespaces. It unshares network, mount, UTS and IPC namespaces, builds the
//! pod's root filesystem under the lab's state dir, pivots into it and waits.
//! Containers, exec sessions and probes join its namespaces; when it exits, the
//! kernel removes the namespaces with their mounts and interfaces.
//!
//! The root filesystem is a directory of the state dir in which the host's
//! system directories appear through symlinks into `/.host` (a read-only bind of
//! the host root), so host programs run unchanged, while every directory on the
//! way to a volume mount is a real directory of the pod: nothing the pod mounts
//! or writes lands on the host outside the state dir.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use serde::{Deserialize, Serialize};

/// What the sandbox builds; written as JSON by the kubelet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The pod's root directory (under the state dir).
    pub rootfs: PathBuf,
    /// Hostname inside the pod (the pod name).
    pub hostname: String,
    /// Content of /etc/hosts.
    pub hosts: String,
    /// Content of /etc/resolv.conf.
    pub resolv_conf: String,
    /// Bind mounts: host source, path in the pod, read-only.
    pub mounts: Vec<SandboxMount>,
    /// Directories the image provides (e.g. `/data` for redis), made empty.
    pub image_dirs: Vec<String>,
}

/// One bind mount into the pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxMount {
    /// Host path (a file or directory under the state dir).
    pub source: PathBuf,
    /// Absolute path inside the pod.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Host top-level entries a pod sees (through `/.host`); the rest (home
/// directories, /work, /root, /tmp…) stays out of the pod.
const HOST_ENTRIES: &[&str] =
    &["bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt", "var", "srv", "dev", "sys"];

/// Entrypoint of `runbook __sandbox SPEC`: set up, print `ready`, wait for SIGTERM.
pub fn run(spec_path: &Path) -> anyhow::Result<()> {
    let spec: SandboxSpec = serde_json::from_slice(&fs::read(spec_path)?).context("reading the sandbox spec")?;
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
        .context("unsharing namespaces (the lab needs root)")?;
    nix::unistd::sethostname(&spec.hostname).context("setting the hostname")?;
    build_root(&spec)?;
    // Signals are blocked before saying ready, so none is lost in between.
    let mut signals = nix::sys::signal::SigSet::empty();
    signals.add(nix::sys::signal::Signal::SIGTERM);
    signals.add(nix::sys::signal::Signal::SIGINT);
    signals.thread_block()?;
    println!("ready");
    std::io::stdout().flush()?;
    let _ = signals.wait();
    Ok(())
}

fn build_root(spec: &SandboxSpec) -> anyhow::Result<()> {
    let root = &spec.rootfs;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .context("making mounts private")?;
    fs::create_dir_all(root)?;
    mount(Some(root), root, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .context("binding the rootfs")?;

    let host = root.join(".host");
    fs::create_dir_all(&host)?;
    mount(Some("/"), &host, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .context("binding the host root")?;
    mount(None::<&str>, &host, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
        .context("making the host root read-only")?;

    let mut expand: Vec<PathBuf> = spec.mounts.iter().map(|m| PathBuf::from(&m.target)).collect();
    expand.extend(spec.image_dirs.iter().map(PathBuf::from));
    expand.push(PathBuf::from("/etc/hosts"));
    for entry in HOST_ENTRIES {
        graft(Path::new("/").join(entry).as_path(), root, &expand)?;
    }
    for dir in ["tmp", "run", "root", "proc", "home"] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    mount(Some("proc"), &root.join("proc"), Some("proc"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, None::<&str>)
        .context("mounting /proc")?;
    write_etc(root, spec)?;
    for dir in &spec.image_dirs {
        fs::create_dir_all(in_root(root, dir)?)?;
    }
    for m in &spec.mounts {
        bind_volume(root, m)?;
    }
    let old = root.join(".oldroot");
    fs::create_dir_all(&old)?;
    nix::unistd::pivot_root(root, &old).context("pivot_root into the pod root")?;
    nix::unistd::chdir("/")?;
    umount2("/.oldroot", MntFlags::MNT_DETACH).context("detaching the old root")?;
    let _ = fs::remove_dir("/.oldroot");
    Ok(())
}

/// A pod path inside the rootfs; refuses `..` so a manifest cannot escape it.
fn in_root(root: &Path, pod_path: &str) -> anyhow::Result<PathBuf> {
    let mut out = root.to_path_buf();
    for c in Path::new(pod_path).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            _ => bail!("mount path {pod_path:?} must be absolute and must not contain '..'"),
        }
    }
    Ok(out)
}

/// Makes `host_path` appear in the pod: a symlink into `/.host`, or, where a
/// path to expand runs through it, a real directory whose entries are grafted
/// in turn.
fn graft(host_path: &Path, root: &Path, expand: &[PathBuf]) -> anyhow::Result<()> {
    let Ok(meta) = fs::symlink_metadata(host_path) else { return Ok(()) };
    let rel = host_path.strip_prefix("/").unwrap_or(host_path);
    let in_pod = root.join(rel);
    if meta.file_type().is_symlink() {
        let target = fs::read_link(host_path)?;
        if expand.iter().any(|p| p.starts_with(host_path)) && target.is_relative() {
            // e.g. /lib64 -> usr/lib64 with a mount below it: follow the link.
            symlink(&target, &in_pod)?;
            return Ok(());
        }
        symlink(&target, &in_pod)?;
        return Ok(());
    }
    let needs_expansion = meta.is_dir() && expand.iter().any(|p| p.starts_with(host_path) && p != host_path);
    if !needs_expansion {
        symlink(Path::new("/.host").join(rel), &in_pod)?;
        return Ok(());
    }
    fs::create_dir_all(&in_pod)?;
    for entry in fs::read_dir(host_path)? {
        let entry = entry?;
        let child = host_path.join(entry.file_name());
        if expand.contains(&child) && !child.is_dir() {
            continue; // a file the pod gets its own copy of (e.g. /etc/hosts)
        }
        graft(&child, root, expand)?;
    }
    Ok(())
}

fn write_etc(root: &Path, spec: &SandboxSpec) -> anyhow::Result<()> {
    let etc = root.join("etc");
    fs::create_dir_all(&etc)?;
    for (name, content) in [
        ("hosts", spec.hosts.as_str()),
        ("resolv.conf", spec.resolv_conf.as_str()),
        ("hostname", &format!("{}\n", spec.hostname)),
    ] {
        let path = etc.join(name);
        let _ = fs::remove_file(&path);
        fs::write(&path, content)?;
    }
    Ok(())
}

fn bind_volume(root: &Path, m: &SandboxMount) -> anyhow::Result<()> {
    let target = in_root(root, &m.target)?;
    if let Ok(meta) = fs::symlink_metadata(&target)
        && meta.file_type().is_symlink()
    {
        // The path exists on the host (e.g. /etc/redis): the pod gets its own.
        fs::remove_file(&target)?;
    }
    if m.source.is_dir() {
        fs::create_dir_all(&target)?;
    } else {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(&target)?;
    }
    mount(Some(&m.source), &target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .with_context(|| format!("mounting {} at {}", m.source.display(), m.target))?;
    if m.read_only {
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )?;
    }
    Ok(())
}

/// Checks that the lab can run pods here (root, namespaces); the error names
/// what is missing.
pub fn preflight() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the lab runs pods as processes in their own Linux namespaces, which needs root \
             (you are uid {}); run as root, or point runbook at a real cluster with --kubeconfig",
            nix::unistd::geteuid()
        );
    }
    for tool in ["ip", "nsenter"] {
        if which(tool).is_none() {
            bail!("the lab needs `{tool}` (Debian packages iproute2 and util-linux) to wire pod networks");
        }
    }
    Ok(())
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// A C string for paths handed to code that runs between fork and exec.
pub fn c_path(path: &str) -> CString {
    CString::new(path).unwrap_or_else(|_| CString::new("/").expect("static"))
}
