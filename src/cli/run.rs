//! `runbook run` and `runbook verify`.

use clap::Args;

use super::common::{ClusterArgs, ReportArgs, duration_arg};
use super::out::outln;
use super::run_setup::{
    Checked, RunFlags, connect, create_namespace, ephemeral_name, most_serious, namespace_overrides, new_run_id,
};
use super::suite::ScenariosArgs;
use crate::engine::{self, RunOptions, Target};
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
    /// Grade many learners: a YAML roster of `learners: [{name, kubeconfig,
    /// context, namespace, set}]` (paths relative to it). A line per learner,
    /// then the class summary; exit 0 only if every learner passed. A
    /// learner whose cluster cannot be reached is that learner's error row.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "context", "namespace", "lab"])]
    pub roster: Option<std::path::PathBuf>,
    /// With several scenarios or a roster: how many are verified at once.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,
    /// With --roster: the class summary as csv=FILE (a row per learner) or
    /// json=FILE (each row with the learner's whole report); repeatable.
    #[arg(long = "class-report", value_name = "KIND=FILE", requires = "roster",
          value_parser = super::roster::parse_class_report)]
    pub class_reports: Vec<super::roster::ClassReport>,
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
    choice.lab_nodes = choice.lab_nodes.or(loaded.file.lab_nodes);
    if flags.ephemeral_namespace {
        choice.namespace = Some(ephemeral_name(&loaded.file.name, &run_id));
    }
    let overrides = namespace_overrides(&loaded, &mut choice, &set).map_err(crate::exit::invalid)?;
    // Parameters are checked before touching any cluster.
    loaded.parameters(&overrides).map_err(crate::exit::invalid)?;
    // A namespace made for the run is the one thing done before the run.
    let checked = if flags.ephemeral_namespace { Checked::Now } else { Checked::WithTheRun };
    let Some(conn) = connect(&choice, mode, checked, &interrupt, report.quiet).await? else {
        return Ok(crate::exit::INTERRUPTED);
    };
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
        reachable: Some(conn.reachable.clone()),
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
    if let Some(roster) = &args.roster {
        let mut plan = args.scenario.plan()?;
        if plan.runs.len() != 1 {
            return Err(crate::exit::invalid("--roster grades one scenario"));
        }
        let one = plan.runs.remove(0);
        let grading = super::roster::Grading {
            scenario: &one.scenario,
            set: &one.set,
            parallel: args.parallel,
            reports: &args.class_reports,
            quiet: args.report.quiet,
        };
        return super::runtime()?.block_on(super::roster::grade(roster, grading));
    }
    let flags = RunFlags { parallel: args.parallel, ..RunFlags::default() };
    super::runtime()?.block_on(execute(&args.scenario, &args.cluster, &args.report, Mode::Verify, flags))
}
