//! Splitting a PIP byte stream into records and fields.
//!
//! Two loops at two grains, each tuned on its own: `record` frames the stream into records
//! (reads, line endings, the trailer, a final 0x1A), a line at a time; `fields` cuts one
//! record at its delimiters, sixteen or sixty-four bytes at a time with vector masks. The
//! encoder uses both, and `--validate-only` lets `fields` take plain lines straight from
//! the reader's buffer.

mod fields;
mod record;

pub use fields::{Fields, Split};
pub use record::{is_trailer, Next, RecordReader, ShapeError, CHUNK, FIRST_READ, MAX_LINE};
