//! The command line: one file per subcommand, every flag documented.

pub mod cleanup;
pub mod common;
pub mod docs;
pub mod inspect;
pub mod lab;
pub mod out;
mod roster;
pub mod run;
mod run_setup;
pub mod suite;
mod suite_run;

use clap::{Parser, Subcommand};

/// Deploys and verifies Redis on Kubernetes, with an embedded lab cluster.
#[derive(Debug, Parser)]
#[command(name = "runbook", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the built-in scenarios.
    List,
    /// Show a scenario's purpose, parameters and steps.
    Describe(inspect::DescribeArgs),
    /// Show the rendered steps and the kubectl command equivalent to each (touches nothing).
    Plan(inspect::PlanArgs),
    /// Deploy a scenario, check every claim, clean up (exit 0 passed, 1 a check failed, 2 infrastructure, 3 invalid input).
    ///
    /// Without any kubeconfig, runs on a fresh embedded lab and says so.
    Run(run::RunArgs),
    /// Run only a scenario's checks against what is deployed, read-only, and grade it.
    Verify(run::VerifyArgs),
    /// Remove what runbook left in a cluster, found by its labels (all runs, or one with --run-id).
    Cleanup(cleanup::CleanupArgs),
    /// Check scenario files: unknown keys, missing files, bad templates and manifests.
    Validate(inspect::ValidateArgs),
    /// Print the JSON Schema of the scenario format (also in docs/scenario.schema.json).
    Schema,
    /// Run, stop and inspect the embedded lab cluster.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Print a shell completion script: `source <(runbook completions bash)`.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff), or write one per subcommand with --out-dir.
    Man(docs::ManArgs),
    /// Render a saved JSON report (`--report json=FILE`) again, as HTML.
    Report(docs::ReportArgs),
}

/// The internal command a lab pod's sandbox runs as (`runbook __sandbox
/// SPEC`): dispatched before clap, so completions and man pages never show it.
pub const SANDBOX_COMMAND: &str = "__sandbox";

/// Runs the pod sandbox described by `spec` (the JSON the lab's kubelet wrote).
pub fn run_sandbox(spec: &std::path::Path) -> anyhow::Result<u8> {
    crate::lab::kubelet::sandbox::run(spec)?;
    Ok(crate::exit::SUCCESS)
}

/// Runs the parsed command and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::List => inspect::list(),
        Command::Describe(args) => inspect::describe(args),
        Command::Plan(args) => inspect::plan(args),
        Command::Run(args) => run::run(args),
        Command::Verify(args) => run::verify(args),
        Command::Cleanup(args) => cleanup::run(args),
        Command::Validate(args) => inspect::validate(args),
        Command::Schema => inspect::schema(),
        Command::Lab(cmd) => lab::run(cmd),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
        Command::Report(args) => docs::report(args),
    }
}

/// The async runtime the commands use.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_argument_is_documented() {
        fn walk(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{} --{id} has no doc", cmd.get_name());
            }
            for sub in cmd.get_subcommands() {
                assert!(sub.get_about().is_some(), "{} has no doc", sub.get_name());
                walk(sub);
            }
        }
        walk(&Cli::command());
    }
}
