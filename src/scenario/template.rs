//! `{{ name }}` templates in steps and manifests. Deliberately tiny: names
//! only, no logic, so a scenario reads the same to a person as to runbook.

use std::collections::BTreeMap;

/// A template problem, with the byte offset where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset in the text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// The names a text refers to, with their offsets.
pub fn references(text: &str) -> Result<Vec<(String, usize)>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(start) = text[rest..].find("{{").map(|i| i + rest) {
        let Some(end) = text[start + 2..].find("}}").map(|i| i + start + 2) else {
            return Err(TemplateError { offset: start, message: "unterminated `{{`".into() });
        };
        let name = text[start + 2..end].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(TemplateError {
                offset: start,
                message: format!("invalid template reference {:?}", &text[start..end + 2]),
            });
        }
        out.push((name.to_string(), start));
        rest = end + 2;
    }
    Ok(out)
}

/// Replaces every `{{ name }}` with its value.
pub fn render(text: &str, vars: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let refs = references(text)?;
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (name, start) in refs {
        let end = start + text[start..].find("}}").expect("found by references") + 2;
        let value = vars.get(&name).ok_or_else(|| TemplateError {
            offset: start,
            message: format!(
                "unknown parameter `{name}`{}",
                super::suggest::did_you_mean(&name, vars.keys().map(String::as_str))
            ),
        })?;
        out.push_str(&text[last..start]);
        out.push_str(value);
        last = end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reports_unknown_names() {
        let vars = BTreeMap::from([("maxmemory".to_string(), "2mb".to_string())]);
        assert_eq!(render("maxmemory {{ maxmemory }}", &vars).unwrap(), "maxmemory 2mb");
        assert_eq!(render("{{maxmemory}}{{ maxmemory }}", &vars).unwrap(), "2mb2mb");
        let err = render("a\nb {{ nope }}", &vars).unwrap_err();
        assert_eq!(line_col("a\nb {{ nope }}", err.offset), (2, 3));
        assert!(render("{{ open", &vars).is_err());
        assert!(render("{{ two words }}", &vars).is_err());
    }
}
