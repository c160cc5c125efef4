//! The command line: one file per subcommand, every flag documented.

pub mod lab;

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
    /// Run, stop and inspect the embedded lab cluster.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Internal: the process that holds a lab pod's namespaces.
    #[command(name = "__sandbox", hide = true)]
    Sandbox {
        /// The sandbox spec (JSON) written by the lab's kubelet.
        spec: std::path::PathBuf,
    },
}

/// Runs the parsed command and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Lab(cmd) => lab::run(cmd),
        Command::Sandbox { spec } => {
            crate::lab::kubelet::sandbox::run(&spec)?;
            Ok(crate::exit::SUCCESS)
        }
    }
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
