//! Finding a date's files (`CED{MM-DD}{R|E|A}.PIP`, any letter case) in a listing, the same
//! way for an S3 prefix and a local directory.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

use crate::error::{Error, Problem, Rejection};
use crate::layout::FileType;

/// `MM-DD` and type of a name like `CED01-15R.PIP` (any case), else `None`.
pub fn parse_name(name: &str) -> Option<((u32, u32), FileType)> {
    let up = name.to_ascii_uppercase();
    let rest = up.strip_prefix("CED")?.strip_suffix(".PIP")?;
    let b = rest.as_bytes();
    if b.len() != 6 || b[2] != b'-' || !b[..2].iter().chain(&b[3..5]).all(u8::is_ascii_digit) {
        return None;
    }
    let m = rest[..2].parse().ok()?;
    let d = rest[3..5].parse().ok()?;
    let t = FileType::ALL
        .into_iter()
        .find(|t| t.letter() as u8 == b[5])?;
    Some(((m, d), t))
}

/// The business day a name's `MM-DD` stands for: that day in the most recent year that puts
/// it on or before `today`. A file is delivered on or after its day, so a December file read
/// in early January is last year's. `None` when the name carries no date.
pub fn date_of_name(name: &str, today: NaiveDate) -> Option<NaiveDate> {
    let ((m, d), _) = parse_name(name)?;
    // Eight years back finds the last 02-29 whatever today is.
    (0..=8)
        .filter_map(|back| NaiveDate::from_ymd_opt(today.year() - back, m, d))
        .find(|day| *day <= today)
}

/// Whether any entry is a file of `date` (of any type): a date with none is a day without
/// files (a weekend, a holiday), not one with files missing.
pub fn has_date<T>(entries: &[(String, T)], date: NaiveDate) -> bool {
    entries
        .iter()
        .any(|(n, _)| parse_name(n).is_some_and(|(md, _)| md == (date.month(), date.day())))
}

/// The expected name of a date's file of one type.
pub fn expected_name(date: NaiveDate, t: FileType) -> String {
    format!("CED{:02}-{:02}{}.PIP", date.month(), date.day(), t.letter())
}

/// What was found for a date: per type the matching entry, and the types missing.
#[derive(Debug)]
pub struct Picked<T> {
    pub found: Vec<(FileType, T)>,
    pub missing: Vec<FileType>,
}

/// Picks the date's files from `(name, entry)` pairs. `place` (e.g. `s3://b/pif/`) and
/// `prefix` (what names are shown with) only shape messages. Two entries for one type are
/// refused; a missing type is an error unless `allow_missing`.
pub fn pick<T: Clone>(
    entries: &[(String, T)],
    date: NaiveDate,
    place: &str,
    prefix: &str,
    allow_missing: bool,
) -> Result<Picked<T>, Error> {
    let want = (date.month(), date.day());
    let mut per_type: BTreeMap<FileType, Vec<(String, T)>> = BTreeMap::new();
    let mut dates: BTreeMap<(u32, u32), Vec<char>> = BTreeMap::new();
    for (name, e) in entries {
        if let Some((md, t)) = parse_name(name) {
            dates.entry(md).or_default().push(t.letter());
            if md == want {
                per_type
                    .entry(t)
                    .or_default()
                    .push((name.clone(), e.clone()));
            }
        }
    }
    for (t, v) in &per_type {
        if v.len() > 1 {
            let names: Vec<String> = v.iter().map(|(n, _)| format!("{prefix}{n}")).collect();
            return Err(Error::Rejected(Rejection {
                file: place.to_string(),
                problems: vec![Problem::file(format!(
                    "{} objects match the {t} file for {:02}-{:02}: {}; refusing to guess which one to load",
                    v.len(),
                    want.0,
                    want.1,
                    names.join(" and ")
                ))],
                more: false,
            }));
        }
    }
    let missing: Vec<FileType> = FileType::ALL
        .into_iter()
        .filter(|t| !per_type.contains_key(t))
        .collect();
    if !missing.is_empty() && !allow_missing {
        let looked: Vec<String> = FileType::ALL
            .iter()
            .map(|&t| format!("{prefix}{}", expected_name(date, t)))
            .collect();
        let present: Vec<String> = FileType::ALL
            .iter()
            .filter_map(|t| per_type.get(t).map(|v| v[0].0.clone()))
            .collect();
        let nearest = nearest(&dates, want);
        let miss: Vec<&str> = missing.iter().map(|t| t.name()).collect();
        return Err(Error::NoInput(format!(
            "{place}: no {} file for {:02}-{:02}. Looked for {} (any letter case). Present for that date: {}. \
             Nearest dates present: {}. (--allow-missing loads what is there)",
            miss.join(", "),
            want.0,
            want.1,
            looked.join(", "),
            if present.is_empty() { "nothing".to_string() } else { present.join(", ") },
            if nearest.is_empty() { "none".to_string() } else { nearest },
        )));
    }
    let found = FileType::ALL
        .into_iter()
        .filter_map(|t| per_type.remove(&t).map(|mut v| (t, v.remove(0).1)))
        .collect();
    Ok(Picked { found, missing })
}

/// Up to two dates before and two after `want` that have files, with their type letters.
fn nearest(dates: &BTreeMap<(u32, u32), Vec<char>>, want: (u32, u32)) -> String {
    let show = |(&(m, d), l): (&(u32, u32), &Vec<char>)| {
        let mut l = l.clone();
        l.sort_by_key(|c| "REA".find(*c));
        l.dedup();
        format!("{m:02}-{d:02} ({})", l.iter().collect::<String>())
    };
    let before: Vec<String> = dates.range(..want).rev().take(2).map(show).collect();
    let after: Vec<String> = dates
        .range((want.0, want.1 + 1)..)
        .take(2)
        .map(show)
        .collect();
    before
        .into_iter()
        .rev()
        .chain(after)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `--date`.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("invalid date {s:?}: expected YYYY-MM-DD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn entries(names: &[&str]) -> Vec<(String, usize)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i))
            .collect()
    }

    #[test]
    fn names() {
        assert_eq!(
            parse_name("CED01-15R.PIP"),
            Some(((1, 15), FileType::Issuer))
        );
        assert_eq!(
            parse_name("ced12-31a.pip"),
            Some(((12, 31), FileType::IssueAttr))
        );
        assert_eq!(parse_name("CED1-15R.PIP"), None);
        assert_eq!(parse_name("CED01-15X.PIP"), None);
        assert_eq!(parse_name("XCED01-15R.PIP"), None);
        assert_eq!(
            expected_name(d("2024-01-05"), FileType::Issue),
            "CED01-05E.PIP"
        );
    }

    #[test]
    fn picks_all_three_in_load_order() {
        let e = entries(&[
            "CED01-15A.PIP",
            "ced01-15r.pip",
            "CED01-15E.PIP",
            "CED01-16R.PIP",
        ]);
        let p = pick(&e, d("2024-01-15"), "x", "", false).unwrap();
        let got: Vec<(FileType, usize)> = p.found;
        assert_eq!(
            got,
            vec![
                (FileType::Issuer, 1),
                (FileType::Issue, 2),
                (FileType::IssueAttr, 0)
            ]
        );
    }

    #[test]
    fn missing_names_what_was_looked_for_and_what_is_near() {
        let e = entries(&[
            "CED01-15R.PIP",
            "CED01-14R.PIP",
            "CED01-14E.PIP",
            "CED01-14A.PIP",
            "CED01-17A.PIP",
        ]);
        let err = pick(&e, d("2024-01-15"), "s3://b/pif/", "pif/", false).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.exit().code(), 66);
        assert!(msg.contains("no issue, issue_attr file for 01-15"), "{msg}");
        assert!(msg.contains("pif/CED01-15E.PIP"), "{msg}");
        assert!(
            msg.contains("Present for that date: CED01-15R.PIP"),
            "{msg}"
        );
        assert!(msg.contains("01-14 (REA), 01-17 (A)"), "{msg}");
        let p = pick(&e, d("2024-01-15"), "x", "", true).unwrap();
        assert_eq!(p.missing, vec![FileType::Issue, FileType::IssueAttr]);
    }

    #[test]
    fn two_candidates_are_refused() {
        let e = entries(&["CED01-15R.PIP", "ced01-15r.pip"]);
        let err = pick(&e, d("2024-01-15"), "x", "pif/", true).unwrap_err();
        assert!(
            err.to_string()
                .contains("pif/CED01-15R.PIP and pif/ced01-15r.pip"),
            "{err}"
        );
    }

    #[test]
    fn a_names_date_is_the_most_recent_such_day_not_after_today() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            date_of_name("CED01-15R.PIP", d("2024-01-15")),
            Some(d("2024-01-15"))
        );
        assert_eq!(
            date_of_name("ced01-15e.pip", d("2024-03-01")),
            Some(d("2024-01-15"))
        );
        // A December file read in January is last year's.
        assert_eq!(
            date_of_name("CED12-31A.PIP", d("2025-01-02")),
            Some(d("2024-12-31"))
        );
        // Tomorrow's name is last year's day, never a future one.
        assert_eq!(
            date_of_name("CED01-16R.PIP", d("2024-01-15")),
            Some(d("2023-01-16"))
        );
        assert_eq!(
            date_of_name("CED02-29R.PIP", d("2026-12-03")),
            Some(d("2024-02-29"))
        );
        assert_eq!(date_of_name("CED02-30R.PIP", d("2026-12-03")), None);
        assert_eq!(date_of_name("badint-E.PIP", d("2026-12-03")), None);
    }
}
