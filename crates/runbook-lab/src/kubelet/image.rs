//! Images map to host programs: the lab has no registry and no image store.
//! Redis images run Debian's redis-server / redis-sentinel / redis-cli and
//! follow the official image's entrypoint rules. Alpine and busybox images
//! (and alpine-tagged redis) get a busybox userland of their own; Debian-based
//! ones see the host's (Debian) system directories (`userland.rs`).

use super::userland::Userland;

/// What the lab knows about an image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// The image's ENTRYPOINT (replaced by a container's `command`).
    pub entrypoint: Vec<String>,
    /// The image's CMD (replaced by a container's `args`).
    pub cmd: Vec<String>,
    /// The image's WORKDIR.
    pub workdir: String,
    /// Directories the image has (made empty in the pod).
    pub dirs: Vec<String>,
    /// Whether the entrypoint is the official redis image's docker-entrypoint.sh.
    pub redis_entrypoint: bool,
    /// The files the image's containers see.
    pub userland: Userland,
    /// A host program the image runs, bound into the pod at its entrypoint
    /// (images built from this repository).
    pub host_program: Option<String>,
}

/// Images other than redis that the lab maps, and to what.
const SHELL_IMAGES: &[&str] = &["busybox", "alpine", "debian", "ubuntu"];

/// The repository's last path component, without registry, tag or digest
/// (`docker.io/library/redis:7.4.1-alpine` → `redis`).
pub fn repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

/// Resolves an image, or says why the lab cannot run it (shown as the
/// ErrImagePull message).
pub fn resolve(image: &str, extra: &[(String, std::path::PathBuf)]) -> Result<ImageInfo, String> {
    let repo = repository(image);
    let official = {
        let path = image.split(['@', ':']).next().unwrap_or(image);
        !path.contains('/') || path.starts_with("docker.io/library/") || path.starts_with("library/")
    };
    if let Some((name, program)) = extra.iter().find(|(name, _)| name == repo || name == image) {
        return Ok(ImageInfo {
            entrypoint: vec![format!("/usr/local/bin/{name}")],
            cmd: vec![],
            workdir: "/".into(),
            dirs: vec![],
            redis_entrypoint: false,
            userland: Userland::Host,
            host_program: Some(program.display().to_string()),
        });
    }
    if official && repo == "redis" && !redis_tag_exists(image) {
        return Err(format!(
            "manifest for {image} not found: the official redis image has tags like latest, alpine, 7, 7.4, \
             7.4.1-alpine, 5.0.1-alpine, bookworm"
        ));
    }
    if official && repo == "redis" {
        return Ok(ImageInfo {
            entrypoint: vec!["docker-entrypoint.sh".into()],
            cmd: vec!["redis-server".into()],
            workdir: "/data".into(),
            dirs: vec!["/data".into()],
            redis_entrypoint: true,
            host_program: None,
            userland: if tag_of(image).contains("alpine") {
                Userland::Busybox { alpine: true, redis: true }
            } else {
                Userland::Host
            },
        });
    }
    if official && SHELL_IMAGES.contains(&repo) {
        return Ok(ImageInfo {
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            workdir: "/".into(),
            dirs: vec![],
            redis_entrypoint: false,
            host_program: None,
            userland: match repo {
                "busybox" => Userland::Busybox { alpine: false, redis: false },
                "alpine" => Userland::Busybox { alpine: true, redis: false },
                _ => Userland::Host,
            },
        });
    }
    Err(format!(
        "image {image:?} is not available in the runbook lab: it runs official redis images (any tag) with Debian's \
         Redis, busybox and alpine with busybox, debian and ubuntu with the host's Debian tools"
    ))
}

/// The image's tag (`latest` when it has none).
fn tag_of(image: &str) -> &str {
    let last = image.split('@').next().unwrap_or(image).rsplit('/').next().unwrap_or(image);
    last.split_once(':').map_or("latest", |(_, tag)| tag)
}

/// Whether a redis image tag has the shape the official image publishes
/// (`latest`, `alpine`, `7`, `7.4`, `7.4.1-alpine`, `6.2-bookworm`…), so a
/// mistyped tag fails to pull in the lab as it would on a real cluster.
pub fn redis_tag_exists(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let Some((_, tag)) = last.split_once(':') else { return true };
    const VARIANTS: &[&str] = &["alpine", "bookworm", "bullseye", "buster", "trixie"];
    let (version, variant) = match tag.split_once('-') {
        Some((v, variant)) => (v, Some(variant)),
        None => (tag, None),
    };
    let variant_ok =
        variant.is_none_or(|v| VARIANTS.contains(&v) || v.strip_prefix("alpine").is_some_and(|n| n.starts_with('3')));
    let version_ok = version == "latest"
        || VARIANTS.contains(&version) && variant.is_none()
        || (!version.is_empty()
            && version.split('.').count() <= 3
            && version.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            && version.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| (2..=8).contains(&m)));
    variant_ok && version_ok
}

/// The official redis image's docker-entrypoint.sh, applied to `args`:
/// options or a `.conf` first argument get `redis-server` in front.
pub fn redis_entrypoint(mut args: Vec<String>) -> Vec<String> {
    if args.first().is_some_and(|a| a.starts_with('-') || a.ends_with(".conf")) {
        args.insert(0, "redis-server".into());
    }
    args
}

/// The official redis images build Redis with protected mode off by default
/// (their Dockerfile patches config.c), whether the server is started by
/// the entrypoint or by a pod's `command`. The host's Redis has it on, so
/// `--protected-mode no` is added unless the arguments or the config file
/// (the first argument; `config_sets_protected_mode` reads it in the pod)
/// decide. The upstream test bed's images do the same (images.py).
pub fn official_protected_mode(
    mut argv: Vec<String>,
    config_sets_protected_mode: impl Fn(&str) -> bool,
) -> Vec<String> {
    let program = argv.first().map(|p| p.rsplit('/').next().unwrap_or(p).to_string()).unwrap_or_default();
    if !matches!(program.as_str(), "redis-server" | "redis-sentinel") {
        return argv;
    }
    let decided = argv.iter().any(|a| a == "--protected-mode")
        || argv.get(1).is_some_and(|c| !c.starts_with('-') && config_sets_protected_mode(c));
    if !decided {
        argv.extend(["--protected-mode".into(), "no".into()]);
    }
    argv
}

/// The process a container runs, by the Kubernetes rules: `command` replaces
/// the entrypoint, `args` replace the CMD.
pub fn argv(
    info: &ImageInfo,
    command: &[String],
    args: &[String],
    config_sets_protected_mode: impl Fn(&str) -> bool,
) -> Vec<String> {
    let argv: Vec<String> = if !command.is_empty() {
        command.iter().chain(args).cloned().collect()
    } else {
        let rest: Vec<String> = if args.is_empty() { info.cmd.clone() } else { args.to_vec() };
        if info.redis_entrypoint {
            redis_entrypoint(rest)
        } else {
            info.entrypoint.iter().cloned().chain(rest).collect()
        }
    };
    if info.redis_entrypoint { official_protected_mode(argv, config_sets_protected_mode) } else { argv }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn repositories() {
        assert_eq!(repository("redis:alpine"), "redis");
        assert_eq!(repository("docker.io/library/redis:7.4.1-alpine"), "redis");
        assert_eq!(repository("localhost:5000/simple-go-service"), "simple-go-service");
        assert_eq!(repository("redis@sha256:abc"), "redis");
    }

    #[test]
    fn unknown_images_are_refused_with_a_reason() {
        assert!(resolve("redis:5.0.1-alpine", &[]).is_ok());
        let err = resolve("nginx:latest", &[]).unwrap_err();
        assert!(err.contains("not available in the runbook lab"), "{err}");
        assert!(resolve("bitnami/redis:7", &[]).is_err(), "a non-official redis has another entrypoint");
    }

    #[test]
    fn redis_tags_like_the_official_image() {
        for ok in [
            "redis",
            "redis:alpine",
            "redis:7.4.1-alpine",
            "redis:5.0.1-alpine",
            "redis:6.2-alpine",
            "redis:latest",
            "redis:7-bookworm",
            "redis:7.2-alpine3.19",
        ] {
            assert!(redis_tag_exists(ok), "{ok}");
        }
        for bad in ["redis:does-not-exist", "redis:alpne", "redis:99", "redis:7.4.1.2", "redis:7-alpine-x"] {
            assert!(!redis_tag_exists(bad), "{bad}");
        }
        assert!(resolve("redis:alpne", &[]).unwrap_err().contains("not found"));
    }

    #[test]
    fn command_bypasses_the_entrypoint() {
        let redis = resolve("redis:alpine", &[]).unwrap();
        // The seed's Deployment: the official image's default (protected
        // mode off) holds unless its config file says otherwise.
        assert_eq!(
            argv(&redis, &s(&["redis-server", "/redis-master/redis-config"]), &[], |_| false),
            s(&["redis-server", "/redis-master/redis-config", "--protected-mode", "no"])
        );
        assert_eq!(
            argv(&redis, &s(&["redis-server", "/redis-master/redis-config"]), &[], |_| true),
            s(&["redis-server", "/redis-master/redis-config"])
        );
        assert_eq!(
            argv(&redis, &s(&["/usr/local/bin/redis-server", "--protected-mode", "yes"]), &[], |_| false),
            s(&["/usr/local/bin/redis-server", "--protected-mode", "yes"])
        );
        assert_eq!(argv(&redis, &s(&["sh", "-c", "redis-server"]), &[], |_| false), s(&["sh", "-c", "redis-server"]));
        assert_eq!(argv(&redis, &[], &[], |_| false), s(&["redis-server", "--protected-mode", "no"]));
        assert_eq!(
            argv(&redis, &[], &s(&["/etc/redis/redis.conf"]), |_| true),
            s(&["redis-server", "/etc/redis/redis.conf"])
        );
        assert_eq!(
            argv(&redis, &[], &s(&["--appendonly", "yes"]), |_| false),
            s(&["redis-server", "--appendonly", "yes", "--protected-mode", "no"])
        );
    }
}
