//! Pseudo-terminals for `kubectl exec -t`: allocated from the pod's own
//! devpts instance (mounted by the sandbox at `/dev/pts`, as container
//! runtimes do), so inside the pod `tty` names `/dev/pts/0`, and resized
//! from the client's resize messages.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A terminal's two ends: the lab keeps the master, the command gets the slave.
pub struct Terminal {
    /// The lab's end: what the command writes is read here, and input written.
    pub master: File,
    /// The command's stdin, stdout and stderr.
    pub slave: File,
}

impl Terminal {
    /// Allocates a terminal in the devpts of the pod whose sandbox is `sandbox`.
    pub fn open(sandbox: u32) -> std::io::Result<Terminal> {
        let pts = Path::new("/proc").join(sandbox.to_string()).join("root/dev/pts");
        let flags = nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC;
        let master = OpenOptions::new().read(true).write(true).custom_flags(flags).open(pts.join("ptmx"))?;
        let mut unlock: nix::libc::c_int = 0;
        let mut number: nix::libc::c_uint = 0;
        // SAFETY: both ioctls take a pointer to an int the kernel reads or writes.
        unsafe {
            if nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSPTLCK, &mut unlock) != 0
                || nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCGPTN, &mut number) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        let slave = OpenOptions::new().read(true).write(true).custom_flags(flags).open(pts.join(number.to_string()))?;
        Ok(Terminal { master, slave })
    }
}

/// Sets the terminal's size (what `stty size` and full-screen programs see).
pub fn resize(master: &File, columns: u16, rows: u16) {
    let size = nix::libc::winsize { ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize struct through the pointer.
    unsafe {
        nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &size);
    }
}

/// A resize message of the exec protocol's channel 4 (`{"Width":80,"Height":24}`).
pub fn parse_resize(body: &[u8]) -> Option<(u16, u16)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some((value["Width"].as_u64()? as u16, value["Height"].as_u64()? as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages_give_columns_and_rows() {
        assert_eq!(parse_resize(br#"{"Width":100,"Height":30}"#), Some((100, 30)));
        assert_eq!(parse_resize(b"nope"), None);
    }
}
