//! `runbook run` and `runbook verify`.

use clap::Args;

use super::common::{ClusterArgs, ReportArgs, ScenarioArgs};
use crate::engine::{self, RunOptions, Target};
use crate::kube::client;
use crate::report::event::Mode;

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which scenario.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Which cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Reports.
    #[command(flatten)]
    pub report: ReportArgs,
    /// Leave what the scenario deployed in place (skip cleanup).
    #[arg(long)]
    pub keep: bool,
    /// Let disruptive steps (pod deletion, failover drills) run on a cluster
    /// that is not the embedded lab.
    #[arg(long)]
    pub allow_disruption: bool,
}

/// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Which scenario.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Which cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Reports.
    #[command(flatten)]
    pub report: ReportArgs,
}

async fn execute(
    scenario: &ScenarioArgs,
    cluster: &ClusterArgs,
    report: &ReportArgs,
    mode: Mode,
    keep: bool,
    allow_disruption: bool,
) -> anyhow::Result<u8> {
    let loaded = scenario.load()?;
    // Parameters are checked before touching any cluster.
    loaded.parameters(&scenario.set).map_err(crate::exit::invalid)?;
    let mut choice = cluster.choice();
    if choice.namespace.is_none() {
        choice.namespace = loaded.file.namespace.clone();
    }
    let conn = client::connect(&choice, mode == Mode::Verify, mode == Mode::Run).await?;
    if let Some(note) = &conn.note
        && !report.quiet
    {
        println!("{note}");
    }
    let options =
        RunOptions { mode, overrides: scenario.set.clone(), keep, allow_disruption: allow_disruption || conn.is_lab };
    let target = Target {
        client: conn.client.clone(),
        namespace: conn.namespace.clone(),
        context: conn.context.clone(),
        server: conn.server.clone(),
    };
    let code = engine::run(&loaded, target, &options, report.reporters()).await;
    if let Some(lab) = conn.lab {
        lab.shutdown().await;
    }
    code
}

/// Runs `run`.
pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    super::runtime()?.block_on(execute(
        &args.scenario,
        &args.cluster,
        &args.report,
        Mode::Run,
        args.keep,
        args.allow_disruption,
    ))
}

/// Runs `verify`.
pub fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    super::runtime()?.block_on(execute(&args.scenario, &args.cluster, &args.report, Mode::Verify, false, false))
}
