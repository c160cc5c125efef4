//! Scenarios: the model, loading (embedded or from a file), validation with
//! file:line:column, and templates.

#[cfg(test)]
mod fuzz;
pub mod model;
pub mod template;
mod validate;

pub use validate::parse_duration;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};
pub use model::*;

/// The scenarios shipped inside the binary.
static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/scenarios");

/// A problem in a scenario or manifest, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as the user knows it.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}", self.file, self.message),
            (l, 0) => write!(f, "{}:{l}: {}", self.file, self.message),
            (l, c) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
        }
    }
}

/// Where a scenario's files are read from.
#[derive(Debug, Clone)]
enum Source {
    Embedded(&'static Dir<'static>),
    Disk(PathBuf),
    /// Files held in memory, by path relative to the scenario.
    Memory(BTreeMap<String, String>),
}

/// A loaded, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The parsed file.
    pub file: ScenarioFile,
    /// The scenario file's path as shown in messages.
    pub path: String,
    /// The scenario file's text.
    pub text: String,
    source: Source,
}

/// A step with its kind decided.
#[derive(Debug, Clone)]
pub struct Step {
    /// The step as written.
    pub spec: StepFile,
    /// setup, check or disruptive.
    pub kind: StepKind,
}

impl Scenario {
    /// Names of the embedded scenarios.
    pub fn embedded_names() -> Vec<String> {
        let mut names: Vec<String> = EMBEDDED
            .dirs()
            .filter(|d| d.get_file(d.path().join("scenario.yaml")).is_some())
            .map(|d| d.path().display().to_string())
            .collect();
        names.sort();
        names
    }

    /// Loads an embedded scenario by name.
    pub fn embedded(name: &str) -> Result<Scenario, Vec<Problem>> {
        let dir = EMBEDDED.get_dir(name).ok_or_else(|| {
            vec![Problem {
                file: name.to_string(),
                line: 0,
                column: 0,
                message: format!("no scenario named {name:?}; known: {}", Self::embedded_names().join(", ")),
            }]
        })?;
        let file = dir.get_file(Path::new(name).join("scenario.yaml")).ok_or_else(|| {
            vec![Problem { file: name.into(), line: 0, column: 0, message: "scenario.yaml missing".into() }]
        })?;
        let text = file.contents_utf8().unwrap_or_default().to_string();
        Self::parse(text, format!("scenarios/{name}/scenario.yaml"), Source::Embedded(dir))
    }

    /// Loads a scenario file from disk.
    pub fn from_path(path: &Path) -> Result<Scenario, Vec<Problem>> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Problem { file: shown.clone(), line: 0, column: 0, message: format!("cannot read: {e}") }]
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(text, shown, Source::Disk(dir))
    }

    /// Loads a scenario whose files are in memory (`files`: manifests by their
    /// path relative to the scenario), for tools that generate scenarios and
    /// for the loader's fuzz tests.
    pub fn from_memory(path: &str, text: &str, files: BTreeMap<String, String>) -> Result<Scenario, Vec<Problem>> {
        Self::parse(text.to_string(), path.to_string(), Source::Memory(files))
    }

    fn parse(text: String, path: String, source: Source) -> Result<Scenario, Vec<Problem>> {
        let file: ScenarioFile = serde_yaml_ng::from_str(&text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            vec![Problem {
                file: path.clone(),
                line,
                column,
                message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
            }]
        })?;
        let scenario = Scenario { file, path, text, source };
        let problems = validate::validate(&scenario);
        if problems.is_empty() { Ok(scenario) } else { Err(problems) }
    }

    /// Reads a file relative to the scenario (manifests).
    pub fn read(&self, relative: &str) -> Result<String, String> {
        match &self.source {
            Source::Embedded(dir) => dir
                .get_file(dir.path().join(relative))
                .and_then(|f| f.contents_utf8())
                .map(String::from)
                .ok_or_else(|| format!("{relative}: no such file in the scenario")),
            Source::Disk(dir) => std::fs::read_to_string(dir.join(relative)).map_err(|e| format!("{relative}: {e}")),
            Source::Memory(files) => {
                files.get(relative).cloned().ok_or_else(|| format!("{relative}: no such file in the scenario"))
            }
        }
    }

    /// How a file of the scenario is named in messages.
    pub fn display_path(&self, relative: &str) -> String {
        match &self.source {
            Source::Embedded(dir) => format!("scenarios/{}/{relative}", dir.path().display()),
            Source::Disk(dir) => dir.join(relative).display().to_string(),
            Source::Memory(_) => relative.to_string(),
        }
    }

    /// The scenario's own README (for `describe`), if it has one.
    pub fn readme(&self) -> Option<String> {
        self.read("README.md").ok()
    }

    /// Parameter values: defaults, then overrides. Unknown names are refused.
    pub fn parameters(&self, overrides: &[(String, String)]) -> Result<BTreeMap<String, String>, String> {
        let mut values: BTreeMap<String, String> =
            self.file.parameters.iter().map(|(k, p)| (k.clone(), p.default.clone())).collect();
        for (k, v) in overrides {
            if !values.contains_key(k) {
                let known: Vec<&String> = self.file.parameters.keys().collect();
                return Err(format!("--set {k}: the scenario has no parameter {k:?} (it has {known:?})"));
            }
            values.insert(k.clone(), v.clone());
        }
        Ok(values)
    }

    /// The values of secret parameters (for redaction).
    pub fn secret_values(&self, values: &BTreeMap<String, String>) -> Vec<String> {
        self.file.parameters.iter().filter(|(_, p)| p.secret).filter_map(|(k, _)| values.get(k).cloned()).collect()
    }

    /// The steps with their kinds.
    pub fn steps(&self) -> Vec<Step> {
        self.file.steps.iter().map(|s| Step { spec: s.clone(), kind: kind_of(s) }).collect()
    }

    /// The cleanup steps.
    pub fn cleanup_steps(&self) -> Vec<Step> {
        self.file.cleanup.iter().map(|s| Step { spec: s.clone(), kind: StepKind::Setup }).collect()
    }

    /// The 1-based line where a step starts.
    pub fn step_line(&self, id: &str) -> usize {
        let needle = format!("id: {id}");
        self.text
            .lines()
            .position(|l| l.trim_start().trim_start_matches("- ").trim() == needle)
            .map(|i| i + 1)
            .unwrap_or(0)
    }
}

/// The kind a step has when it does not say: apply, delete, capture and key
/// writes set up, the failover drill disrupts, the rest check.
pub fn kind_of(step: &StepFile) -> StepKind {
    let writes_keys = step.redis_keys.as_ref().is_some_and(|k| k.write.is_some())
        || step.replication.as_ref().is_some_and(|r| r.write_probe)
        || step.sentinel_reset.is_some();
    let drill = step.cluster_failover.is_some()
        || step.sentinel_failover.is_some()
        || step.sentinel_restart.is_some()
        || step.http_load.is_some();
    step.kind.unwrap_or(if drill {
        StepKind::Disruptive
    } else if step.apply.is_some() || step.delete.is_some() || step.capture.is_some() || writes_keys {
        StepKind::Setup
    } else {
        StepKind::Check
    })
}
