//! Manifests as an apply step sends them: read from the scenario's files or
//! inline, templated, YAML 1.1 octals read as kubectl reads them, split into
//! documents. The one place this happens, for `validate`, `plan` and `run`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Apply, Scenario, template};

/// Renders a manifest's template and rewrites its YAML 1.1 octals.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, template::TemplateError> {
    template::render(text, vars).map(|rendered| yaml11_octals(&rendered))
}

/// The documents of a rendered manifest, empty ones skipped; stops at the
/// first that is not valid YAML.
pub fn documents(rendered: &str) -> impl Iterator<Item = Result<Value, serde_yaml_ng::Error>> + '_ {
    all_documents(rendered).filter(|value: &Result<Value, _>| !matches!(value, Ok(Value::Null)))
}

/// Every document of a rendered manifest, empty ones included (as null), so
/// that their index matches the text's; stops at the first that is not valid YAML.
pub fn all_documents(rendered: &str) -> impl Iterator<Item = Result<Value, serde_yaml_ng::Error>> + '_ {
    serde_yaml_ng::Deserializer::from_str(rendered).map(serde::Deserialize::deserialize)
}

/// Reads, renders and parses the manifests of an apply step: (file as shown,
/// document), or what is wrong, naming the file.
pub fn step_documents(
    vars: &BTreeMap<String, String>,
    scenario: &Scenario,
    apply: &Apply,
) -> Result<Vec<(String, Value)>, String> {
    let mut sources: Vec<(String, String)> = Vec::new();
    for f in &apply.files {
        sources.push((scenario.display_path(f), scenario.read(f)?));
    }
    if let Some(inline) = &apply.inline {
        sources.push((format!("{} (inline)", scenario.path), inline.clone()));
    }
    let mut docs = Vec::new();
    for (file, text) in sources {
        let rendered = render(&text, vars).map_err(|e| format!("{file}: {}", e.message))?;
        for value in documents(&rendered) {
            docs.push((file.clone(), value.map_err(|e| format!("{file}: {e}"))?));
        }
    }
    Ok(docs)
}

/// Rewrites YAML 1.1 octal integers (`defaultMode: 0755`) as decimal, so the
/// manifests mean what they mean to kubectl (YAML 1.1), not 755 as YAML 1.2
/// reads them.
pub fn yaml11_octals(text: &str) -> String {
    static OCTAL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?m)^(\s*(?:- )?[A-Za-z0-9_.-]+:[ \t]+)0([0-7]+)([ \t]*(?:#.*)?)$").expect("static regex")
    });
    OCTAL
        .replace_all(text, |c: &regex::Captures| {
            let value = u64::from_str_radix(&c[2], 8).unwrap_or(0);
            format!("{}{value}{}", &c[1], &c[3])
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes_read_as_kubectl_reads_them() {
        assert_eq!(yaml11_octals("  defaultMode: 0755\n"), "  defaultMode: 493\n");
        assert_eq!(yaml11_octals("- mode: 0644 # rw\n"), "- mode: 420 # rw\n");
        assert_eq!(yaml11_octals("port: 6379\nname: \"0755\"\nzero: 0\n"), "port: 6379\nname: \"0755\"\nzero: 0\n");
    }
}
