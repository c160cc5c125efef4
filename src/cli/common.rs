//! Arguments several subcommands share: which scenario, which cluster, which reports.

use std::path::PathBuf;

use clap::Args;

use crate::exit;
use crate::k8s::client::ClusterChoice;
use crate::report::{
    Reporter, Sink, audit::AuditReport, html::HtmlReport, json::JsonReport, junit::JunitReport, progress::Progress,
};
use crate::scenario::{Problem, Scenario};

/// Which scenario.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// Name of a built-in scenario (see `runbook list`).
    #[arg(value_name = "NAME", required_unless_present = "file", conflicts_with = "file")]
    pub name: Option<String>,
    /// A scenario file of your own instead of a built-in one.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Override a parameter (repeatable): `--set maxmemory=4mb`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
}

/// `KEY=VALUE` of `--set`.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

impl ScenarioArgs {
    /// Loads and validates the scenario; problems exit 3 with file:line:column.
    pub fn load(&self) -> anyhow::Result<Scenario> {
        let loaded = match (&self.file, &self.name) {
            (Some(f), _) => Scenario::from_path(f),
            (None, Some(n)) => Scenario::embedded(n),
            (None, None) => return Err(exit::invalid("name a scenario or give -f FILE")),
        };
        let invalid = |problems: Vec<Problem>| {
            exit::invalid(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        };
        let scenario = loaded.map_err(invalid)?;
        // A value given with --set that breaks a manifest is refused here,
        // before anything touches the cluster, and named.
        let problems = scenario.problems_with(&self.set);
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        Ok(scenario)
    }
}

/// Which kubeconfig and context, as kubectl chooses them.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Path to the kubeconfig (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// Which cluster and namespace a scenario runs on.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Which kubeconfig and context.
    #[command(flatten)]
    pub kube: KubeconfigArgs,
    /// Namespace for the scenario's objects (default: the context's namespace).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Run on a fresh embedded lab cluster (needs root), removed afterwards.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub lab: bool,
    /// How many nodes the `--lab` cluster has (default 1; a scenario's
    /// `nodeDown` drill needs two or more).
    #[arg(long, value_name = "N", requires = "lab", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub lab_nodes: Option<u32>,
}

impl ClusterArgs {
    /// The choice for the client module.
    pub fn choice(&self) -> ClusterChoice {
        ClusterChoice {
            kubeconfig: self.kube.kubeconfig.clone(),
            context: self.kube.context.clone(),
            namespace: self.namespace.clone(),
            lab: self.lab,
            lab_nodes: self.lab_nodes,
        }
    }
}

/// A report to write.
#[derive(Debug, Clone)]
pub enum ReportSpec {
    /// JSON document.
    Json(PathBuf),
    /// JUnit XML.
    Junit(PathBuf),
    /// Markdown audit report.
    Audit(PathBuf),
    /// Self-contained HTML page with charts.
    Html(PathBuf),
}

fn parse_report(text: &str) -> Result<ReportSpec, String> {
    match text.split_once('=') {
        Some(("json", p)) if !p.is_empty() => Ok(ReportSpec::Json(p.into())),
        Some(("junit", p)) if !p.is_empty() => Ok(ReportSpec::Junit(p.into())),
        Some(("audit", p)) if !p.is_empty() => Ok(ReportSpec::Audit(p.into())),
        Some(("html", p)) if !p.is_empty() => Ok(ReportSpec::Html(p.into())),
        _ => Err(format!("expected json=FILE, junit=FILE, audit=FILE or html=FILE, got {text:?}")),
    }
}

/// Output options.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write a report (repeatable): json=FILE, junit=FILE, audit=FILE (Markdown)
    /// or html=FILE (one self-contained page with step and drill charts).
    #[arg(long = "report", value_name = "KIND=FILE", value_parser = parse_report)]
    pub reports: Vec<ReportSpec>,
    /// Print only the verdict line.
    #[arg(short, long)]
    pub quiet: bool,
}

impl ReportArgs {
    /// The reporters: terminal progress and the requested files.
    pub fn reporters(&self) -> crate::report::Reporters {
        self.reporters_of_run(None)
    }

    /// The reporters of run `n` of several (`run --repeat`): each file report
    /// but JSON goes to its own file, `NAME-n.EXT`; JSON reports are left out
    /// (the caller writes one document with every run and the statistics).
    pub fn reporters_of_run(&self, n: Option<usize>) -> crate::report::Reporters {
        let mut reporters = crate::report::Reporters::default();
        reporters.push(Box::new(Progress::new(self.quiet, Sink::Stdout)));
        let file = |p: &PathBuf| Sink::File(n.map_or_else(|| p.clone(), |n| numbered(p, n)));
        for spec in &self.reports {
            let r: Box<dyn Reporter> = match spec {
                ReportSpec::Json(_) if n.is_some() => continue,
                ReportSpec::Json(p) => Box::new(JsonReport::new(file(p))),
                ReportSpec::Junit(p) => Box::new(JunitReport::new(file(p))),
                ReportSpec::Audit(p) => Box::new(AuditReport::new(file(p))),
                ReportSpec::Html(p) => Box::new(HtmlReport::new(file(p))),
            };
            reporters.push(r);
        }
        reporters
    }

    /// The files of the JSON reports asked for.
    pub fn json_files(&self) -> impl Iterator<Item = &PathBuf> {
        self.reports.iter().filter_map(|r| match r {
            ReportSpec::Json(p) => Some(p),
            _ => None,
        })
    }
}

/// `report.xml` → `report-2.xml` (`report` → `report-2`).
pub fn numbered(path: &std::path::Path, n: usize) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

/// A YAML file of runbook's own (a suite, a roster) read into `T`; a file
/// that cannot be read or parsed is invalid input naming file:line:column.
pub fn read_yaml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| exit::invalid(format!("{}: {e}", path.display())))?;
    serde_yaml_ng::from_str(&text).map_err(|e| {
        let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
        exit::invalid(format!("{}{at}: {e}", path.display()))
    })
}

/// A duration flag (`90s`, `2m`); a bad one is a usage error (exit 3).
pub fn duration_arg(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    crate::scenario::parse_duration(text)
        .ok_or_else(|| exit::invalid(format!("{flag} {text:?}: expected a duration such as 90s or 2m")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sets_and_reports() {
        assert_eq!(parse_key_value("maxmemory=4mb").unwrap(), ("maxmemory".into(), "4mb".into()));
        assert!(parse_key_value("novalue").is_err());
        assert!(matches!(parse_report("junit=out.xml").unwrap(), ReportSpec::Junit(_)));
        assert!(matches!(parse_report("html=out.html").unwrap(), ReportSpec::Html(_)));
        assert!(parse_report("pdf=x").is_err());
        assert!(parse_report("html=").is_err());
        assert_eq!(numbered(std::path::Path::new("out/report.xml"), 2), PathBuf::from("out/report-2.xml"));
        assert_eq!(numbered(std::path::Path::new("report"), 3), PathBuf::from("report-3"));
    }
}
