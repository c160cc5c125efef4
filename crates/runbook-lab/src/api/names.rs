//! Kubernetes' name rules with its exact messages
//! (k8s.io/apimachinery/pkg/util/validation): which objects need a DNS
//! subdomain, an RFC 1123 label or a DNS-1035 label, and what is said when a
//! name is not one.

use std::sync::LazyLock;

use regex::Regex;

const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
                         and must start and end with an alphanumeric character";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
                             '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with \
                           an alphabetic character, and end with an alphanumeric character";

static LABEL: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!("^{LABEL_FMT}$")).unwrap());
static SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!("^{}$", subdomain_fmt())).unwrap());
static DNS1035: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!("^{DNS1035_FMT}$")).unwrap());

fn subdomain_fmt() -> String {
    format!("{LABEL_FMT}(\\.{LABEL_FMT})*")
}

fn max_len(limit: usize) -> String {
    format!("must be no more than {limit} characters")
}

/// Go's `RegexError`: the message, examples and the pattern.
fn regex_error(message: &str, pattern: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{message} (e.g. {}regex used for validation is '{pattern}')", examples.join(" or "))
}

/// What is wrong with `value` as an RFC 1123 label (container, port and
/// namespace names); empty when nothing is.
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push(max_len(63));
    }
    if !LABEL.is_match(value) {
        if SUBDOMAIN.is_match(value) {
            errors.push("must not contain dots".into());
        } else {
            errors.push(regex_error(LABEL_MSG, LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errors
}

/// What is wrong with `value` as an RFC 1123 subdomain (most object names).
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    checked(value, 253, &SUBDOMAIN, || regex_error(SUBDOMAIN_MSG, &subdomain_fmt(), &["example.com"]))
}

/// What is wrong with `value` as a DNS-1035 label (Service names).
pub fn dns1035_label(value: &str) -> Vec<String> {
    checked(value, 63, &DNS1035, || regex_error(DNS1035_MSG, DNS1035_FMT, &["my-name", "abc-123"]))
}

/// The length error, then the pattern error, as Kubernetes lists them.
fn checked(value: &str, max: usize, pattern: &Regex, mismatch: impl Fn() -> String) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > max {
        errors.push(max_len(max));
    }
    if !pattern.is_match(value) {
        errors.push(mismatch());
    }
    errors
}

/// The rule for the name of an object of `kind`.
pub fn object_name(kind: &str, name: &str) -> Vec<String> {
    match kind {
        "Service" => dns1035_label(name),
        "Namespace" => dns1123_label(name),
        _ => dns1123_subdomain(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Messages as kube-apiserver v1.34.4 gives them.
    #[test]
    fn messages_match_kubernetes() {
        assert_eq!(
            object_name("ConfigMap", "MyConfig"),
            ["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and \
              must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
              '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
        );
        assert_eq!(
            dns1123_label("Redis"),
            ["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start \
              and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
              '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
        );
        assert_eq!(dns1123_label("a.b"), ["must not contain dots"]);
        assert!(object_name("Service", "1abc")[0].starts_with("a DNS-1035 label"));
        assert!(object_name("Namespace", "redis").is_empty());
        assert_eq!(object_name("Pod", &"a".repeat(254)), [max_len(253)]);
    }
}
