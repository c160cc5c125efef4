//! The capabilities a container's processes may hold, as containerd gives
//! them: its default set, plus `securityContext.capabilities.add`, minus
//! `drop` (`ALL` drops everything), every one with `privileged: true`.
//! Applied as the bounding set between fork and exec, so a process of the
//! pod (an exec, a probe) cannot gain more, whatever it runs.

use serde_json::Value;

/// containerd's default capabilities (its `oci.DefaultCapabilities`, the
/// same as Docker's), by their numbers in `linux/capability.h`.
const DEFAULT: &[(&str, u32)] = &[
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("FOWNER", 3),
    ("FSETID", 4),
    ("KILL", 5),
    ("SETGID", 6),
    ("SETUID", 7),
    ("SETPCAP", 8),
    ("NET_BIND_SERVICE", 10),
    ("NET_RAW", 13),
    ("SYS_CHROOT", 18),
    ("MKNOD", 27),
    ("AUDIT_WRITE", 29),
    ("SETFCAP", 31),
];

/// Every capability name Linux knows, by number (`CAP_` left out, as
/// Kubernetes writes them).
const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A set of capabilities as a bit mask (bit n: capability n).
pub type CapabilitySet = u64;

fn bit(name: &str) -> Option<CapabilitySet> {
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("CAP_").unwrap_or(&name);
    NAMES.iter().position(|n| *n == name).map(|i| 1 << i)
}

/// The capabilities a container's processes may hold.
pub fn of_container(container: &Value) -> CapabilitySet {
    let security = &container["securityContext"];
    let all: CapabilitySet = (1 << NAMES.len()) - 1;
    if security["privileged"].as_bool() == Some(true) {
        return all;
    }
    let mut set: CapabilitySet = DEFAULT.iter().map(|(_, n)| 1 << n).sum();
    let names = |key: &str| -> Vec<String> {
        security["capabilities"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    // containerd's order: ALL added, ALL dropped, then each one added, then
    // each one dropped (so `drop: [ALL], add: [NET_BIND_SERVICE]` keeps one).
    let (add, drop) = (names("add"), names("drop"));
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    if add.iter().any(is_all) {
        set = all;
    }
    if drop.iter().any(is_all) {
        set = 0;
    }
    for name in add.iter().filter(|n| !is_all(n)) {
        set |= bit(name).unwrap_or(0);
    }
    for name in drop.iter().filter(|n| !is_all(n)) {
        set &= !bit(name).unwrap_or(0);
    }
    set
}

/// Drops every capability not in `keep` from the bounding set of the
/// calling process, up to the kernel's last (`cap_last_cap`, read before
/// the fork). Async-signal-safe: it runs between fork and exec.
pub fn limit_to(keep: CapabilitySet, last_cap: u32) -> std::io::Result<()> {
    for cap in 0..=last_cap {
        if cap < 64 && keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with plain integers.
        if unsafe { nix::libc::prctl(nix::libc::PR_CAPBSET_DROP, cap as nix::libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The highest capability number this kernel knows (read once: every
/// container, exec and probe start needs it).
pub fn last_cap() -> u32 {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(NAMES.len() as u32 - 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(set: CapabilitySet) -> Vec<&'static str> {
        NAMES.iter().enumerate().filter(|(i, _)| set & (1 << i) != 0).map(|(_, n)| *n).collect()
    }

    #[test]
    fn numbers_match_the_kernel_headers() {
        for (name, number) in DEFAULT {
            assert_eq!(NAMES[*number as usize], *name);
        }
        assert_eq!(NAMES.len(), 41, "CAP_CHECKPOINT_RESTORE is 40");
    }

    #[test]
    fn default_add_drop_and_privileged() {
        let default = names(of_container(&json!({})));
        assert!(default.contains(&"NET_RAW") && !default.contains(&"NET_ADMIN") && !default.contains(&"SYS_ADMIN"));
        assert_eq!(default.len(), 14);
        let c = json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN", "CAP_IPC_LOCK"], "drop": ["KILL"]}}});
        let set = names(of_container(&c));
        assert!(set.contains(&"NET_ADMIN") && set.contains(&"IPC_LOCK") && !set.contains(&"KILL"));
        let one = json!({"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}});
        assert_eq!(names(of_container(&one)), ["NET_BIND_SERVICE"], "containerd drops ALL before adding");
        let most = json!({"securityContext": {"capabilities": {"add": ["ALL"], "drop": ["SYS_ADMIN"]}}});
        assert_eq!(names(of_container(&most)).len(), 40);
        assert_eq!(names(of_container(&json!({"securityContext": {"privileged": true}}))).len(), 41);
    }
}
