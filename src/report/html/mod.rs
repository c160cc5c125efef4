//! `--report html=FILE`: one self-contained page (inline CSS and SVG, no
//! script, no network: a Content-Security-Policy forbids any fetch) for
//! people who did not run the scenario. It is rendered from the JSON report's
//! document, so `runbook report FILE.json --html OUT` gives the same page
//! later. maud escapes every value it prints: outputs and logs are text.

mod charts;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::event::Event;
use super::json::JsonReport;
use super::{Reporter, Sink};

/// Collects the run as the JSON report does and writes it as HTML.
pub struct HtmlReport {
    sink: Sink,
    json: JsonReport,
}

impl HtmlReport {
    /// An HTML report written to `sink` when the run ends.
    pub fn new(sink: Sink) -> Self {
        HtmlReport { sink, json: JsonReport::collecting() }
    }
}

impl Reporter for HtmlReport {
    fn event(&mut self, event: &Event) {
        self.json.event(event);
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.sink.write(render(&self.json.document()).as_bytes())
    }
}

/// What the page allows itself: inline styles and nothing else.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// The page for a JSON report's document.
pub fn render(doc: &Value) -> String {
    let run = &doc["run"];
    let summary = &doc["summary"];
    let verdict = text(&summary["verdict"]);
    let title = format!("{} — {}", text(&run["scenario"]), if verdict.is_empty() { "unfinished" } else { &verdict });
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(POLICY);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(include_str!("style.css"))) }
            }
            body {
                (header(run, summary))
                (charts::step_timeline(doc["steps"].as_array().map_or(&[][..], |v| v)))
                section id="steps" {
                    h2 { "Steps" }
                    @for step in doc["steps"].as_array().into_iter().flatten() {
                        (step_section(step))
                    }
                }
                (cleanup(doc["cleanup"].as_array().map_or(&[][..], |v| v)))
                (verdict_section(summary))
            }
        }
    };
    page.into_string()
}

/// A JSON value as display text ("" for null).
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Milliseconds as "1.2 s" or "35 ms".
fn millis(v: &Value) -> String {
    let ms = v.as_f64().unwrap_or(0.0);
    if ms >= 1000.0 { format!("{:.1} s", ms / 1000.0) } else { format!("{ms:.0} ms") }
}

fn header(run: &Value, summary: &Value) -> Markup {
    let verdict = text(&summary["verdict"]);
    let score = summary["score"].as_array().filter(|s| s.get(1).and_then(Value::as_u64).unwrap_or(0) > 0);
    let counts = format!(
        "{} passed, {} failed, {} errors, {} skipped",
        text(&summary["passed"]),
        text(&summary["failed"]),
        text(&summary["errors"]),
        text(&summary["skipped"])
    );
    let nodes = run["environment"]["nodes"].as_array().into_iter().flatten();
    html! {
        header {
            h1 { (text(&run["title"])) }
            p.objective { (text(&run["objective"])) }
            div.verdict.(format!("verdict-{verdict}")) id="verdict" {
                span.word { (verdict.to_uppercase()) }
                @if let Some(score) = score {
                    span.score { "score " (text(&score[0])) "/" (text(&score[1])) }
                }
                span.counts { (counts) " · " (millis(&summary["duration"])) }
            }
            table.facts {
                tr { th { "Scenario" } td { code { (text(&run["scenario"])) } " (" (text(&run["mode"])) ")" } }
                @if let Some(source) = run["source"].as_str() { tr { th { "Source" } td { (source) } } }
                tr { th { "Cluster" } td { "context " code { (text(&run["context"])) } ", " (text(&run["server"])) } }
                tr { th { "Namespace" } td { code { (text(&run["namespace"])) } } }
                tr { th { "Run id" } td { code { (text(&run["run_id"])) } } }
                tr { th { "Started" } td { (text(&run["started_at"])) } }
                tr { th { "Tool" } td { (text(&run["tool"])) } }
                tr { th { "Kubernetes" } td { (text(&run["environment"]["kubernetes_version"])) } }
                @for node in nodes {
                    tr { th { "Node" } td {
                        (text(&node["name"])) ": " (text(&node["os_image"])) ", kernel " (text(&node["kernel"]))
                        ", " (text(&node["container_runtime"]))
                    } }
                }
            }
            @if let Some(parameters) = run["parameters"].as_array().filter(|p| !p.is_empty()) {
                details.parameters {
                    summary { "Parameters (" (parameters.len()) ")" }
                    table { @for p in parameters { tr { th { (text(&p[0])) } td { code { (text(&p[1])) } } } } }
                }
            }
        }
    }
}

fn step_section(step: &Value) -> Markup {
    let status = text(&step["status"]);
    let id = text(&step["id"]);
    let failed = status == "failed" || status == "error";
    html! {
        section.step.(format!("status-{status}")) id=(format!("step-{id}")) data-status=(status) {
            h3 {
                span.badge { (status.to_uppercase()) }
                " " span.index { "[" (text(&step["index"])) "/" (text(&step["total"])) "]" }
                " " code { (id) } " — " (text(&step["title"]))
                " " span.duration { "(" (millis(&step["duration"])) ")" }
                @if let Some(points) = step["points"].as_u64() { " " span.points { (points) " pt" } }
            }
            @if !text(&step["explanation"]).is_empty() { p.explanation { (text(&step["explanation"])) } }
            @if step["expected"].is_string() || step["actual"].is_string() {
                table.check {
                    tr { th { "Expected" } td { code { (text(&step["expected"])) } } }
                    tr { th { "Actual" } td { code { (text(&step["actual"])) } } }
                    @if let Some(w) = step["looked_at"].as_str() { tr { th { "Where" } td { (w) } } }
                    @if failed { @if let Some(h) = step["hint"].as_str() { tr.hint { th { "Hint" } td { (h) } } } }
                }
            }
            @if let Some(m) = step["message"].as_str() { p.message { (m) } }
            @if let Some(measurements) = step["measurements"].as_array().filter(|m| !m.is_empty()) {
                table.measurements {
                    @for m in measurements {
                        tr { th { (text(&m["name"])) } td { (measured(&m["value"])) " " (text(&m["unit"])) } }
                    }
                }
            }
            (charts::drill_chart(step))
            details.command {
                summary { "Command" }
                pre { @if text(&step["command"]).is_empty() { "(no kubectl equivalent: runbook does this itself)" } @else { (text(&step["command"])) } }
            }
            @if status != "skipped" {
                details.output {
                    summary { "Output" }
                    pre { @if text(&step["output"]).trim().is_empty() { "(no output)" } @else { (text(&step["output"])) } }
                }
            }
            @if let Some(d) = step["diagnostics"].as_str() {
                details.diagnostics open {
                    summary { "Diagnostics" }
                    pre { (d) }
                }
            }
        }
    }
}

/// A measured value without a spurious fraction.
fn measured(v: &Value) -> String {
    let x = v.as_f64().unwrap_or(0.0);
    if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

fn cleanup(steps: &[Value]) -> Markup {
    html! {
        @if !steps.is_empty() {
            section id="cleanup" {
                h2 { "Cleanup" }
                ul {
                    @for s in steps {
                        li.(format!("status-{}", text(&s["status"]))) {
                            code { (text(&s["command"])) } " — " (text(&s["status"]))
                            @if let Some(m) = s["message"].as_str() { " (" (m) ")" }
                        }
                    }
                }
            }
        }
    }
}

fn verdict_section(summary: &Value) -> Markup {
    html! {
        section id="summary" {
            h2 { "Verdict" }
            p { strong { (text(&summary["verdict"]).to_uppercase()) } ", exit code " (text(&summary["exit_code"])) }
            @if let Some(fixes) = summary["to_fix"].as_array().filter(|f| !f.is_empty()) {
                h3 { "What to fix" }
                ul.to-fix {
                    @for f in fixes {
                        li { strong { (text(&f["title"])) } " (" (text(&f["points"])) " pt): " (text(&f["advice"])) }
                    }
                }
            }
            @if let Some(left) = summary["leftovers"].as_array().filter(|l| !l.is_empty()) {
                h3 { "Left behind in the cluster" }
                ul.leftovers { @for l in left { li { code { (text(l)) } } } }
            }
        }
    }
}
