//! `runbook run` and `runbook verify`.

use std::time::Duration;

use clap::Args;

use super::common::{ClusterArgs, ReportArgs, duration_arg};
use super::out::outln;
use super::suite::ScenariosArgs;
use crate::engine::{self, RunOptions, Target};
use crate::k8s::client;
use crate::report::event::Mode;

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which scenarios.
    #[command(flatten)]
    pub scenario: ScenariosArgs,
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
    /// Run in a new namespace of its own, `<scenario>-<run id>`, removed at
    /// cleanup: for scenarios side by side on one cluster.
    #[arg(long, conflicts_with = "namespace")]
    pub ephemeral_namespace: bool,
    /// How long cleanup waits for what the run created to be gone before it
    /// reports the rest as left behind.
    #[arg(long, value_name = "DURATION", default_value = "120s")]
    pub cleanup_timeout: String,
    /// Run the scenario N times in a row on the same cluster, then print
    /// each step's pass rate and each measurement's min, median, p95 and max
    /// (the JSON report holds every run and the statistics; the other
    /// reports are written per run, as NAME-1.EXT, NAME-2.EXT, …). Exits 0
    /// only if every run passed.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000),
          conflicts_with = "ephemeral_namespace")]
    pub repeat: u32,
    /// Stop at the first step that does not pass and wait, with the cluster
    /// as the failure left it: runbook prints a kubeconfig for the run's
    /// context and namespace and what to look at, then cleans up when you
    /// press Enter (or Ctrl-C). Later steps are skipped.
    #[arg(long, conflicts_with_all = ["repeat", "parallel"])]
    pub pause_on_failure: bool,
    /// With several scenarios: run up to N at once, each in a namespace of
    /// its own (`<scenario>-<run id>`, removed at cleanup) unless -n is given.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,
}

/// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Which scenarios.
    #[command(flatten)]
    pub scenario: ScenariosArgs,
    /// Which cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Reports.
    #[command(flatten)]
    pub report: ReportArgs,
}

/// What `run` adds to `verify`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RunFlags {
    pub keep: bool,
    pub allow_disruption: bool,
    pub ephemeral_namespace: bool,
    pub cleanup_timeout: Duration,
    pub repeat: u32,
    pub pause_on_failure: bool,
    pub parallel: u32,
}

async fn execute(
    scenarios: &ScenariosArgs,
    cluster: &ClusterArgs,
    report: &ReportArgs,
    mode: Mode,
    flags: RunFlags,
) -> anyhow::Result<u8> {
    let mut plan = scenarios.plan()?;
    if plan.is_suite && (flags.repeat > 1 || flags.pause_on_failure) {
        return Err(crate::exit::invalid("--repeat and --pause-on-failure take one scenario"));
    }
    if flags.repeat > 1 && flags.parallel > 1 {
        // Repetitions side by side: a suite of the same run, N times.
        plan.runs = (1..=flags.repeat as usize)
            .map(|n| super::suite::Planned {
                label: format!("{} #{n}", plan.runs[0].label),
                scenario: plan.runs[0].scenario.clone(),
                set: plan.runs[0].set.clone(),
            })
            .collect();
        plan.name = format!("{} x{}", plan.runs[0].scenario.file.name, flags.repeat);
        plan.is_suite = true;
    }
    if plan.is_suite {
        return super::suite_run::run(plan, cluster.choice(), report, mode, flags).await;
    }
    let one = plan.runs.remove(0);
    let (loaded, set) = (one.scenario, one.set);
    let interrupt = crate::interrupt::watch()?;
    let run_id = new_run_id();
    let mut choice = cluster.choice();
    if flags.ephemeral_namespace {
        choice.namespace = Some(ephemeral_name(&loaded.file.name, &run_id));
    }
    let overrides = namespace_overrides(&loaded, &mut choice, &set).map_err(crate::exit::invalid)?;
    // Parameters are checked before touching any cluster.
    loaded.parameters(&overrides).map_err(crate::exit::invalid)?;
    let conn = tokio::select! {
        conn = client::connect(&choice, mode == Mode::Verify, mode == Mode::Run) => conn?,
        _ = interrupt.cancelled() => {
            eprintln!("interrupted before the run started: nothing was changed");
            return Ok(crate::exit::INTERRUPTED);
        }
    };
    if let Some(note) = &conn.note
        && !report.quiet
    {
        outln!("{note}")?;
    }
    if flags.ephemeral_namespace {
        create_namespace(&conn.client, &conn.namespace, &run_id).await?;
        if !report.quiet {
            outln!("namespace {} created for this run", conn.namespace)?;
        }
    }
    let mut options = RunOptions {
        mode,
        overrides,
        keep: flags.keep,
        allow_disruption: flags.allow_disruption || conn.is_lab,
        interrupt,
        run_id,
        cleanup_timeout: flags.cleanup_timeout,
        pause_on_failure: flags.pause_on_failure,
    };
    let target = || Target {
        client: conn.client.clone(),
        namespace: conn.namespace.clone(),
        context: conn.context.clone(),
        server: conn.server.clone(),
        kubeconfig: Some(conn.kubeconfig.clone()),
    };
    let code = if flags.repeat > 1 {
        repeatedly(&loaded, target, &mut options, report, flags.repeat).await
    } else {
        let reporters = std::sync::Arc::new(std::sync::Mutex::new(report.reporters()));
        let summary = engine::run(&loaded, target(), &options, reporters.clone()).await;
        summary.and_then(|s| engine::finish(&reporters, s))
    };
    if let Some(lab) = conn.lab {
        lab.shutdown().await;
    }
    code
}

/// `run --repeat N`: N runs in a row (each with a run id of its own), then the
/// statistics; stops early if interrupted. The exit code is the most serious
/// of the runs' (interrupted, invalid, infrastructure, failed), 0 if all passed.
async fn repeatedly(
    loaded: &crate::scenario::Scenario,
    target: impl Fn() -> Target,
    options: &mut RunOptions,
    report: &ReportArgs,
    times: u32,
) -> anyhow::Result<u8> {
    use crate::report::{Sink, json::JsonReport, sink::text_of, stats::Statistics};
    let (mut docs, mut codes) = (Vec::new(), Vec::new());
    for n in 1..=times as usize {
        if n > 1 {
            options.run_id = new_run_id();
        }
        if !report.quiet {
            outln!("\n── run {n} of {times} ──")?;
        }
        let mut reporters = report.reporters_of_run(Some(n));
        let (sink, json) = Sink::memory();
        reporters.push(Box::new(JsonReport::new(sink)));
        let reporters = std::sync::Arc::new(std::sync::Mutex::new(reporters));
        let summary = engine::run(loaded, target(), options, reporters.clone()).await?;
        codes.push(engine::finish(&reporters, summary)?);
        docs.push(serde_json::from_str::<serde_json::Value>(&text_of(&json))?);
        if options.interrupt.is_cancelled() {
            break;
        }
    }
    let statistics = Statistics::of(&docs);
    outln!("\n{}", statistics.text().trim_end())?;
    let document = serde_json::to_string_pretty(&statistics.document(docs))? + "\n";
    for path in report.json_files() {
        Sink::File(path.clone()).write(document.as_bytes())?;
    }
    Ok(most_serious(&codes))
}

/// The exit code that says most about several runs: an interruption first,
/// then the highest (invalid 3, infrastructure 2, failed 1), else 0.
pub(super) fn most_serious(codes: &[u8]) -> u8 {
    if codes.contains(&crate::exit::INTERRUPTED) {
        crate::exit::INTERRUPTED
    } else {
        codes.iter().copied().max().unwrap_or(0)
    }
}

/// `<scenario>-<run id>`, within the 63 characters of a namespace name.
pub(super) fn ephemeral_name(scenario: &str, run_id: &str) -> String {
    let stem: String = scenario.chars().take(63 - run_id.len() - 1).collect();
    format!("{}-{run_id}", stem.trim_end_matches('-'))
}

/// One namespace for the run: `-n` and `--set namespace=` must agree, and a
/// scenario with a `namespace` parameter (one that creates its namespace)
/// gets the chosen one. Returns the parameter overrides to use.
pub(super) fn namespace_overrides(
    scenario: &crate::scenario::Scenario,
    choice: &mut crate::k8s::client::ClusterChoice,
    set: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let from_set = set.iter().rev().find(|(k, _)| k == "namespace").map(|(_, v)| v.clone());
    let mut overrides = set.to_vec();
    match (&choice.namespace, &from_set) {
        (Some(n), Some(s)) if n != s => {
            return Err(format!("-n {n} and --set namespace={s} disagree: give one of them"));
        }
        (None, Some(s)) => choice.namespace = Some(s.clone()),
        (None, None) => choice.namespace = scenario.file.namespace.clone(),
        _ => {}
    }
    if scenario.file.parameters.contains_key("namespace")
        && from_set.is_none()
        && let Some(n) = &choice.namespace
    {
        overrides.push(("namespace".into(), n.clone()));
    }
    Ok(overrides)
}

/// Creates the run's own namespace, labelled as everything runbook creates,
/// so that cleanup (and `runbook cleanup --run-id`) removes it.
pub(super) async fn create_namespace(client: &kube::Client, name: &str, run_id: &str) -> anyhow::Result<()> {
    use crate::k8s::labels::{FIELD_MANAGER, stamp};
    use kube::api::{Api, Patch, PatchParams};
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut doc = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    stamp(&mut doc, run_id);
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&doc))
        .await
        .map_err(|e| anyhow::anyhow!("creating the run's namespace {name}: {e}"))?;
    Ok(())
}

/// Runs `run`.
pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let cleanup_timeout = duration_arg("--cleanup-timeout", &args.cleanup_timeout)?;
    let flags = RunFlags {
        keep: args.keep,
        allow_disruption: args.allow_disruption,
        ephemeral_namespace: args.ephemeral_namespace,
        cleanup_timeout,
        repeat: args.repeat,
        pause_on_failure: args.pause_on_failure,
        parallel: args.parallel,
    };
    super::runtime()?.block_on(execute(&args.scenario, &args.cluster, &args.report, Mode::Run, flags))
}

/// Runs `verify`.
pub fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    super::runtime()?.block_on(execute(&args.scenario, &args.cluster, &args.report, Mode::Verify, RunFlags::default()))
}

/// Eight random characters from Kubernetes' `generateName` alphabet (no
/// vowels, no look-alikes): valid in a label value and a namespace name.
pub(super) fn new_run_id() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..8).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_serious_exit_code_wins() {
        assert_eq!(most_serious(&[0, 0]), 0);
        assert_eq!(most_serious(&[0, 1, 0]), 1);
        assert_eq!(most_serious(&[1, 2, 0]), 2);
        assert_eq!(most_serious(&[3, 130, 1]), 130);
    }
}
