//! The page's charts, drawn as inline SVG from what the engine measured: a
//! Gantt-like timeline of the steps, and for each drill its moments (pod
//! deleted, new master named, old pod back) over its requests or writes per
//! interval, succeeded and failed.

use maud::{Markup, html};
use serde_json::Value;

/// Chart width in SVG units (the page scales it).
const WIDTH: f64 = 800.0;
/// Room left of a plot for labels.
const LEFT: f64 = 190.0;
/// Height of one step's row in the timeline.
const ROW: f64 = 16.0;

/// A tick spacing (seconds) that puts at most about ten ticks on `span`.
fn tick_step(span_s: f64) -> f64 {
    const STEPS: [f64; 12] = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0];
    STEPS.into_iter().find(|s| span_s / s <= 10.0).unwrap_or(600.0)
}

/// Tick label: whole seconds without a fraction.
fn seconds(s: f64) -> String {
    if s.fract() == 0.0 { format!("{s:.0}s") } else { format!("{s:.1}s") }
}

/// x axis ticks from 0 to `span_s` over `x0..x1`, at height `y`.
fn axis(span_s: f64, x0: f64, x1: f64, y: f64) -> Markup {
    let step = tick_step(span_s);
    let ticks = (0..=((span_s / step).floor() as usize)).map(|i| i as f64 * step);
    let scale = (x1 - x0) / span_s.max(0.001);
    html! {
        g.axis {
            line x1=(x0) y1=(y) x2=(x1) y2=(y) {}
            @for t in ticks {
                @let at = format!("{:.1}", x0 + t * scale);
                line x1=(at) y1=(y) x2=(at) y2=(y + 4.0) {}
                text x=(at) y=(y + 15.0) text-anchor="middle" { (seconds(t)) }
            }
        }
    }
}

/// Every step that ran as a bar from its start to its end, coloured by status.
pub fn step_timeline(steps: &[Value]) -> Markup {
    let ran: Vec<(&Value, f64, f64)> = steps
        .iter()
        .filter_map(|s| Some((s, s["started_ms"].as_f64()?, s["duration"].as_f64().unwrap_or(0.0))))
        .collect();
    let Some(t0) = ran.iter().map(|r| r.1).reduce(f64::min) else { return html! {} };
    let end = ran.iter().map(|r| r.1 + r.2).fold(t0, f64::max);
    let span_s = ((end - t0) / 1000.0).max(0.1);
    let (x0, x1) = (LEFT, WIDTH - 10.0);
    let scale = (x1 - x0) / span_s;
    let height = ran.len() as f64 * ROW + 30.0;
    html! {
        section id="timeline" {
            h2 { "Timeline" }
            svg.timeline viewBox=(format!("0 0 {WIDTH} {height}")) role="img"
                aria-label=(format!("{} steps over {}", ran.len(), seconds((span_s * 10.0).round() / 10.0))) {
                @for (row, (step, start, duration)) in ran.iter().enumerate() {
                    @let y = row as f64 * ROW + 4.0;
                    @let x = x0 + (start - t0) / 1000.0 * scale;
                    @let w = (duration / 1000.0 * scale).max(1.5);
                    g.(format!("bar status-{}", step["status"].as_str().unwrap_or_default())) data-step=(step["id"].as_str().unwrap_or_default()) {
                        title { (step["id"].as_str().unwrap_or_default()) ": " (super::millis(&step["duration"])) }
                        text.label x=(x0 - 6.0) y=(y + 11.0) text-anchor="end" { (step["id"].as_str().unwrap_or_default()) }
                        rect x=(format!("{x:.1}")) y=(y) width=(format!("{w:.1}")) height=(ROW - 4.0) rx="2" {}
                    }
                }
                (axis(span_s, x0, x1, ran.len() as f64 * ROW + 6.0))
            }
        }
    }
}

/// A drill's chart, when the step recorded moments or traffic: requests or
/// writes per interval (succeeded stacked under failed), and each moment as
/// a numbered line, listed under the chart.
pub fn drill_chart(step: &Value) -> Markup {
    let marks = step["timeline"].as_array().map_or(&[][..], |v| v);
    let traffic = &step["traffic"];
    let Some(t0) = step["started_ms"].as_f64() else { return html! {} };
    if marks.is_empty() && traffic.is_null() {
        return html! {};
    }
    let count = |key: &str| -> Vec<f64> {
        traffic[key].as_array().into_iter().flatten().map(|v| v.as_f64().unwrap_or(0.0)).collect()
    };
    let (succeeded, failed) = (count("succeeded"), count("failed"));
    let (start, interval) =
        (traffic["start_ms"].as_f64().unwrap_or(t0), traffic["interval_ms"].as_f64().unwrap_or(500.0));
    let traffic_end = start + succeeded.len() as f64 * interval;
    let marks_end = marks.iter().filter_map(|m| m["at_ms"].as_f64()).fold(t0, f64::max);
    let end = (t0 + step["duration"].as_f64().unwrap_or(0.0)).max(traffic_end).max(marks_end);
    let span_s = ((end - t0) / 1000.0).max(0.1);
    let (x0, x1, top, bottom) = (50.0, WIDTH - 10.0, 40.0, 186.0);
    let x = |ms: f64| x0 + (ms - t0) / 1000.0 / span_s * (x1 - x0);
    let peak = succeeded.iter().zip(&failed).map(|(s, f)| s + f).fold(1.0, f64::max);
    let y = |n: f64| (bottom - top) * n / peak;
    let label = traffic["label"].as_str().unwrap_or("requests");
    let total_failed: f64 = failed.iter().sum();
    let id = step["id"].as_str().unwrap_or_default();
    html! {
        figure.drill data-step=(id) {
            svg.drill-chart viewBox=(format!("0 0 {WIDTH} 234")) role="img"
                aria-label=(format!("{id}: {} {label}, {total_failed} failed, {} moments", succeeded.iter().sum::<f64>() + total_failed, marks.len())) {
                @if !succeeded.is_empty() {
                    text.unit x=(x0) y="228" { (label) " per " (super::millis(&Value::from(interval))) " (peak " (peak) ")" }
                }
                @for (i, (ok, bad)) in succeeded.iter().zip(&failed).enumerate() {
                    @let left = x(start + i as f64 * interval);
                    @let w = ((x(start + (i + 1) as f64 * interval) - left) - 1.0).max(0.5);
                    @if *ok > 0.0 {
                        rect.ok x=(format!("{left:.1}")) y=(format!("{:.1}", bottom - y(*ok))) width=(format!("{w:.1}")) height=(format!("{:.1}", y(*ok))) {}
                    }
                    @if *bad > 0.0 {
                        rect.failed x=(format!("{left:.1}")) y=(format!("{:.1}", bottom - y(*ok) - y(*bad))) width=(format!("{w:.1}")) height=(format!("{:.1}", y(*bad))) {}
                    }
                }
                @for (n, (at, row)) in mark_positions(marks, t0, &x).into_iter().enumerate() {
                    @let cy = top - 26.0 + row as f64 * 16.0;
                    g.mark {
                        line x1=(format!("{at:.1}")) y1=(cy + 4.0) x2=(format!("{at:.1}")) y2=(bottom) {}
                        circle cx=(format!("{at:.1}")) cy=(cy) r="7" {}
                        text x=(format!("{at:.1}")) y=(cy + 3.5) text-anchor="middle" { (n + 1) }
                    }
                }
                (axis(span_s, x0, x1, bottom))
            }
            figcaption {
                @if !succeeded.is_empty() {
                    span.legend-ok { "succeeded" } " " span.legend-failed { "failed (" (total_failed) ")" }
                }
                ol.moments {
                    @for mark in marks {
                        li { span.at { (seconds(((mark["at_ms"].as_f64().unwrap_or(t0) - t0) / 100.0).round() / 10.0)) } " " (mark["what"].as_str().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// Where each moment's numbered circle goes: its x, and the row (0 or 1)
/// that keeps it clear of the previous circle when two moments are close.
fn mark_positions(marks: &[Value], t0: f64, x: &impl Fn(f64) -> f64) -> Vec<(f64, u8)> {
    let mut placed: Vec<(f64, u8)> = Vec::new();
    for mark in marks {
        let at = x(mark["at_ms"].as_f64().unwrap_or(t0));
        let row = match placed.last() {
            Some(&(prev, row)) if at - prev < 16.0 => 1 - row,
            _ => 0,
        };
        placed.push((at, row));
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_stay_few() {
        assert_eq!(tick_step(0.5), 0.1);
        assert_eq!(tick_step(9.0), 1.0);
        assert_eq!(tick_step(95.0), 10.0);
        assert_eq!(tick_step(20_000.0), 600.0);
    }

    #[test]
    fn close_moments_take_turns_between_two_rows() {
        let marks: Vec<Value> = [0, 10, 20, 5000].iter().map(|ms| serde_json::json!({"at_ms": ms})).collect();
        let rows: Vec<u8> = mark_positions(&marks, 0.0, &|ms| ms / 10.0).into_iter().map(|p| p.1).collect();
        assert_eq!(rows, [0, 1, 0, 0]);
    }
}
