//! What day it is for the loader: today in `TZ`, the day a file name's `MM-DD`, `--date`'s
//! default and a range's end are read against.
//!
//! chrono (like libc) quietly falls back to UTC when `TZ` names a zone it cannot find, and
//! a late-evening run in New York would then look for tomorrow's files. So a `TZ` that is set
//! must resolve: to a zone file (by name under the zoneinfo directories, or by path) or to a
//! POSIX rule such as `EST5EDT`; anything else is refused (78) before the run starts.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::error::Error;

/// Where tzdata keeps zone files: `$TZDIR`, then the usual places.
fn zoneinfo_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("TZDIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for d in [
        "/usr/share/zoneinfo",
        "/usr/lib/zoneinfo",
        "/usr/share/lib/zoneinfo",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// A POSIX TZ rule (`STDoffset[DST[offset][,rule]]`, e.g. `EST5EDT`, `UTC0`,
/// `<+0530>-5:30`): a name of three or more letters or a quoted `<…>`, then an offset.
fn is_posix_rule(tz: &str) -> bool {
    let rest = if let Some(q) = tz.strip_prefix('<') {
        match q.find('>') {
            Some(i) if i >= 3 => &q[i + 1..],
            _ => return false,
        }
    } else {
        let n = tz.bytes().take_while(u8::is_ascii_alphabetic).count();
        if n < 3 {
            return false;
        }
        &tz[n..]
    };
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    rest.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// The zone `tz` (a `TZ` value) names, or why it names none.
pub fn resolve(tz: &str, dirs: &[PathBuf]) -> Result<String, String> {
    let name = tz.strip_prefix(':').unwrap_or(tz);
    if name.is_empty() {
        return Ok("UTC".into());
    }
    if Path::new(name).is_absolute() {
        return if Path::new(name).is_file() {
            Ok(name.to_string())
        } else {
            Err(format!("no zone file {name}"))
        };
    }
    // A name never climbs out of the zoneinfo directory.
    let plain = !name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..");
    if plain && dirs.iter().any(|d| d.join(name).is_file()) {
        return Ok(name.to_string());
    }
    if is_posix_rule(name) {
        return Ok(name.to_string());
    }
    Err(format!(
        "no zone {name:?} under {} (is tzdata installed? zone names look like America/New_York)",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Today in `TZ`, and the zone it was read in (for the log).
pub fn today() -> Result<(NaiveDate, String), Error> {
    let zone = match std::env::var("TZ") {
        Ok(tz) => resolve(&tz, &zoneinfo_dirs()).map_err(|why| {
            Error::Config(format!(
                "TZ={tz} cannot be resolved: {why}; the loader would read today's date in UTC \
                 instead and could look for the wrong day's files. Set TZ to a zone name such \
                 as America/New_York, or unset it to use the system's zone"
            ))
        })?,
        // The system's zone: /etc/localtime, which chrono reads too.
        Err(_) => std::fs::read_link("/etc/localtime")
            .ok()
            .and_then(|p| {
                let s = p.to_string_lossy().into_owned();
                s.split_once("zoneinfo/").map(|(_, z)| z.to_string())
            })
            .unwrap_or_else(|| "the system's local time (UTC if none is set)".into()),
    };
    Ok((chrono::Local::now().date_naive(), zone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> (tempfile::TempDir, Vec<PathBuf>) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("America")).unwrap();
        std::fs::write(d.path().join("America/New_York"), b"TZif").unwrap();
        std::fs::write(d.path().join("UTC"), b"TZif").unwrap();
        let v = vec![d.path().to_path_buf()];
        (d, v)
    }

    #[test]
    fn zone_names_resolve_under_the_zoneinfo_directories() {
        let (_d, dirs) = dirs();
        assert_eq!(
            resolve("America/New_York", &dirs).unwrap(),
            "America/New_York"
        );
        assert_eq!(
            resolve(":America/New_York", &dirs).unwrap(),
            "America/New_York"
        );
        assert_eq!(resolve("UTC", &dirs).unwrap(), "UTC");
        assert_eq!(resolve("", &dirs).unwrap(), "UTC");
    }

    #[test]
    fn posix_rules_resolve_without_a_zone_file() {
        let (_d, dirs) = dirs();
        for tz in [
            "EST5EDT",
            "UTC0",
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "<+0530>-5:30",
        ] {
            assert!(resolve(tz, &dirs).is_ok(), "{tz}");
        }
    }

    #[test]
    fn an_unknown_zone_is_refused_with_where_it_was_looked_for() {
        let (_d, dirs) = dirs();
        for tz in [
            "America/Nowhere",
            "Mars/Olympus",
            "EST",
            "../UTC",
            "/no/such/zone",
            "x1",
        ] {
            let e = resolve(tz, &dirs).unwrap_err();
            assert!(e.contains("no zone"), "{tz}: {e}");
        }
    }
}
