//! The part of SPDY/3.1 that kubectl's port-forward speaks (moby/spdystream,
//! which client-go uses): frames read from and written to a byte stream,
//! and header blocks. The client compresses its header blocks with zlib and
//! SPDY's dictionary; the lab writes its own as zlib *stored* blocks, which
//! any inflater reads and which need neither compression nor the dictionary.
//! No flow control: spdystream neither sends nor honours window updates.

use flate2::{Decompress, FlushDecompress, Status};

/// SPDY/3's header compression dictionary (from the SPDY/3 draft, as
/// spdystream's `headerDictionary`).
const DICTIONARY: &[u8] = include_bytes!("spdy_dictionary.bin");

/// The FIN flag: the sender's side of the stream is done.
pub const FLAG_FIN: u8 = 0x01;

/// One frame.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A new stream from the client, with its headers.
    SynStream {
        /// Stream id.
        id: u32,
        /// FIN: the client will send nothing on it.
        fin: bool,
        /// Header names (lower case) and values.
        headers: Vec<(String, String)>,
    },
    /// Bytes on a stream.
    Data {
        /// Stream id.
        id: u32,
        /// FIN: the sender is done with the stream.
        fin: bool,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// A stream ended abruptly.
    RstStream {
        /// Stream id.
        id: u32,
    },
    /// A ping to answer with the same id.
    Ping {
        /// Ping id.
        id: u32,
    },
    /// The client is leaving.
    GoAway,
    /// Frames the lab has no use for (SETTINGS, WINDOW_UPDATE, HEADERS…).
    Other,
}

/// Reads frames from the bytes a connection delivers, in whatever pieces.
pub struct Reader {
    buffer: Vec<u8>,
    inflate: Decompress,
}

impl Default for Reader {
    fn default() -> Self {
        Reader { buffer: Vec::new(), inflate: Decompress::new(true) }
    }
}

impl Reader {
    /// Adds bytes received.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        if self.buffer.len() < 8 {
            return Ok(None);
        }
        let word = u32::from_be_bytes(self.buffer[0..4].try_into().expect("4 bytes"));
        let flags = self.buffer[4];
        let length = u32::from_be_bytes([0, self.buffer[5], self.buffer[6], self.buffer[7]]) as usize;
        if self.buffer.len() < 8 + length {
            return Ok(None);
        }
        let payload: Vec<u8> = self.buffer[8..8 + length].to_vec();
        self.buffer.drain(..8 + length);
        let fin = flags & FLAG_FIN != 0;
        if word & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data { id: word & 0x7fff_ffff, fin, payload }));
        }
        let stream_id = || -> u32 {
            payload.get(0..4).map_or(0, |b| u32::from_be_bytes(b.try_into().expect("4 bytes")) & 0x7fff_ffff)
        };
        Ok(Some(match word & 0xffff {
            1 => {
                let block = payload.get(10..).ok_or("SYN_STREAM too short")?;
                Frame::SynStream { id: stream_id(), fin, headers: parse_headers(&self.inflate_block(block)?)? }
            }
            3 => Frame::RstStream { id: stream_id() },
            6 => Frame::Ping { id: stream_id() },
            7 => Frame::GoAway,
            _ => Frame::Other,
        }))
    }

    /// Inflates one header block: the stream continues across blocks, each
    /// ending with a sync flush; the dictionary is set when zlib asks for it.
    fn inflate_block(&mut self, block: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(block.len() * 4 + 256);
        let mut input = block;
        loop {
            let before_in = self.inflate.total_in();
            out.reserve(4096);
            match self.inflate.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(status) => {
                    let used = (self.inflate.total_in() - before_in) as usize;
                    input = &input[used..];
                    if input.is_empty() || status == Status::StreamEnd {
                        return Ok(out);
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    let used = (self.inflate.total_in() - before_in) as usize;
                    input = &input[used..];
                    self.inflate.set_dictionary(DICTIONARY).map_err(|e| format!("SPDY header dictionary: {e}"))?;
                }
                Err(e) => return Err(format!("SPDY header block: {e}")),
            }
        }
    }
}

fn parse_headers(block: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut at = 0usize;
    let count = word_at(block, &mut at)?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = text_at(block, &mut at)?;
        let value = text_at(block, &mut at)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// A length-prefixed string of a header block.
fn text_at(block: &[u8], at: &mut usize) -> Result<String, String> {
    let len = word_at(block, at)?;
    let bytes = block.get(*at..*at + len).ok_or("SPDY header cut short")?;
    *at += len;
    Ok(String::from_utf8_lossy(bytes).to_string())
}

fn word_at(block: &[u8], at: &mut usize) -> Result<usize, String> {
    let bytes = block.get(*at..*at + 4).ok_or("SPDY header block cut short")?;
    *at += 4;
    Ok(u32::from_be_bytes(bytes.try_into().expect("4 bytes")) as usize)
}

/// Writes the lab's frames.
#[derive(Default)]
pub struct Writer {
    started: bool,
}

impl Writer {
    /// SYN_REPLY with no headers, accepting stream `id`.
    pub fn syn_reply(&mut self, id: u32) -> Vec<u8> {
        // An empty header block (a count of 0), as a zlib stored block; the
        // first block of the connection starts the zlib stream (no dictionary).
        let block = [0u8, 0, 0, 0];
        let mut zlib = Vec::new();
        if !self.started {
            zlib.extend_from_slice(&[0x78, 0x01]);
            self.started = true;
        }
        let len = block.len() as u16;
        zlib.push(0x00); // not final, stored, aligned
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(&block);
        // The empty stored block a sync flush ends with: Go's inflater reads
        // on to it after the data, so a block without it leaves the next
        // frame's read failing (checked against Go's compress/zlib).
        zlib.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        let mut payload = id.to_be_bytes().to_vec();
        payload.extend_from_slice(&zlib);
        control(2, 0, &payload)
    }
}

/// A DATA frame.
pub fn data(id: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = (id & 0x7fff_ffff).to_be_bytes().to_vec();
    frame.push(if fin { FLAG_FIN } else { 0 });
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    frame.extend_from_slice(payload);
    frame
}

/// A PING answering `id`.
pub fn ping(id: u32) -> Vec<u8> {
    control(6, 0, &id.to_be_bytes())
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80, 0x03];
    frame.extend_from_slice(&kind.to_be_bytes());
    frame.push(flags);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    /// A client's SYN_STREAM, compressed as spdystream does (zlib, dictionary, sync flush).
    fn syn_stream(compress: &mut Compress, id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut block = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            block.extend_from_slice(&(name.len() as u32).to_be_bytes());
            block.extend_from_slice(name.as_bytes());
            block.extend_from_slice(&(value.len() as u32).to_be_bytes());
            block.extend_from_slice(value.as_bytes());
        }
        let mut compressed = Vec::with_capacity(1024);
        compress.compress_vec(&block, &mut compressed, FlushCompress::Sync).unwrap();
        let mut payload = id.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        payload.extend_from_slice(&compressed);
        control(1, 0, &payload)
    }

    #[test]
    fn frames_are_read_across_pieces_with_compressed_headers() {
        let mut compress = Compress::new(Compression::best(), true);
        compress.set_dictionary(DICTIONARY).unwrap();
        let mut bytes = syn_stream(&mut compress, 1, &[("streamtype", "error"), ("port", "6379"), ("requestid", "0")]);
        bytes.extend(syn_stream(&mut compress, 3, &[("streamtype", "data"), ("port", "6379"), ("requestid", "0")]));
        bytes.extend(data(3, true, b"PING\r\n"));
        let mut reader = Reader::default();
        let mut frames = Vec::new();
        for piece in bytes.chunks(7) {
            reader.feed(piece);
            while let Some(frame) = reader.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        let header = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[1],
            Frame::SynStream {
                id: 3,
                fin: false,
                headers: vec![header("streamtype", "data"), header("port", "6379"), header("requestid", "0")]
            }
        );
        assert_eq!(frames[2], Frame::Data { id: 3, fin: true, payload: b"PING\r\n".to_vec() });
    }

    #[test]
    fn replies_inflate_to_empty_header_blocks() {
        let mut writer = Writer::default();
        let mut inflate = Decompress::new(true);
        for id in [1u32, 3] {
            let frame = writer.syn_reply(id);
            assert_eq!(&frame[0..4], &[0x80, 3, 0, 2]);
            let mut out = Vec::with_capacity(64);
            inflate.decompress_vec(&frame[12..], &mut out, FlushDecompress::Sync).unwrap();
            assert_eq!(out, [0, 0, 0, 0], "stream {id}");
        }
    }
}
