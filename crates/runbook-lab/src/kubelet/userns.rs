//! User namespaces for pods, as Kubernetes gives them with `hostUsers: false`:
//! the pod's IDs 0..65535 are host IDs `base..base+65535`, a range of its
//! own, so root in a pod is an unprivileged user on the host. A process that
//! escaped the pod's view of the file system still could not write the
//! host's files or signal its processes.
//!
//! The pod's volumes and its image's system directories are *idmapped*
//! mounts (as container runtimes mount them for such pods): a file owned by
//! root on disk is owned by the pod's root inside, and what the pod's root
//! writes there is stored as root. So a claim written by one pod is
//! writable by the next, whatever its range. The pod's own directories
//! (its root, `/tmp`, `/etc`, …) are simply owned by `base`.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{Context, bail};
use nix::libc;
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

/// How many user and group IDs each pod gets (Kubernetes gives 65536).
pub const IDS_PER_POD: u32 = 65536;

/// The first host ID of the range of the pod whose address ends in `slot`
/// (the low 16 bits of its IP, unique among the lab's pods and never 0):
/// `slot × 65536`, so ranges never overlap and never include host root.
pub fn base_for_slot(slot: u16) -> u32 {
    u32::from(slot.max(1)) * IDS_PER_POD
}

/// A pod's user namespace and the network namespace it owns.
pub struct PodUsers {
    /// The user namespace.
    pub user: OwnedFd,
    /// A network namespace created inside it, so the pod's root has the
    /// network capabilities a container has there (raw sockets for `ping`,
    /// ports below 1024) and none on the host's network.
    pub net: OwnedFd,
}

/// Creates a user namespace in which IDs 0..65535 are host IDs
/// `base..base+65535`, and a network namespace it owns; returns handles on
/// both (they live as long as the handles or a process in them). Must run
/// single-threaded: a helper is forked to create them, since only a process
/// outside a user namespace may write its ID map.
pub fn create(base: u32) -> anyhow::Result<PodUsers> {
    let (said_r, said_w) = nix::unistd::pipe()?;
    let (go_r, go_w) = nix::unistd::pipe()?;
    // SAFETY: the sandbox is single-threaded; the child only makes system
    // calls and exits.
    match unsafe { nix::unistd::fork() }.context("forking the user namespace's first process")? {
        ForkResult::Child => {
            drop(said_r);
            drop(go_w);
            let (mut said, mut go) = (fs::File::from(said_w), fs::File::from(go_r));
            let mut step = |made: bool| {
                let _ = said.write_all(&[u8::from(made)]);
                matches!(go.read(&mut [0u8; 1]), Ok(1))
            };
            // Once mapped, it has every capability in the namespace: the
            // network namespace it creates belongs to it.
            if step(unshare(CloneFlags::CLONE_NEWUSER).is_ok()) {
                step(unshare(CloneFlags::CLONE_NEWNET).is_ok());
            }
            // SAFETY: leaves without running the parent's destructors or atexit.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(said_w);
            drop(go_r);
            let (mut said, mut go) = (fs::File::from(said_r), fs::File::from(go_w));
            let mut made = |what: &str| -> anyhow::Result<()> {
                let mut answer = [0u8; 1];
                if !matches!(said.read(&mut answer), Ok(1)) || answer[0] != 1 {
                    bail!("{what} failed");
                }
                Ok(())
            };
            let handles = (|| -> anyhow::Result<PodUsers> {
                made("unshare(CLONE_NEWUSER) (user namespaces disabled on this kernel?)")?;
                let map = format!("0 {base} {IDS_PER_POD}\n");
                for file in ["uid_map", "gid_map"] {
                    fs::write(format!("/proc/{child}/{file}"), &map)
                        .with_context(|| format!("writing {file} of the pod's user namespace"))?;
                }
                go.write_all(b"1")?;
                made("unshare(CLONE_NEWNET) in the pod's user namespace")?;
                let open = |ns: &str| -> std::io::Result<OwnedFd> {
                    Ok(fs::File::open(format!("/proc/{child}/ns/{ns}"))?.into())
                };
                Ok(PodUsers { user: open("user")?, net: open("net")? })
            })();
            drop(go);
            let _ = waitpid(child, None);
            handles
        }
    }
}

/// Binds `source` at `target` as an idmapped mount through `userns` (files
/// owned by ID n on disk appear as the namespace's n), read-only if asked.
/// Not recursive, like the plain binds it replaces. Fails where the file
/// system cannot idmap (then the caller binds plainly).
pub fn bind_idmapped(source: &Path, target: &Path, userns: BorrowedFd<'_>, read_only: bool) -> std::io::Result<()> {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (source, target) = (c(source)?, c(target)?);
    // SAFETY: plain system calls on valid C strings and a local struct.
    unsafe {
        let tree = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            source.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC as libc::c_uint,
        );
        if tree < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let tree = OwnedFd::from_raw_fd(tree as i32);
        let mut attr: libc::mount_attr = std::mem::zeroed();
        attr.attr_set = libc::MOUNT_ATTR_IDMAP | if read_only { libc::MOUNT_ATTR_RDONLY } else { 0 };
        attr.userns_fd = userns.as_raw_fd() as u64;
        if libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether `dir` (created if missing) can be idmapped through `userns`:
/// tried on the spot, then undone. Call in a private mount namespace.
pub fn can_idmap(dir: &Path, userns: BorrowedFd<'_>) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    bind_idmapped(dir, dir, userns, false)?;
    nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH).map_err(std::io::Error::from)
}

/// Gives every file and directory of `root`'s own mount (not what is
/// mounted below it: those are the image's and the volumes') to `base`, the
/// pod's root on the host. Symlinks are not followed.
pub fn give_to(root: &Path, base: u32) -> anyhow::Result<()> {
    let own_mount = mount_id(root)?;
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        if mount_id(&path)? != own_mount {
            continue;
        }
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &path,
            Some(nix::unistd::Uid::from_raw(base)),
            Some(nix::unistd::Gid::from_raw(base)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("giving {} to the pod's root", path.display()))?;
        if fs::symlink_metadata(&path)?.is_dir() {
            for entry in fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// The mount a path is on (not following a final symlink).
fn mount_id(path: &Path) -> anyhow::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statx into a zeroed local struct.
    unsafe {
        let mut st: libc::statx = std::mem::zeroed();
        if libc::statx(libc::AT_FDCWD, c.as_ptr(), libc::AT_SYMLINK_NOFOLLOW, libc::STATX_MNT_ID, &mut st) != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("statx {}", path.display()));
        }
        Ok(st.stx_mnt_id)
    }
}

/// What a process must do, after joining the pod's user namespace, to be
/// the pod's root: take ID 0 of the namespace (a process that joins keeps
/// the host IDs it had, which the namespace does not map). Only
/// async-signal-safe calls: it runs between fork and exec.
pub fn become_pod_root() -> std::io::Result<()> {
    // SAFETY: plain system calls.
    unsafe {
        // Root's own group as its only supplementary group, as containerd
        // gives (`id` says groups=0(root)).
        let groups: [libc::gid_t; 1] = [0];
        if libc::setresgid(0, 0, 0) != 0 || libc::setgroups(1, groups.as_ptr()) != 0 || libc::setresuid(0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Drops every capability of the calling process (the pod's `pause`, which
/// only reaps) and makes it dumpable again: a process holding more than the
/// pod's containers, or undumpable, could not be looked at by them
/// (`readlink /proc/1/ns/pid`, `netstat -p`).
pub fn drop_all_capabilities() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header { version: VERSION_3, pid: 0 };
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capset with a valid header and the two data words version 3 takes.
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The change of IDs made it undumpable (its /proc files root's, closed
    // to the pod); it never execs, which would undo that, so it says so.
    // SAFETY: prctl with plain integers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_disjoint_and_never_host_root() {
        assert_eq!(base_for_slot(0), 65536, "slot 0 is not a pod address; never root");
        assert_eq!(base_for_slot(2), 131072);
        assert!(base_for_slot(u16::MAX).checked_add(IDS_PER_POD - 1).is_some(), "fits in 32 bits");
    }
}
