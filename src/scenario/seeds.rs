//! The seed documents (docs/seeds), the task texts the scenarios were written
//! from, built into the binary so that `describe` can quote the line each
//! graded check comes from.

use include_dir::{Dir, include_dir};

static SEEDS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/docs/seeds");

/// A place in a seed document, written `DOC:LINE` (`000:34`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedLine {
    /// The document's number: the file name's prefix (`000`).
    pub doc: String,
    /// The line, counted from 1.
    pub line: usize,
}

impl SeedLine {
    /// Parses `DOC:LINE`, refusing a document or line that does not exist.
    pub fn parse(text: &str) -> Result<SeedLine, String> {
        let (doc, line) =
            text.split_once(':').ok_or_else(|| format!("seed {text:?}: expected DOC:LINE, such as 000:34"))?;
        let line: usize = line.parse().map_err(|_| format!("seed {text:?}: the line {line:?} is not a number"))?;
        let seed = SeedLine { doc: doc.to_string(), line };
        seed.text()?;
        Ok(seed)
    }

    /// The line's text, trimmed.
    pub fn text(&self) -> Result<String, String> {
        let document = document(&self.doc).ok_or_else(|| {
            format!(
                "seed {}:{}: no seed document {} (there are {})",
                self.doc,
                self.line,
                self.doc,
                documents().join(", ")
            )
        })?;
        let text = document.lines().nth(self.line.wrapping_sub(1)).map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(format!(
                "seed {}:{}: that line is empty or past the end ({} lines)",
                self.doc,
                self.line,
                document.lines().count()
            ));
        }
        Ok(text.to_string())
    }
}

/// The numbers of the seed documents (`000`, `001`, ...).
pub fn documents() -> Vec<String> {
    let mut names: Vec<String> = SEEDS
        .files()
        .filter_map(|f| f.path().file_name()?.to_str()?.split_once('_').map(|(n, _)| n.to_string()))
        .collect();
    names.sort();
    names
}

fn document(number: &str) -> Option<&'static str> {
    SEEDS
        .files()
        .find(|f| f.path().file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{number}_"))))
        .and_then(|f| f.contents_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_line_is_quoted_and_a_wrong_one_refused() {
        assert_eq!(SeedLine::parse("000:34").unwrap().text().unwrap(), "* **Value:** maxmemory 2mb");
        assert_eq!(documents(), ["000", "001", "002", "003", "004"]);
        assert!(SeedLine::parse("000").unwrap_err().contains("expected DOC:LINE"));
        assert!(SeedLine::parse("009:1").unwrap_err().contains("no seed document 009"));
        assert!(SeedLine::parse("000:2").unwrap_err().contains("empty"));
        assert!(SeedLine::parse("000:99999").unwrap_err().contains("past the end"));
        assert!(SeedLine::parse("000:x").unwrap_err().contains("not a number"));
    }

    /// Issue 15: every graded check of the built-in scenarios names the
    /// requirement it grades, the seed line it comes from, and a hint.
    #[test]
    fn every_graded_check_of_the_built_in_scenarios_names_its_requirement_seed_line_and_hint() {
        let mut missing = Vec::new();
        for name in crate::scenario::Scenario::embedded_names() {
            let scenario = crate::scenario::Scenario::embedded(&name).unwrap();
            for step in scenario.file.steps.iter().filter(|s| s.points.unwrap_or(0) > 0) {
                let seed = step.seed.as_deref().map(SeedLine::parse);
                if step.requirement.is_none() || step.hint.is_none() || !matches!(seed, Some(Ok(_))) {
                    missing.push(format!(
                        "{name}/{}: requirement {:?}, seed {seed:?}, hint {:?}",
                        step.id, step.requirement, step.hint
                    ));
                }
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
