//! Ctrl-C and SIGTERM. Both stop a run the same way: the current step ends,
//! cleanup still runs and the reports are still written (exit 130). The
//! handlers are installed as soon as a command starts, so a signal that
//! arrives while connecting or starting the lab is not lost, and a signal
//! during cleanup cannot cut it short and leave objects behind.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Installs the handlers (inside a tokio runtime) and returns the token that
/// the first SIGINT or SIGTERM cancels. Later signals are reported and
/// otherwise ignored: the cleanup that is running will finish.
pub fn watch() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = interrupt.recv() => "Ctrl-C",
                Some(()) = terminate.recv() => "SIGTERM",
                else => return,
            };
            if cancel.is_cancelled() {
                eprintln!("{name}: already stopping; finishing the cleanup so that nothing is left behind");
            } else {
                cancel.cancel();
            }
        }
    });
    Ok(token)
}
