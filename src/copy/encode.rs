//! One record → one checked binary COPY row.
//!
//! This is the loader's per-field hot path, so the encoder keeps everything it needs
//! between records (the field splitter, a transcoding buffer, per-column bounds) and
//! allocates nothing per row. It also holds the short cut `--validate-only` takes for
//! plain records, beside the field-by-field walk it must always agree with, and notices
//! whether the file's keys ascend, which lets the load skip looking for repeated keys.

use crate::convert::{self, Encoding, Out};
use crate::error::Problem;
use crate::layout::{Column, Kind, Layout};
use crate::parse::{is_trailer, Fields};

/// A staging row's field count and line number, before the master table's fields.
pub(super) const LINE_PREFIX: usize = 2 + 4 + 8;

/// Encodes one record into `out` as a COPY row, or explains every bad field in it.
pub struct RowEncoder {
    layout: &'static Layout,
    encoding: Encoding,
    fields: Fields,
    scratch: Vec<u8>,
    /// Rows start with the file line (staging); without it they fit the master table.
    line: bool,
    /// The previous row's encoded key, and whether every key so far was greater than the
    /// one before. Encoded keys compare like the keys themselves: equal bytes are equal
    /// text, and fixed-width keys order by their bytes.
    prev_key: Vec<u8>,
    ascending: bool,
    /// Per column, the shortest and the longest field of a plain record that needs no
    /// closer look: a text key is never empty, text never wider than its column. Typed
    /// columns are unbounded here; they are the `typed` ones.
    shortest: Vec<u32>,
    longest: Vec<u32>,
    /// The columns that are not text (dates and numbers), checked by their converters.
    typed: Vec<(usize, &'static Column)>,
}

impl RowEncoder {
    pub fn new(layout: &'static Layout, encoding: Encoding) -> RowEncoder {
        // The key must lead the row for the encoded key to be one contiguous slice.
        let leading = layout.columns.iter().take_while(|c| c.key).count();
        let keys = layout.columns.iter().filter(|c| c.key).count();
        RowEncoder {
            layout,
            encoding,
            fields: Fields::new(layout.columns.len()),
            scratch: Vec::new(),
            line: true,
            prev_key: Vec::new(),
            ascending: keys > 0 && leading == keys,
            shortest: (layout.columns.iter())
                .map(|c| match c.kind {
                    Kind::Varchar(_) => c.key as u32,
                    _ => 0,
                })
                .collect(),
            longest: (layout.columns.iter())
                .map(|c| match c.kind {
                    Kind::Varchar(width) => width as u32,
                    _ => u32::MAX,
                })
                .collect(),
            typed: (layout.columns.iter().enumerate())
                .filter(|(_, c)| !matches!(c.kind, Kind::Varchar(_)))
                .collect(),
        }
    }

    /// Rows for a COPY straight into the master table: no leading line number.
    pub fn without_line(mut self) -> RowEncoder {
        self.line = false;
        self
    }

    /// Whether rows start with the file line (staging rows), as comparing needs.
    pub(super) fn writes_line(&self) -> bool {
        self.line
    }

    /// Whether every key encoded so far was greater than the one before.
    pub fn keys_ascending(&self) -> bool {
        self.ascending
    }

    /// Appends the row, or appends its problems to `problems` and leaves `out` unchanged.
    pub fn encode<O: Out>(
        &mut self,
        out: &mut O,
        line: u64,
        data: &[u8],
        problems: &mut Vec<Problem>,
    ) -> bool {
        let expected = self.layout.columns.len();
        let split = self.fields.split(data);
        let found = split.count;
        if found != expected {
            problems.push(Problem::at(
                line,
                None,
                format!(
                    "has {found} fields; a{} {} record has {expected}",
                    if self.layout.table.starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "n"
                    } else {
                        ""
                    },
                    self.layout.file_type
                ),
            ));
            return false;
        }
        if !O::KEEPS && split.plain && self.passes(data) {
            return true;
        }
        let mark = out.len();
        // One reservation per row: a field never grows by more than its length word plus
        // a small numeric's header, so the puts below do not reallocate.
        out.reserve(data.len() + 20 * expected + 16);
        if self.line {
            out.int16(expected as i16 + 1);
            out.int32(8);
            out.int64(line as i64);
        } else {
            out.int16(expected as i16);
        }
        let key_start = out.len();
        let mut key_end = key_start;
        let mut ok = true;
        for (col, (s, e)) in self.layout.columns.iter().zip(self.fields.ranges()) {
            let raw = &data[s..e];
            let result = match col.kind {
                Kind::Varchar(width) if split.plain => {
                    convert::encode_plain_text(out, raw, width, col.key)
                }
                kind => {
                    convert::encode_field(out, raw, kind, col.key, self.encoding, &mut self.scratch)
                }
            };
            if let Err(err) = result {
                problems.push(Problem::at(line, Some(col.name), err.to_string()));
                ok = false;
            }
            if col.key {
                key_end = out.len();
            }
        }
        if !ok {
            out.truncate(mark);
        } else if O::KEEPS && self.ascending {
            let key = &out.written()[key_start..key_end];
            if !self.prev_key.is_empty() && key <= self.prev_key.as_slice() {
                self.ascending = false;
            }
            self.prev_key.clear();
            self.prev_key.extend_from_slice(key);
        }
        ok
    }

    /// Checks the plain records at the start of `buf` (the reader's unread bytes) for as
    /// long as each passes, and returns the bytes and lines they take up. It stops at the
    /// first line that is not plain, not a whole line, the trailer, or not a good record,
    /// and leaves that one to the reader and [`RowEncoder::encode`], which handle it and
    /// name its problems exactly as they do for every line in a load.
    pub fn check_plain_lines(&mut self, buf: &[u8]) -> (usize, u64) {
        let (mut at, mut lines) = (0, 0);
        while let Some(len) = self.fields.split_line(&buf[at..]) {
            let data = &buf[at..at + len];
            if self.fields.count() != self.layout.columns.len()
                || is_trailer(data)
                || !self.passes(data)
            {
                break;
            }
            at += len + 1;
            lines += 1;
        }
        (at, lines)
    }

    /// Whether a plain record whose fields have been split passes every check, looked at
    /// with as few branches as possible: lengths first, all at once, then only the typed
    /// fields. It only ever says yes when [`RowEncoder::encode`]'s field-by-field walk
    /// would find nothing; on a no, that walk runs and says what is wrong. This is what
    /// makes `--validate-only` fast, and `passes_only_what_encode_accepts` holds it to that.
    fn passes(&mut self, data: &[u8]) -> bool {
        let cuts = self.fields.cuts();
        let (shortest, longest) = (&self.shortest[..], &self.longest[..]);
        let columns = shortest.len().min(longest.len()).min(cuts.len() - 1);
        let mut out_of_bounds = false;
        for i in 0..columns {
            let n = cuts[i + 1] - cuts[i] - 1;
            out_of_bounds |= (n < shortest[i]) | (n > longest[i]);
        }
        if out_of_bounds {
            return false;
        }
        for &(i, col) in &self.typed {
            let (s, e) = self.fields.range(i);
            let raw = &data[s..e];
            // Dates and decimals, nearly every typed field, are asked by checks that return
            // a flag in a register; anything else goes through the converter.
            let ok = match col.kind {
                _ if raw.is_empty() => !col.key,
                Kind::Date => convert::date_ok(raw),
                Kind::Numeric { precision, scale } => {
                    convert::numeric_surely_fits(raw, precision, scale)
                }
                kind => convert::encode_field(
                    &mut convert::Discard,
                    raw,
                    kind,
                    col.key,
                    self.encoding,
                    &mut self.scratch,
                )
                .is_ok(),
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio::sync::mpsc;

    use super::*;
    use crate::copy::tests::{run, GOOD};
    use crate::copy::{produce, produce_rows, ParseOptions};
    use crate::layout::{ISSUE, ISSUER};
    use crate::pgcopy;

    #[test]
    fn field_count_names_both_counts() {
        let (p, _) = run(b"a|b|c\n999999\n", ParseOptions::default());
        assert_eq!(
            p.problems[0].render("F"),
            "F line 1: has 3 fields; an issuer record has 16"
        );
        let (tx, _rx) = mpsc::channel(4);
        let p = produce(
            &b"a|b\n999999\n"[..],
            &ISSUE,
            ParseOptions::default(),
            tx,
            &|_, _| {},
        );
        assert_eq!(
            p.problems[0].message,
            "has 2 fields; an issue record has 17"
        );
    }

    fn issuer_line(num: &str) -> String {
        format!("{num}|1|ACME CORP||||||||C|A||A|NY|2024-01-15\n")
    }

    #[test]
    fn ascending_keys_are_noticed_and_any_repeat_or_step_back_ends_them() {
        let file = |keys: &[&str]| {
            let mut f: String = keys.iter().map(|k| issuer_line(k)).collect();
            f.push_str("999999\n");
            f
        };
        let (p, _) = run(
            file(&["00123A", "00123B", "00124A"]).as_bytes(),
            Default::default(),
        );
        assert!(p.problems.is_empty() && p.keys_ascending);
        // A repeated key is not ascending: the database must resolve it.
        let (p, _) = run(file(&["00123A", "00123A"]).as_bytes(), Default::default());
        assert!(!p.keys_ascending);
        let (p, _) = run(
            file(&["00123B", "00123A", "00124A"]).as_bytes(),
            Default::default(),
        );
        assert!(!p.keys_ascending);
        // Encoded keys carry their length first, so a shorter key sorts low whatever its
        // text: the claim is only ever made conservatively.
        let (p, _) = run(file(&["00123A", "0013"]).as_bytes(), Default::default());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(!p.keys_ascending);
        // No record, no claim.
        let (p, _) = run(b"999999\n", Default::default());
        assert!(!p.keys_ascending);
    }

    #[test]
    fn rows_without_the_line_fit_the_master_table() {
        let input = format!("{GOOD}\n999999\n");
        let (tx, mut rx) = mpsc::channel(16);
        let enc = RowEncoder::new(&ISSUER, Encoding::default()).without_line();
        let p = produce_rows(
            input.as_bytes(),
            enc,
            BytesMut::new(),
            None,
            Default::default(),
            tx,
            &|_, _| {},
        );
        assert!(p.problems.is_empty() && p.keys_ascending);
        let bytes = rx.try_recv().unwrap();
        // 16 columns and no line: the first field is the issuer number itself.
        let row = &bytes[pgcopy::HEADER_LEN..];
        assert_eq!(&row[..2], &16i16.to_be_bytes());
        assert_eq!(&row[2..6], &6i32.to_be_bytes());
        assert_eq!(&row[6..12], b"00123A");
    }

    /// The short cut `--validate-only` takes for plain records never accepts what the
    /// field-by-field walk refuses: every field of a real record of each layout replaced
    /// in turn by values at and past each check's edge, in every encoding, must get the
    /// same verdict and the same messages with [`convert::Discard`] as with a buffer.
    #[test]
    fn passes_only_what_encode_accepts() {
        use crate::layout::ISSUE_ATTR;
        let samples = [
            (&ISSUER, include_str!("../../testdata/CED01-15R.PIP")),
            (&ISSUE, include_str!("../../testdata/CED01-15E.PIP")),
            (&ISSUE_ATTR, include_str!("../../testdata/CED01-15A.PIP")),
        ];
        let edges: &[&[u8]] = &[
            b"",
            b"x",
            b"0",
            b"-1",
            b"1.5",
            b"2024-02-29",
            b"2023-02-29",
            b"2024-13-01",
            b"02/30/2024",
            b"12/31/1999",
            b"19990101",
            b"00000000",
            b"0000-00-00",
            b"2024-1-01",
            b"2024/01/01",
            b"99999999",
            b"123.4567",
            b"1234567.1",
            b"12345.12",
            b"2147483648",
            b"+5",
            b"A",
            b"AB",
            b"ABC",
            b"ABCDEF",
            b"\xC3\xA9",
            b"\x00",
            b"\x80",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ",
            b"5.",
            b".5",
            b".",
            b"..5",
            b"1.2.3",
            b"999.999",
            b"1000.000",
            b"0001.5",
            b"1.5000",
            b"-0",
            b"-999.999",
            b"\t",
            b"\r",
            b"\x1a",
            b"\x7f",
        ];
        let (mut compared, mut bulk) = (0, 0);
        for (layout, text) in samples {
            // Every sample record that is printable ASCII is taken in bulk.
            let mut enc = RowEncoder::new(layout, Encoding::Utf8);
            let plain = (text.split_inclusive('\n')).filter(|l| {
                !l.starts_with("999999") && l.trim_end().bytes().all(|b| (0x20..0x80).contains(&b))
            });
            for line in plain {
                assert_eq!(
                    enc.check_plain_lines(line.as_bytes()),
                    (line.len(), 1),
                    "{line}"
                );
                bulk += 1;
            }
            assert!(bulk > 200, "{bulk}");
            // A few records of each: every column and edge of them is thousands of cases.
            for record in text.lines().filter(|l| !l.starts_with("999999")).take(12) {
                let fields: Vec<&[u8]> = record.as_bytes().split(|&b| b == b'|').collect();
                for col in 0..fields.len() {
                    let width = match layout.columns.get(col).map(|c| c.kind) {
                        Some(Kind::Varchar(w)) => w as usize,
                        _ => 0,
                    };
                    let exactly_wide = vec![b'W'; width];
                    let too_wide = vec![b'W'; width + 1];
                    let values = edges.iter().copied().chain([&exactly_wide[..], &too_wide]);
                    for value in values {
                        let mut changed = fields.clone();
                        changed[col] = value;
                        let data = changed.join(&b'|');
                        for encoding in [Encoding::Utf8, Encoding::Latin1, Encoding::Windows1252] {
                            let (mut with, mut without) = (Vec::new(), Vec::new());
                            let mut out = BytesMut::new();
                            let ok = RowEncoder::new(layout, encoding)
                                .encode(&mut out, 7, &data, &mut with);
                            let checked = RowEncoder::new(layout, encoding).encode(
                                &mut convert::Discard,
                                7,
                                &data,
                                &mut without,
                            );
                            assert_eq!(
                                (checked, &without),
                                (ok, &with),
                                "{}",
                                convert::show(&data)
                            );
                            // Taken in bulk only when good and printable ASCII; any other
                            // line (and a good one it is not sure of, such as a signed
                            // rate) is left to the reader and `encode`.
                            let line = [&data[..], b"\n"].concat();
                            let printable = data.iter().all(|b| (0x20..0x80).contains(b));
                            let mut enc = RowEncoder::new(layout, encoding);
                            match enc.check_plain_lines(&line) {
                                (0, 0) => {}
                                taken => {
                                    assert!(
                                        ok && printable && taken == (line.len(), 1),
                                        "{}",
                                        convert::show(&data)
                                    );
                                    bulk += 1;
                                }
                            }
                            compared += 1;
                        }
                    }
                }
            }
        }
        // Every layout, every column, every edge: thousands, not a handful; and most of
        // them plain and good enough to be taken in bulk.
        assert!(compared > 5_000, "{compared}");
        assert!(bulk * 2 > compared, "{bulk} of {compared}");
    }
}
