//! Where a reporter writes: standard output, a file, or memory (tests feed a
//! reporter made-up events and read what it wrote, without running anything).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A reporter's output.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Standard output, written as it comes.
    Stdout,
    /// A file, written whole by each `write` (reports are written once, at
    /// the end, so a failed run leaves no half-written file behind).
    File(PathBuf),
    /// A buffer in memory.
    Memory(Arc<Mutex<Vec<u8>>>),
}

impl Sink {
    /// A memory sink and the buffer it fills.
    pub fn memory() -> (Sink, Arc<Mutex<Vec<u8>>>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        (Sink::Memory(buffer.clone()), buffer)
    }

    /// Writes `bytes` (a file: replaces its content).
    pub fn write(&self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()?;
            }
            Sink::File(path) => {
                std::fs::write(path, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?
            }
            Sink::Memory(buffer) => buffer.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes),
        }
        Ok(())
    }

    /// Whether this is a terminal (a spinner makes sense there).
    pub fn is_terminal(&self) -> bool {
        use std::io::IsTerminal;
        matches!(self, Sink::Stdout) && std::io::stdout().is_terminal()
    }
}

/// What a memory sink holds, as text.
pub fn text_of(buffer: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}
