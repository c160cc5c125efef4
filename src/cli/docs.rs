//! `runbook completions` and `runbook man`: generated from the clap
//! definitions (clap_complete, clap_mangen), so they never fall behind the flags.

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
