//! `runbook list`, `describe`, `plan`, `validate` and `schema`: reading
//! scenarios without touching a cluster.

use std::path::PathBuf;

use clap::Args;

use super::common::ScenarioArgs;
use super::out::outln;
use crate::engine::command;
use crate::exit;
use crate::scenario::{Scenario, StepKind, template};

/// Prints the built-in scenarios.
pub fn list() -> anyhow::Result<u8> {
    for name in Scenario::embedded_names() {
        let title = Scenario::embedded(&name).map(|s| s.file.title).unwrap_or_else(|_| "(invalid)".into());
        outln!("{name:<18} {title}")?;
    }
    Ok(exit::SUCCESS)
}

/// Options of `describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Which scenario.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
}

/// Prints a scenario's purpose, parameters and steps.
pub fn describe(args: DescribeArgs) -> anyhow::Result<u8> {
    let s = args.scenario.load()?;
    outln!("{} — {}\n", s.file.name, s.file.title)?;
    outln!("{}\n", s.file.objective.trim())?;
    if !s.file.parameters.is_empty() {
        outln!("Parameters:")?;
        for (k, p) in &s.file.parameters {
            let value = if p.secret { "(secret)".to_string() } else { p.default.clone() };
            outln!("  {k:<16} {value:<16} {}", p.description)?;
        }
        outln!()?;
    }
    outln!("Steps:")?;
    let vars = s.parameters(&args.scenario.set).unwrap_or_default();
    let render = |t: &str| template::render(t, &vars).unwrap_or_else(|_| t.to_string());
    for step in s.steps() {
        outln!("  {:<10} {:<22} {}", format!("{:?}", step.kind).to_lowercase(), step.spec.id, step.spec.title)?;
        if let Some(requirement) = &step.spec.requirement {
            outln!("  {:<33} requires: {}", "", render(requirement))?;
        }
        if let Some(seed) = step.spec.seed.as_deref().and_then(|s| crate::scenario::seeds::SeedLine::parse(s).ok()) {
            let quoted = seed.text().unwrap_or_default();
            outln!("  {:<33} seed {} line {}: {quoted}", "", seed.doc, seed.line)?;
        }
    }
    if let Some(readme) = s.readme() {
        outln!("\n{}", readme.trim())?;
    }
    Ok(exit::SUCCESS)
}

/// Options of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Which scenario.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Show the steps `verify` would run (checks only).
    #[arg(long)]
    pub verify: bool,
}

/// Prints the rendered steps and their kubectl equivalents, touching nothing.
pub fn plan(args: PlanArgs) -> anyhow::Result<u8> {
    let s = args.scenario.load()?;
    let vars = s.parameters(&args.scenario.set).map_err(exit::invalid)?;
    let render = |t: &str| template::render(t, &vars).unwrap_or_else(|_| t.to_string());
    let steps: Vec<_> = s.steps().iter().filter(|st| !args.verify || st.kind == StepKind::Check).collect();
    for (i, step) in steps.iter().enumerate() {
        outln!(
            "{:>2}. [{}] {} — {}",
            i + 1,
            format!("{:?}", step.kind).to_lowercase(),
            step.spec.id,
            render(&step.spec.title)
        )?;
        outln!("    $ {}", command::kubectl(&step.action, None, &render))?;
        if let Some(e) = step.action.expectation() {
            let words = crate::engine::expect::describe(e, &render);
            if !words.is_empty() {
                outln!("    expect: {words}")?;
            }
        }
    }
    if !args.verify && !s.file.cleanup.is_empty() {
        outln!("cleanup:")?;
        for step in s.cleanup_steps() {
            outln!("    $ {}", command::kubectl(&step.action, None, &render))?;
        }
    }
    Ok(exit::SUCCESS)
}

/// Options of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files to check (or built-in names).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Check with this parameter value, as `run --set` would use it (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = super::common::parse_key_value)]
    pub set: Vec<(String, String)>,
}

/// Checks scenario files; every problem is printed as file:line:column.
pub fn validate(args: ValidateArgs) -> anyhow::Result<u8> {
    let mut bad = false;
    for f in &args.files {
        let name = f.display().to_string();
        let looks_like_a_path = name.contains('/') || name.ends_with(".yaml") || name.ends_with(".yml");
        let loaded = if f.exists() || looks_like_a_path { Scenario::from_path(f) } else { Scenario::embedded(&name) };
        let loaded = loaded.and_then(|s| {
            let problems = s.problems_with(&args.set);
            if problems.is_empty() { Ok(s) } else { Err(problems) }
        });
        match loaded {
            Ok(s) => {
                outln!("{}: valid ({}, {} cleanup)", s.path, plural(s.file.steps.len(), "step"), s.file.cleanup.len())?
            }
            Err(problems) => {
                bad = true;
                for p in problems {
                    eprintln!("{p}");
                }
            }
        }
    }
    Ok(if bad { exit::INVALID_INPUT } else { exit::SUCCESS })
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// Prints the JSON Schema of the scenario format.
pub fn schema() -> anyhow::Result<u8> {
    outln!("{}", scenario_schema())?;
    Ok(exit::SUCCESS)
}

/// The JSON Schema of scenario files, as published in docs/scenario.schema.json.
pub fn scenario_schema() -> String {
    let schema = schemars::schema_for!(crate::scenario::ScenarioFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn published_schema_is_current() {
        let published = include_str!("../../docs/scenario.schema.json");
        assert_eq!(
            published.trim(),
            super::scenario_schema().trim(),
            "run `runbook schema > docs/scenario.schema.json`"
        );
    }
}
