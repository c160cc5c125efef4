//! The pod sandbox: a small process (`runbook __sandbox SPEC`) that owns a pod's
//! namespaces. It unshares network, mount, UTS, IPC and PID namespaces, builds
//! the pod's root filesystem under the lab's state dir, pivots into it, and
//! forks the pod's init (PID 1 of the pod, as Kubernetes' pause container is
//! with a shared process namespace), which mounts the pod's /proc and reaps
//! orphans. Containers, exec sessions and probes join its namespaces. When the
//! sandbox exits its init dies, and the kernel kills every process left in
//! the pod (a `redis-server --daemonize yes` included) and removes the
//! namespaces with their mounts and interfaces.
//!
//! The root filesystem is a directory of the state dir in which the image's
//! system directories (the host's, or an image root of its own: userland.rs)
//! appear as read-only bind mounts, while every directory on the way to a
//! volume mount is a real directory of the pod: nothing the pod mounts or
//! writes lands on the host outside the state dir.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::ForkResult;
use serde::{Deserialize, Serialize};

use super::userns;

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
    /// The system root the pod's system directories come from, read-only:
    /// `/` (the host) or an image's own root (see `userland.rs`).
    pub image_root: PathBuf,
    /// The host ID the pod's root is (`userns.rs`), or none: the pod runs
    /// as the host's root (where the kernel cannot idmap the lab's files).
    pub id_base: Option<u32>,
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

/// Top-level entries of the image root a pod sees; the rest (home
/// directories, /work, /root, /tmp…) stays out of the pod.
const HOST_ENTRIES: &[&str] =
    &["bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt", "var", "srv", "dev", "sys"];

/// Entrypoint of `runbook __sandbox SPEC`: set up, have the pod's init print
/// `ready`, wait for SIGTERM (or the init's end), then end the pod's init.
/// Must run single-threaded (unsharing a mount namespace requires it).
pub fn run(spec_path: &Path) -> anyhow::Result<()> {
    let spec: SandboxSpec = serde_json::from_slice(&fs::read(spec_path)?).context("reading the sandbox spec")?;
    let mut users = spec.id_base.map(|base| userns::create(base).map(|ns| (ns, base))).transpose()?;
    let mut namespaces =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID;
    match &users {
        Some((ns, _)) => setns(ns.net.as_fd(), CloneFlags::CLONE_NEWNET).context("joining the pod's network")?,
        None => namespaces |= CloneFlags::CLONE_NEWNET,
    }
    unshare(namespaces).context("unsharing namespaces (the lab needs root)")?;
    nix::unistd::sethostname(&spec.hostname).context("setting the hostname")?;
    // Nothing mounted from here on reaches the host's mount namespace.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .context("making mounts private")?;
    if users.is_some() {
        unprivileged_network()?;
    }
    // Where the state dir's file system cannot idmap, volumes would not be
    // writable by the pod's root: the pod runs as the host's root instead,
    // and says so.
    let mut without_users = None;
    if let Some((ns, _)) = &users
        && let Err(e) = userns::can_idmap(&spec.rootfs, ns.user.as_fd())
    {
        without_users = Some(format!("the file system of {} cannot be idmapped ({e})", spec.rootfs.display()));
        users = None;
    }
    build_root(&spec, users.as_ref().map(|(ns, base)| (ns.user.as_fd(), *base)))?;
    // Blocked before the fork, so neither process loses a signal sent early;
    // both wait for them with sigwait.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGCHLD);
    signals.thread_block()?;
    // SAFETY: the sandbox is single-threaded (it has just unshared a mount
    // namespace, which the kernel refuses to multi-threaded processes).
    let (started_r, started_w) = nix::unistd::pipe()?;
    let userns = users.as_ref().map(|(ns, _)| ns.user.as_fd());
    match unsafe { nix::unistd::fork() }.context("starting the pod's init")? {
        ForkResult::Child => {
            drop(started_r);
            pod_init(&signals, userns, started_w)
        }
        ForkResult::Parent { child } => {
            drop(started_w);
            if !matches!(fs::File::from(started_r).read(&mut [0u8; 1]), Ok(1)) {
                let _ = waitpid(child, None);
                bail!("the pod's init did not start");
            }
            // The sandbox joins the pod's user namespace too, so the kubelet
            // finds it with the others under /proc/SANDBOX/ns; it keeps every
            // power over the pod's processes, and none outside.
            if let Some(ns) = userns {
                setns(ns, CloneFlags::CLONE_NEWUSER).context("joining the pod's user namespace")?;
            }
            match &without_users {
                None => println!("ready"),
                Some(why) => println!("ready without a user namespace: {why}"),
            }
            std::io::stdout().flush()?;
            // SIGTERM or SIGINT ends the wait; SIGCHLD means the init ended.
            while let Signal::SIGCHLD = signals.wait()? {
                if !matches!(waitpid(child, Some(WaitPidFlag::WNOHANG)), Ok(WaitStatus::StillAlive)) {
                    bail!("the pod's init ended");
                }
            }
            // The pod's init dying makes the kernel kill the whole pod.
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            Ok(())
        }
    }
}

/// PID 1 of the pod: mounts the pod's /proc (a proc mount shows the PID
/// namespace of whoever mounts it), becomes the pod's root, tells the
/// sandbox it started, then reaps the orphans the kernel hands it (a
/// daemonizing Redis's parent exits at once) until killed.
fn pod_init(signals: &SigSet, userns: Option<BorrowedFd<'_>>, started: OwnedFd) -> ! {
    // `ps` in a pod shows it under the name Kubernetes' pause container has.
    let _ = nix::sys::prctl::set_name(c"pause");
    let mounted = mount(Some("proc"), "/proc", Some("proc"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, None::<&str>);
    if let Err(e) = mounted {
        eprintln!("mounting the pod's /proc: {e}");
        std::process::exit(1);
    }
    if let Some(ns) = userns {
        let joined = setns(ns, CloneFlags::CLONE_NEWUSER).map_err(std::io::Error::from);
        if let Err(e) = joined.and_then(|()| userns::become_pod_root()).and_then(|()| userns::drop_all_capabilities()) {
            eprintln!("becoming the pod's root: {e}");
            std::process::exit(1);
        }
    }
    // The sandbox is SIGKILLed when the lab dies; the pod goes with it.
    // (Set after the change of IDs, which clears it.)
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let _ = fs::File::from(started).write_all(b"1");
    loop {
        if let Ok(Signal::SIGCHLD) = signals.wait() {
            while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                if status == WaitStatus::StillAlive {
                    break;
                }
            }
        }
    }
}

/// What every user of a pod may do in its network namespace, as containerd
/// 2 allows by default (`enable_unprivileged_ports`, `enable_unprivileged_icmp`):
/// bind ports below 1024 and open ICMP sockets. (The pod's root may anyway:
/// the namespace belongs to the pod's user namespace.)
fn unprivileged_network() -> anyhow::Result<()> {
    for (sysctl, value) in [("net/ipv4/ip_unprivileged_port_start", "0"), ("net/ipv4/ping_group_range", "0 2147483647")]
    {
        fs::write(Path::new("/proc/sys").join(sysctl), value).with_context(|| format!("setting {sysctl}"))?;
    }
    Ok(())
}

/// The pod's user namespace and the host ID its root is.
type Users<'a> = Option<(BorrowedFd<'a>, u32)>;

fn build_root(spec: &SandboxSpec, users: Users<'_>) -> anyhow::Result<()> {
    let root = &spec.rootfs;
    fs::create_dir_all(root)?;
    mount(Some(root), root, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .context("binding the rootfs")?;

    let mut expand: Vec<PathBuf> = spec.mounts.iter().map(|m| PathBuf::from(&m.target)).collect();
    expand.extend(spec.image_dirs.iter().map(PathBuf::from));
    // The files write_etc gives the pod: never bound from the image.
    expand.extend(["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"].map(PathBuf::from));
    let own_root = spec.image_root != Path::new("/");
    for entry in HOST_ENTRIES {
        // Every pod gets a /dev of its own (below); an image of its own has no /sys.
        if *entry == "dev" || (own_root && *entry == "sys") {
            continue;
        }
        graft(&spec.image_root, Path::new("/").join(entry).as_path(), root, &expand, users)?;
    }
    minimal_dev(root, users.map(|(_, base)| base))?;
    for dir in ["tmp", "run", "root", "proc", "home"] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    write_etc(root, spec)?;
    for dir in &spec.image_dirs {
        fs::create_dir_all(in_root(root, dir)?)?;
    }
    for m in &spec.mounts {
        bind_volume(root, m, users)?;
    }
    let old = root.join(".oldroot");
    fs::create_dir_all(&old)?;
    if let Some((_, base)) = users {
        userns::give_to(root, base)?;
    }
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

/// Host files a pod of a Debian-based image must not see, though the rest of
/// the host's /etc is its /etc.
const HIDDEN: &[&str] =
    &["/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers", "/etc/sudoers.d", "/etc/ssh"];

/// Makes `pod_path` of the image root appear in the pod, read-only: a bind
/// mount of it, or, where a path to expand (a volume, an image directory,
/// a file the pod gets its own copy of) runs through it, a real directory
/// whose entries are grafted in turn. Symlinks are copied as they are, so
/// they resolve inside the pod (`readlink -f /bin/sh` says `/bin/busybox`).
fn graft(image_root: &Path, pod_path: &Path, root: &Path, expand: &[PathBuf], users: Users<'_>) -> anyhow::Result<()> {
    let rel = pod_path.strip_prefix("/").unwrap_or(pod_path);
    let source = image_root.join(rel);
    let Ok(meta) = fs::symlink_metadata(&source) else { return Ok(()) };
    let in_pod = root.join(rel);
    if meta.file_type().is_symlink() {
        symlink(fs::read_link(&source)?, &in_pod)?;
        return Ok(());
    }
    if HIDDEN.iter().any(|hidden| pod_path == Path::new(hidden)) {
        return Ok(());
    }
    let needs_expansion = meta.is_dir() && expand.iter().any(|p| p.starts_with(pod_path) && p != pod_path);
    if needs_expansion {
        fs::create_dir_all(&in_pod)?;
        for entry in fs::read_dir(&source)? {
            graft(image_root, &pod_path.join(entry?.file_name()), root, expand, users)?;
        }
        return Ok(());
    }
    if !meta.is_dir() && expand.iter().any(|p| p == pod_path) {
        return Ok(()); // a file the pod gets its own copy of (e.g. /etc/hosts)
    }
    if meta.is_dir() {
        fs::create_dir_all(&in_pod)?;
    } else if meta.is_file() {
        fs::File::create(&in_pod)?;
    } else {
        return Ok(()); // sockets, fifos, devices: not part of an image
    }
    // Not recursive: what is mounted below a host directory (/sys/fs/cgroup,
    // another file system) stays out of the pod.
    bind(&source, &in_pod, true, users).with_context(|| format!("binding {}", pod_path.display()))
}

/// Binds `source` at `target`, not recursively: idmapped into the pod's user
/// namespace when it has one (so root's files are its root's), plainly
/// where the file system cannot idmap (/sys, /proc: they need none).
fn bind(source: &Path, target: &Path, read_only: bool, users: Users<'_>) -> anyhow::Result<()> {
    if let Some((ns, _)) = users
        && userns::bind_idmapped(source, target, ns, read_only).is_ok()
    {
        return Ok(());
    }
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
    if read_only {
        remount_read_only(target)?;
    }
    Ok(())
}

/// The /dev a container runtime gives: a tmpfs with the harmless devices
/// bound from the host, the standard links, /dev/shm and /dev/pts.
fn minimal_dev(root: &Path, base: Option<u32>) -> anyhow::Result<()> {
    let dev = root.join("dev");
    fs::create_dir_all(&dev)?;
    // Owned by the pod's root, as in a container.
    let tmpfs = |source: &str, target: &Path, flags: MsFlags, mode: &str| {
        let owner = base.map(|b| format!(",uid={b},gid={b}")).unwrap_or_default();
        let options = format!("mode={mode},size=65536k{owner}");
        mount(Some(source), target, Some("tmpfs"), flags, Some(options.as_str()))
            .with_context(|| format!("mounting {}", target.display()))
    };
    tmpfs("tmpfs", &dev, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, "755")?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(name);
        fs::File::create(&target)?;
        mount(Some(&Path::new("/dev").join(name)), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .with_context(|| format!("binding /dev/{name}"))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(name))?;
    }
    let shm = dev.join("shm");
    fs::create_dir_all(&shm)?;
    tmpfs("shm", &shm, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "1777")?;
    // A devpts of the pod's own, as runtimes give: `exec -t` terminals are
    // allocated here, so the pod sees them as /dev/pts/N.
    let pts = dev.join("pts");
    fs::create_dir_all(&pts)?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .context("mounting /dev/pts")?;
    symlink("pts/ptmx", dev.join("ptmx"))?;
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

fn bind_volume(root: &Path, m: &SandboxMount, users: Users<'_>) -> anyhow::Result<()> {
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
    bind(&m.source, &target, m.read_only, users)
        .with_context(|| format!("mounting {} at {}", m.source.display(), m.target))
}

/// Makes a bind mount read-only (a bind cannot be made read-only in one call).
fn remount_read_only(target: &Path) -> anyhow::Result<()> {
    mount(None::<&str>, target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
        .with_context(|| format!("making {} read-only", target.display()))
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
