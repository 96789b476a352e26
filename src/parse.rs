//! Splitting a PIP byte stream into records and fields.
//!
//! The reader pulls fixed-size chunks from any `Read` (a local file today, an S3 body
//! bridged to `Read` later), so memory is bounded by the chunk size plus the longest line
//! allowed, whatever the file size. A record may straddle two chunks; the unread tail is
//! moved to the front of the buffer before the next read.

use std::io::{self, Read};

/// Bytes requested from the source per read.
pub const CHUNK: usize = 1 << 20;

/// The longest line accepted. A real record is at most a few KB (53 fields of ≤ 60
/// characters); anything far longer is not a PIP record, and refusing it keeps memory bounded
/// when a file has no newlines at all.
pub const MAX_LINE: usize = 1 << 20;

/// DOS end-of-file marker, tolerated at the very end of a file.
const SUB: u8 = 0x1A;

/// The trailer record starts with this issuer number; it is not data.
const TRAILER: &[u8] = b"999999";

/// A problem with the shape of the stream itself (as opposed to a value in a field).
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("line {line} is longer than {limit} bytes; this is not a PIP record")]
    LineTooLong { line: u64, limit: usize },
    #[error("line {line} follows the 999999 trailer, which must be the last record")]
    DataAfterTrailer { line: u64 },
    #[error(
        "the file ends at line {lines} without the 999999 trailer record, so it is probably \
         truncated (use --allow-missing-trailer if this file never has one)"
    )]
    MissingTrailer { lines: u64 },
    #[error("read failed after {offset} bytes: {source}")]
    Io { offset: u64, source: io::Error },
}

/// What the reader found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A data record (without its line ending) and its 1-based line number.
    Record { line: u64, data: &'a [u8] },
    /// The trailer record.
    Trailer { line: u64 },
    /// End of input.
    End,
}

pub struct RecordReader<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    line: u64,
    /// Bytes consumed from `src` so far.
    offset: u64,
    trailer_line: Option<u64>,
    max_line: usize,
    /// A line ending in 0x1A, copied out while the reader looks past it.
    held: Vec<u8>,
}

impl<R: Read> RecordReader<R> {
    pub fn new(src: R) -> Self {
        Self::with_limits(src, CHUNK, MAX_LINE)
    }

    pub fn with_limits(src: R, chunk: usize, max_line: usize) -> Self {
        RecordReader {
            src,
            buf: vec![0; chunk.max(16)],
            start: 0,
            end: 0,
            eof: false,
            line: 0,
            offset: 0,
            trailer_line: None,
            max_line,
            held: Vec::new(),
        }
    }

    /// Bytes read from the source so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Physical lines read so far.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// Whether the trailer has been seen (only meaningful after `Next::End`).
    pub fn saw_trailer(&self) -> bool {
        self.trailer_line.is_some()
    }

    /// Refills the buffer, keeping the unread tail. Returns false at end of input.
    fn fill(&mut self) -> Result<bool, ShapeError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= self.max_line {
                return Err(ShapeError::LineTooLong {
                    line: self.line + 1,
                    limit: self.max_line,
                });
            }
            let grown = (self.buf.len() * 2).min(self.max_line.max(self.buf.len() + 1));
            self.buf.resize(grown, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    self.offset += n as u64;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ShapeError::Io {
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
    }

    /// The next physical line without its `\n`, as a range of `buf`.
    fn next_line(&mut self) -> Result<Option<(usize, usize)>, ShapeError> {
        let mut searched = self.start;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let (s, e) = (self.start, searched + i);
                self.start = e + 1;
                self.line += 1;
                return Ok(Some((s, e)));
            }
            let scanned = self.end - self.start;
            if !self.fill()? {
                if self.start < self.end {
                    let (s, e) = (self.start, self.end);
                    self.start = self.end;
                    self.line += 1;
                    return Ok(Some((s, e)));
                }
                return Ok(None);
            }
            searched = self.start + scanned;
        }
    }

    /// True when nothing but line endings and 0x1A bytes remain. Consumes those bytes when it
    /// is true; when false, consumes nothing that belongs to a later record.
    fn rest_is_blank(&mut self) -> Result<bool, ShapeError> {
        loop {
            let rest = &self.buf[self.start..self.end];
            match rest.iter().position(|&b| !matches!(b, b'\n' | b'\r' | SUB)) {
                Some(_) => return Ok(false),
                None => {
                    // All blank so far: drop it (counting lines) and look further.
                    self.line += memchr::memchr_iter(b'\n', rest).count() as u64;
                    self.start = self.end;
                    if !self.fill()? {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// The next record, skipping blank lines and handling the trailer and a final 0x1A.
    pub fn next_record(&mut self) -> Result<Next<'_>, ShapeError> {
        loop {
            let Some((s, mut e)) = self.next_line()? else {
                return Ok(Next::End);
            };
            let line = self.line;
            if e > s && self.buf[e - 1] == b'\r' {
                e -= 1;
            }
            if e > s && self.buf[e - 1] == SUB {
                // Rare: hold the line aside, because looking past it may refill the buffer.
                self.held.clear();
                self.held.extend_from_slice(&self.buf[s..e]);
                if self.rest_is_blank()? {
                    self.held.pop();
                    if self.held.last() == Some(&b'\r') {
                        self.held.pop();
                    }
                }
                if self.held.is_empty() {
                    continue;
                }
                return classify(&mut self.trailer_line, line, &self.held);
            }
            if e == s {
                continue;
            }
            return classify(&mut self.trailer_line, line, &self.buf[s..e]);
        }
    }
}

fn classify<'a>(
    trailer_line: &mut Option<u64>,
    line: u64,
    data: &'a [u8],
) -> Result<Next<'a>, ShapeError> {
    if trailer_line.is_some() {
        return Err(ShapeError::DataAfterTrailer { line });
    }
    if data.starts_with(TRAILER) {
        *trailer_line = Some(line);
        return Ok(Next::Trailer { line });
    }
    Ok(Next::Record { line, data })
}

/// Splits a record on `|` into `fields`, returning the number of fields found. Only the
/// first `fields.len()` ranges are filled; the count tells the caller whether it matched.
pub fn split_fields(record: &[u8], fields: &mut [(usize, usize)]) -> usize {
    let mut n = 0;
    let mut start = 0;
    for i in memchr::memchr_iter(b'|', record) {
        if n < fields.len() {
            fields[n] = (start, i);
        }
        n += 1;
        start = i + 1;
    }
    if n < fields.len() {
        fields[n] = (start, record.len());
    }
    n + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything with a tiny chunk size so records straddle chunk boundaries.
    fn all(input: &[u8], chunk: usize) -> Result<(Vec<(u64, String)>, bool), ShapeError> {
        let mut r = RecordReader::with_limits(input, chunk, 64);
        let mut out = Vec::new();
        loop {
            match r.next_record()? {
                Next::Record { line, data } => {
                    out.push((line, String::from_utf8_lossy(data).into_owned()))
                }
                Next::Trailer { line } => out.push((line, "<trailer>".into())),
                Next::End => return Ok((out, r.saw_trailer())),
            }
        }
    }

    #[test]
    fn lines_crlf_blank_and_trailer_at_every_chunk_size() {
        let input = b"a|b\r\n\r\nc|d\n\n999999|END\r\n";
        for chunk in [16, 17, 19, 23, 64] {
            let (recs, trailer) = all(input, chunk).unwrap();
            assert_eq!(
                recs,
                vec![
                    (1, "a|b".into()),
                    (3, "c|d".into()),
                    (5, "<trailer>".into())
                ],
                "chunk {chunk}"
            );
            assert!(trailer);
        }
    }

    #[test]
    fn sub_byte_at_the_end_before_or_after_the_last_newline() {
        for input in [
            &b"a|b\n999999|x\n\x1a"[..],
            b"a|b\n999999|x\x1a\n",
            b"a|b\n999999|x\x1a",
            b"a|b\n999999|x\r\n\x1a\r\n\n",
            b"a|b\x1a",
        ] {
            let (recs, _) = all(input, 16).unwrap();
            assert_eq!(recs[0], (1, "a|b".into()), "{input:?}");
            assert!(recs.iter().all(|(_, r)| !r.contains('\x1a')), "{input:?}");
        }
    }

    #[test]
    fn sub_byte_inside_the_file_is_data() {
        let (recs, _) = all(b"a\x1a\nb\n", 16).unwrap();
        assert_eq!(recs, vec![(1, "a\x1a".into()), (2, "b".into())]);
    }

    #[test]
    fn no_final_newline() {
        let (recs, trailer) = all(b"a|b\nc|d", 16).unwrap();
        assert_eq!(recs, vec![(1, "a|b".into()), (2, "c|d".into())]);
        assert!(!trailer);
    }

    #[test]
    fn data_after_trailer_is_refused() {
        let e = all(b"a\n999999\nb\n", 16).unwrap_err();
        assert!(matches!(e, ShapeError::DataAfterTrailer { line: 3 }), "{e}");
    }

    #[test]
    fn overlong_line_is_refused_with_bounded_memory() {
        let input = vec![b'x'; 1000];
        let e = all(&input, 16).unwrap_err();
        assert!(
            matches!(e, ShapeError::LineTooLong { line: 1, limit: 64 }),
            "{e}"
        );
        // Exactly at the limit with a newline is still fine.
        let mut ok = vec![b'x'; 63];
        ok.push(b'\n');
        assert_eq!(all(&ok, 16).unwrap().0.len(), 1);
    }

    #[test]
    fn fields() {
        let mut f = [(0, 0); 3];
        assert_eq!(split_fields(b"a||c", &mut f), 3);
        assert_eq!(f, [(0, 1), (2, 2), (3, 4)]);
        assert_eq!(split_fields(b"a|b", &mut f), 2);
        assert_eq!(split_fields(b"a|b|c|d|e", &mut f), 5);
        assert_eq!(split_fields(b"", &mut f), 1);
    }
}
