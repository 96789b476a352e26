//! The reader model: how a PIP file is framed into records, as docs/design.md states it,
//! written independently of the loader's reader so that the two can be held to each other.
//!
//! Two suites check the reader against it: the property tests (`tests/props.rs`) and the
//! fuzz checks (`tests/fuzz/src/lib.rs`, also replayed by `tests/fuzz_corpus.rs`). They
//! share this one file, each compiling it with `#[path]`, so that both hold the reader to
//! the same rules and a change to the rules is made once. It uses nothing but `std`: a
//! model built on the loader's own code could only agree with it.

/// DOS end-of-file marker, tolerated at the end of a file.
pub const SUB: u8 = 0x1A;

/// What the reader yields, in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Record(u64, Vec<u8>),
    Trailer(u64),
    TooLong(u64),
    AfterTrailer(u64),
}

/// The format as docs/design.md states it: lines end at LF and one CR before it is dropped; a
/// 0x1A ending a line is dropped when only line endings and 0x1A follow it (and then that
/// rest is the end of the file); blank lines carry nothing; a record starting `999999` is
/// the trailer and nothing may follow it.
pub fn model(input: &[u8]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line = 0u64;
    let mut trailer = false;
    while start < input.len() {
        let end = input[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(input.len(), |i| start + i);
        line += 1;
        let mut c = &input[start..end];
        let rest = input.get(end + 1..).unwrap_or(&[]);
        start = end + 1;
        if let [head @ .., b'\r'] = c {
            c = head;
        }
        if c.last() == Some(&SUB) && rest.iter().all(|&b| matches!(b, b'\n' | b'\r' | SUB)) {
            c = &c[..c.len() - 1];
            if let [head @ .., b'\r'] = c {
                c = head;
            }
            // The reader then takes the whole rest as blank, however many 0x1A it holds
            // (while a line of two 0x1A after a plain line is data: see the report).
            start = input.len();
        }
        if c.is_empty() {
            continue;
        }
        if trailer {
            out.push(Item::AfterTrailer(line));
            return out;
        }
        if c.starts_with(b"999999") {
            trailer = true;
            out.push(Item::Trailer(line));
        } else {
            out.push(Item::Record(line, c.to_vec()));
        }
    }
    out
}

/// Physical lines as the reader numbers them (a last line without LF counts).
pub fn physical_lines(input: &[u8]) -> u64 {
    let lf = input.iter().filter(|&&b| b == b'\n').count() as u64;
    lf + u64::from(!input.is_empty() && !input.ends_with(b"\n"))
}

/// The one documented exception to "a line is refused as too long only when it is"
/// (`RecordReader::rest_is_blank`): after a line ending in 0x1A the reader looks on for the
/// end of the file, skipping blank lines but keeping lines of CR and 0x1A bytes (records, if
/// data follows), and refuses `max_line` bytes of those as an over-long line, naming the
/// first line it kept. Whether refusing `line` (1-based) of `input` is that case.
pub fn refused_past_a_0x1a_line(input: &[u8], line: u64, max_line: usize) -> bool {
    let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let Some(at) = (line as usize).checked_sub(1) else {
        return false;
    };
    let text = lines.get(at).copied().unwrap_or(&[]);
    let kept = !text.is_empty() && text != b"\r" && text.iter().all(|&b| b == b'\r' || b == SUB);
    let start: usize = lines[..at.min(lines.len())]
        .iter()
        .map(|x| x.len() + 1)
        .sum();
    let run = input[start.min(input.len())..]
        .iter()
        .take_while(|&&b| matches!(b, b'\n' | b'\r' | SUB))
        .count();
    kept && run >= max_line
}
