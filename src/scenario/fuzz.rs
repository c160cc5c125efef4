//! Fuzz tests of the scenario loader and the manifest templating (proptest):
//! malformed input must give problems, never a panic. Three generators, 110,000
//! inputs per `cargo test` run: the shipped scenarios and manifests mutated
//! (bytes and YAML/template tokens inserted, lines deleted, duplicated,
//! swapped, truncated), scenarios made of token soup, and raw templates. A
//! scenario that loads is also rendered as `plan` and `run` would render it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::{EMBEDDED, Scenario, template};

/// Tokens that stress YAML and templates where they are fragile.
const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{ ",
    " }}",
    "{{ maxmemory }}",
    "{{ nope }}",
    "{{}}",
    "{{ run_id }}",
    ":",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "\n    ",
    "\t",
    "'",
    "\"",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!!str ",
    "!!map ",
    "~",
    "null",
    "[",
    "]",
    "{",
    "}",
    "#",
    "---\n",
    "...\n",
    "0755",
    "-1",
    "99999999999999999999",
    "1e309",
    "\u{0}",
    "é",
    "\u{feff}",
    "? ",
    "|",
    ">-",
    "steps:",
    "cleanup:",
    "apply:",
    "files: [",
    "inline: |\n  ",
    "retryFor: ",
    "timeout: ",
    "expect:",
    "equals: ",
    "points: ",
    "id: x",
    "kind: ",
    "apiVersion: v1",
    "metadata:",
    "name: ",
    "namespace: ",
    "parameters:",
    "default: ",
    "secret: true",
    "wait:",
    "exec:",
    "redis:",
    "assert:",
    "capture:",
    "unless:",
    "delete:",
    "selector: ",
    "all:",
];

/// The shipped scenarios: (name, scenario.yaml, manifests by relative path).
fn corpus() -> Vec<(String, String, BTreeMap<String, String>)> {
    Scenario::embedded_names()
        .into_iter()
        .map(|name| {
            let dir = EMBEDDED.get_dir(&name).expect("embedded scenario dir");
            let mut files = BTreeMap::new();
            let mut text = String::new();
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                stack.extend(d.dirs());
                for f in d.files() {
                    let relative = f.path().strip_prefix(&name).expect("under its dir").display().to_string();
                    let contents = f.contents_utf8().unwrap_or_default().to_string();
                    if relative == "scenario.yaml" {
                        text = contents;
                    } else {
                        files.insert(relative, contents);
                    }
                }
            }
            (name, text, files)
        })
        .collect()
}

/// One change to a text.
#[derive(Debug, Clone)]
enum Mutation {
    InsertToken { at: usize, token: usize },
    InsertBytes { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::InsertToken { at, token }),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(at, bytes)| Mutation::InsertBytes { at, bytes }),
        3 => (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// The nearest char boundary at or below `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut out = text.to_string();
    match m {
        Mutation::InsertToken { at, token } => out.insert_str(boundary(text, *at), TOKENS[*token]),
        Mutation::InsertBytes { at, bytes } => out.insert_str(boundary(text, *at), &String::from_utf8_lossy(bytes)),
        Mutation::Delete { at, len } => {
            let start = boundary(text, *at);
            let end = boundary(text, start + len).max(start);
            out.replace_range(start..end, "");
        }
        Mutation::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let i = line % lines.len();
                lines.insert(i, lines[i]);
            }
            out = lines.join("\n");
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(a % n, b % n);
            }
            out = lines.join("\n");
        }
        Mutation::Truncate { at } => out.truncate(boundary(text, *at)),
    }
    out
}

/// Loads a scenario and, when it loads, renders it as plan and run would.
/// Any panic in here fails the property.
fn exercise(text: &str, files: BTreeMap<String, String>) {
    let Ok(scenario) = Scenario::from_memory("fuzz/scenario.yaml", text, files) else { return };
    let Ok(vars) = scenario.parameters(&[]) else { return };
    let render = |t: &str| template::render(t, &vars).unwrap_or_else(|_| t.to_string());
    for step in scenario.steps().iter().chain(scenario.cleanup_steps().iter()) {
        let _ = crate::engine::command::kubectl(&step.action, None, &render);
        if let super::Action::Apply(a) = &step.action {
            let _ = super::manifest::step_documents(&vars, &scenario, a);
        }
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

#[test]
fn mutated_scenarios_and_manifests_never_panic() {
    let corpus = corpus();
    assert!(corpus.len() >= 4, "the shipped scenarios are the seeds");
    let seen = AtomicUsize::new(0);
    let strategy = (0..corpus.len(), any::<usize>(), proptest::collection::vec(mutation(), 1..6));
    runner(70_000)
        .run(&strategy, |(which, target, mutations)| {
            let (_, text, files) = &corpus[which];
            let mut text = text.clone();
            let mut files = files.clone();
            // Mutate the scenario file or one of its manifests.
            let keys: Vec<String> = files.keys().cloned().collect();
            let slot = target % (keys.len() + 1);
            for m in &mutations {
                if slot == keys.len() {
                    text = apply(&text, m);
                } else if let Some(f) = files.get_mut(&keys[slot]) {
                    *f = apply(f, m);
                }
            }
            exercise(&text, files);
            seen.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    assert!(seen.load(Ordering::Relaxed) >= 70_000);
}

#[test]
fn token_soup_never_panics() {
    let seen = AtomicUsize::new(0);
    let soup = || proptest::collection::vec(0..TOKENS.len(), 0..60);
    let strategy = (soup(), soup());
    runner(20_000)
        .run(&strategy, |(scenario, manifest)| {
            let join = |tokens: &[usize]| tokens.iter().map(|&t| TOKENS[t]).collect::<String>();
            let text = format!("name: fuzz\ntitle: t\nobjective: o\nsteps:\n  - id: a\n{}", join(&scenario));
            let files = BTreeMap::from([("m.yaml".to_string(), join(&manifest))]);
            exercise(&text, files.clone());
            let applying = "name: fuzz\ntitle: t\nobjective: o\nsteps:\n  - id: a\n    title: a\n    explanation: e\n    \
                            apply: {files: [m.yaml]}\n";
            exercise(applying, files);
            seen.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    assert!(seen.load(Ordering::Relaxed) >= 20_000);
}

#[test]
fn templates_never_panic() {
    let seen = AtomicUsize::new(0);
    let text = proptest::collection::vec(
        prop_oneof![(0..TOKENS.len()).prop_map(|t| TOKENS[t].to_string()), any::<String>()],
        0..20,
    );
    let vars = proptest::collection::btree_map("[a-z_]{1,8}", any::<String>(), 0..4);
    runner(20_000)
        .run(&(text, vars), |(parts, vars)| {
            let text = parts.concat();
            let _ = template::references(&text);
            if let Ok(rendered) = template::render(&text, &vars) {
                let _ = super::manifest::yaml11_octals(&rendered);
            }
            seen.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    assert!(seen.load(Ordering::Relaxed) >= 20_000);
}
