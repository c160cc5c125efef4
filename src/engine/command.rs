//! The kubectl command equivalent to each step, for `plan` and the audit report.

use crate::k8s::jsonpath::to_kubectl as jsonpath;
use crate::scenario::{Action, ObjectRef, PodRef};

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn ns_flag(ns: &Option<String>) -> String {
    ns.as_ref().map(|n| format!(" -n {n}")).unwrap_or_default()
}

fn object(o: &ObjectRef) -> String {
    let kind = o.kind.to_lowercase();
    match (&o.name, &o.selector) {
        (Some(n), _) => format!("{kind}/{n}{}", ns_flag(&o.namespace)),
        (_, Some(s)) => format!("{kind} -l {}{}", shell_quote(s), ns_flag(&o.namespace)),
        _ => kind,
    }
}

fn pod(p: &PodRef, resolved: Option<&str>) -> String {
    match (resolved, &p.name, &p.selector) {
        (Some(r), _, _) => format!("{r}{}", ns_flag(&p.namespace)),
        (None, Some(n), _) => format!("{n}{}", ns_flag(&p.namespace)),
        (None, None, Some(s)) => {
            format!("$(kubectl get pod -l {} -o name | head -1){}", shell_quote(s), ns_flag(&p.namespace))
        }
        _ => String::new(),
    }
}

fn count(c: &crate::scenario::Count) -> String {
    match c {
        crate::scenario::Count::Number(n) => n.to_string(),
        crate::scenario::Count::Template(t) => t.clone(),
    }
}

/// The kubectl equivalent of a step's action. `resolved_pod` is the pod a
/// selector chose, when known. Actions with no kubectl equivalent (the Redis
/// drills and HTTP checks) have none.
pub fn kubectl(action: &Action, resolved_pod: Option<&str>, render: &dyn Fn(&str) -> String) -> String {
    let text = match action {
        Action::Apply(a) => {
            let mut files: Vec<String> = a.files.iter().map(|f| format!("-f {f}")).collect();
            if a.inline.is_some() {
                files.push("-f - <<'EOF' (inline manifest)".into());
            }
            format!("kubectl apply --server-side {}", files.join(" "))
        }
        Action::Wait { spec: w, timeout } => {
            // As the step writes it; the default in seconds.
            let timeout = w.timeout.clone().unwrap_or_else(|| format!("{}s", timeout.as_secs()));
            if let Some(r) = &w.rollout {
                format!("kubectl rollout status {} --timeout={timeout}", object(r))
            } else if let Some(p) = &w.pods_ready {
                let pods = match (&p.name, &p.selector) {
                    (Some(name), _) => format!("pod/{name}"),
                    (None, selector) => format!("pod -l {}", shell_quote(selector.as_deref().unwrap_or_default())),
                };
                format!("kubectl wait --for=condition=Ready {pods}{} --timeout={timeout}", ns_flag(&p.namespace))
            } else if let Some(d) = &w.deleted {
                format!("kubectl wait --for=delete {} --timeout={timeout}", object(d))
            } else if let Some(c) = &w.condition {
                let status = c.status.as_deref().unwrap_or("True");
                format!(
                    "kubectl wait --for=condition={}={status} {} --timeout={timeout}",
                    c.condition_type,
                    object(&c.object)
                )
            } else {
                String::new()
            }
        }
        Action::Command { spec, .. } => host_program(spec, render),
        Action::Exec(e) => {
            let container = e.container.as_ref().map(|c| format!(" -c {}", render(c))).unwrap_or_default();
            let stdin = if e.stdin.is_some() { " -i" } else { "" };
            let command: Vec<String> = e.command.iter().map(|a| shell_quote(a)).collect();
            format!("kubectl exec{stdin} {}{container} -- {}", pod(&e.pod, resolved_pod), command.join(" "))
        }
        Action::Redis(r) => {
            let auth = r.auth.as_ref().map(|_| " -a \"$REDIS_PASSWORD\" --no-auth-warning").unwrap_or_default();
            let port = r.port.filter(|p| *p != 6379).map(|p| format!(" -p {p}")).unwrap_or_default();
            let command: Vec<String> = r.command.iter().map(|a| shell_quote(a)).collect();
            format!("kubectl exec {} -- redis-cli{port}{auth} {}", pod(&r.pod, resolved_pod), command.join(" "))
        }
        Action::Assert(a) if a.contains.is_some() => {
            format!("kubectl get {} -o yaml   # holds every field given in contains", object(&a.object))
        }
        Action::Assert(a) => {
            let path =
                if a.object.selector.is_some() { jsonpath(&format!("items[0].{}", a.path)) } else { jsonpath(&a.path) };
            format!("kubectl get {} -o jsonpath='{path}'", object(&a.object))
        }
        Action::Capture(c) => match (&c.pods, &c.object) {
            (Some(p), _) => format!(
                "{}=$(kubectl get pods -l {}{} -o jsonpath='{{range .items[*]}}{{.status.podIP}} {{end}}')",
                c.name.to_uppercase(),
                shell_quote(p.selector.as_deref().or(p.name.as_deref()).unwrap_or_default()),
                ns_flag(&p.namespace)
            ),
            (_, Some(o)) => format!(
                "{}=$(kubectl get {} -o jsonpath='{}')",
                c.name.to_uppercase(),
                object(o),
                jsonpath(c.path.as_deref().unwrap_or_default())
            ),
            _ => String::new(),
        },
        Action::Discover(d) => discover(d),
        Action::RedisKeys(k) => {
            let cluster = if k.cluster { " -c" } else { "" };
            match (&k.write, &k.read) {
                (Some(n), _) => format!(
                    "for i in $(seq 0 $(({} - 1))); do kubectl exec {} -- redis-cli{cluster} set {}:$i {}-value-$i; done",
                    count(n),
                    pod(&k.pod, resolved_pod),
                    k.prefix,
                    k.prefix
                ),
                (_, Some(n)) => format!(
                    "for i in $(seq 0 $(({} - 1))); do kubectl exec {} -- redis-cli{cluster} get {}:$i; done",
                    count(n),
                    pod(&k.pod, resolved_pod),
                    k.prefix
                ),
                _ => String::new(),
            }
        }
        Action::ClusterFailover { spec: f, .. } => format!(
            "kubectl delete pod <master pod of {}>  # then watch: kubectl exec <another pod> -- redis-cli cluster nodes",
            shell_quote(f.pods.selector.as_deref().or(f.pods.name.as_deref()).unwrap_or_default())
        ),
        Action::Delete { spec: d, .. } => {
            let ignore = if d.ignore_missing.unwrap_or(true) { " --ignore-not-found" } else { "" };
            format!("kubectl delete {}{ignore} --wait", object(&d.object))
        }
        Action::SentinelFailover { .. }
        | Action::SentinelRestart { .. }
        | Action::Replication(_)
        | Action::Sentinels(_)
        | Action::SentinelReset(_)
        | Action::Partition { .. }
        | Action::ClusterFault { .. }
        | Action::SentinelPartition { .. }
        | Action::Http(_)
        | Action::HttpLoad { .. } => String::new(),
        // What the lab is asked to do, as kubectl would ask it.
        Action::NodeDown { spec, lasts, .. } => match &spec.node {
            Some(node) => format!(
                "kubectl annotate node {node} runbook.dev/down=runbook && sleep {} && kubectl annotate node {node} runbook.dev/down-",
                lasts.as_secs()
            ),
            None => String::new(),
        },
    };
    render(&text)
}

/// A `command` step's program as the report shows it: its argv quoted for
/// a shell, or its script.
pub fn host_program(spec: &crate::scenario::HostCommand, render: &dyn Fn(&str) -> String) -> String {
    match (&spec.argv, &spec.script) {
        (Some(argv), _) => argv.iter().map(|a| shell_quote(&render(a))).collect::<Vec<_>>().join(" "),
        (None, Some(script)) => render(script.trim_end()),
        (None, None) => String::new(),
    }
}

/// What `discover` reads, as kubectl reads it, the role it looks for in a comment.
fn discover(d: &crate::scenario::Discover) -> String {
    let plural = |kind: &str| format!("{}s", kind.to_lowercase());
    let kind = d.kind.as_deref().unwrap_or_default();
    let target = |o: &Option<ObjectRef>| o.as_ref().map(object).unwrap_or_default();
    let param = &d.parameter;
    if let Some(p) = d.runs {
        if d.within.is_some() {
            return format!(
                "kubectl get {} -o jsonpath='{{.spec.template.spec.containers[*].name}}'   # {param}: the container that runs {}",
                target(&d.within),
                p.name()
            );
        }
        return format!(
            "kubectl get {} -o custom-columns=NAME:.metadata.name,IMAGE:.spec.template.spec.containers[*].image,COMMAND:.spec.template.spec.containers[*].command   # {param}: the one that runs {}",
            plural(kind),
            p.name()
        );
    }
    if let Some(t) = &d.behind_service {
        return format!(
            "kubectl get services,{} -o wide   # {param}: the {kind} whose pods a {t} Service selects",
            plural(kind)
        );
    }
    if d.selects.is_some() {
        return format!(
            "kubectl get services -o wide   # {param}: the Service selecting {}'s pods",
            target(&d.selects)
        );
    }
    if let Some(s) = &d.scales {
        return format!(
            "kubectl get hpa -o custom-columns=NAME:.metadata.name,TARGET:.spec.scaleTargetRef.name   # {param}: the HPA of {}",
            object(s)
        );
    }
    if d.mounted_by.is_some() {
        return format!(
            "kubectl get {} -o jsonpath='{{.spec.template.spec.volumes[*].configMap.name}}'   # {param}",
            target(&d.mounted_by)
        );
    }
    if let Some(m) = &d.monitored_by {
        let port = m.port.filter(|p| *p != 6379).map(|p| format!(" -p {p}")).unwrap_or_default();
        return format!("kubectl exec {} -- redis-cli{port} SENTINEL MASTERS   # {param}", pod(&m.pods, None));
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_filters() {
        assert_eq!(
            jsonpath("spec.containers[name=redis].resources.requests.cpu"),
            "{.spec.containers[?(@.name==\"redis\")].resources.requests.cpu}"
        );
        assert_eq!(jsonpath("items[0].status.qosClass"), "{.items[0].status.qosClass}");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("CONFIG"), "CONFIG");
        assert_eq!(shell_quote("exit 3"), "'exit 3'");
    }
}
