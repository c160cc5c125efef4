//! Which runs a `run`/`verify` over several scenarios makes: built-in names,
//! files, directories of scenarios, or a suite file with parameter sets and
//! a small matrix; narrowed by a name pattern and by the scenarios' labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use super::common::parse_key_value;
use crate::exit;
use crate::scenario::{Problem, Scenario};

/// Which scenarios.
#[derive(Debug, Args)]
pub struct ScenariosArgs {
    /// Built-in scenarios by name (see `runbook list`); several run as a suite.
    #[arg(value_name = "NAME", required_unless_present_any = ["files", "suite"])]
    pub names: Vec<String>,
    /// A scenario file of your own, or a directory of them (`DIR/*/scenario.yaml`);
    /// repeatable.
    #[arg(short = 'f', long = "file", value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// A suite file: the scenarios to run, each with parameter values and an
    /// optional matrix (a run per combination). See docs/scenario.md.
    #[arg(long, value_name = "FILE")]
    pub suite: Option<PathBuf>,
    /// Only the scenarios whose name matches this pattern (`*` any text, `?` one character).
    #[arg(long = "match", value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Only the scenarios with this label (`labels:` in the scenario); repeatable, all must hold.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
    /// Override a parameter (repeatable, every run): `--set maxmemory=4mb`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
}

/// A suite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    /// The suite's name (reports).
    #[serde(default)]
    name: Option<String>,
    /// The runs, in order.
    runs: Vec<SuiteEntry>,
}

/// One entry of a suite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteEntry {
    /// A built-in scenario's name, or a scenario file relative to the suite.
    scenario: String,
    /// Parameter values for this entry.
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// Parameter values to combine: a run per combination.
    #[serde(default)]
    matrix: BTreeMap<String, Vec<String>>,
}

/// One run a suite makes.
pub struct Planned {
    /// How the run is named in the output and reports (`redis-cache [maxmemory=4mb]`).
    pub label: String,
    /// The scenario.
    pub scenario: Scenario,
    /// Its parameter values (the suite's, then `--set`).
    pub set: Vec<(String, String)>,
}

/// The runs asked for, and the suite's name.
pub struct Plan {
    /// The suite's name: the suite file's, else `runbook`.
    pub name: String,
    /// The runs, in order.
    pub runs: Vec<Planned>,
    /// Whether the user asked for more than one scenario or a suite (even if
    /// the selection left one run): the output then is a suite's.
    pub is_suite: bool,
}

impl ScenariosArgs {
    /// Loads every scenario, expands the suite's matrices and applies the
    /// selection; any problem is an invalid-input error naming where it is.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let mut candidates: Vec<(Scenario, BTreeMap<String, String>)> = Vec::new();
        for name in &self.names {
            candidates.push((Scenario::embedded(name).map_err(invalid)?, BTreeMap::new()));
        }
        let mut directories = false;
        for path in &self.files {
            if path.is_dir() {
                directories = true;
                for file in scenario_files(path)? {
                    candidates.push((Scenario::from_path(&file).map_err(invalid)?, BTreeMap::new()));
                }
            } else {
                candidates.push((Scenario::from_path(path).map_err(invalid)?, BTreeMap::new()));
            }
        }
        let mut name = "runbook".to_string();
        if let Some(path) = &self.suite {
            let suite = read_suite(path)?;
            name = suite.name.unwrap_or_else(|| path.file_stem().unwrap_or_default().to_string_lossy().into_owned());
            let base = path.parent().unwrap_or(Path::new("."));
            for entry in suite.runs {
                let scenario = if entry.scenario.ends_with(".yaml") || entry.scenario.contains('/') {
                    Scenario::from_path(&base.join(&entry.scenario))
                } else {
                    Scenario::embedded(&entry.scenario)
                }
                .map_err(invalid)?;
                for values in combinations(&entry.set, &entry.matrix) {
                    candidates.push((scenario.clone(), values));
                }
            }
        }
        let is_suite = self.suite.is_some() || directories || candidates.len() > 1;
        let mut runs = Vec::new();
        for (scenario, values) in candidates {
            if !self.selects(&scenario) {
                continue;
            }
            let label = if values.is_empty() {
                scenario.file.name.clone()
            } else {
                let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} [{}]", scenario.file.name, shown.join(", "))
            };
            let mut set: Vec<(String, String)> = values.into_iter().collect();
            set.extend(self.set.iter().cloned());
            // A value that breaks a manifest is refused before any run starts.
            let problems = scenario.problems_with(&set);
            if !problems.is_empty() {
                return Err(invalid(problems));
            }
            runs.push(Planned { label, scenario, set });
        }
        if runs.is_empty() {
            return Err(exit::invalid("no scenario matches the selection (--match, --label)"));
        }
        Ok(Plan { name, runs, is_suite })
    }

    fn selects(&self, scenario: &Scenario) -> bool {
        let named = self.pattern.as_deref().is_none_or(|p| wildcard(p, &scenario.file.name));
        named && self.labels.iter().all(|(k, v)| scenario.file.labels.get(k) == Some(v))
    }
}

fn invalid(problems: Vec<Problem>) -> anyhow::Error {
    exit::invalid(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
}

/// `DIR/scenario.yaml` and `DIR/*/scenario.yaml`, sorted.
fn scenario_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| exit::invalid(format!("{}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path().join("scenario.yaml"))
        .chain([dir.join("scenario.yaml")])
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(exit::invalid(format!("{}: no scenario.yaml in it or in its directories", dir.display())));
    }
    Ok(found)
}

fn read_suite(path: &Path) -> anyhow::Result<SuiteFile> {
    let suite: SuiteFile = super::common::read_yaml(path)?;
    if suite.runs.is_empty() {
        return Err(exit::invalid(format!("{}: runs is empty", path.display())));
    }
    if let Some((key, _)) = suite.runs.iter().flat_map(|r| &r.matrix).find(|(_, values)| values.is_empty()) {
        return Err(exit::invalid(format!("{}: matrix {key:?} has no values", path.display())));
    }
    Ok(suite)
}

/// `set` with every combination of the matrix's values (keys in order), or
/// `set` alone without a matrix.
fn combinations(
    set: &BTreeMap<String, String>,
    matrix: &BTreeMap<String, Vec<String>>,
) -> Vec<BTreeMap<String, String>> {
    let mut all = vec![set.clone()];
    for (key, values) in matrix {
        all = all
            .into_iter()
            .flat_map(|partial| {
                values.iter().map(move |v| {
                    let mut next = partial.clone();
                    next.insert(key.clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    all
}

/// Whether `text` matches `pattern`, where `*` is any text and `?` one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("redis-*", "redis-cache"));
        assert!(wildcard("*cluster", "redis-cluster"));
        assert!(wildcard("redis-?ache", "redis-cache"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("redis-*", "counter-service"));
        assert!(!wildcard("redis", "redis-cache"));
        assert!(wildcard("r*s*e", "redis-cache"));
    }

    #[test]
    fn a_matrix_makes_a_run_per_combination_with_the_set_values() {
        let set = BTreeMap::from([("keys".to_string(), "10".to_string())]);
        let matrix = BTreeMap::from([
            ("image".to_string(), vec!["a".to_string(), "b".to_string()]),
            ("replicas".to_string(), vec!["1".to_string(), "3".to_string()]),
        ]);
        let all = combinations(&set, &matrix);
        let shown: Vec<String> = all.iter().map(|m| format!("{}{}{}", m["image"], m["replicas"], m["keys"])).collect();
        assert_eq!(shown, ["a110", "a310", "b110", "b310"]);
        assert_eq!(combinations(&set, &BTreeMap::new()), [set]);
    }
}
