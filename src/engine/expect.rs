//! Comparing a found value with what a step expects: as values (numbers as
//! numbers, quantities as quantities, Redis sizes as bytes), never as substrings.

use serde_json::Value;

use crate::scenario::Expect;
use runbook_units::{Quantity, parse_redis_memory};

/// A check that did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// What was expected.
    pub expected: String,
    /// What was found.
    pub actual: String,
}

/// How a value reads in reports: strings bare, the rest as JSON.
pub fn show(value: Option<&Value>) -> String {
    match value {
        None => "<missing>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether `actual` equals `expected` as values.
pub fn values_equal(expected: &Value, actual: &Value) -> bool {
    match expected {
        Value::Number(_) => matches!((as_number(expected), as_number(actual)), (Some(a), Some(b)) if a == b),
        Value::Bool(b) => match actual {
            Value::Bool(a) => a == b,
            Value::String(s) => s == &b.to_string(),
            _ => false,
        },
        Value::String(s) => match actual {
            Value::String(a) => a == s,
            Value::Number(_) | Value::Bool(_) => {
                let text = actual.to_string();
                text == *s
            }
            _ => false,
        },
        other => other == actual,
    }
}

/// Checks every comparison the expectation names against `actual`.
/// `render` resolves templates in expected strings.
pub fn compare(expect: &Expect, actual: Option<&Value>, render: &dyn Fn(&str) -> String) -> Result<(), Mismatch> {
    let found = show(actual);
    let fail = |expected: String| Err(Mismatch { expected, actual: found.clone() });
    let render_value = |v: &Value| match v {
        Value::String(s) => Value::String(render(s)),
        other => other.clone(),
    };
    if let Some(want) = expect.exists {
        if want != actual.is_some() {
            return fail(if want { "a value".into() } else { "no value".into() });
        }
        if !want {
            return Ok(());
        }
    }
    let has_comparison = expect.equals.is_some()
        || expect.not_equals.is_some()
        || expect.one_of.is_some()
        || expect.matches.is_some()
        || expect.config_line.is_some()
        || expect.quantity.is_some()
        || expect.redis_memory.is_some()
        || expect.at_least.is_some()
        || expect.at_most.is_some();
    let Some(actual) = actual else {
        return if has_comparison { fail(describe(expect, render)) } else { Ok(()) };
    };
    if let Some(want) = &expect.equals {
        let want = render_value(want);
        if !values_equal(&want, actual) {
            return fail(show(Some(&want)));
        }
    }
    if let Some(unwanted) = &expect.not_equals {
        let unwanted = render_value(unwanted);
        if values_equal(&unwanted, actual) {
            return fail(format!("not {}", show(Some(&unwanted))));
        }
    }
    if let Some(options) = &expect.one_of {
        let options: Vec<Value> = options.iter().map(render_value).collect();
        if !options.iter().any(|o| values_equal(o, actual)) {
            return fail(format!("one of {}", Value::Array(options)));
        }
    }
    if let Some(pattern) = &expect.matches {
        let pattern = render(pattern);
        let anchored = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| Mismatch { expected: format!("a valid regex: {e}"), actual: found.clone() })?;
        if !anchored.is_match(&found) {
            return fail(format!("a value matching /{pattern}/ in full"));
        }
    }
    if let Some(setting) = &expect.config_line {
        let setting = render(setting);
        if !sets(&found, &setting) {
            return fail(format!("a line {setting:?}"));
        }
    }
    if let Some(q) = &expect.quantity {
        let q = render(q);
        let want = Quantity::parse(&q).map_err(|e| Mismatch { expected: e.to_string(), actual: found.clone() })?;
        match Quantity::parse(&found) {
            Ok(got) if got == want => {}
            _ => return fail(format!("{q} (as a quantity)")),
        }
    }
    if let Some(m) = &expect.redis_memory {
        let m = render(m);
        let want = parse_redis_memory(&m)
            .ok_or_else(|| Mismatch { expected: format!("a Redis size, not {m:?}"), actual: found.clone() })?;
        if found.trim().parse::<u64>().ok() != Some(want) {
            return fail(format!("{want} ({m})"));
        }
    }
    if let Some(min) = expect.at_least
        && !as_number(actual).is_some_and(|n| n >= min)
    {
        return fail(format!("at least {min}"));
    }
    if let Some(max) = expect.at_most
        && !as_number(actual).is_some_and(|n| n <= max)
    {
        return fail(format!("at most {max}"));
    }
    Ok(())
}

/// Whether a config file has a line with the words of `setting` (spacing
/// aside); a commented-out line does not count.
fn sets(file: &str, setting: &str) -> bool {
    let want: Vec<&str> = setting.split_whitespace().collect();
    file.lines().any(|line| line.split_whitespace().collect::<Vec<_>>() == want)
}

/// The expectation in words (for reports and `plan`).
pub fn describe(expect: &Expect, render: &dyn Fn(&str) -> String) -> String {
    let mut parts = Vec::new();
    if let Some(v) = &expect.equals {
        parts.push(match v {
            Value::String(s) => render(s),
            other => other.to_string(),
        });
    }
    if let Some(v) = &expect.not_equals {
        parts.push(match v {
            Value::String(s) => format!("not {}", render(s)),
            other => format!("not {other}"),
        });
    }
    if let Some(o) = &expect.one_of {
        parts.push(format!("one of {}", Value::Array(o.clone())));
    }
    if let Some(m) = &expect.matches {
        // The whole value must match: say so, a partial match is the usual surprise.
        parts.push(format!("matching /{}/ in full", render(m)));
    }
    if let Some(setting) = &expect.config_line {
        parts.push(format!("a line {:?}", render(setting)));
    }
    if let Some(q) = &expect.quantity {
        parts.push(format!("{} (as a quantity)", render(q)));
    }
    if let Some(m) = &expect.redis_memory {
        let m = render(m);
        parts.push(match parse_redis_memory(&m) {
            Some(bytes) => format!("{bytes} ({m})"),
            None => m,
        });
    }
    if let Some(n) = expect.at_least {
        parts.push(format!("at least {n}"));
    }
    if let Some(n) = expect.at_most {
        parts.push(format!("at most {n}"));
    }
    if let Some(e) = expect.exists {
        parts.push(if e { "present".into() } else { "absent".into() });
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> String {
        s.to_string()
    }

    fn expect(v: Value) -> Expect {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn numbers_compare_as_numbers_not_substrings() {
        let e = expect(json!({"equals": 2097152}));
        assert!(compare(&e, Some(&json!("2097152")), &id).is_ok());
        assert!(compare(&e, Some(&json!("20971520")), &id).is_err());
        let e = expect(json!({"equals": "PONG"}));
        assert!(compare(&e, Some(&json!("PONG!")), &id).is_err());
    }

    #[test]
    fn a_config_line_is_found_whatever_the_spacing_and_the_other_lines() {
        let e = expect(json!({"configLine": "maxmemory 2mb"}));
        for file in ["maxmemory 2mb", "# the cache\nmaxmemory   2mb\n", "bind 0.0.0.0\n  maxmemory\t2mb  \nport 6379"] {
            assert!(compare(&e, Some(&json!(file)), &id).is_ok(), "{file:?}");
        }
        for file in ["maxmemory 4mb", "# maxmemory 2mb", "maxmemory 2mb allkeys", "maxmemory-policy 2mb", ""] {
            let err = compare(&e, Some(&json!(file)), &id).unwrap_err();
            assert_eq!(err.expected, "a line \"maxmemory 2mb\"", "{file:?}");
        }
        assert_eq!(describe(&e, &id), "a line \"maxmemory 2mb\"");
    }

    #[test]
    fn not_equals_compares_against_a_captured_value() {
        // `{{ old_pod }}` as a capture step leaves it for the steps after it.
        let render = |t: &str| t.replace("{{ old_pod }}", "redis-0-abc");
        let e = expect(json!({"notEquals": "{{ old_pod }}"}));
        assert!(compare(&e, Some(&json!("redis-0-xyz")), &render).is_ok(), "a new pod");
        let err = compare(&e, Some(&json!("redis-0-abc")), &render).unwrap_err();
        assert_eq!(err, Mismatch { expected: "not redis-0-abc".into(), actual: "redis-0-abc".into() });
        assert_eq!(describe(&e, &render), "not redis-0-abc");
        let numeric = expect(json!({"notEquals": 0}));
        assert!(compare(&numeric, Some(&json!("0")), &id).is_err(), "numbers compare as numbers");
        assert!(compare(&numeric, None, &id).is_err(), "a missing value is not a different one");
    }

    #[test]
    fn quantities_and_redis_sizes() {
        assert!(compare(&expect(json!({"quantity": "1"})), Some(&json!("1000m")), &id).is_ok());
        let err = compare(&expect(json!({"quantity": "1"})), Some(&json!("500m")), &id).unwrap_err();
        assert_eq!(err, Mismatch { expected: "1 (as a quantity)".into(), actual: "500m".into() });
        assert!(compare(&expect(json!({"redisMemory": "2mb"})), Some(&json!("2097152")), &id).is_ok());
        let err = compare(&expect(json!({"redisMemory": "2mb"})), Some(&json!("4194304")), &id).unwrap_err();
        assert_eq!(err.expected, "2097152 (2mb)");
    }

    #[test]
    fn missing_values_fail_comparisons() {
        let err = compare(&expect(json!({"equals": "Burstable"})), None, &id).unwrap_err();
        assert_eq!(err.actual, "<missing>");
        assert!(compare(&expect(json!({"exists": false})), None, &id).is_ok());
    }

    #[test]
    fn regex_matches_in_full() {
        let e = expect(json!({"matches": "redis:7\\..*"}));
        assert!(compare(&e, Some(&json!("redis:7.4.1")), &id).is_ok());
        assert!(compare(&e, Some(&json!("myredis:7.4.1")), &id).is_err());
    }
}
