//! The shape of the code, checked: no module of the runbook crate depends on
//! another that depends back on it (directly or around a circle), among the
//! top-level modules (`cli`, `engine`, `scenario`, …) and among the children
//! of each. A dependency is any `crate::a::b` or `super::b` path outside test
//! code (`#[cfg(test)]` modules may reach anywhere). The lab is a crate of its
//! own, so Cargo already forbids it to depend on the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// Module → the modules it names ("engine", or "engine/redis" for a child).
type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/engine/redis.rs` → ["engine", "redis"]; `src/engine/mod.rs` → ["engine"].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The code of a file without its test module, or None for a file that is a
/// test module itself (declared `#[cfg(test)] mod NAME;` by its parent).
fn non_test_code(file: &Path, test_modules: &BTreeSet<PathBuf>) -> Option<String> {
    if test_modules.contains(file) {
        return None;
    }
    let text = std::fs::read_to_string(file).unwrap();
    Some(text.split("#[cfg(test)]\nmod tests").next().unwrap().to_string())
}

/// Files declared as `#[cfg(test)] mod NAME;` anywhere under `src`.
fn test_module_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let declared = Regex::new(r"#\[cfg\(test\)\]\s*(?:pub )?mod ([a-z_]+);").unwrap();
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let dir = if file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for name in declared.captures_iter(&text) {
            out.insert(dir.join(format!("{}.rs", &name[1])));
            out.insert(dir.join(&name[1]).join("mod.rs"));
        }
    }
    out
}

fn dependency_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let tests = test_module_files(&files);
    let crate_path = Regex::new(r"crate::(?:\{)?([a-z_]+)(?:::(?:\{)?([a-z_]+))?").unwrap();
    let group = Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let super_path = Regex::new(r"super::(?:\{)?([a-z_]+)").unwrap();
    let mut graph = Graph::new();
    for file in &files {
        let module = module_path(src, file);
        let (Some(top), Some(code)) = (module.first(), non_test_code(file, &tests)) else { continue };
        let mut named: Vec<(String, Option<String>)> = Vec::new();
        for c in crate_path.captures_iter(&code) {
            named.push((c[1].to_string(), c.get(2).map(|m| m.as_str().to_string())));
        }
        for g in group.captures_iter(&code) {
            for item in g[1].split(',') {
                let mut parts = item.trim().split("::");
                if let Some(first) = parts.next().filter(|f| !f.is_empty()) {
                    named.push((first.to_string(), parts.next().map(str::to_string)));
                }
            }
        }
        // `super::x` from a child names a sibling (or an item of the parent).
        if module.len() == 2 {
            for c in super_path.captures_iter(&code) {
                named.push((top.clone(), Some(c[1].to_string())));
            }
        }
        for (first, second) in named {
            if &first != top {
                graph.entry(top.clone()).or_default().insert(first);
            } else if let (Some(own), Some(sibling)) = (module.get(1), second)
                && own != &sibling
            {
                graph.entry(format!("{top}/{own}")).or_default().insert(format!("{top}/{sibling}"));
            }
        }
    }
    // Only edges between modules that exist (not to items such as
    // `crate::engine::StepError`, which belong to the module itself).
    let existing: BTreeSet<String> = files
        .iter()
        .filter_map(|f| {
            let m = module_path(src, f);
            (!m.is_empty()).then(|| m.iter().take(2).cloned().collect::<Vec<_>>().join("/"))
        })
        .collect();
    for targets in graph.values_mut() {
        targets.retain(|t| existing.contains(t));
    }
    graph
}

/// Every circle in the graph, each once, as the modules along it.
fn cycles(graph: &Graph) -> BTreeSet<Vec<String>> {
    fn walk(graph: &Graph, start: &str, path: &mut Vec<String>, found: &mut BTreeSet<Vec<String>>) {
        let current = path.last().unwrap().clone();
        for next in graph.get(&current).into_iter().flatten() {
            if next == start {
                let mut circle = path.clone();
                let smallest = (0..circle.len()).min_by_key(|&i| &circle[i]).unwrap();
                circle.rotate_left(smallest);
                found.insert(circle);
            } else if !path.contains(next) {
                path.push(next.clone());
                walk(graph, start, path, found);
                path.pop();
            }
        }
    }
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        walk(graph, start, &mut vec![start.clone()], &mut found);
    }
    found
}

#[test]
fn no_module_depends_on_itself_around_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = dependency_graph(&src);
    assert!(graph.get("engine").is_some_and(|d| d.contains("scenario")), "the graph is read: {graph:?}");
    let found = cycles(&graph);
    let shown: Vec<String> = found.iter().map(|c| format!("{} -> {}", c.join(" -> "), c[0])).collect();
    assert!(found.is_empty(), "module cycles:\n{}\n\ngraph: {graph:#?}", shown.join("\n"));
}

#[test]
fn the_checker_finds_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("engine")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod engine;\npub mod scenario;\n").unwrap();
    std::fs::write(src.join("engine/mod.rs"), "pub mod redis;\npub mod cluster;\nuse crate::scenario::Step;\n")
        .unwrap();
    std::fs::write(src.join("engine/redis.rs"), "use super::cluster::Client;\n").unwrap();
    std::fs::write(src.join("engine/cluster.rs"), "fn f() { super::redis::show(); }\n").unwrap();
    std::fs::write(src.join("scenario.rs"), "#[cfg(test)]\nmod tests { use crate::engine::run; }\n").unwrap();
    let found = cycles(&dependency_graph(src));
    assert_eq!(found, BTreeSet::from([vec!["engine/cluster".to_string(), "engine/redis".to_string()]]));
    std::fs::write(src.join("scenario.rs"), "use crate::engine::run;\n").unwrap();
    let found = cycles(&dependency_graph(src));
    assert!(found.contains(&vec!["engine".to_string(), "scenario".to_string()]), "{found:?}");
}
