//! Where each node of a YAML text is: line and column of every key and value,
//! by JSON pointer (`/steps/3/wait/rollout`). serde gives one location, for
//! the first error only; `validate` reports every problem at its own node.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// A 1-based line and column in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// The locations of one YAML document's keys and values.
#[derive(Debug, Default, Clone)]
pub struct Locations {
    keys: HashMap<String, Mark>,
    values: HashMap<String, Mark>,
}

impl Locations {
    /// The first document of `text` (a scenario file).
    pub fn of(text: &str) -> Locations {
        documents(text).into_iter().next().unwrap_or_default()
    }

    /// Where the key that names `pointer` is written (`/steps/0/wait` → `wait:`).
    pub fn key(&self, pointer: &str) -> Option<Mark> {
        self.keys.get(pointer).copied()
    }

    /// Where the value at `pointer` starts.
    pub fn value(&self, pointer: &str) -> Option<Mark> {
        self.values.get(pointer).copied()
    }

    /// The best place to point at for `pointer`: its key, else its value,
    /// else the nearest enclosing node that exists (a missing key is
    /// reported where it should have been written).
    pub fn at(&self, pointer: &str) -> Option<Mark> {
        let mut p = pointer;
        loop {
            if let Some(m) = self.key(p).or_else(|| self.value(p)) {
                return Some(m);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }
}

/// The locations of a text's first document, found the first time they are
/// asked for: a valid file never needs them.
#[derive(Debug, Default)]
pub struct Lazy {
    cell: std::sync::OnceLock<Locations>,
}

impl Lazy {
    /// The locations of `text` (always the same text for one `Lazy`).
    pub fn get(&self, text: &str) -> &Locations {
        self.cell.get_or_init(|| Locations::of(text))
    }
}

impl Clone for Lazy {
    fn clone(&self) -> Lazy {
        let cell = std::sync::OnceLock::new();
        if let Some(l) = self.cell.get() {
            let _ = cell.set(l.clone());
        }
        Lazy { cell }
    }
}

/// A JSON pointer segment, escaped as RFC 6901 says (`/` → `~1`, `~` → `~0`).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
    /// A mapping or sequence used as a key: its contents are not located.
    ComplexKey {
        depth: usize,
    },
}

/// The locations of every document in `text` (a multi-document manifest).
/// A syntax error ends the walk: what was located so far is kept.
pub fn documents(text: &str) -> Vec<Locations> {
    let mut docs: Vec<Locations> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let mark = Mark { line: span.start.line(), column: span.start.col() + 1 };
        let starts_container = matches!(event, Event::MappingStart(..) | Event::SequenceStart(..));
        match event {
            Event::DocumentStart(_) => {
                docs.push(Locations::default());
                stack.clear();
            }
            Event::MappingEnd | Event::SequenceEnd => close(&mut stack),
            Event::Scalar(..) | Event::Alias(_) | Event::MappingStart(..) | Event::SequenceStart(..) => {
                let Some(doc) = docs.last_mut() else { continue };
                let scalar = match &event {
                    Event::Scalar(value, ..) => Some(value.to_string()),
                    _ => None,
                };
                let path = match stack.last_mut() {
                    None => Some(String::new()),
                    Some(Frame::ComplexKey { depth }) => {
                        if starts_container {
                            *depth += 1;
                        }
                        None
                    }
                    Some(Frame::Seq { path, next }) => {
                        let p = format!("{path}/{next}");
                        *next += 1;
                        Some(p)
                    }
                    Some(Frame::Map { path, key }) => match key.take() {
                        Some(k) => Some(format!("{path}/{}", escape(&k))),
                        None => {
                            // This node is a key.
                            let k = scalar.clone().unwrap_or_else(|| "?".into());
                            doc.keys.insert(format!("{path}/{}", escape(&k)), mark);
                            *key = Some(k);
                            if starts_container {
                                stack.push(Frame::ComplexKey { depth: 1 });
                            }
                            continue;
                        }
                    },
                };
                let Some(path) = path else { continue };
                doc.values.insert(path.clone(), mark);
                match event {
                    Event::MappingStart(..) => stack.push(Frame::Map { path, key: None }),
                    Event::SequenceStart(..) => stack.push(Frame::Seq { path, next: 0 }),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    docs
}

fn close(stack: &mut Vec<Frame>) {
    if let Some(Frame::ComplexKey { depth }) = stack.last_mut() {
        *depth -= 1;
        if *depth > 0 {
            return;
        }
    }
    stack.pop();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_are_located_by_pointer() {
        let text = "name: t\nsteps:\n  - id: a\n    wait: {rollout: {kind: Deployment}}\n  - id: b\n";
        let l = Locations::of(text);
        assert_eq!(l.key("/steps"), Some(Mark { line: 2, column: 1 }));
        assert_eq!(l.value("/steps/0/id"), Some(Mark { line: 3, column: 9 }));
        assert_eq!(l.key("/steps/0/wait/rollout/kind"), Some(Mark { line: 4, column: 22 }));
        assert_eq!(l.value("/steps/1"), Some(Mark { line: 5, column: 5 }));
        // A key that is not there is reported at its closest parent.
        assert_eq!(l.at("/steps/1/wait/timeout"), Some(Mark { line: 5, column: 5 }));
    }

    #[test]
    fn documents_and_escaped_keys() {
        let text = "a: 1\n---\nmetadata:\n  annotations:\n    example.com/x: y\n";
        let docs = documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].key("/metadata/annotations/example.com~1x"), Some(Mark { line: 5, column: 5 }));
    }

    #[test]
    fn complex_keys_do_not_shift_the_paths_after_them() {
        let text = "? [a, b]\n: 1\nafter: 2\n";
        assert_eq!(Locations::of(text).key("/after"), Some(Mark { line: 3, column: 1 }));
    }
}
