//! Container log files in the CRI format the kubelet reads
//! (`2016-10-06T00:17:09.669794202Z stdout F text`): one record per line of
//! output, stamped when the lab read it, so `kubectl logs --timestamps`,
//! `--since` and `--since-time` answer as on a node with containerd.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Longest record: a longer line is split into partial (`P`) records, as
/// containerd does at 16 KiB.
const MAX_RECORD: usize = 16 * 1024;

/// One record of a log file.
#[derive(Debug, PartialEq)]
pub struct Record<'a> {
    /// When the line was read, RFC 3339 with nanoseconds.
    pub time: &'a str,
    /// The line's bytes, without its newline.
    pub content: &'a [u8],
    /// Whether the line goes on in the next record.
    pub partial: bool,
}

/// The records of a log file's contents; an incomplete last line (a record
/// being written) is left out.
pub fn records(bytes: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(&bytes[..0], |end| &bytes[..=end]);
    complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()).filter_map(|line| {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let time = std::str::from_utf8(parts.next()?).ok()?;
        let _stream = parts.next()?;
        let partial = parts.next()? == b"P";
        Some(Record { time, content: parts.next().unwrap_or_default(), partial })
    })
}

/// What `pods/log` returns from a log file's contents.
#[derive(Debug, Default, Clone)]
pub struct View {
    /// Prefix each line with its time (`timestamps`).
    pub timestamps: bool,
    /// Only lines read at or after this time (`sinceSeconds`, `sinceTime`).
    pub since: Option<jiff::Timestamp>,
    /// Only the last N lines (`tailLines`).
    pub tail_lines: Option<usize>,
}

impl View {
    /// The text of `bytes` as this view shows it.
    pub fn render(&self, bytes: &[u8]) -> Vec<u8> {
        let since = self.since.map(rfc3339_nanos);
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut open = false;
        for record in records(bytes) {
            // RFC 3339 times of one zone and precision compare as text.
            if since.as_deref().is_some_and(|s| record.time < s) {
                continue;
            }
            if !open {
                let mut line = Vec::new();
                if self.timestamps {
                    line.extend_from_slice(record.time.as_bytes());
                    line.push(b' ');
                }
                lines.push(line);
            }
            let line = lines.last_mut().expect("pushed above");
            line.extend_from_slice(record.content);
            if !record.partial {
                line.push(b'\n');
            }
            open = record.partial;
        }
        let skip = self.tail_lines.map_or(0, |n| lines.len().saturating_sub(n));
        lines.into_iter().skip(skip).flatten().collect()
    }
}

/// Copies a container's stdout and stderr into `file` as records, until
/// both end (the container and whatever it started have closed them).
pub async fn copy(
    stdout: impl AsyncRead + Unpin + Send + 'static,
    stderr: impl AsyncRead + Unpin + Send + 'static,
    file: std::fs::File,
) {
    // A task per stream, as containerd has a reader per pipe: each is woken
    // when its own output arrives, so lines written one after the other on
    // the two streams are logged in that order (one task polling both would
    // find both ready and pick one).
    let file = std::sync::Arc::new(tokio::sync::Mutex::new(tokio::fs::File::from_std(file)));
    let out = tokio::spawn(copy_stream(stdout, "stdout", file.clone()));
    let err = tokio::spawn(copy_stream(stderr, "stderr", file));
    let _ = tokio::join!(out, err);
}

async fn copy_stream(
    mut from: impl AsyncRead + Unpin,
    stream: &'static str,
    file: std::sync::Arc<tokio::sync::Mutex<tokio::fs::File>>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        let time = stamp();
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line = &pending[..end];
            if line.is_empty() {
                write_record(&mut out, &time, stream, false, b"");
            }
            let mut chunks = line.chunks(MAX_RECORD).peekable();
            while let Some(chunk) = chunks.next() {
                write_record(&mut out, &time, stream, chunks.peek().is_some(), chunk);
            }
            pending.drain(..=end);
        }
        while pending.len() >= MAX_RECORD {
            write_record(&mut out, &time, stream, true, &pending[..MAX_RECORD]);
            pending.drain(..MAX_RECORD);
        }
        if !out.is_empty() && append(&file, &out).await.is_err() {
            return;
        }
    }
    // Output that never ended its line still counts as a line, as with containerd.
    if !pending.is_empty() {
        let mut out = Vec::new();
        write_record(&mut out, &stamp(), stream, false, &pending);
        let _ = append(&file, &out).await;
    }
}

/// Writes `bytes` through to the file: a tokio file only hands them to a
/// blocking task, and a reader (or the end of the copy) must find them written.
async fn append(file: &tokio::sync::Mutex<tokio::fs::File>, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = file.lock().await;
    file.write_all(bytes).await?;
    file.flush().await
}

fn write_record(out: &mut Vec<u8>, time: &str, stream: &str, partial: bool, content: &[u8]) {
    out.extend_from_slice(format!("{time} {stream} {} ", if partial { 'P' } else { 'F' }).as_bytes());
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Now, as the CRI stamps a record.
fn stamp() -> String {
    rfc3339_nanos(jiff::Timestamp::now())
}

/// RFC 3339 in UTC with all nine digits of nanoseconds (fixed width, so
/// times compare as text).
fn rfc3339_nanos(t: jiff::Timestamp) -> String {
    format!("{}.{:09}Z", t.strftime("%Y-%m-%dT%H:%M:%S"), t.subsec_nanosecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2026-12-01T10:00:00.000000001Z stdout F one\n\
2026-12-01T10:00:01.000000000Z stderr P tw\n\
2026-12-01T10:00:01.000000000Z stderr F o\n\
2026-12-01T10:00:02.000000000Z stdout F \n\
2026-12-01T10:00:03.000000000Z stdout F three";

    #[test]
    fn renders_lines_joined_tailed_stamped_and_since() {
        assert_eq!(View::default().render(LOG), b"one\ntwo\n\n", "the unfinished record is left out");
        let tail = View { tail_lines: Some(2), ..View::default() };
        assert_eq!(tail.render(LOG), b"two\n\n");
        let stamped = View { timestamps: true, tail_lines: Some(1), ..View::default() };
        assert_eq!(stamped.render(LOG), b"2026-12-01T10:00:02.000000000Z \n");
        let since: jiff::Timestamp = "2026-12-01T10:00:01Z".parse().unwrap();
        assert_eq!(View { since: Some(since), ..View::default() }.render(LOG), b"two\n\n");
    }

    #[tokio::test]
    async fn copies_lines_of_both_streams_and_splits_long_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let long = vec![b'x'; MAX_RECORD + 10];
        let mut out = b"a\n\nb\n".to_vec();
        out.extend_from_slice(&long);
        out.extend_from_slice(b"\nno newline");
        copy(std::io::Cursor::new(out.clone()), &b""[..], std::fs::File::create(&path).unwrap()).await;
        let bytes = std::fs::read(&path).unwrap();
        let partials: Vec<bool> = records(&bytes).map(|r| r.partial).collect();
        assert_eq!(partials, [false, false, false, true, false, false], "the long line: one P and one F record");
        let mut text = out.clone();
        text.push(b'\n');
        assert_eq!(View::default().render(&bytes), text);
        copy(&b""[..], &b"oops\n"[..], std::fs::File::create(&path).unwrap()).await;
        let stderr = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
        assert!(stderr.ends_with(" stderr F oops\n"), "{stderr}");
    }
}
