//! `--pause-on-failure`: the run waits at its first failure, with the
//! cluster as the failure left it, says how to look around, and goes on to
//! cleanup when the user presses Enter (or Ctrl-C).

use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use super::context::Ctx;

/// Prints where to look, then waits for a line on standard input (Enter),
/// its end, or an interrupt.
pub async fn at_failure(ctx: &Ctx, step: &str, interrupt: &CancellationToken) {
    // Kept for the pause only: removed when this returns.
    let kubeconfig = super::host_command::write_kubeconfig(ctx).ok().flatten();
    let mut text = format!(
        "\npaused: step {step:?} did not pass; the cluster is as the failure left it \
         (context {}, namespace {}).\n",
        ctx.context_name, ctx.namespace
    );
    if let Some(file) = &kubeconfig {
        text.push_str(&format!("  export KUBECONFIG={}   # the run's context and namespace\n", file.path().display()));
    }
    text.push_str("  kubectl get all,events\n  kubectl describe pods\n  kubectl logs <pod> --all-containers\n");
    text.push_str("Press Enter to clean up and finish.\n");
    eprint!("{text}");
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    tokio::select! {
        _ = stdin.read_line(&mut line) => {}
        _ = interrupt.cancelled() => {}
    }
    drop(kubeconfig);
}
