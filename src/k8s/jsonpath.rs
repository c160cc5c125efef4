//! Field paths into objects: `spec.containers[name=redis].resources.requests.cpu`,
//! `items[0]`, `metadata.annotations["deployment.kubernetes.io/revision"]`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
    Filter(String, String),
}

/// Why a path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path {path:?}: {reason}")]
pub struct PathError {
    /// The path.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

fn parse(path: &str) -> Result<Vec<Segment>, PathError> {
    let err = |reason: &str| PathError { path: path.to_string(), reason: reason.to_string() };
    let mut segments = Vec::new();
    let mut chars = path.chars().peekable();
    let mut key = String::new();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                }
            }
            '[' => {
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                }
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some(']') => break,
                        Some(c) => inner.push(c),
                        None => return Err(err("unclosed [")),
                    }
                }
                let inner = inner.trim();
                if let Some(quoted) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    segments.push(Segment::Key(quoted.to_string()));
                } else if let Ok(i) = inner.parse::<usize>() {
                    segments.push(Segment::Index(i));
                } else if let Some((k, v)) = inner.split_once('=') {
                    segments.push(Segment::Filter(k.trim().to_string(), v.trim().trim_matches('"').to_string()));
                } else {
                    return Err(err("expected [N], [key=value] or [\"key\"]"));
                }
            }
            c => key.push(c),
        }
    }
    if !key.is_empty() {
        segments.push(Segment::Key(key));
    }
    if segments.is_empty() {
        return Err(err("empty path"));
    }
    Ok(segments)
}

/// The same path in kubectl's JSONPath, for the kubectl equivalent of a check
/// (`spec.containers[name=redis].image` →
/// `{.spec.containers[?(@.name=="redis")].image}`). A path that does not
/// parse is shown as written.
pub fn to_kubectl(path: &str) -> String {
    let Ok(segments) = parse(path) else { return format!("{{.{path}}}") };
    let mut out = String::from("{");
    for segment in segments {
        match segment {
            Segment::Key(k) if k.contains(['.', '/']) => out.push_str(&format!("[\"{k}\"]")),
            Segment::Key(k) => out.push_str(&format!(".{k}")),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Filter(k, v) => out.push_str(&format!("[?(@.{k}==\"{v}\")]")),
        }
    }
    out.push('}');
    out
}

/// The value at `path`, or None when any part is missing.
pub fn get<'a>(object: &'a Value, path: &str) -> Result<Option<&'a Value>, PathError> {
    let mut current = object;
    for segment in parse(path)? {
        let next = match &segment {
            Segment::Key(k) => current.get(k),
            Segment::Index(i) => current.get(*i),
            Segment::Filter(k, v) => current.as_array().and_then(|items| {
                items.iter().find(|item| match &item[k] {
                    Value::String(s) => s == v,
                    other => {
                        let text = other.to_string();
                        text == *v
                    }
                })
            }),
        };
        match next {
            Some(n) => current = n,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        let pod = json!({"metadata": {"annotations": {"a.b/c": "1"}},
            "spec": {"containers": [{"name": "x", "image": "i1"}, {"name": "redis", "resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(get(&pod, "spec.containers[name=redis].resources.requests.cpu").unwrap(), Some(&json!("1")));
        assert_eq!(get(&pod, "spec.containers[0].image").unwrap(), Some(&json!("i1")));
        assert_eq!(get(&pod, "metadata.annotations[\"a.b/c\"]").unwrap(), Some(&json!("1")));
        assert_eq!(get(&pod, "spec.containers[name=nope].image").unwrap(), None);
        assert!(get(&pod, "spec.containers[").is_err());
    }

    #[test]
    fn kubectl_jsonpath_from_the_same_parse() {
        assert_eq!(
            to_kubectl("spec.containers[name=redis].resources.requests.cpu"),
            "{.spec.containers[?(@.name==\"redis\")].resources.requests.cpu}"
        );
        assert_eq!(to_kubectl("items[0].status.qosClass"), "{.items[0].status.qosClass}");
        assert_eq!(to_kubectl("metadata.annotations[\"a.b/c\"]"), "{.metadata.annotations[\"a.b/c\"]}");
    }
}
