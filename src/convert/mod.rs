//! Field text → PostgreSQL binary COPY value, with every check the server would skip.
//!
//! Binary COPY hands the server finished values, so nothing textual is checked there: a
//! `varchar(n)` over width would be silently trimmed if its excess is spaces, a numeric
//! with too many decimals silently rounded. Every such check therefore lives here, and a
//! value that passes is written exactly as it appeared in the file.
//!
//! Each kind of column has rules and a fast path of its own (text by its encoding, dates
//! by a word-at-a-time digit check, numerics by base-10000 groups), tuned and tested apart,
//! so each lives in its own module: `text`, `date` and `number`. What every kind shares
//! stays here: where values go ([`Out`]), why one is refused ([`ValueError`], [`show`]), and
//! the one dispatch on a column's kind ([`encode_field`]).

mod date;
mod number;
mod text;

use bytes::{BufMut, BytesMut};
use std::fmt;

use crate::layout::Kind;
use crate::pgcopy;

pub use date::{date_ok, parse_date};
pub use number::{numeric_surely_fits, parse_integer};
pub use text::encode_plain_text;

/// The text encoding of the input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8 (of which ASCII is a subset); invalid bytes are rejected.
    #[default]
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same number.
    Latin1,
    /// Windows-1252: Latin-1 except 0x80–0x9F, five of which are undefined (rejected).
    Windows1252,
}

impl Encoding {
    pub fn from_name(s: &str) -> Option<Encoding> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf8" | "utf-8" => Some(Encoding::Utf8),
            "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" => Some(Encoding::Latin1),
            "windows-1252" | "cp1252" | "win1252" => Some(Encoding::Windows1252),
            _ => None,
        }
    }
}

/// Where encoded values go: a COPY buffer, or nowhere. Words are written big-endian, as
/// binary COPY ([`crate::pgcopy`]) has them.
///
/// `--validate-only` must find exactly the problems a load would, so it runs the very same
/// checks; only the output differs. Compiled for [`Discard`], every write vanishes and
/// work whose only product is output (day numbers, base-10000 digits) is skipped.
pub trait Out {
    /// False when nothing is kept: the caller may then skip work that only feeds output.
    const KEEPS: bool;
    fn int16(&mut self, v: i16);
    fn int32(&mut self, v: i32);
    fn int64(&mut self, v: i64);
    fn bytes(&mut self, v: &[u8]);
    /// Bytes written so far (always 0 for [`Discard`]).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Forgets everything written after `len`.
    fn truncate(&mut self, len: usize);
    fn reserve(&mut self, additional: usize);
    /// What has been written (always empty for [`Discard`]).
    fn written(&self) -> &[u8];
}

impl Out for BytesMut {
    const KEEPS: bool = true;
    #[inline(always)]
    fn int16(&mut self, v: i16) {
        self.put_i16(v);
    }
    #[inline(always)]
    fn int32(&mut self, v: i32) {
        self.put_i32(v);
    }
    #[inline(always)]
    fn int64(&mut self, v: i64) {
        self.put_i64(v);
    }
    #[inline(always)]
    fn bytes(&mut self, v: &[u8]) {
        self.put_slice(v);
    }
    #[inline(always)]
    fn len(&self) -> usize {
        BytesMut::len(self)
    }
    #[inline(always)]
    fn truncate(&mut self, len: usize) {
        BytesMut::truncate(self, len);
    }
    #[inline(always)]
    fn reserve(&mut self, additional: usize) {
        BytesMut::reserve(self, additional);
    }
    #[inline(always)]
    fn written(&self) -> &[u8] {
        self
    }
}

/// An [`Out`] that keeps nothing: the checks of an encoder, without the encoding.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Out for Discard {
    const KEEPS: bool = false;
    #[inline(always)]
    fn int16(&mut self, _: i16) {}
    #[inline(always)]
    fn int32(&mut self, _: i32) {}
    #[inline(always)]
    fn int64(&mut self, _: i64) {}
    #[inline(always)]
    fn bytes(&mut self, _: &[u8]) {}
    #[inline(always)]
    fn len(&self) -> usize {
        0
    }
    #[inline(always)]
    fn truncate(&mut self, _: usize) {}
    #[inline(always)]
    fn reserve(&mut self, _: usize) {}
    #[inline(always)]
    fn written(&self) -> &[u8] {
        &[]
    }
}

/// Why a value was rejected. The caller adds file, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    TooWide {
        value: String,
        chars: usize,
        width: u16,
    },
    EmptyKey,
    Nul {
        value: String,
    },
    InvalidUtf8 {
        value: String,
        byte: u8,
        offset: usize,
    },
    Undefined1252 {
        value: String,
        byte: u8,
    },
    BadDate {
        value: String,
    },
    NoSuchDate {
        value: String,
    },
    BadInteger {
        value: String,
    },
    IntegerRange {
        value: String,
    },
    BadNumeric {
        value: String,
    },
    TooManyDecimals {
        value: String,
        decimals: usize,
        precision: u8,
        scale: u8,
    },
    TooManyDigits {
        value: String,
        digits: usize,
        precision: u8,
        scale: u8,
    },
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ValueError::*;
        match self {
            TooWide {
                value,
                chars,
                width,
            } => {
                write!(
                    f,
                    "\"{value}\" is {chars} characters; varchar({width}) allows {width}"
                )
            }
            EmptyKey => write!(f, "is empty but is part of the key"),
            Nul { value } => write!(
                f,
                "\"{value}\" contains a NUL byte, which is never valid in text"
            ),
            InvalidUtf8 {
                value,
                byte,
                offset,
            } => write!(
                f,
                "\"{value}\" has byte 0x{byte:02X} at offset {offset}, which is not valid UTF-8 \
                 (if the file is Latin-1 or Windows-1252, say so with --encoding)"
            ),
            Undefined1252 { value, byte } => {
                write!(
                    f,
                    "\"{value}\" has byte 0x{byte:02X}, which Windows-1252 does not define"
                )
            }
            BadDate { value } => {
                write!(
                    f,
                    "\"{value}\" is not a date (expected YYYY-MM-DD, YYYYMMDD or MM/DD/YYYY)"
                )
            }
            NoSuchDate { value } => write!(f, "\"{value}\" is not a valid calendar date"),
            BadInteger { value } => write!(f, "\"{value}\" is not an integer"),
            IntegerRange { value } => write!(f, "\"{value}\" is out of range for integer"),
            BadNumeric { value } => write!(f, "\"{value}\" is not a decimal number"),
            TooManyDecimals {
                value,
                decimals,
                precision,
                scale,
            } => write!(
                f,
                "\"{value}\" has {decimals} decimals; numeric({precision},{scale}) allows {scale}"
            ),
            TooManyDigits {
                value,
                digits,
                precision,
                scale,
            } => write!(
                f,
                "\"{value}\" has {digits} integer digits; numeric({precision},{scale}) allows {}",
                precision - scale
            ),
        }
    }
}

/// Renders raw field bytes for an error message: valid UTF-8 as is, other bytes as `\xNN`,
/// control characters escaped, long values shortened.
pub fn show(raw: &[u8]) -> String {
    const MAX: usize = 120;
    let mut out = String::new();
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
        if out.len() > MAX {
            let mut cut = MAX;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
}

/// Appends one binary COPY field (length word and value) for `raw`, or an error.
///
/// `scratch` is reused for transcoding so that the common all-ASCII case allocates nothing.
pub fn encode_field<O: Out>(
    out: &mut O,
    raw: &[u8],
    kind: Kind,
    is_key: bool,
    encoding: Encoding,
    scratch: &mut Vec<u8>,
) -> Result<(), ValueError> {
    if raw.is_empty() {
        if is_key {
            return Err(ValueError::EmptyKey);
        }
        out.int32(pgcopy::NULL);
        return Ok(());
    }
    match kind {
        Kind::Varchar(width) => text::encode_text(out, raw, width, encoding, scratch),
        Kind::Date => date::encode_date(out, raw),
        Kind::Integer => number::encode_integer(out, raw),
        Kind::Numeric { precision, scale } => number::encode_numeric(out, raw, precision, scale),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One field, not a key, encoded as UTF-8: its length word and value.
    pub(super) fn enc(raw: &str, kind: Kind) -> Result<Vec<u8>, ValueError> {
        enc_bytes(raw.as_bytes(), kind, Encoding::Utf8)
    }

    /// One field, not a key, in the encoding given: its length word and value.
    pub(super) fn enc_bytes(raw: &[u8], kind: Kind, e: Encoding) -> Result<Vec<u8>, ValueError> {
        let mut out = BytesMut::new();
        encode_field(&mut out, raw, kind, false, e, &mut Vec::new())?;
        Ok(out.to_vec())
    }

    #[test]
    fn empty_is_null_except_in_keys() {
        assert_eq!(enc("", Kind::Date).unwrap(), (-1i32).to_be_bytes());
        let mut out = BytesMut::new();
        let e = encode_field(
            &mut out,
            b"",
            Kind::Varchar(6),
            true,
            Encoding::Utf8,
            &mut Vec::new(),
        );
        assert_eq!(e, Err(ValueError::EmptyKey));
    }

    #[test]
    fn show_escapes_what_a_terminal_would_mangle() {
        assert_eq!(show(b"a\tb\x01"), "a\\tb\\u{1}");
        assert_eq!(show(b"\xFFok"), "\\xFFok");
        assert!(show(&[b'x'; 500]).len() < 130);
    }
}
