//! The files an image's containers see. Debian-based images (and programs the
//! lab builds) see the host's system directories, read-only: the host is
//! Debian 12. Alpine and busybox images get a root of their own, built once
//! per lab from host files: busybox-static's applets, an os-release that says
//! what the image is, and for redis images Debian's Redis binaries with their
//! libraries. Nothing else of the host is in that root, so an alpine pod
//! finds busybox tools (`grep` without `\d`, ash's messages) and no host
//! files, as on a real cluster. The upstream test bed builds the same images
//! (upstream/testbed/images.py).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// What an image's root filesystem holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Userland {
    /// The host's system directories (debian, ubuntu, Debian-tagged redis).
    Host,
    /// A busybox userland (busybox, alpine, alpine-tagged redis).
    Busybox {
        /// Says it is Alpine (else busybox), and has Alpine's `getent`.
        alpine: bool,
        /// Has Redis (`redis-server`, `redis-sentinel`, `redis-cli`).
        redis: bool,
    },
}

/// Where Debian keeps Redis: redis-server and redis-sentinel link to it.
const REDIS_REAL: &str = "/usr/bin/redis-check-rdb";

impl Userland {
    /// A directory name for this userland's root.
    fn dir_name(self) -> &'static str {
        match self {
            Userland::Host => "host",
            Userland::Busybox { alpine: true, redis: true } => "redis-alpine",
            Userland::Busybox { alpine: true, redis: false } => "alpine",
            Userland::Busybox { alpine: false, redis: true } => "redis-busybox",
            Userland::Busybox { alpine: false, redis: false } => "busybox",
        }
    }

    /// The directory pods of this userland see as their system root: `/`
    /// for the host, else a root built under `dir` on first use.
    pub fn root(self, dir: &Path) -> anyhow::Result<PathBuf> {
        let Userland::Busybox { alpine, redis } = self else { return Ok(PathBuf::from("/")) };
        let root = dir.join(self.dir_name());
        if root.join("etc/os-release").exists() {
            return Ok(root);
        }
        // Pods starting together build it once; another lab in this process
        // (tests) builds its own under its own state dir.
        static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
        if root.join("etc/os-release").exists() {
            return Ok(root);
        }
        // Built beside, then renamed: pods starting together see a whole root or none.
        let building = dir.join(format!("{}.{}", self.dir_name(), std::process::id()));
        let _ = fs::remove_dir_all(&building);
        build(&building, alpine, redis).with_context(|| format!("building the {} userland", self.dir_name()))?;
        match fs::rename(&building, &root) {
            Ok(()) => Ok(root),
            Err(_) if root.join("etc/os-release").exists() => {
                let _ = fs::remove_dir_all(&building);
                Ok(root)
            }
            Err(e) => Err(e).context("installing the userland"),
        }
    }
}

impl Userland {
    /// Builds the roots of the images the scenarios use most (redis:alpine,
    /// busybox), ignoring failures: a pod that needs one tries again and
    /// reports why.
    pub fn prebuild(dir: &Path) {
        for userland in
            [Userland::Busybox { alpine: true, redis: true }, Userland::Busybox { alpine: false, redis: false }]
        {
            let _ = userland.root(dir);
        }
    }
}

fn build(root: &Path, alpine: bool, redis: bool) -> anyhow::Result<()> {
    let mut files = Files { root: root.to_path_buf(), copied: BTreeSet::new() };
    for dir in ["bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "etc", "lib", "var", "home"] {
        fs::create_dir_all(root.join(dir))?;
    }
    let version = redis_version();
    let (name, id, what) =
        if alpine { ("Alpine Linux", "alpine", "alpine") } else { ("BusyBox", "busybox", "busybox") };
    let pretty = if redis {
        format!("runbook lab stand-in for redis:{what}: busybox userland, Debian Redis {version}")
    } else {
        format!("runbook lab stand-in for {what}: busybox userland")
    };
    files.write("etc/os-release", &format!("NAME=\"{name}\"\nID={id}\nPRETTY_NAME=\"{pretty}\"\n"), 0o644)?;
    files.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nredis:x:999:1000::/home/redis:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    files.write("etc/group", "root:x:0:\nredis:x:1000:\nnogroup:x:65534:\n", 0o644)?;
    files.write("etc/nsswitch.conf", "hosts: files dns\n", 0o644)?;
    // busybox-static: one binary, every applet a link to it.
    files.copy("/bin/busybox", "/bin/busybox")?;
    let applets = Command::new("/bin/busybox").arg("--list-full").output().context("listing busybox applets")?;
    for applet in String::from_utf8_lossy(&applets.stdout).split_whitespace() {
        files.link(&format!("/{applet}"), "/bin/busybox")?;
    }
    // Debian's busybox has no `netstat -p` (the seed's `netstat -ntupl`);
    // net-tools' netstat prints the same columns.
    if Path::new("/bin/netstat").exists() {
        files.program("/bin/netstat", "/bin/netstat")?;
    }
    if alpine {
        // Alpine has musl-utils' getent; scripts use `getent hosts`.
        files.program("/usr/bin/getent", "/usr/bin/getent")?;
    }
    if redis {
        files.program(REDIS_REAL, "/usr/local/lib/redis/redis-check-rdb")?;
        for name in ["redis-server", "redis-sentinel", "redis-check-aof"] {
            files.link(&format!("/usr/local/lib/redis/{name}"), "redis-check-rdb")?;
        }
        files.link("/usr/local/bin/redis-check-rdb", "/usr/local/lib/redis/redis-check-rdb")?;
        files.link("/usr/local/bin/redis-check-aof", "/usr/local/lib/redis/redis-check-aof")?;
        for name in ["redis-server", "redis-sentinel"] {
            files.write(&format!("usr/local/bin/{name}"), &protected_mode_wrapper(name), 0o755)?;
        }
        files.program("/usr/bin/redis-cli", "/usr/local/bin/redis-cli")?;
        fs::create_dir_all(root.join("data"))?;
    }
    Ok(())
}

/// The official image's Redis has protected mode off by default; Debian's
/// has it on. The wrapper adds `--protected-mode no` unless the arguments or
/// the config file decide (also for `sh -c 'redis-server …'`).
fn protected_mode_wrapper(name: &str) -> String {
    format!(
        "#!/bin/sh\nfor a in \"$@\"; do\n\tcase \"$a\" in --protected-mode) exec /usr/local/lib/redis/{name} \"$@\";; \
         esac\ndone\nif [ -f \"$1\" ] && grep -qi '^[[:space:]]*protected-mode' \"$1\"; then\n\texec \
         /usr/local/lib/redis/{name} \"$@\"\nfi\nexec /usr/local/lib/redis/{name} \"$@\" --protected-mode no\n"
    )
}

fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split("v=")
                .nth(1)
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Files put into a root, by their path in it.
struct Files {
    root: PathBuf,
    copied: BTreeSet<String>,
}

impl Files {
    fn at(&self, path: &str) -> anyhow::Result<PathBuf> {
        let at = self.root.join(path.trim_start_matches('/'));
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent)?;
        }
        Ok(at)
    }

    fn write(&mut self, path: &str, content: &str, mode: u32) -> anyhow::Result<()> {
        let at = self.at(path)?;
        fs::write(&at, content)?;
        fs::set_permissions(&at, fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    fn link(&mut self, path: &str, target: &str) -> anyhow::Result<()> {
        let at = self.at(path)?;
        if fs::symlink_metadata(&at).is_err() {
            symlink(target, &at)?;
        }
        Ok(())
    }

    /// A host file (links followed), hard-linked where the file system
    /// allows, else copied.
    fn copy(&mut self, host: &str, path: &str) -> anyhow::Result<()> {
        if !self.copied.insert(path.to_string()) {
            return Ok(());
        }
        let real = fs::canonicalize(host).with_context(|| format!("{host} is missing on the host"))?;
        let at = self.at(path)?;
        // A program replaces an applet link of the same name (netstat).
        let _ = fs::remove_file(&at);
        if fs::hard_link(&real, &at).is_err() {
            fs::copy(&real, &at).with_context(|| format!("copying {host}"))?;
        }
        Ok(())
    }

    /// A program and every shared library it loads, at their host paths.
    fn program(&mut self, host: &str, path: &str) -> anyhow::Result<()> {
        self.copy(host, path)?;
        for lib in shared_libraries(host) {
            self.copy(&lib, &lib)?;
        }
        Ok(())
    }
}

/// The libraries `ldd` says `program` loads, and its loader.
fn shared_libraries(program: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(program).output().map(|o| o.stdout).unwrap_or_default();
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            [_, "=>", path, ..] if path.starts_with('/') => libs.push(path.to_string()),
            [path, ..] if path.starts_with('/') => libs.push(path.to_string()),
            _ => {}
        }
    }
    libs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alpine_redis_root_has_busybox_redis_and_no_host_files() {
        if !Path::new("/bin/busybox").exists() || !Path::new(REDIS_REAL).exists() {
            eprintln!("skipped: needs busybox-static and redis-server (scripts/install-deps)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = Userland::Busybox { alpine: true, redis: true }.root(dir.path()).unwrap();
        let os_release = fs::read_to_string(root.join("etc/os-release")).unwrap();
        assert!(os_release.contains("ID=alpine"), "{os_release}");
        assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
        assert!(root.join("usr/local/lib/redis/redis-check-rdb").is_file());
        assert!(!root.join("etc/shadow").exists());
        // A second pod finds the root built.
        assert_eq!(Userland::Busybox { alpine: true, redis: true }.root(dir.path()).unwrap(), root);
        assert_eq!(Userland::Host.root(dir.path()).unwrap(), Path::new("/"));
    }
}
