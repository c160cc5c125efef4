//! Starting processes inside a pod: join the sandbox's namespaces between fork
//! and exec, then run the program as the container would.
//!
//! The PID namespace is the exception: a process can only enter one for the
//! children it creates. The spawning thread therefore joins the pod's PID
//! namespace for its children just around the fork (the child is born in the
//! pod, its PID seen from the lab is still a lab PID) and returns to the
//! lab's at once.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;

use nix::sched::{CloneFlags, setns};

use super::capabilities::{self, CapabilitySet};
use super::cgroups::ContainerCgroup;

/// Open handles on a sandbox's namespaces; kept open while a spawn uses them.
pub struct PodNamespaces {
    net: OwnedFd,
    uts: OwnedFd,
    ipc: OwnedFd,
    mnt: OwnedFd,
    pid: OwnedFd,
    /// The pod's user namespace, when it has one of its own.
    user: Option<OwnedFd>,
    /// Mount points of the pod that the process's container does not have
    /// (other containers' volumes), taken away in a mount namespace of its
    /// own; empty when `mnt` is already the container's.
    hidden: Vec<CString>,
}

/// What one container sees of the pod's mounts.
#[derive(Debug, Clone, Default)]
pub struct MountView {
    /// The pod's mount points that are not this container's.
    pub hidden: Vec<String>,
    /// The container's running main process, whose mount namespace execs
    /// and probes join (none: not running; they get a view of their own).
    pub main_pid: Option<u32>,
}

impl PodNamespaces {
    /// Opens the namespaces of the sandbox process `pid`.
    pub fn of(pid: u32) -> std::io::Result<Self> {
        let open =
            |ns: &str| -> std::io::Result<OwnedFd> { Ok(std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))?.into()) };
        Ok(PodNamespaces {
            net: open("net")?,
            uts: open("uts")?,
            ipc: open("ipc")?,
            mnt: open("mnt")?,
            // The sandbox itself stays in the lab's PID namespace; the pod's
            // is the one it created for its children.
            pid: open("pid_for_children")?,
            user: {
                let same = |a: &str, b: &str| -> std::io::Result<bool> {
                    use std::os::unix::fs::MetadataExt;
                    Ok(std::fs::metadata(a)?.ino() == std::fs::metadata(b)?.ino())
                };
                let theirs = format!("/proc/{pid}/ns/user");
                if same(&theirs, "/proc/self/ns/user")? { None } else { Some(open("user")?) }
            },
            hidden: Vec::new(),
        })
    }

    /// The namespaces of one container of the sandbox `pid`: the mount
    /// namespace of its running main process, or, before it runs, the pod's
    /// with the mounts it does not have taken away (deepest first).
    pub fn of_container(pid: u32, view: &MountView) -> std::io::Result<Self> {
        let mut ns = Self::of(pid)?;
        let joined = view.main_pid.and_then(|main| std::fs::File::open(format!("/proc/{main}/ns/mnt")).ok());
        match joined {
            Some(mnt) => ns.mnt = mnt.into(),
            None => {
                let mut hidden = view.hidden.clone();
                hidden.sort_by_key(|target| std::cmp::Reverse(target.matches('/').count()));
                ns.hidden = hidden.iter().filter_map(|t| CString::new(t.as_str()).ok()).collect();
            }
        }
        Ok(ns)
    }

    /// The network namespace alone (for sockets opened from a thread that joins it).
    pub fn net_fd(&self) -> BorrowedFd<'_> {
        self.net.as_fd()
    }
}

/// How the spawned process relates to the lab.
#[derive(Debug, Clone, Copy)]
pub struct SpawnMode {
    /// Put the process in its own process group (containers: so a stop reaches
    /// the whole tree it starts).
    pub own_group: bool,
    /// Kill the process if the lab dies (containers and sandboxes).
    pub die_with_lab: bool,
    /// Its stdin is a terminal: it leads a session of its own with that
    /// terminal as its controlling terminal (`exec -t`), so Ctrl-C and job
    /// control reach it as on a real terminal. Takes precedence over `own_group`.
    pub terminal: bool,
    /// The capabilities it may hold (its container's); none: as the lab.
    pub capabilities: Option<CapabilitySet>,
}

impl SpawnMode {
    /// A process of the lab's own (a sandbox, a network helper): in its own
    /// group, gone with the lab.
    pub const HOST_HELPER: SpawnMode =
        SpawnMode { own_group: true, die_with_lab: true, terminal: false, capabilities: None };

    /// A container's main process.
    pub fn container(spec: &serde_json::Value) -> SpawnMode {
        SpawnMode { capabilities: Some(capabilities::of_container(spec)), ..Self::HOST_HELPER }
    }

    /// An exec probe of the container `spec`: ends with its command.
    pub fn probe(spec: &serde_json::Value) -> SpawnMode {
        SpawnMode {
            own_group: false,
            die_with_lab: false,
            terminal: false,
            capabilities: Some(capabilities::of_container(spec)),
        }
    }
}

/// Starts `cmd` inside the pod: born in its PID namespace, it joins the other
/// namespaces (mount last, which also moves the root to the pod's) and
/// changes to `workdir` before exec.
/// With `cgroup`, the process starts inside the container's cgroups.
pub fn spawn_in_pod(
    mut cmd: tokio::process::Command,
    ns: &PodNamespaces,
    workdir: &str,
    mode: SpawnMode,
    cgroup: Option<&ContainerCgroup>,
) -> std::io::Result<tokio::process::Child> {
    // Opened here and written in the child: moving itself needs no allocation.
    let procs = cgroup.map(ContainerCgroup::procs_files).transpose()?.unwrap_or_default();
    enter_pod(&mut cmd, ns, workdir, mode, procs.iter().map(|f| f.as_raw_fd()).collect());
    let lab_pid_ns = std::fs::File::open("/proc/self/ns/pid")?;
    setns(ns.pid.as_fd(), CloneFlags::CLONE_NEWPID).map_err(std::io::Error::from)?;
    // Command::spawn forks synchronously, so only this child is affected;
    // the thread returns to the lab's namespace before anything else runs on it.
    let spawned = cmd.spawn();
    let restored = setns(lab_pid_ns.as_fd(), CloneFlags::CLONE_NEWPID);
    if let Err(e) = restored {
        // Unreachable in practice (one may always return to one's own PID
        // namespace); a thread left behind would start every later child in this pod.
        panic!("could not return to the lab's PID namespace: {e}");
    }
    spawned
}

fn enter_pod(
    cmd: &mut tokio::process::Command,
    ns: &PodNamespaces,
    workdir: &str,
    mode: SpawnMode,
    cgroup_procs: Vec<std::os::fd::RawFd>,
) {
    let fds = [
        (ns.net.as_raw_fd(), CloneFlags::CLONE_NEWNET),
        (ns.uts.as_raw_fd(), CloneFlags::CLONE_NEWUTS),
        (ns.ipc.as_raw_fd(), CloneFlags::CLONE_NEWIPC),
        (ns.mnt.as_raw_fd(), CloneFlags::CLONE_NEWNS),
    ];
    let user = ns.user.as_ref().map(|u| u.as_raw_fd());
    let hidden = ns.hidden.clone();
    let last_cap = capabilities::last_cap();
    let workdir = CString::new(workdir).unwrap_or_else(|_| CString::new("/").expect("static"));
    let std_cmd = cmd.as_std_mut();
    // SAFETY: between fork and exec only async-signal-safe system calls run
    // (write, setns, setres[ug]id, chdir, setpgid, prctl) on fds and strings
    // prepared beforehand.
    unsafe {
        std_cmd.pre_exec(move || {
            for fd in &cgroup_procs {
                if nix::libc::write(*fd, c"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (fd, flag) in fds {
                setns(BorrowedFd::borrow_raw(fd), flag).map_err(std::io::Error::from)?;
            }
            // A mount namespace of the container's own: the pod's, without
            // the other containers' volumes (as root of the host, which owns it).
            if !hidden.is_empty() {
                nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(std::io::Error::from)?;
                for target in &hidden {
                    nix::libc::umount2(target.as_ptr(), nix::libc::MNT_DETACH);
                }
            }
            // Last: the other namespaces belong to the host's user namespace,
            // which only the host's root may enter.
            if let Some(user) = user {
                setns(BorrowedFd::borrow_raw(user), CloneFlags::CLONE_NEWUSER).map_err(std::io::Error::from)?;
                super::userns::become_pod_root()?;
            }
            if let Some(keep) = mode.capabilities {
                capabilities::limit_to(keep, last_cap)?;
            }
            if nix::libc::chdir(workdir.as_ptr()) != 0 {
                // A missing working directory: start in / as a runtime would create it.
                nix::libc::chdir(c"/".as_ptr());
            }
            prepare_child(mode)
        });
    }
}

/// Prepares a process that runs on the host side (the sandbox itself).
pub fn host_child(cmd: &mut tokio::process::Command, mode: SpawnMode) {
    // SAFETY: only async-signal-safe calls (setpgid, prctl) run after fork.
    unsafe {
        cmd.as_std_mut().pre_exec(move || prepare_child(mode));
    }
}

fn prepare_child(mode: SpawnMode) -> std::io::Result<()> {
    if mode.terminal {
        // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the terminal.
        unsafe {
            if nix::libc::setsid() < 0 || nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    } else if mode.own_group {
        nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))
            .map_err(std::io::Error::from)?;
    }
    if mode.die_with_lab {
        // Tied to the spawning thread: spawns happen on runtime worker
        // threads, which live as long as the lab.
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// Sends `signal` to a container's process group (its main process and children).
pub fn signal_group(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), signal);
}
