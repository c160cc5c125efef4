//! Scenarios: the model, loading (embedded or from a file), validation with
//! file:line:column, and templates.

pub mod action;
#[cfg(test)]
mod fuzz;
pub mod locate;
pub mod manifest;
mod manifest_types;
pub mod model;
pub mod seeds;
mod structure;
mod suggest;
pub mod template;
mod validate;

pub use action::{Action, latency_millis, loss_percent};
pub use runbook_units::parse_duration;

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
    steps: Vec<Step>,
    cleanup: Vec<Step>,
    /// Where each key and value of the scenario file is written.
    locations: locate::Lazy,
}

/// A step as it runs: its one action (durations parsed), its kind decided.
#[derive(Debug, Clone)]
pub struct Step {
    /// The step as written (id, title, explanation, points, hint).
    pub spec: StepFile,
    /// What it does.
    pub action: Action,
    /// setup, check or disruptive.
    pub kind: StepKind,
    /// The read-only check that, when it passes, makes the step unnecessary.
    pub unless: Option<Action>,
    /// How long a failing check is tried again (`retryFor`).
    pub retry_for: Option<std::time::Duration>,
    /// The ids of the steps that must have passed for this one to run
    /// (`needs`, or its default: see [`StepFile::needs`]).
    pub needs: Vec<String>,
}

impl Step {
    /// A step from the file: its action and durations (rendered with
    /// `vars`), or every problem.
    pub fn from_file(spec: &StepFile, vars: &action::Vars) -> Result<Step, Vec<String>> {
        let action = Action::of(spec, vars);
        let unless = spec.unless.as_deref().map(Action::of_probe).transpose();
        // `assert.eventually` is the same patience as `retryFor`, said where
        // the assertion is.
        let eventually = spec.assert.as_ref().and_then(|a| a.eventually.as_ref());
        let retry_for = match (&spec.retry_for, eventually) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err("give retryFor or assert.eventually, not both".to_string()),
            (Some(t), None) => {
                parse_duration(t).map(Some).ok_or_else(|| format!("retryFor {t:?} is not a duration (90s, 2m, 500ms)"))
            }
            (None, Some(t)) => parse_duration(t)
                .map(Some)
                .ok_or_else(|| format!("assert.eventually {t:?} is not a duration (90s, 2m, 500ms)")),
        };
        match (action, unless, retry_for) {
            (Ok(action), Ok(unless), Ok(retry_for)) => Ok(Step {
                kind: spec.kind.unwrap_or_else(|| action.default_kind()),
                needs: spec.needs.clone().unwrap_or_default(),
                spec: spec.clone(),
                action,
                unless,
                retry_for,
            }),
            (action, unless, retry_for) => {
                let mut problems = action.err().unwrap_or_default();
                problems.extend(unless.err());
                problems.extend(retry_for.err());
                Err(problems)
            }
        }
    }

    /// A read-only check run on its own (an `unless` probe).
    pub fn check(spec: &StepFile, action: Action) -> Step {
        Step { spec: spec.clone(), action, kind: StepKind::Check, unless: None, retry_for: None, needs: Vec::new() }
    }
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
        let serde_problem = |e: serde_yaml_ng::Error| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            Problem {
                file: path.clone(),
                line,
                column,
                message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
            }
        };
        // A YAML syntax error ends the reading; a shape error does not: every
        // one is reported, and the checks of a typed scenario still run on
        // what remains once the unknown keys are set aside.
        let value: serde_json::Value = serde_yaml_ng::from_str(&text).map_err(|e| vec![serde_problem(e)])?;
        let locations = locate::Lazy::default();
        let checked = structure::check(value, &text, &locations, &path);
        let mut problems = checked.problems;
        let file = match serde_json::from_value::<ScenarioFile>(checked.known) {
            Ok(file) => file,
            Err(e) if problems.is_empty() => {
                // The schema and serde disagree: serde's word (with its location) is final.
                let problem = serde_yaml_ng::from_str::<ScenarioFile>(&text).err().map(serde_problem);
                return Err(vec![problem.unwrap_or_else(|| Problem {
                    file: path.clone(),
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                })]);
            }
            Err(_) => return Err(problems),
        };
        let mut scenario = Scenario { file, path, text, source, steps: Vec::new(), cleanup: Vec::new(), locations };
        problems.extend(validate::validate(&scenario));
        if !problems.is_empty() {
            problems.sort_by_key(|p| (p.line == 0, p.line, p.column));
            return Err(problems);
        }
        let defaults = scenario
            .parameters(&[])
            .map_err(|message| vec![Problem { file: scenario.path.clone(), line: 0, column: 0, message }])?;
        scenario
            .make_steps(&defaults)
            .map_err(|message| vec![Problem { file: scenario.path.clone(), line: 0, column: 0, message }])?;
        Ok(scenario)
    }

    /// The scenario with its steps read with these parameter values (a
    /// duration may be a template), as a run uses it.
    pub fn bound_to(&self, vars: &action::Vars) -> Result<Scenario, String> {
        let mut bound = self.clone();
        bound.make_steps(vars)?;
        Ok(bound)
    }

    /// Makes the steps and cleanup steps from the file with `vars`.
    fn make_steps(&mut self, vars: &action::Vars) -> Result<(), String> {
        let made = |steps: &[StepFile]| -> Result<Vec<Step>, String> {
            steps
                .iter()
                .map(|s| Step::from_file(s, vars).map_err(|problems| format!("step {}: {}", s.id, problems.join("; "))))
                .collect()
        };
        self.steps = made(&self.file.steps)?;
        // A step that talks to pods needs, unless it says otherwise, the
        // nearest wait before it: a PING to a pod that never became ready
        // proves nothing.
        let mut last_wait: Option<String> = None;
        for step in &mut self.steps {
            if step.spec.needs.is_none()
                && step.action.talks_to_pods()
                && let Some(wait) = &last_wait
            {
                step.needs = vec![wait.clone()];
            }
            if matches!(step.action, Action::Wait { .. }) {
                last_wait = Some(step.spec.id.clone());
            }
        }
        self.cleanup = made(&self.file.cleanup)?;
        for step in &mut self.cleanup {
            step.kind = StepKind::Setup;
        }
        Ok(())
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

    /// The directory of a scenario read from disk (where its `command`
    /// steps start); none for an embedded or in-memory one.
    pub fn directory(&self) -> Option<&std::path::Path> {
        match &self.source {
            Source::Disk(dir) => Some(dir),
            Source::Embedded(_) | Source::Memory(_) => None,
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
                let known: Vec<&str> = self.file.parameters.keys().map(String::as_str).collect();
                let hint = suggest::did_you_mean(k, known.iter().copied());
                return Err(format!(
                    "--set {k}: the scenario has no parameter {k:?}{hint} (it has {})",
                    known.join(", ")
                ));
            }
            values.insert(k.clone(), v.clone());
        }
        Ok(values)
    }

    /// Every problem the scenario has with these overrides (`--set`): an
    /// unknown name, or a value that breaks a manifest or a step, named
    /// where it breaks it. Empty when the values fit.
    pub fn problems_with(&self, overrides: &[(String, String)]) -> Vec<Problem> {
        match self.parameters(overrides) {
            Err(message) => vec![Problem { file: self.path.clone(), line: 0, column: 0, message }],
            Ok(values) => {
                let mut problems = validate::validate_with(self, values);
                problems.sort_by_key(|p| (p.line == 0, p.line, p.column));
                problems
            }
        }
    }

    /// The values of secret parameters (for redaction).
    pub fn secret_values(&self, values: &BTreeMap<String, String>) -> Vec<String> {
        self.file.parameters.iter().filter(|(_, p)| p.secret).filter_map(|(k, _)| values.get(k).cloned()).collect()
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The cleanup steps (setup steps: they run in `run` only).
    pub fn cleanup_steps(&self) -> &[Step] {
        &self.cleanup
    }

    /// Where `pointer` (`/steps/2/apply/files/0`) is written in the scenario
    /// file: its line and column, or (0, 0).
    pub fn location(&self, pointer: &str) -> (usize, usize) {
        self.locations.get(&self.text).at(pointer).map_or((0, 0), |m| (m.line, m.column))
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
