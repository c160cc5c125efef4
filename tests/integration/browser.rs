//! HTML reports as a person sees them: opened in headless Chromium (Debian's
//! `chromium-headless-shell`, which scripts/install-deps installs), checked
//! from the DOM Chromium built, with every request the browser sends caught
//! by a proxy on 127.0.0.1 that records it and refuses it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::{chromium, requires, runbook};

/// What Chromium made of a page.
pub struct Rendered {
    /// The DOM after load, serialized.
    pub dom: String,
    /// Request lines the proxy received (`GET http://…`, `CONNECT host:443`).
    pub requests: Vec<String>,
}

/// A proxy that records the first line of every request and refuses it.
async fn recording_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut conn = BufReader::new(conn);
                let mut line = String::new();
                if conn.read_line(&mut line).await.is_ok() && !line.trim().is_empty() {
                    record.lock().unwrap().push(line.trim().to_string());
                }
                let _ = conn.get_mut().write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").await;
            });
        }
    });
    (port, seen)
}

/// Opens `page` in headless Chromium with all traffic (loopback included)
/// sent through a recording proxy; with `screenshot`, also saves a PNG of
/// its first 1200×`height` pixels there.
pub async fn open(page: &Path, screenshot: Option<(&Path, u32)>) -> Rendered {
    let (port, requests) = recording_proxy().await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let browser = |extra: Vec<String>| {
        let mut cmd = tokio::process::Command::new(chromium());
        cmd.args([
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            &format!("--proxy-server=http://127.0.0.1:{port}"),
            "--proxy-bypass-list=<-loopback>",
            &format!("--user-data-dir={}", profile.path().display()),
        ]);
        cmd.args(extra).arg(&url).kill_on_drop(true);
        cmd
    };
    let out =
        browser(vec!["--dump-dom".into()]).output().await.expect("chromium-headless-shell (scripts/install-deps)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    if let Some((png, height)) = screenshot {
        let args = vec![format!("--screenshot={}", png.display()), format!("--window-size=1200,{height}")];
        let shot = browser(args).output().await.unwrap();
        assert!(shot.status.success() && png.exists(), "no screenshot: {}", String::from_utf8_lossy(&shot.stderr));
    }
    let requests = requests.lock().unwrap().clone();
    Rendered { dom: String::from_utf8_lossy(&out.stdout).into_owned(), requests }
}

/// How many pages Chromium prints `page` on (`--print-to-pdf`).
async fn printed_pages(page: &Path) -> usize {
    let pdf = page.with_extension("pdf");
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(chromium())
        .args(["--no-sandbox", "--disable-gpu", "--no-pdf-header-footer"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "printing failed: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&pdf).unwrap();
    regex::bytes::Regex::new(r"/Type\s*/Page[^s]").unwrap().find_iter(&bytes).count()
}

/// Printed, the page shows what the screen keeps collapsed (commands,
/// outputs): it takes more paper than the same page whose print style does
/// not open them.
async fn assert_prints_collapsed_sections(page: &Path) {
    let html = std::fs::read_to_string(page).unwrap();
    assert!(html.contains("details::details-content"), "the print style opens collapsed sections");
    let closed = page.with_file_name("closed-when-printed.html");
    std::fs::write(&closed, html.replace("details::details-content", "details::not-a-part")).unwrap();
    let (open, shut) = (printed_pages(page).await, printed_pages(&closed).await);
    assert!(open > shut, "printed: {open} pages with the sections open, {shut} without");
}

/// Where screenshots are kept after the tests (CI keeps `target/`).
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Checks the HTML report `NAME.html` that a run wrote beside `NAME.json`
/// (`doc`) as Chromium renders it: the verdict, every step, a chart for
/// every step that recorded a drill's moments or traffic, no request to the
/// network and no address that could make one; and that `runbook report`
/// renders the same page from the JSON. With `screenshot`, keeps one, and
/// checks that printing opens the collapsed sections.
pub async fn assert_html_report(dir: &Path, name: &str, doc: &serde_json::Value, screenshot: Option<&str>) {
    let page = dir.join(format!("{name}.html"));
    let shot = screenshot.map(|s| artifacts().join(s));
    let rendered = open(&page, shot.as_deref().map(|p| (p, 6000))).await;
    if shot.is_some() {
        assert_prints_collapsed_sections(&page).await;
    }
    let dom = &rendered.dom;
    assert!(rendered.requests.is_empty(), "the page made requests: {:?}", rendered.requests);
    for attribute in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "url("] {
        assert!(!dom.contains(attribute), "the page refers to something outside it ({attribute})");
    }
    let verdict = doc["summary"]["verdict"].as_str().unwrap();
    assert!(dom.contains(&format!("class=\"verdict verdict-{verdict}\" id=\"verdict\"")), "verdict {verdict} missing");
    assert!(dom.contains(&format!("<span class=\"word\">{}</span>", verdict.to_uppercase())));
    let steps = doc["steps"].as_array().unwrap();
    for step in steps {
        let (id, status) = (step["id"].as_str().unwrap(), step["status"].as_str().unwrap());
        assert!(dom.contains(&format!("id=\"step-{id}\" data-status=\"{status}\"")), "step {id} ({status}) missing");
        if step["timeline"].is_array() || step["traffic"].is_object() {
            let figure = dom.split(&format!("<figure class=\"drill\" data-step=\"{id}\">")).nth(1);
            let figure = figure.unwrap_or_else(|| panic!("no drill chart for {id}")).split("</figure>").next().unwrap();
            let marks = step["timeline"].as_array().map_or(0, |m| m.len());
            assert_eq!(figure.matches("<g class=\"mark\">").count(), marks, "{id}: one line per moment");
            for kind in ["succeeded", "failed"] {
                let slots = step["traffic"][kind].as_array().into_iter().flatten();
                let bars = slots.filter(|n| n.as_u64() > Some(0)).count();
                let class = if kind == "succeeded" { "ok" } else { "failed" };
                let drawn = figure.matches(&format!("<rect class=\"{class}\"")).count();
                assert_eq!(drawn, bars, "{id}: one {class} bar per interval with {kind} traffic");
            }
        }
    }
    let bars = dom.matches("<g class=\"bar status-").count();
    assert_eq!(bars, steps.iter().filter(|s| s["started_ms"].is_u64()).count(), "one timeline bar per step run");

    let again = dir.join(format!("{name}.again.html"));
    let json = dir.join(format!("{name}.json"));
    let out = runbook(&["report", &json.display().to_string(), "--html", &again.display().to_string()], dir).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&page).unwrap() == std::fs::read(&again).unwrap(), "runbook report renders another page");
}

#[tokio::test]
async fn the_proxy_catches_a_page_that_reaches_out() {
    requires!(Chromium);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("leaky.html");
    let leaky = "<!doctype html><html><body><img src=\"http://runbook.invalid/pixel.png\">\
                 <link rel=stylesheet href=\"https://fonts.runbook.invalid/x.css\"></body></html>";
    std::fs::write(&page, leaky).unwrap();
    let rendered = open(&page, None).await;
    let joined = rendered.requests.join("\n");
    assert!(joined.contains("runbook.invalid/pixel.png"), "{joined}");
    assert!(joined.contains("CONNECT fonts.runbook.invalid:443"), "{joined}");
}

#[tokio::test]
async fn report_refuses_what_is_not_a_json_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junit.xml"), "<testsuites/>").unwrap();
    std::fs::write(dir.path().join("other.json"), "{\"a\": 1}").unwrap();
    let out_html = dir.path().join("out.html").display().to_string();
    for (file, says) in
        [("junit.xml", "not a JSON report"), ("other.json", "not a runbook JSON report"), ("none.json", "none.json")]
    {
        let path = dir.path().join(file).display().to_string();
        let out = runbook(&["report", &path, "--html", &out_html], dir.path()).await;
        assert_eq!(out.status.code(), Some(3), "{file}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!dir.path().join("out.html").exists());
}
