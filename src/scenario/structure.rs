//! The scenario file's shape, checked against its own JSON Schema (generated
//! from the model, as published in docs/scenario.schema.json) before serde
//! reads it: serde stops at the first unknown key, this reports every one,
//! each at its node, with "did you mean".

use std::sync::OnceLock;

use jsonschema::error::{ValidationError, ValidationErrorKind};
use serde_json::Value;

use super::locate::{Lazy, escape};
use super::suggest::closest;
use super::{Problem, ScenarioFile};

struct Schema {
    root: Value,
    validator: jsonschema::Validator,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let root = serde_json::to_value(schemars::schema_for!(ScenarioFile)).expect("the schema is JSON");
        let validator = jsonschema::validator_for(&root).expect("the generated schema is a valid JSON Schema");
        Schema { root, validator }
    })
}

/// What `check` found: every problem, and the file with its unknown keys
/// set aside, so that serde can read the rest and the checks that need a
/// typed scenario still run.
pub struct Checked {
    /// Every place where the file does not have the shape of a scenario.
    pub problems: Vec<Problem>,
    /// The file without the keys reported as unknown.
    pub known: Value,
}

/// Every place where `value` (the scenario file as parsed YAML) does not have
/// the shape of a scenario, located with `locations`.
pub fn check(value: Value, text: &str, locations: &Lazy, file: &str) -> Checked {
    let schema = schema();
    let found = errors(&value);
    let mut errors = Vec::new();
    for error in &found {
        flatten(error, &mut errors);
    }
    // A missing key that an unknown key is a typo of is said once, as the typo.
    let mut suggested = Vec::new();
    let mut unknown = Vec::new();
    let mut problems = Vec::new();
    for error in &errors {
        if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
            let pointer = error.instance_path().as_str().to_string();
            let known = known_keys(&schema.root, error.schema_path().as_str());
            let field = field_name(&value, &pointer);
            for key in unexpected {
                let place = if field.is_empty() { String::new() } else { format!(" in {field}") };
                let message = match closest(key, known.iter().map(String::as_str)) {
                    Some(c) => {
                        suggested.push((pointer.clone(), c.to_string()));
                        format!("unknown key `{key}`{place}; did you mean `{c}`?")
                    }
                    None => format!("unknown key `{key}`{place} (known: {})", known.join(", ")),
                };
                problems.push(problem((text, locations), file, &format!("{pointer}/{}", escape(key)), message));
            }
            unknown.push((pointer, unexpected.clone()));
        }
    }
    for error in errors {
        let pointer = error.instance_path().as_str().to_string();
        let field = field_name(&value, &pointer);
        let message = match error.kind() {
            ValidationErrorKind::AdditionalProperties { .. } => continue,
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                if suggested.contains(&(pointer.clone(), name.to_string())) {
                    continue;
                }
                let place = if field.is_empty() { "the scenario".to_string() } else { field.clone() };
                format!("{place} needs `{name}`")
            }
            ValidationErrorKind::Enum { options } => {
                let options: Vec<Value> = options.as_array().cloned().unwrap_or_default();
                format!("{field}: {} is not one of {}", error.instance(), words(&options))
            }
            ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context }
                if let Some(options) = constants(context) =>
            {
                format!("{field}: {} is not one of {}", error.instance(), words(&options))
            }
            ValidationErrorKind::Type { kind } => {
                format!("{field}: expected {}, found {}", type_words(kind), describe(error.instance()))
            }
            _ => format!("{field}: {error}"),
        };
        problems.push(problem((text, locations), file, &pointer, message));
    }
    drop(found);
    let mut known = value;
    for (pointer, keys) in unknown {
        if let Some(Value::Object(map)) = known.pointer_mut(&pointer) {
            for k in keys {
                map.remove(&k);
            }
        }
    }
    Checked { problems, known }
}

fn problem(at: (&str, &Lazy), file: &str, pointer: &str, message: String) -> Problem {
    let mark = at.1.get(at.0).at(pointer);
    Problem { file: file.to_string(), line: mark.map_or(0, |m| m.line), column: mark.map_or(0, |m| m.column), message }
}

fn errors(value: &Value) -> Vec<ValidationError<'static>> {
    schema().validator.iter_errors(value).map(ValidationError::to_owned).collect()
}

/// An optional field's schema is `anyOf: [its type, null]`: the error worth
/// showing is the one from the branch the value was meant for, not "is not null".
fn flatten<'e>(error: &'e ValidationError<'static>, out: &mut Vec<&'e ValidationError<'static>>) {
    match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // An enum with documented variants: one `const` per branch.
            if constants(context).is_some() {
                out.push(error);
                return;
            }
            let meant = context.iter().find(|branch| !is_null_mismatch(branch));
            match meant {
                Some(branch) if !branch.is_empty() => {
                    for e in branch {
                        flatten(e, out);
                    }
                }
                _ => out.push(error),
            }
        }
        _ => out.push(error),
    }
}

/// The values of a `oneOf` whose every branch is one `const` (an enum whose
/// variants have docs), or None.
fn constants(context: &[Vec<ValidationError<'static>>]) -> Option<Vec<Value>> {
    context
        .iter()
        .map(|branch| match branch.as_slice() {
            [e] => match e.kind() {
                ValidationErrorKind::Constant { expected_value } => Some(Value::clone(expected_value)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn words(options: &[Value]) -> String {
    options.iter().map(|o| o.as_str().map(String::from).unwrap_or_else(|| o.to_string())).collect::<Vec<_>>().join(", ")
}

fn is_null_mismatch(branch: &[ValidationError<'static>]) -> bool {
    matches!(branch, [e] if matches!(e.kind(), ValidationErrorKind::Type { kind } if format!("{kind:?}").contains("Null")))
}

/// The property names the schema allows where `schema_path` (…/additionalProperties) failed.
fn known_keys(root: &Value, schema_path: &str) -> Vec<String> {
    let segments: Vec<String> =
        schema_path.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    let mut node = root;
    for segment in &segments[..segments.len().saturating_sub(1)] {
        if segment == "$ref" {
            let target = node["$ref"].as_str().unwrap_or_default().trim_start_matches('#');
            node = root.pointer(target).unwrap_or(&Value::Null);
        } else {
            node = match node {
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)).unwrap_or(&Value::Null),
                _ => &node[segment.as_str()],
            };
        }
    }
    node["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

/// `step "redis-rollout": wait.rollout` for `/steps/2/wait/rollout`.
fn field_name(value: &Value, pointer: &str) -> String {
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    let (prefix, rest) = match segments.as_slice() {
        [list @ ("steps" | "cleanup"), index, rest @ ..] => {
            let id = value.pointer(&format!("/{list}/{index}/id")).and_then(Value::as_str);
            let step = match id {
                Some(id) => format!("step {id:?}"),
                None => format!("{list}[{index}]"),
            };
            (Some(step), rest)
        }
        rest => (None, rest),
    };
    let path = rest.iter().map(|s| s.replace("~1", "/").replace("~0", "~")).collect::<Vec<_>>().join(".");
    match (prefix, path.is_empty()) {
        (Some(p), true) => p,
        (Some(p), false) => format!("{p}: {path}"),
        (None, _) => path,
    }
}

fn type_words(kind: &jsonschema::error::TypeKind) -> String {
    let words = format!("{kind:?}").to_lowercase();
    // "single(string)" / "multiple(...)": keep the names, drop null (optional fields).
    let names: Vec<&str> = ["string", "integer", "number", "boolean", "object", "array"]
        .into_iter()
        .filter(|n| words.contains(n))
        .collect();
    let article =
        |n: &str| if matches!(n, "integer" | "object" | "array") { format!("an {n}") } else { format!("a {n}") };
    names.iter().map(|n| article(n)).collect::<Vec<_>>().join(" or ")
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        check(value, text, &Lazy::default(), "t.yaml").problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_unknown_key_is_reported_at_its_line_with_a_suggestion() {
        let text = "name: t\ntitle: t\nobjective: t\nsteps:\n  - id: w\n    title: t\n    wait:\n      \
                    rolout: {kind: Deployment, name: x}\n  - id: e\n    titel: t\n    exec: {pod: {name: p}, command: [a]}\n";
        let found = problems(text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("t.yaml:8:7: unknown key `rolout` in step \"w\": wait; did you mean `rollout`?"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("t.yaml:10:5: unknown key `titel` in step \"e\"; did you mean `title`?"),
            "{found:?}"
        );
    }

    #[test]
    fn wrong_types_and_missing_keys_name_the_field() {
        let text = "name: t\ntitle: t\nsteps:\n  - id: w\n    title: t\n    points: two\n    kind: chek\n";
        let found = problems(text);
        assert!(found.contains(&"t.yaml:1:1: the scenario needs `objective`".to_string()), "{found:?}");
        assert!(
            found
                .contains(&"t.yaml:6:5: step \"w\": points: expected an integer, found the string \"two\"".to_string()),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.starts_with("t.yaml:7:5: step \"w\": kind: \"chek\" is not one of")),
            "{found:?}"
        );
    }
}
