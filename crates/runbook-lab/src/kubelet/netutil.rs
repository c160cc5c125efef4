//! Sockets inside a pod's network namespace, and programs run there. A
//! socket opened by a thread that joined the namespace keeps working from any
//! thread, so the lab never needs a route from the host to pod addresses.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

/// Connects to `addr` from inside the network namespace of process `pid`.
pub async fn connect_in_netns(pid: u32, addr: SocketAddr, timeout: Duration) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A fresh thread: setns changes the calling thread for good, so it must
    // not be a pooled thread that other work would reuse.
    std::thread::spawn(move || {
        let result = (|| -> std::io::Result<TcpStream> {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            let stream = TcpStream::connect_timeout(&addr, timeout)?;
            stream.set_nonblocking(true)?;
            // Forwarded bytes go on at once (see the API server's accept loop).
            stream.set_nodelay(true)?;
            Ok(stream)
        })();
        let _ = tx.send(result);
    });
    let stream = rx.await.map_err(|_| std::io::Error::other("connect thread died"))??;
    tokio::net::TcpStream::from_std(stream)
}

/// Runs `f` on a fresh thread inside the network namespace of process `pid`
/// (to bind listeners there; the sockets stay in that namespace).
pub fn in_netns<T: Send + 'static>(
    pid: u32,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("netns thread panicked"))?
}

/// Runs `program ARGS` inside the network namespace of process `pid` with
/// `input` on its stdin (`ip -batch -`, `nft -f -`); its stderr on failure.
pub async fn run_in_netns(pid: u32, program: &std::path::Path, args: &[&str], input: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running nsenter (util-linux) and {}", program.display()))?;
    child.stdin.take().expect("piped").write_all(input.as_bytes()).await?;
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        anyhow::bail!(
            "{} in the network namespace of {pid}: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
