//! `runbook completions` and `runbook man`, used as a shell and man(1) use them.

use crate::common::runbook;

/// What bash completes after typing `words` (the last one partial).
fn bash_completes(script: &str, words: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runbook.bash");
    std::fs::write(&file, script).unwrap();
    let program = format!(
        "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
         COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; \
         _runbook runbook \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = std::process::Command::new("bash").args(["-c", &program]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn bash_completes_subcommands_and_flags() {
    let home = tempfile::tempdir().unwrap();
    let out = runbook(&["completions", "bash"], home.path()).await;
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert_eq!(bash_completes(&script, "runbook ver"), "verify");
    let flags = bash_completes(&script, "runbook run --allow");
    assert_eq!(flags, "--allow-disruption");
    assert_eq!(bash_completes(&script, "runbook __sa"), "", "the lab's internal command is not offered");
    let refused = runbook(&["completions", "tcsh"], home.path()).await;
    assert_eq!(refused.status.code(), Some(3), "an unknown shell is invalid input");
}

#[tokio::test]
async fn man_pages_render_with_every_flag() {
    let home = tempfile::tempdir().unwrap();
    let out = runbook(&["man"], home.path()).await;
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    let title = page.lines().find(|l| l.starts_with(".TH "));
    assert_eq!(title, Some(format!(".TH runbook 1  \"runbook {}\" ", env!("CARGO_PKG_VERSION")).as_str()), "{page}");
    let dir = home.path().join("man");
    let written = runbook(&["man", "--out-dir", dir.to_str().unwrap()], home.path()).await;
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    let run_page = dir.join("runbook-run.1");
    // man(1) renders it, flags and their help included.
    let rendered = std::process::Command::new("man").arg("-l").arg(&run_page).env("MANWIDTH", "200").output().unwrap();
    let text = String::from_utf8_lossy(&rendered.stdout).replace(['\u{2010}', '\u{2212}'], "-");
    // A long flag on a line of its own, its help on the next.
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let help_of = |flag: &str| lines.iter().position(|l| *l == flag).map(|i| lines[i + 1]);
    assert_eq!(
        help_of("--allow-disruption"),
        Some("Let disruptive steps (pod deletion, failover drills) run on a cluster that is not the embedded lab"),
        "{text}"
    );
    // A flag shorter than the indent shares its line with its help.
    let lab = "--lab  Run on a fresh embedded lab cluster (needs root), removed afterwards";
    assert!(lines.contains(&lab), "{text}");
    assert!(!dir.join("runbook-__sandbox.1").exists(), "hidden subcommands get no page");
}
