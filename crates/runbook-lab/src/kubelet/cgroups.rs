//! Resources enforced as the kubelet enforces them: every container runs in
//! cgroups of its own (v1 controllers where the host has v1, v2 where it has
//! v2), with its memory limit as the cgroup's limit (past it the kernel kills
//! the container: OOMKilled), its CPU limit as a CFS quota and its CPU request
//! as shares (v1) or weight (v2). The same cgroups give the usage the metrics
//! API serves.
//!
//! The lab's cgroups sit below the lab process's own cgroup, in a directory
//! named `runbook-lab-PID-N`: whatever confines the lab (a systemd unit, a
//! session) confines its pods too. Layout: `LAB/pod<uid>/<container>`.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use runbook_units::Quantity;

/// The CFS period the kubelet uses (100 ms), in microseconds.
const CFS_PERIOD_US: i128 = 100_000;

/// The lab's cgroup hierarchy, or why there is none.
#[derive(Debug, Clone)]
pub enum Cgroups {
    /// cgroup v1: the lab's directory under each controller's hierarchy.
    V1 {
        /// Under the memory controller.
        memory: PathBuf,
        /// Under the cpu controller.
        cpu: PathBuf,
        /// Under the cpuacct controller (the same as `cpu` when co-mounted).
        cpuacct: PathBuf,
    },
    /// cgroup v2: the lab's directory, with memory and cpu enabled below it.
    V2 {
        /// The lab's directory.
        dir: PathBuf,
    },
    /// Nothing usable: limits are stored on the objects but not enforced.
    Unavailable(String),
}

/// The cgroups of one container.
#[derive(Debug, Clone)]
pub struct ContainerCgroup {
    /// One directory per hierarchy (v1: memory, cpu, cpuacct; v2: one).
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl Cgroups {
    /// Finds the hierarchy the lab process lives in and creates the lab's
    /// directory below its own cgroup.
    pub fn create() -> Cgroups {
        static LABS: AtomicU32 = AtomicU32::new(0);
        let name = format!("runbook-lab-{}-{}", std::process::id(), LABS.fetch_add(1, Ordering::SeqCst));
        match Self::locate() {
            Ok(mut found) => {
                for dir in found.dirs_mut() {
                    sweep_stale(dir);
                    dir.push(&name);
                    if let Err(e) = std::fs::create_dir_all(&*dir) {
                        return Cgroups::Unavailable(format!("creating {}: {e}", dir.display()));
                    }
                }
                if let Cgroups::V2 { dir } = &found
                    && let Err(e) = std::fs::write(dir.join("cgroup.subtree_control"), "+memory +cpu")
                {
                    return Cgroups::Unavailable(format!("enabling memory and cpu in {}: {e}", dir.display()));
                }
                // As the kubelet weighs `kubepods`: the node's cores × 1024, so
                // the lab's pods together compete with the host's processes as
                // that many busy threads would, not as one.
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i128;
                let _ = match &found {
                    Cgroups::V1 { cpu, .. } => std::fs::write(cpu.join("cpu.shares"), (cores * 1024).to_string()),
                    Cgroups::V2 { dir } => std::fs::write(dir.join("cpu.weight"), weight(cores * 1024).to_string()),
                    Cgroups::Unavailable(_) => Ok(()),
                };
                found
            }
            Err(why) => Cgroups::Unavailable(why),
        }
    }

    fn locate() -> Result<Cgroups, String> {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let v1 = |controller: &str| -> Option<PathBuf> {
            let (root, point) = mounts.lines().find_map(|line| {
                let (fields, after) = line.split_once(" - ")?;
                let mut after = after.split_whitespace();
                let options = (after.next()? == "cgroup").then(|| after.nth(1))??;
                options.split(',').any(|o| o == controller).then_some(())?;
                let fields: Vec<&str> = fields.split_whitespace().collect();
                Some((fields.get(3)?.to_string(), fields.get(4)?.to_string()))
            })?;
            let path = own.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                controllers.split(',').any(|c| c == controller).then(|| path.to_string())
            })?;
            Some(Path::new(&point).join(relative(&path, &root)))
        };
        if let (Some(memory), Some(cpu), Some(cpuacct)) = (v1("memory"), v1("cpu"), v1("cpuacct")) {
            return Ok(Cgroups::V1 { memory, cpu, cpuacct });
        }
        let unified = mounts.lines().find_map(|line| {
            let (fields, after) = line.split_once(" - ")?;
            (after.split_whitespace().next()? == "cgroup2").then_some(())?;
            let fields: Vec<&str> = fields.split_whitespace().collect();
            Some((fields.get(3)?.to_string(), fields.get(4)?.to_string()))
        });
        let Some((root, point)) = unified else {
            return Err("no cgroup hierarchy with the memory and cpu controllers is mounted".into());
        };
        let own_path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/");
        // The lab's own cgroup holds processes, which v2 forbids for a cgroup
        // that hands controllers down; the lab's directory goes beside it.
        let own_dir = Path::new(&point).join(relative(own_path, &root));
        let parent = own_dir.parent().filter(|_| own_path != "/").unwrap_or(&own_dir).to_path_buf();
        let controllers = std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if !(has("memory") && has("cpu")) {
            return Err(format!("the cgroup v2 hierarchy at {} does not delegate memory and cpu", parent.display()));
        }
        Ok(Cgroups::V2 { dir: parent })
    }

    fn dirs_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            Cgroups::V1 { memory, cpu, cpuacct } => vec![memory, cpu, cpuacct],
            Cgroups::V2 { dir } => vec![dir],
            Cgroups::Unavailable(_) => vec![],
        }
    }

    /// v1: memory, cpu, cpuacct (the last two may be one directory); v2: one.
    fn dirs(&self) -> Vec<PathBuf> {
        match self {
            Cgroups::V1 { memory, cpu, cpuacct } => vec![memory.clone(), cpu.clone(), cpuacct.clone()],
            Cgroups::V2 { dir } => vec![dir.clone()],
            Cgroups::Unavailable(_) => vec![],
        }
    }

    /// Why limits are not enforced, if they are not.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            Cgroups::Unavailable(why) => Some(why),
            _ => None,
        }
    }

    /// The cgroups of container `name` of the pod `uid`, created with the
    /// limits of its `spec`; None when the lab has no cgroups.
    pub fn container(&self, uid: &str, name: &str, spec: &Value) -> std::io::Result<Option<ContainerCgroup>> {
        let Some(cgroup) = self.existing(uid, name) else { return Ok(None) };
        for dir in &cgroup.dirs {
            std::fs::create_dir_all(dir)?;
        }
        cgroup.apply_limits(&spec["resources"])?;
        Ok(Some(cgroup))
    }

    /// The cgroups of a container, whether or not they exist yet.
    pub fn existing(&self, uid: &str, name: &str) -> Option<ContainerCgroup> {
        if matches!(self, Cgroups::Unavailable(_)) {
            return None;
        }
        let pod = format!("pod{uid}");
        let dirs = self.dirs().into_iter().map(|d| d.join(&pod).join(name)).collect();
        Some(ContainerCgroup { dirs, v2: matches!(self, Cgroups::V2 { .. }) })
    }

    /// Removes a pod's cgroups (its processes are gone).
    pub fn remove_pod(&self, uid: &str) {
        for dir in self.dirs() {
            remove_tree(&dir.join(format!("pod{uid}")));
        }
    }

    /// Removes the lab's cgroups (at shutdown).
    pub fn remove_all(&self) {
        for dir in self.dirs() {
            remove_tree(&dir);
        }
    }
}

impl ContainerCgroup {
    fn apply_limits(&self, resources: &Value) -> std::io::Result<()> {
        let amount = |kind: &str, name: &str| -> Option<Quantity> {
            let v = &resources[kind][name];
            let text = v.as_str().map(String::from).or_else(|| v.as_number().map(|n| n.to_string()))?;
            Quantity::parse(&text).ok()
        };
        let memory_limit = amount("limits", "memory").map(|q| q.units_ceil());
        let cpu_limit = amount("limits", "cpu").map(|q| q.millis());
        // As the kubelet: shares from the request (2 without one), quota from the limit.
        let shares = amount("requests", "cpu").map_or(2, |q| (q.millis() * 1024 / 1000).max(2));
        let write = |dir: &PathBuf, file: &str, value: String| std::fs::write(dir.join(file), value);
        if self.v2 {
            let dir = &self.dirs[0];
            write(dir, "memory.max", memory_limit.map_or("max".into(), |b| b.to_string()))?;
            let quota = cpu_limit.map_or("max".into(), |m| (m * CFS_PERIOD_US / 1000).max(1000).to_string());
            write(dir, "cpu.max", format!("{quota} {CFS_PERIOD_US}"))?;
            write(dir, "cpu.weight", weight(shares).to_string())?;
        } else {
            write(&self.dirs[0], "memory.limit_in_bytes", memory_limit.map_or("-1".into(), |b| b.to_string()))?;
            let quota = cpu_limit.map_or(-1, |m| (m * CFS_PERIOD_US / 1000).max(1000));
            write(&self.dirs[1], "cpu.cfs_period_us", CFS_PERIOD_US.to_string())?;
            write(&self.dirs[1], "cpu.cfs_quota_us", quota.to_string())?;
            write(&self.dirs[1], "cpu.shares", shares.to_string())?;
        }
        Ok(())
    }

    /// Opens the files that move a process into these cgroups; a child
    /// writes "0" (itself) to each between fork and exec.
    pub fn procs_files(&self) -> std::io::Result<Vec<OwnedFd>> {
        let mut dirs = self.dirs.clone();
        // Co-mounted cpu,cpuacct: one directory serves both.
        dirs.dedup();
        dirs.iter().map(|d| Ok(std::fs::OpenOptions::new().write(true).open(d.join("cgroup.procs"))?.into())).collect()
    }

    /// How many times the kernel has killed a process here for memory.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 { "memory.events" } else { "memory.oom_control" };
        read_key(&self.dirs[0].join(file), "oom_kill").unwrap_or(0)
    }

    /// Memory in use, as the kubelet counts its working set: usage less
    /// the page cache the kernel may drop.
    pub fn working_set_bytes(&self) -> Option<u64> {
        let dir = &self.dirs[0];
        let (usage, inactive) = if self.v2 {
            (read_number(&dir.join("memory.current"))?, read_key(&dir.join("memory.stat"), "inactive_file"))
        } else {
            (
                read_number(&dir.join("memory.usage_in_bytes"))?,
                read_key(&dir.join("memory.stat"), "total_inactive_file"),
            )
        };
        Some(usage.saturating_sub(inactive.unwrap_or(0)))
    }

    /// CPU time used so far, in nanoseconds.
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        if self.v2 {
            read_key(&self.dirs[0].join("cpu.stat"), "usage_usec").map(|us| us * 1000)
        } else {
            read_number(&self.dirs[2].join("cpuacct.usage"))
        }
    }
}

/// The kubelet's conversion of v1 shares (2..262144) to a v2 weight (1..10000).
fn weight(shares: i128) -> i128 {
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// `path` relative to the mount's root (they differ inside a cgroup namespace).
fn relative(path: &str, root: &str) -> PathBuf {
    let rest = Path::new(path).strip_prefix(root).unwrap_or(Path::new(path));
    rest.strip_prefix("/").unwrap_or(rest).to_path_buf()
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed cgroup file (`key value` per line).
fn read_key(path: &Path, key: &str) -> Option<u64> {
    let file = std::fs::File::open(path).ok()?;
    BufReader::new(file).lines().map_while(Result::ok).find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Removes a cgroup directory and those below it, deepest first (a cgroup
/// directory is removed with rmdir, never by deleting its files).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes the cgroups of labs whose process is gone (killed before it
/// could clean up).
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix("runbook-lab-").and_then(|r| r.split('-').next()) else { continue };
        if pid.parse::<u32>().is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            remove_tree(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_a_cgroup_namespace_are_relative_to_its_root() {
        assert_eq!(relative("/a/b", "/"), PathBuf::from("a/b"));
        assert_eq!(relative("/a/b", "/a"), PathBuf::from("b"));
        assert_eq!(relative("/", "/"), PathBuf::from(""));
    }

    #[test]
    fn flat_keyed_files_are_read_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.oom_control");
        std::fs::write(&path, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(read_key(&path, "oom_kill"), Some(3));
        assert_eq!(read_key(&path, "missing"), None);
    }
}
