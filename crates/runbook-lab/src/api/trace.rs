//! A line per API request on stderr (the detached lab's `lab.log`) when
//! `RUNBOOK_LAB_TRACE` is set: when it arrived (ms since the lab started),
//! how long it was served, its method, path and status. To see what a
//! client asks and in what order, e.g. how many round trips a check costs.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;

/// The environment variable that turns tracing on.
pub const ENV: &str = "RUNBOOK_LAB_TRACE";

static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);
static ON: LazyLock<bool> = LazyLock::new(|| std::env::var_os(ENV).is_some_and(|v| !v.is_empty()));

/// A request being served, when tracing is on.
pub struct Traced {
    arrived: Instant,
    line: String,
}

/// Notes a request's arrival.
pub fn start(req: &Request) -> Option<Traced> {
    if !*ON {
        return None;
    }
    LazyLock::force(&STARTED);
    let line = format!("{} {}", req.method(), req.uri());
    Some(Traced { arrived: Instant::now(), line })
}

/// Prints the request's line once it has been served.
pub fn end(traced: Option<Traced>, response: &Response) {
    if let Some(Traced { arrived, line }) = traced {
        let at = arrived.duration_since(*STARTED).as_secs_f64() * 1000.0;
        let took = arrived.elapsed().as_secs_f64() * 1000.0;
        eprintln!("trace {at:>10.1}ms {took:>7.1}ms {} {line}", response.status().as_u16());
    }
}
