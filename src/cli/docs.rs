//! `runbook completions` and `runbook man`: generated from the clap
//! definitions (clap_complete, clap_mangen), so they never fall behind the
//! flags; and `runbook report`, which renders a saved JSON report again.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::Cli;

/// Arguments of `runbook completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `runbook man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write runbook.1 and one page per subcommand (runbook-run.1, …) into
    /// this directory instead of printing runbook.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics on a failed write (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "runbook", &mut script);
    print(&script)
}

/// Writes `bytes` to stdout; a reader that stopped early (`| head`) is not an error.
fn print(bytes: &[u8]) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(crate::exit::SUCCESS),
    }
}

/// Prints runbook(1), or writes every page into `args.out_dir`.
pub fn man(args: ManArgs) -> anyhow::Result<u8> {
    let cmd = Cli::command();
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(cmd, &dir)
                .map_err(|e| anyhow::anyhow!("writing man pages to {}: {e}", dir.display()))?;
            eprintln!("man pages written to {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            return print(&page);
        }
    }
    Ok(crate::exit::SUCCESS)
}

/// Arguments of `runbook report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A report written by `--report json=FILE`.
    #[arg(value_name = "FILE.json")]
    pub json: PathBuf,
    /// Write the HTML page here (`-` for standard output).
    #[arg(long, value_name = "OUT")]
    pub html: PathBuf,
}

/// Renders a saved JSON report as the page `--report html=` writes.
pub fn report(args: ReportArgs) -> anyhow::Result<u8> {
    let shown = args.json.display();
    let text = std::fs::read_to_string(&args.json).map_err(|e| crate::exit::invalid(format!("{shown}: {e}")))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| crate::exit::invalid(format!("{shown}: not a JSON report ({e})")))?;
    if !doc["run"].is_object() || !doc["steps"].is_array() {
        return Err(crate::exit::invalid(format!(
            "{shown}: not a runbook JSON report (expected \"run\" and \"steps\"; write one with --report json=FILE)"
        )));
    }
    let page = crate::report::html::render(&doc);
    if args.html.as_os_str() == "-" {
        return print(page.as_bytes());
    }
    std::fs::write(&args.html, page).map_err(|e| anyhow::anyhow!("writing {}: {e}", args.html.display()))?;
    eprintln!("HTML report written to {}", args.html.display());
    Ok(crate::exit::SUCCESS)
}
