//! Synthetic CUSIP PIP file generator (std only, constant memory, streaming).
//!
//! ```text
//! cargo run --release --example generate -- --issues N --out DIR [--date MM-DD] [--seed S]
//!     [--next-of MM-DD [--changed-pct 1.0] [--new-pct 0.5]] [--delta-seed S]
//!     [--repeat-pct 0 [--repeat-types REA] [--repeat-where end]]
//! ```
//!
//! Writes `CED{date}R.PIP`, `CED{date}E.PIP`, `CED{date}A.PIP` into DIR: N issues, about N/25
//! issuers, one attribute record per issue, keys sorted, foreign keys consistent, each file
//! ending with a `999999|TRAILER|<records>` line. Layouts and code tables follow
//! shared/pip-format.md (16 / 17 / 53 fields, varchar widths counted in characters).
//!
//! With `--next-of MM-DD` it regenerates the files of that day from the same seed (same N)
//! and writes the next day's FULL files (date defaults to the following day): the same rows,
//! with `--changed-pct` % of issues (and their attributes) and of issuers modified, and
//! `--new-pct` % new issues inserted in key order (plus new issuers at the same rate, with
//! 1-3 issues each). Rows not modified are byte-identical to the previous day's.
//!
//! `--delta-seed S` picks which rows change, which keys are new and which repeat with a seed of
//! their own (by default they follow `--seed`): a run of days made with `--next-of` the same
//! base day, `--date` each day and a different delta seed each day has different changes and
//! new keys every day over the same base rows (yesterday's changed rows go back to their base
//! values, yesterday's new keys are simply not in today's file).
//!
//! `--repeat-pct P` appends, after the sorted records and before the trailer, an amendment of
//! about P % of the records of each file (of the types in `--repeat-types`, default `REA`): the
//! same key with other values (an issuer renamed or moved, an issue's description corrected or
//! its rate changed, an attribute's payment status changed), as a delivery that repeats keys
//! does. The loader keeps the last record of a key. The amendments are held in memory until the
//! end of their file (P % of its records). With `--repeat-where adjacent` each amendment comes
//! right after its record instead (keys still ascend, with runs of one key), as a day's
//! transactions sorted by key do.
//!
//! Everything is derived from hashes of (seed, issuer index, issue index), so each file is
//! written in one pass with a `BufWriter`, no per-record allocation and O(1) memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

// ------------------------------------------------------------------------------------ rng

#[inline]
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    splitmix(a ^ splitmix(b.wrapping_add(0x632B_E59B_D9B4_E019)))
}

/// xorshift64* — tiny, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    #[inline]
    fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }
    #[inline]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n (n < 2^32).
    #[inline]
    fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * n as u64) >> 32) as u32
    }
    /// Inclusive range.
    #[inline]
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        if hi <= lo {
            lo
        } else {
            lo + self.below((hi - lo + 1) as u32) as i32
        }
    }
    /// True with probability p percent.
    #[inline]
    fn pct(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) < p / 100.0 * (1u64 << 53) as f64
    }
    #[inline]
    fn permille(&mut self) -> u32 {
        self.below(1000)
    }
    #[inline]
    fn pick<'a, T: ?Sized>(&mut self, s: &[&'a T]) -> &'a T {
        s[self.below(s.len() as u32) as usize]
    }
}

// ------------------------------------------------------------------------------------ dates

fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// PIP file names carry no year; the generator places MM-DD in 2024 (a leap year).
const YEAR: i32 = 2024;

fn parse_mmdd(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b'-' || !b[..2].iter().chain(&b[3..]).all(u8::is_ascii_digit) {
        return None;
    }
    let m: u32 = s[..2].parse().ok()?;
    let d: u32 = s[3..].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let z = days_from_civil(YEAR, m, d);
    (civil_from_days(z) == (YEAR, m, d)).then_some(z)
}

fn mmdd(z: i32) -> String {
    let (_, m, d) = civil_from_days(z);
    format!("{m:02}-{d:02}")
}

// ------------------------------------------------------------------------------------ line building

#[inline]
fn push_num(l: &mut Vec<u8>, mut n: u64, min_digits: usize) {
    let mut buf = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 && 20 - i >= min_digits {
            break;
        }
    }
    l.extend_from_slice(&buf[i..]);
}

/// style: 0 = YYYY-MM-DD, 1 = YYYYMMDD, 2 = MM/DD/YYYY, 3 = 0000-00-00, 4 = 00000000.
fn push_date(l: &mut Vec<u8>, z: i32, style: u8) {
    match style {
        3 => return l.extend_from_slice(b"0000-00-00"),
        4 => return l.extend_from_slice(b"00000000"),
        _ => {}
    }
    let (y, m, d) = civil_from_days(z);
    let (y, m, d) = (y as u64, m as u64, d as u64);
    match style {
        1 => {
            push_num(l, y, 4);
            push_num(l, m, 2);
            push_num(l, d, 2);
        }
        2 => {
            push_num(l, m, 2);
            l.push(b'/');
            push_num(l, d, 2);
            l.push(b'/');
            push_num(l, y, 4);
        }
        _ => {
            push_num(l, y, 4);
            l.push(b'-');
            push_num(l, m, 2);
            l.push(b'-');
            push_num(l, d, 2);
        }
    }
}

/// Mostly ISO, a few percent of the other two accepted formats.
#[inline]
fn date_style(r: &mut Rng) -> u8 {
    match r.permille() {
        0..=969 => 0,
        970..=984 => 1,
        _ => 2,
    }
}

/// Decimal with `scale` digits, sometimes with trailing zeros trimmed (`5.250`, `5.25`, `.5`, `0`).
fn push_decimal(l: &mut Vec<u8>, units: u64, scale: u32, trim: bool, omit_lead_zero: bool) {
    let p = 10u64.pow(scale);
    let (ip, mut fp) = (units / p, units % p);
    let mut digits = scale;
    if trim {
        while digits > 0 && fp % 10 == 0 {
            fp /= 10;
            digits -= 1;
        }
    }
    if !(ip == 0 && omit_lead_zero && digits > 0) {
        push_num(l, ip, 1);
    }
    if digits > 0 {
        l.push(b'.');
        push_num(l, fp, digits as usize);
    }
}

/// Byte offset of the end of the first `chars` characters of `s` (UTF-8).
#[inline]
fn char_offset(s: &[u8], chars: usize) -> usize {
    let mut n = 0;
    for (i, &b) in s.iter().enumerate() {
        if b & 0xC0 != 0x80 {
            if n == chars {
                return i;
            }
            n += 1;
        }
    }
    s.len()
}

/// `text` as `n` consecutive `width`-character fields (edge spaces kept), `|`-separated.
fn push_segments(l: &mut Vec<u8>, text: &[u8], n: usize, width: usize) {
    let mut rest = text;
    for k in 0..n {
        if k > 0 {
            l.push(b'|');
        }
        let cut = if rest.is_ascii() {
            rest.len().min(width)
        } else {
            char_offset(rest, width)
        };
        l.extend_from_slice(&rest[..cut]);
        rest = &rest[cut..];
    }
}

fn truncate_chars(v: &mut Vec<u8>, chars: usize) {
    let cut = char_offset(v, chars);
    v.truncate(cut);
}

/// Expand a template: {c} city, {a} state abbreviation, {s} state name, {w} corporate word.
fn expand(out: &mut Vec<u8>, tpl: &str, city: &str, ab: &str, st: &str, w: &str) {
    let t = tpl.as_bytes();
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'{' && i + 2 < t.len() && t[i + 2] == b'}' {
            out.extend_from_slice(
                match t[i + 1] {
                    b'c' => city,
                    b'a' => ab,
                    b's' => st,
                    _ => w,
                }
                .as_bytes(),
            );
            i += 3;
        } else {
            out.push(t[i]);
            i += 1;
        }
    }
}

const ALNUM: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn cusip_check(s: &[u8]) -> u8 {
    let mut total = 0u32;
    for (i, &c) in s.iter().enumerate() {
        let mut v = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            b'A'..=b'Z' => (c - b'A') as u32 + 10,
            b'*' => 36,
            b'@' => 37,
            _ => 38,
        };
        if i % 2 == 1 {
            v *= 2;
        }
        total += v / 10 + v % 10;
    }
    b'0' + ((10 - total % 10) % 10) as u8
}

// ------------------------------------------------------------------------------------ vocabulary

struct State {
    name: &'static str,
    ab: &'static str,
    code: &'static str,
    cities: &'static [&'static str],
}

const STATES: &[State] = &[
    State {
        name: "CALIFORNIA",
        ab: "CALIF",
        code: "CA",
        cities: &[
            "LOS ANGELES",
            "SAN DIEGO",
            "SAN FRANCISCO",
            "SACRAMENTO",
            "FRESNO",
            "OAKLAND",
        ],
    },
    State {
        name: "TEXAS",
        ab: "TEX",
        code: "TX",
        cities: &[
            "HOUSTON",
            "AUSTIN",
            "DALLAS",
            "SAN ANTONIO",
            "FORT WORTH",
            "EL PASO",
        ],
    },
    State {
        name: "NEW YORK",
        ab: "N Y",
        code: "NY",
        cities: &["NEW YORK", "BUFFALO", "ROCHESTER", "YONKERS", "ALBANY"],
    },
    State {
        name: "FLORIDA",
        ab: "FLA",
        code: "FL",
        cities: &["MIAMI-DADE", "ORLANDO", "TAMPA", "JACKSONVILLE", "BROWARD"],
    },
    State {
        name: "ILLINOIS",
        ab: "ILL",
        code: "IL",
        cities: &["CHICAGO", "NAPERVILLE", "PEORIA", "SPRINGFIELD", "COOK"],
    },
    State {
        name: "PENNSYLVANIA",
        ab: "PA",
        code: "PA",
        cities: &["PHILADELPHIA", "PITTSBURGH", "ALLENTOWN", "ERIE"],
    },
    State {
        name: "OHIO",
        ab: "OHIO",
        code: "OH",
        cities: &["COLUMBUS", "CLEVELAND", "CINCINNATI", "TOLEDO"],
    },
    State {
        name: "MICHIGAN",
        ab: "MICH",
        code: "MI",
        cities: &["DETROIT", "GRAND RAPIDS", "LANSING", "ANN ARBOR"],
    },
    State {
        name: "GEORGIA",
        ab: "GA",
        code: "GA",
        cities: &["ATLANTA", "SAVANNAH", "AUGUSTA", "FULTON"],
    },
    State {
        name: "MASSACHUSETTS",
        ab: "MASS",
        code: "MA",
        cities: &["BOSTON", "WORCESTER", "SPRINGFIELD", "CAMBRIDGE"],
    },
    State {
        name: "WASHINGTON",
        ab: "WASH",
        code: "WA",
        cities: &["SEATTLE", "SPOKANE", "TACOMA", "KING"],
    },
    State {
        name: "ARIZONA",
        ab: "ARIZ",
        code: "AZ",
        cities: &["PHOENIX", "TUCSON", "MESA", "MARICOPA"],
    },
    State {
        name: "COLORADO",
        ab: "COLO",
        code: "CO",
        cities: &["DENVER", "COLORADO SPRINGS", "AURORA", "BOULDER"],
    },
    State {
        name: "NEW JERSEY",
        ab: "N J",
        code: "NJ",
        cities: &["NEWARK", "JERSEY CITY", "PATERSON", "TRENTON"],
    },
    State {
        name: "VIRGINIA",
        ab: "VA",
        code: "VA",
        cities: &["RICHMOND", "NORFOLK", "FAIRFAX", "ARLINGTON"],
    },
    State {
        name: "MINNESOTA",
        ab: "MINN",
        code: "MN",
        cities: &["MINNEAPOLIS", "SAINT PAUL", "DULUTH"],
    },
    State {
        name: "TENNESSEE",
        ab: "TENN",
        code: "TN",
        cities: &["NASHVILLE", "MEMPHIS", "KNOXVILLE"],
    },
    State {
        name: "NORTH CAROLINA",
        ab: "N C",
        code: "NC",
        cities: &["CHARLOTTE", "RALEIGH", "DURHAM"],
    },
    State {
        name: "OREGON",
        ab: "ORE",
        code: "OR",
        cities: &["PORTLAND", "SALEM", "EUGENE"],
    },
    State {
        name: "WISCONSIN",
        ab: "WIS",
        code: "WI",
        cities: &["MILWAUKEE", "MADISON", "GREEN BAY"],
    },
    State {
        name: "MISSOURI",
        ab: "MO",
        code: "MO",
        cities: &["KANSAS CITY", "SAINT LOUIS", "SPRINGFIELD"],
    },
    State {
        name: "PUERTO RICO",
        ab: "P R",
        code: "PR",
        cities: &["SAN JUAN", "PONCE", "BAYAMON"],
    },
];

const MUNI_PATTERNS: &[&str] = &[
    "{c} {a}",
    "{c} {a}",
    "{s} ST",
    "{c} {a} INDPT SCH DIST",
    "{c} {a} UNI SCH DIST",
    "{s} HEALTH & EDL FACS AUTH REV",
    "{c} CNTY {a} WTR & SWR REV",
    "{s} HSG FIN AGY",
    "{c} {a} ARPT REV",
    "{s} ST UNIV REV",
    "{c} {a} PUB IMPT",
    "{s} TPK AUTH REV",
    "{s} DEV FIN AUTH REV",
    "{c} {a} MET TRANSN AUTH REV",
    "{s} ST PUB WKS BRD LEASE REV",
    "{c} {a} CITY TRANSITIONAL FIN AUTH REV",
    "{s} STATEWIDE CMNTYS DEV AUTH STUDENT HSG REV",
    "{s} MUN FIN AUTH SOLID WASTE DISP REV",
    "{c} {a} HARBOR DEPT REV",
    "{s} INFRASTRUCTURE & ECONOMIC DEV BK REV CLEAN WTR",
    "{c} {a} CMNTY FACS DIST NO 2023-1 SPL TAX IMPT AREA NO 1",
    "{s} HIGHER EDL FACS AUTH REV {w} UNIV PROJ",
];
const CORP_WORDS: &[&str] = &[
    "APEX",
    "MERIDIAN",
    "BLUE RIDGE",
    "NORTHSTAR",
    "CASCADE",
    "PINNACLE",
    "HARBOR",
    "SUMMIT",
    "IRONWOOD",
    "SILVER LAKE",
    "REDWOOD",
    "GRANITE",
    "ATLAS",
    "BEACON",
    "LIBERTY",
    "PIONEER",
    "KEYSTONE",
    "SENTINEL",
    "HORIZON",
    "EVERGREEN",
    "FRONTIER",
    "CRESTVIEW",
    "OAKMONT",
    "TRIDENT",
];
const CORP_INDUSTRY: &[&str] = &[
    "ENERGY",
    "HOLDINGS",
    "FINANCIAL",
    "TECHNOLOGIES",
    "PHARMACEUTICALS",
    "INDUSTRIES",
    "COMMUNICATIONS",
    "REALTY TRUST",
    "BANCORP",
    "UTILITIES",
    "SEMICONDUCTOR",
    "CAPITAL",
    "MEDICAL SYSTEMS",
    "RESOURCES",
    "INSURANCE GROUP",
    "LOGISTICS",
    "BRANDS",
    "AEROSPACE",
];
const CORP_SUFFIX: &[&str] = &[
    "INC",
    "CORP",
    "LLC",
    "CO",
    "L P",
    "INC NEW",
    "CORP DEL",
    "HLDGS INC",
    "PLC",
    "TR",
];
/// (name, domicile, currency); multibyte UTF-8 on purpose.
const FOREIGN: &[(&str, &str, &str)] = &[
    ("Société Générale", "FR", "EUR"),
    ("Zürich Insurance Group AG", "CH", "CHF"),
    ("Nestlé S.A.", "CH", "CHF"),
    ("Crédit Agricole Corporate and Investment Bank", "FR", "EUR"),
    ("Ørsted A/S", "DK", "DKK"),
    ("Česká spořitelna a.s.", "CZ", "CZK"),
    (
        "Bayerische Motoren Werke Aktiengesellschaft München",
        "DE",
        "EUR",
    ),
    ("L'Oréal S.A.", "FR", "EUR"),
    (
        "Skandinaviska Enskilda Banken AB (publ) Göteborg",
        "SE",
        "SEK",
    ),
];
/// (name, kind: 1 bills, 2 treasury notes/bonds, 3 agency)
const GOVT: &[(&str, u8)] = &[
    ("UNITED STATES TREAS BILLS", 1),
    ("UNITED STATES TREAS NTS", 2),
    ("UNITED STATES TREAS BDS", 2),
    ("UNITED STATES TREAS INFLATION INDEXED NTS", 2),
    ("FEDERAL HOME LN BKS", 3),
    ("FEDERAL FARM CR BKS", 3),
    ("FEDERAL NATL MTG ASSN", 3),
    ("FEDERAL HOME LN MTG CORP", 3),
    ("TENNESSEE VALLEY AUTH", 3),
    ("GOVERNMENT NATL MTG ASSN", 3),
    ("FEDERAL AGRIC MTG CORP", 3),
];
const SOVEREIGN: &[(&str, &str, &str)] = &[
    ("CANADA GOVT", "CA", "CAD"),
    ("MEXICO UNITED MEXICAN STS", "MX", "USD"),
    ("JAPAN BK FOR INTL COOPERATION", "JP", "USD"),
    ("ISRAEL ST", "IL", "USD"),
    ("ITALY REP", "IT", "USD"),
    ("KOREA REP", "KR", "USD"),
    ("PHILIPPINES REP", "PH", "USD"),
    ("BRAZIL FEDERATIVE REP", "BR", "USD"),
    ("CHILE REP", "CL", "USD"),
    ("PANAMA REP", "PA", "USD"),
    ("QUEBEC PROV CDA", "CA", "USD"),
    ("ONTARIO PROV CDA", "CA", "USD"),
    ("RÉPUBLIQUE FRANÇAISE", "FR", "EUR"),
];
const CORP_STATES: &[&str] = &["DE", "DE", "DE", "NY", "NV", "MD", "TX", "CA", ""];

const UNDERWRITERS: &[&str] = &[
    "MORGAN STANLEY & CO LLC",
    "J.P. MORGAN SECURITIES LLC",
    "SIEBERT WILLIAMS SHANK & CO LLC",
    "RBC CAPITAL MARKETS LLC",
    "PIPER SANDLER & CO",
    "GOLDMAN SACHS & CO LLC",
    "BOFA SECURITIES INC",
    "WELLS FARGO BANK NATIONAL ASSOCIATION",
    "RAYMOND JAMES & ASSOCIATES INC",
    "STIFEL NICOLAUS & COMPANY INCORPORATED",
    "LOOP CAPITAL MARKETS LLC",
    "CITIGROUP GLOBAL MARKETS INC",
];
const PAYING_AGENTS: &[&str] = &[
    "THE BANK OF NEW YORK MELLON TRUST COMPANY, N.A.",
    "U.S. BANK TRUST COMPANY, NATIONAL ASSOCIATION",
    "COMPUTERSHARE TRUST COMPANY, N.A.",
    "ZIONS BANCORPORATION, NATIONAL ASSOCIATION",
    "WILMINGTON TRUST, NATIONAL ASSOCIATION",
    "REGIONS BANK",
    "UMB BANK, N.A.",
];
const BOND_COUNSEL: &[&str] = &[
    "ORRICK, HERRINGTON & SUTCLIFFE LLP",
    "HAWKINS DELAFIELD & WOOD LLP",
    "NORTON ROSE FULBRIGHT US LLP",
    "SQUIRE PATTON BOGGS (US) LLP",
    "KUTAK ROCK LLP",
    "CHAPMAN AND CUTLER LLP",
    "BALLARD SPAHR LLP",
    "STRADLING YOCCA CARLSON & RAUTH, A PROFESSIONAL CORPORATION",
];
const FIN_ADVISORS: &[&str] = &[
    "PFM FINANCIAL ADVISORS LLC",
    "PUBLIC RESOURCES ADVISORY GROUP, INC.",
    "HILLTOP SECURITIES INC.",
    "KAUFMAN, HALL & ASSOCIATES, LLC",
    "MONTAGUE DEROSE AND ASSOCIATES, LLC",
];
const AUDITORS: &[&str] = &[
    "ERNST & YOUNG LLP",
    "KPMG LLP",
    "PRICEWATERHOUSECOOPERS LLP",
    "DELOITTE & TOUCHE LLP",
    "GRANT THORNTON LLP",
];
const XFER_AGENTS: &[&str] = &[
    "COMPUTERSHARE TRUST COMPANY, N.A.",
    "EQUINITI TRUST COMPANY, LLC",
    "BROADRIDGE CORPORATE ISSUER SOLUTIONS, LLC",
];
const INSURERS: &[&str] = &[
    "ASSURED GUARANTY MUNICIPAL CORP",
    "BUILD AMERICA MUTUAL ASSURANCE CO",
    "NATIONAL PUBLIC FINANCE GUARANTEE CORP",
];
const ENHANCEMENTS: &[&str] = &[
    "BOND INSURANCE",
    "LETTER OF CREDIT",
    "STATE INTERCEPT PROGRAM",
    "PERMANENT SCHOOL FUND GUARANTEE",
];
const REDEMPTION: &[&str] = &[
    "CALLABLE",
    "NON-CALLABLE",
    "MAKE WHOLE CALL",
    "EXTRAORDINARY REDEMPTION",
    "SINKING FUND REDEMPTION",
];
const FORMS: &[&str] = &[
    "BOOK ENTRY ONLY",
    "BOOK ENTRY ONLY",
    "BOOK ENTRY ONLY",
    "REGISTERED",
    "BEARER",
];
const MUNI_DESC: &[&str] = &[
    "GO BDS",
    "GEN OBLIG BDS",
    "REV BDS",
    "REF BDS",
    "REV REF BDS",
    "WTR & SWR SYS REV BDS",
    "SPL TAX REV BDS",
    "CTFS PARTN",
    "SALES TAX REV BDS",
    "LEASE REV BDS",
    "TAXABLE GO BDS",
];
const MUNI_PROJ: &[&str] = &[
    "(SAINT LUKE'S HEALTH SYS PROJ)",
    "(GREEN BDS)",
    "(SUSTAINABILITY BDS)",
    "(UNIVERSITY STUDENT HSG PROJ)",
    "(FORWARD DELIVERY)",
    "(ASSURED GTY MUN INS)",
    "(BUILD AMERICA BDS-DIRECT PAYMENT)",
];
const MUNI_SERIES: &[&str] = &["", "A", "B", "C", "A-1", "B-2"];
const CORP_DESC: &[&str] = &[
    "SR NT",
    "NT",
    "SUB NT",
    "SR SECD NT 144A",
    "DEB",
    "MTN BE",
    "FIXED TO FLTG RT SUB NT",
    "SR UNSECD NT",
    "GTD SR NT REG S",
    "CONV SR NT",
];
const MUNI_ADL: &[&str] = &[
    "ESCROWED TO MATURITY",
    "SUBJECT TO MANDATORY TENDER",
    "INSURED BY ASSURED GUARANTY MUNICIPAL CORP",
    "CONV CAP APPREC BDS CONVERTS TO CURRENT INTEREST ON 08/01/2028 AT 5.000%",
];
const RATES: &[u32] = &[
    0, 500, 1250, 2000, 2750, 3000, 3125, 3500, 4000, 4250, 4500, 5000, 5250, 5500, 6125, 6750,
    7000, 8375,
];
const STIMULUS: &[&str] = &[
    "A", "B", "C", "D", "E", "F", "G", "H", "M", "N", "P", "Q", "R", "T", "V",
];

// ------------------------------------------------------------------------------------ model

/// Issuer number space: 5 digits (00000-98999, so never 99xxxx) and one alphanumeric.
const ISSUER_SPACE: u64 = 99_000 * 36;
/// Issue number space: two alphanumerics, "01".."ZZ".
const ISSUE_SPACE: u32 = 36 * 36;

const K_CODES: u64 = 0x1001;
const K_ISSUER: u64 = 0x2002;
const K_COUNT: u64 = 0x3003;
const K_DELTA: u64 = 0x4004;
const K_NEW_ISSUER: u64 = 0x5005;
const K_NEW_ISSUE: u64 = 0x6006;
const K_REPEAT: u64 = 0x7007;

struct Cfg {
    n: u64,
    m: u64,
    seed: u64,
    base_day: i32,
    today: i32,
    next: bool,
    changed_pct: f64,
    new_pct: f64,
    /// XORed into the keys of every per-day choice (changed, new, repeated): 0 by default,
    /// so that without `--delta-seed` the output is what it always was.
    delta_key: u64,
    repeat_pct: f64,
    /// Which files get amendments appended (`--repeat-types`).
    repeat_in: [bool; 3],
    /// Amendments right after their record (`--repeat-where adjacent`), not at the end.
    repeat_adjacent: bool,
}

#[derive(Default)]
struct Issuer {
    num: [u8; 6],
    seed: u64,
    kind: u8,
    govt: u8,
    name: Vec<u8>,
    state: &'static str,
    country: &'static str,
    cur: &'static str,
    fresh: bool,
    /// Write the amendment of this issuer's record (see `--repeat-pct`), not the record.
    amend: bool,
}

struct Facts {
    equity: bool,
    dated: i32,
    maturity: i32,
    rate: Option<u32>,
    status: u8,
    txn: u8,
    upd: i32,
}

fn issuer_num(code: u64) -> [u8; 6] {
    let mut p = code / 36;
    let mut out = [0u8; 6];
    for k in (0..5).rev() {
        out[k] = b'0' + (p % 10) as u8;
        p /= 10;
    }
    out[5] = ALNUM[(code % 36) as usize];
    out
}

fn issue_num(code: u32) -> [u8; 2] {
    [ALNUM[(code / 36) as usize], ALNUM[(code % 36) as usize]]
}

/// Sequential, strictly increasing issuer codes with gaps of at least 2 (room for new issuers).
struct IssuerCodes {
    rng: Rng,
    next_code: u64,
    mean: u64,
    left: u64,
}

impl IssuerCodes {
    fn new(cfg: &Cfg) -> IssuerCodes {
        let mean = ((ISSUER_SPACE * 9 / 10) / cfg.m).max(2);
        let mut rng = Rng::new(mix(cfg.seed, K_CODES));
        let first = rng.below(mean as u32) as u64;
        IssuerCodes {
            rng,
            next_code: first,
            mean,
            left: cfg.m,
        }
    }
    fn next(&mut self) -> u64 {
        let code = self.next_code;
        self.left -= 1;
        let step = 2 + self.rng.below((2 * self.mean - 3) as u32) as u64; // 2..=2*mean-2
        let room = ISSUER_SPACE - 2 - code; // keep code+1 free after the last one too
        let need = 2 * self.left;
        self.next_code = code + step.min(room.saturating_sub(need)).max(2);
        code
    }
}

/// Issues of issuer i: N split evenly over M issuers, then pairwise perturbed (exact total).
fn issue_count(cfg: &Cfg, i: u64) -> u32 {
    let base = |k: u64| ((k + 1) * cfg.n / cfg.m - k * cfg.n / cfg.m) as i64;
    let pair = i / 2;
    let (a, b) = (2 * pair, 2 * pair + 1);
    if b >= cfg.m {
        return base(i) as u32;
    }
    let (ca, cb) = (base(a), base(b));
    let mut r = Rng::new(mix(cfg.seed ^ K_COUNT, pair));
    let lo = -(ca - 1);
    let hi = cb - 1;
    let d = lo + (r.below((hi - lo + 1) as u32) as i64);
    (if i == a { ca + d } else { cb - d }) as u32
}

/// Sorted issue codes for one issuer, gaps of at least 2, last code <= ISSUE_SPACE-2.
fn issue_codes(seed: u64, count: u32, out: &mut Vec<u32>) {
    out.clear();
    let mut r = Rng::new(seed);
    let h = ((ISSUE_SPACE - 6) / (count + 1)).max(2);
    let mut code = 1 + r.below(h);
    for k in 0..count {
        out.push(code);
        if k + 1 < count {
            let room = ISSUE_SPACE - 2 - code;
            let need = 2 * (count - k - 1);
            code += (2 + r.below(h - 1))
                .min(room.saturating_sub(need - 2))
                .max(2);
        }
    }
}

fn make_issuer(seed: u64, code: u64, fresh: bool, iss: &mut Issuer) {
    let mut r = Rng::new(seed);
    iss.num = issuer_num(code);
    iss.seed = seed;
    iss.fresh = fresh;
    iss.amend = false;
    iss.name.clear();
    iss.govt = 0;
    iss.state = "";
    iss.country = "US";
    iss.cur = "USD";
    let k = r.permille();
    if k < 550 {
        iss.kind = b'M';
        let st = &STATES[r.below(STATES.len() as u32) as usize];
        let city = r.pick(st.cities);
        let tpl = r.pick(MUNI_PATTERNS);
        let w = r.pick(CORP_WORDS);
        expand(&mut iss.name, tpl, city, st.ab, st.name, w);
        iss.state = st.code;
    } else if k < 900 {
        iss.kind = b'C';
        if r.permille() < 15 {
            let (n, c, cur) = FOREIGN[r.below(FOREIGN.len() as u32) as usize];
            iss.name.extend_from_slice(n.as_bytes());
            iss.country = c;
            iss.cur = cur;
        } else {
            let long = r.permille() < 120;
            let w1 = r.pick(CORP_WORDS);
            let w2 = r.pick(CORP_WORDS);
            let i1 = r.pick(CORP_INDUSTRY);
            let i2 = r.pick(CORP_INDUSTRY);
            let sfx = r.pick(CORP_SUFFIX);
            if long {
                expand(&mut iss.name, "{c} {a} {s} AND {w} ", w1, w2, i1, i2);
            } else {
                expand(&mut iss.name, "{c} {s} ", w1, w2, i1, i2);
            }
            iss.name.extend_from_slice(sfx.as_bytes());
            iss.state = r.pick(CORP_STATES);
        }
    } else if k < 930 {
        iss.kind = b'G';
        let (n, g) = GOVT[r.below(GOVT.len() as u32) as usize];
        iss.name.extend_from_slice(n.as_bytes());
        iss.govt = g;
    } else {
        iss.kind = b'S';
        let (n, c, cur) = SOVEREIGN[r.below(SOVEREIGN.len() as u32) as usize];
        iss.name.extend_from_slice(n.as_bytes());
        iss.country = c;
        iss.cur = cur;
    }
    if fresh && iss.name.len() + 4 <= 90 {
        iss.name.splice(0..0, b"NEW ".iter().copied());
    }
    truncate_chars(&mut iss.name, 90);
}

fn issue_facts(seed: u64, iss: &Issuer, j: u32, base_day: i32, fresh: bool) -> Facts {
    let mut r = Rng::new(seed);
    let equity = iss.kind == b'C' && j == 0 && r.permille() < 500;
    let lo = days_from_civil(1998, 1, 1);
    let dated = if fresh {
        base_day - r.range(0, 60)
    } else {
        r.range(lo, base_day)
    };
    let (status, txn) = if fresh {
        if r.permille() < 850 {
            (b'A', b'A')
        } else {
            (b'T', b'D')
        }
    } else {
        match r.permille() {
            0..=779 => (b'A', b'A'),
            780..=829 => (b'A', b'L'),
            830..=859 => (b'A', b'M'),
            860..=889 => (b'T', b'D'),
            890..=939 => (b'Z', b'A'),
            940..=959 => (b'X', b'A'),
            960..=979 => (b'D', b'S'),
            _ => (b'D', b'W'),
        }
    };
    let mut maturity = if iss.govt == 1 {
        dated + [28, 91, 182, 364][r.below(4) as usize]
    } else {
        dated + [1, 2, 3, 5, 7, 10, 15, 20, 25, 30][r.below(10) as usize] * 365 + r.range(0, 199)
    };
    if status == b'Z' {
        maturity = maturity.min(base_day - 1).max(dated);
    }
    let mut rate = RATES[r.below(RATES.len() as u32) as usize];
    if r.permille() < 200 {
        rate += 125 * r.below(8);
    }
    if iss.govt == 1 {
        rate = 0;
    }
    let upd = r.range(dated.min(base_day), base_day);
    Facts {
        equity,
        dated,
        maturity,
        rate: if equity || status == b'T' {
            None
        } else {
            Some(rate)
        },
        status,
        txn,
        upd,
    }
}

// ------------------------------------------------------------------------------------ records

fn write_issuer_record(
    l: &mut Vec<u8>,
    iss: &Issuer,
    cfg: &Cfg,
    sort_key: &mut Vec<u8>,
    adl: &mut Vec<u8>,
) {
    let mut r = Rng::new(mix(iss.seed, 1));
    let (mut status, mut txn) = match r.permille() {
        0..=799 => (b'A', b'A'),
        800..=859 => (b'A', b'N'),
        860..=899 => (b'A', b'L'),
        900..=919 => (b'A', b'B'),
        k => (b'D', [b'R', b'T', b'W'][(k % 3) as usize]),
    };
    if iss.fresh {
        status = b'A';
        txn = b'A';
    }
    let lo = days_from_civil(2005, 1, 1);
    let mut upd = r.range(lo, cfg.base_day);
    let (mut del, mut del_style) = (None, 0u8);
    if status == b'D' {
        del = Some(r.range(upd, cfg.base_day));
        del_style = date_style(&mut r);
    } else if r.permille() < 5 {
        del = Some(0);
        del_style = 3 + (r.below(2) as u8);
    }
    let upd_style = date_style(&mut r);
    adl.clear();
    let a = r.permille();
    if txn == b'B' || txn == b'N' {
        expand(
            adl,
            "FORMERLY {c} {a} {s}",
            r.pick(CORP_WORDS),
            r.pick(CORP_INDUSTRY),
            r.pick(CORP_SUFFIX),
            "",
        );
    } else if a < 40 {
        expand(
            adl,
            "ISSUED ON BEHALF OF {c} UNIVERSITY AND AFFILIATED HOSPITALS",
            r.pick(CORP_WORDS),
            "",
            "",
            "",
        );
    }
    let mut name_delta = false;
    let mut state = iss.state;
    let mut upd_iso = false;
    if (cfg.next && !iss.fresh) || iss.amend {
        let mut d = Rng::new(mix(iss.seed ^ K_DELTA ^ cfg.delta_key, 7));
        let mut change = (cfg.next && !iss.fresh && d.pct(cfg.changed_pct)).then(|| d.below(3));
        if iss.amend {
            // The amendment differs from the record just written: a rename, or (if the
            // record was the rename) a move to another state.
            change = Some(if change == Some(0) { 2 } else { 0 });
        }
        if let Some(change) = change {
            match change {
                0 => {
                    name_delta = true;
                    txn = b'N';
                }
                1 => {
                    status = b'D';
                    txn = b'T';
                    del = Some(cfg.today);
                    del_style = 0;
                }
                _ => {
                    txn = b'L';
                    state = if state == "NV" { "DE" } else { "NV" };
                }
            }
            upd = cfg.today;
            upd_iso = true;
        }
    }
    if iss.fresh {
        upd = cfg.today;
        upd_iso = true;
    }
    // sort key: upper-case letters, digits and spaces of the name, 30 characters, right-trimmed
    sort_key.clear();
    let name = std::str::from_utf8(&iss.name).unwrap_or("");
    let mut chars = 0;
    for ch in name.chars() {
        if chars == 30 {
            break;
        }
        if ch.is_alphanumeric() || ch == ' ' {
            let mut b = [0u8; 4];
            for u in ch.to_uppercase() {
                if chars < 30 {
                    sort_key.extend_from_slice(u.encode_utf8(&mut b).as_bytes());
                    chars += 1;
                }
            }
        }
    }
    while sort_key.last() == Some(&b' ') {
        sort_key.pop();
    }

    l.extend_from_slice(&iss.num);
    l.push(b'|');
    let mut n10 = [0u8; 8];
    n10[..6].copy_from_slice(&iss.num);
    n10[6..].copy_from_slice(b"10");
    l.push(cusip_check(&n10));
    l.push(b'|');
    if name_delta {
        // a renamed issuer: "name (RENAMED)" — capped at the 90 characters of the 3 segments
        let start = l.len();
        l.extend_from_slice(&iss.name);
        l.extend_from_slice(b" (RENAMED)");
        let mut tmp = l.split_off(start);
        truncate_chars(&mut tmp, 90);
        push_segments(l, &tmp, 3, 30);
    } else {
        push_segments(l, &iss.name, 3, 30);
    }
    l.push(b'|');
    push_segments(l, adl, 4, 30);
    l.push(b'|');
    l.extend_from_slice(sort_key);
    l.push(b'|');
    l.push(iss.kind);
    l.push(b'|');
    l.push(status);
    l.push(b'|');
    if let Some(d) = del {
        push_date(l, d, del_style);
    }
    l.push(b'|');
    l.push(txn);
    l.push(b'|');
    l.extend_from_slice(state.as_bytes());
    l.push(b'|');
    push_date(l, upd, if upd_iso { 0 } else { upd_style });
    l.push(b'\n');
}

/// How a changed issue differs on the next day (0 none, 1 rate, 2 matured, 3 description, 4 suspended).
fn issue_delta(cfg: &Cfg, issue_seed: u64, fresh: bool) -> u32 {
    if !cfg.next || fresh {
        return 0;
    }
    let mut d = Rng::new(mix(issue_seed ^ K_DELTA ^ cfg.delta_key, 3));
    if d.pct(cfg.changed_pct) {
        1 + d.below(4)
    } else {
        0
    }
}

#[allow(clippy::too_many_arguments)]
fn write_issue_record(
    l: &mut Vec<u8>,
    iss: &Issuer,
    inum: [u8; 2],
    seed: u64,
    f: &Facts,
    delta: u32,
    is_new: bool,
    cfg: &Cfg,
    desc: &mut Vec<u8>,
) {
    let mut r = Rng::new(mix(seed, 1));
    // description
    desc.clear();
    let (y, m, d) = civil_from_days(f.maturity);
    let rate = f.rate.unwrap_or(0) as u64;
    match iss.kind {
        b'M' => {
            let base = r.pick(MUNI_DESC);
            let ser = r.pick(MUNI_SERIES);
            desc.extend_from_slice(base.as_bytes());
            if r.permille() < 250 {
                desc.push(b' ');
                desc.extend_from_slice(r.pick(MUNI_PROJ).as_bytes());
            }
            desc.extend_from_slice(b" SER ");
            push_num(desc, civil_from_days(f.dated).0 as u64, 4);
            desc.extend_from_slice(ser.as_bytes());
        }
        b'C' if f.equity => desc.extend_from_slice(b"COM"),
        _ => {
            let head = match (iss.kind, iss.govt) {
                (b'G', 1) => "BILL",
                (b'G', 2) => "NT",
                (b'G', _) => "BD",
                (b'S', _) => "GLOBAL BD",
                _ => r.pick(CORP_DESC),
            };
            desc.extend_from_slice(head.as_bytes());
            desc.push(b' ');
            if iss.govt != 1 {
                push_decimal(desc, rate, 3, false, false);
                desc.extend_from_slice(b"% ");
            }
            push_num(desc, m as u64, 2);
            desc.push(b'/');
            push_num(desc, d as u64, 2);
            desc.push(b'/');
            push_num(desc, y as u64, 4);
        }
    }
    if delta == 3 {
        desc.extend_from_slice(b" (CORRECTED)");
    }
    truncate_chars(desc, 60);
    let adl = if iss.kind == b'M' && r.permille() < 120 {
        r.pick(MUNI_ADL)
    } else {
        ""
    };
    let partial = if iss.kind == b'M' && r.permille() < 120 {
        [1u64, 2, 3, 5, 10, 25, 100, 250][r.below(8) as usize]
    } else {
        0
    };
    let stim = if iss.kind == b'M' && r.permille() < 60 {
        r.pick(STIMULUS)
    } else {
        ""
    };
    let dated_style = if r.permille() < 5 {
        3 + r.below(2) as u8
    } else {
        date_style(&mut r)
    };
    let mat_style = date_style(&mut r);
    let upd_style = date_style(&mut r);
    let rate_style = r.below(10);

    let (mut status, mut txn, mut rate_v, mut maturity, mut upd) =
        (f.status, f.txn, f.rate, f.maturity, f.upd);
    let mut upd_st = upd_style;
    match delta {
        1 => {
            rate_v = Some(rate_v.map_or(4375, |x| if x >= 250 { x - 250 } else { x + 250 }));
            txn = b'L';
        }
        2 => {
            status = b'Z';
            txn = b'A';
            maturity = cfg.base_day;
        }
        3 => txn = b'L',
        4 => {
            status = b'D';
            txn = b'S';
        }
        _ => {}
    }
    if delta != 0 || is_new {
        upd = cfg.today;
        upd_st = 0;
    }

    l.extend_from_slice(&iss.num);
    l.push(b'|');
    l.extend_from_slice(&inum);
    l.push(b'|');
    let mut k8 = [0u8; 8];
    k8[..6].copy_from_slice(&iss.num);
    k8[6..].copy_from_slice(&inum);
    l.push(cusip_check(&k8));
    l.push(b'|');
    push_segments(l, desc, 2, 30);
    l.push(b'|');
    push_segments(l, adl.as_bytes(), 4, 30);
    l.push(b'|');
    l.push(status);
    l.push(b'|');
    if !f.equity {
        push_date(l, f.dated, dated_style);
    }
    l.push(b'|');
    if !f.equity {
        push_date(l, maturity, mat_style);
    }
    l.push(b'|');
    if partial > 0 {
        push_num(l, partial, 1);
    }
    l.push(b'|');
    if let Some(x) = rate_v {
        // 5.250 / 5.25 / .5 / 0 style variety
        push_decimal(l, x as u64, 3, rate_style >= 6, rate_style == 9);
    }
    l.push(b'|');
    l.extend_from_slice(stim.as_bytes());
    l.push(b'|');
    l.push(txn);
    l.push(b'|');
    push_date(l, upd, upd_st);
    l.push(b'\n');
}

#[inline]
fn yn(l: &mut Vec<u8>, r: &mut Rng, yes_permille: u32) {
    l.push(if r.permille() < yes_permille {
        b'Y'
    } else {
        b'N'
    });
}

#[allow(clippy::too_many_arguments)]
fn write_attr_record(
    l: &mut Vec<u8>,
    iss: &Issuer,
    inum: [u8; 2],
    seed: u64,
    f: &Facts,
    delta: u32,
    is_new: bool,
    cfg: &Cfg,
) {
    let mut r = Rng::new(mix(seed, 2));
    let muni = iss.kind == b'M';
    let eq = f.equity;
    macro_rules! sep {
        () => {
            l.push(b'|')
        };
    }
    macro_rules! s {
        ($v:expr) => {
            l.extend_from_slice(($v).as_bytes())
        };
    }
    l.extend_from_slice(&iss.num); // issuer_num
    sep!();
    l.extend_from_slice(&inum); // issue_num
    sep!();
    if muni {
        yn(l, &mut r, 150)
    } // alternative_min_tax
    sep!();
    if muni {
        yn(l, &mut r, 200)
    } // bank_q
    sep!();
    if !eq {
        yn(l, &mut r, 500)
    } // callable
    sep!();
    let act = r.range(cfg.base_day - 400, cfg.base_day);
    let act_style = date_style(&mut r);
    if delta != 0 || is_new {
        push_date(l, cfg.today, 0)
    } else {
        push_date(l, act, act_style)
    } // activity_date
    sep!();
    if !eq {
        let st = if r.permille() < 5 {
            3 + r.below(2) as u8
        } else {
            date_style(&mut r)
        };
        push_date(l, f.dated + r.range(30, 200), st); // first_coupon_date
    }
    sep!();
    yn(l, &mut r, 300); // init_pub_off
    sep!();
    l.push(if eq {
        b"4Z"[r.below(2) as usize]
    } else if iss.govt == 1 {
        b"78"[r.below(2) as usize]
    } else {
        b"55556347129"[r.below(11) as usize]
    }); // payment_frequency
    sep!();
    s!(iss.cur); // currency_code
    sep!();
    s!(iss.country); // domicile_code
    sep!();
    if !eq && iss.kind != b'G' {
        s!(r.pick(UNDERWRITERS))
    } // underwriter
    sep!();
    let cfi = if eq {
        "ESVUFR"
    } else if muni {
        ["DBFNFR", "DBFTFR", "DBFUFR", "DBVTFR"][r.below(4) as usize]
    } else {
        ["DBFTFR", "DBFUGR", "DTZXXR", "DBVUFR"][r.below(4) as usize]
    };
    s!(cfi); // us_cfi_code
    sep!();
    if !eq {
        push_date(l, f.dated + r.range(0, 30), date_style(&mut r))
    } // closing_date
    sep!();
    if eq {
        // ticker_symbol: first letters of the name
        let mut n = 0;
        for &b in iss.name.iter() {
            if b.is_ascii_uppercase() && n < 4 {
                l.push(b);
                n += 1;
            }
        }
        if delta != 0 {
            l.extend_from_slice(b".N");
        }
    }
    sep!();
    s!(cfi); // iso_cfi
    sep!();
    yn(l, &mut r, 950); // depos_eligible
    sep!();
    if muni {
        yn(l, &mut r, 100)
    } // pre_refund
    sep!();
    if muni {
        yn(l, &mut r, 400)
    } // refundable
    sep!();
    if muni {
        yn(l, &mut r, 50)
    } // remarketed
    sep!();
    if !eq {
        yn(l, &mut r, 100)
    } // sinking_fund
    sep!();
    let taxable = if muni { r.permille() < 200 } else { !eq };
    if !eq {
        l.push(if taxable { b'Y' } else { b'N' })
    } // taxable
    sep!();
    s!(if eq { "REGISTERED" } else { r.pick(FORMS) }); // form
    sep!();
    let enh = if muni && r.permille() < 250 {
        r.pick(ENHANCEMENTS)
    } else {
        ""
    };
    s!(enh); // enhancements
    sep!();
    if eq && r.permille() < 300 {
        s!("QUARTERLY CASH DIVIDEND")
    } // fund_distrb_policy
    sep!(); // fund_inv_policy
    sep!(); // fund_type
    sep!();
    if iss.govt == 1 || iss.govt == 2 {
        s!("FULL FAITH AND CREDIT OF THE UNITED STATES GOVT")
    } else if iss.kind == b'C' && r.permille() < 100 {
        s!("GUARANTEED BY PARENT")
    } // guarantee
    sep!();
    s!(if muni {
        if taxable {
            "TAXABLE"
        } else {
            "TAX-EXEMPT"
        }
    } else if eq {
        "DIVIDEND"
    } else {
        "INTEREST"
    }); // income_type
    sep!();
    if enh == "BOND INSURANCE" {
        s!(r.pick(INSURERS))
    } // insured_by
    sep!();
    if iss.kind == b'C' && !eq && r.permille() < 200 {
        s!(["144A", "REG S", "144A/REG S"][r.below(3) as usize])
    } // ownership_restr
    sep!();
    s!(match delta {
        2 => "MATURED",
        4 => "SUSPENDED",
        _ if f.status == b'Z' => "MATURED",
        _ => "CURRENT",
    }); // payment_status
    sep!(); // preferred_type
    sep!();
    if !eq && r.permille() < 50 {
        s!("PUTABLE AT OPTION OF HOLDER")
    } // putable
    sep!();
    if !eq {
        s!(if f.rate == Some(0) {
            "ZERO COUPON"
        } else {
            ["FIXED", "FIXED", "FIXED", "VARIABLE", "FLOATING"][r.below(5) as usize]
        })
    } // rate_type
    sep!();
    if !eq {
        s!(r.pick(REDEMPTION))
    } // redemption
    sep!();
    s!(if muni {
        "OFFICIAL STATEMENT"
    } else {
        ["PROSPECTUS", "PRICING SUPPLEMENT", "OFFERING CIRCULAR"][r.below(3) as usize]
    }); // source_doc
    sep!(); // sponsoring
    sep!();
    if eq {
        s!("ONE VOTE PER SHARE")
    } // voting_rights
    sep!(); // warrant_assets
    sep!(); // warrant_status
    sep!(); // warrant_type
    sep!();
    s!(if eq {
        "NYSE"
    } else if muni {
        "MSRB EMMA"
    } else {
        "OTC"
    }); // where_traded
    sep!();
    if iss.kind == b'C' {
        s!(r.pick(AUDITORS))
    } // auditor
    sep!();
    if !eq {
        s!(r.pick(PAYING_AGENTS))
    } // paying_agent
    sep!();
    if r.permille() < 40 {
        s!(r.pick(PAYING_AGENTS))
    } // tender_agent
    sep!();
    if eq {
        s!(r.pick(XFER_AGENTS))
    } // xfer_agent
    sep!();
    if muni {
        s!(r.pick(BOND_COUNSEL))
    } // bond_counsel
    sep!();
    if muni && r.permille() < 700 {
        s!(r.pick(FIN_ADVISORS))
    } // financial_advisor
    sep!();
    if muni {
        push_date(l, f.dated - r.range(7, 40), date_style(&mut r))
    } // municipal_sale_date
    sep!();
    if muni {
        l.push(b"CG"[r.below(2) as usize])
    } // sale_type
    sep!();
    if !eq {
        // offering_amount numeric(5,1) + offering_amount_code
        let (tenths, code) = match r.permille() {
            0..=199 => (r.range(10, 99_999) as u64, b'K'),
            200..=899 => (r.range(10, 99_999) as u64, b'M'),
            _ => (r.range(10, 99) as u64, b'B'),
        };
        push_decimal(l, tenths, 1, r.permille() < 300, false);
        sep!();
        l.push(code);
    } else {
        sep!();
    }
    l.push(b'\n');
}

// ------------------------------------------------------------------------------------ files

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    R,
    E,
    A,
}

struct Stats {
    records: u64,
    bytes: u64,
}

struct Out {
    w: BufWriter<File>,
    line: Vec<u8>,
    desc: Vec<u8>,
    adl: Vec<u8>,
    codes: Vec<u32>,
    /// Amendments to append before the trailer (`--repeat-pct`).
    amendments: Vec<Vec<u8>>,
    st: Stats,
}

impl Out {
    #[inline]
    fn emit(&mut self) -> std::io::Result<()> {
        self.w.write_all(&self.line)?;
        self.st.records += 1;
        self.st.bytes += self.line.len() as u64;
        self.line.clear();
        Ok(())
    }
}

impl Kind {
    fn index(self) -> usize {
        match self {
            Kind::R => 0,
            Kind::E => 1,
            Kind::A => 2,
        }
    }
}

/// True if the record whose seed is `seed` gets an amendment appended (`--repeat-pct`).
fn repeats(cfg: &Cfg, kind: Kind, seed: u64) -> bool {
    cfg.repeat_in[kind.index()]
        && cfg.repeat_pct > 0.0
        && Rng::new(mix(seed ^ K_REPEAT ^ cfg.delta_key, kind.index() as u64)).pct(cfg.repeat_pct)
}

/// The issues (E) or attributes (A) of one issuer, in key order; on the next day a new
/// issue may follow each existing one, in the free issue code just above it.
fn write_issues(
    cfg: &Cfg,
    kind: Kind,
    iss: &Issuer,
    count: u32,
    keys_seed: u64,
    issue_base: u64,
    o: &mut Out,
) -> std::io::Result<()> {
    issue_codes(keys_seed, count, &mut o.codes);
    for j in 0..o.codes.len() {
        let c = o.codes[j];
        for extra in [false, true] {
            let (seed, code) = if !extra {
                (mix(issue_base, j as u64), c)
            } else {
                if !cfg.next || iss.fresh {
                    continue;
                }
                let s = mix(issue_base ^ K_NEW_ISSUE ^ cfg.delta_key, j as u64);
                if !Rng::new(s).pct(cfg.new_pct) {
                    continue;
                }
                (mix(s, 99), c + 1)
            };
            let is_new = extra || iss.fresh;
            let f = issue_facts(
                seed,
                iss,
                if extra { 1 } else { j as u32 },
                if is_new { cfg.today } else { cfg.base_day },
                is_new,
            );
            let delta = issue_delta(cfg, seed, is_new);
            // An amendment (`--repeat-pct`) differs from the record in what it writes: for
            // an issue a corrected description (or, if it was that, a rate change); for an
            // attribute a suspended payment status (or, if it was that, matured).
            let alt = match kind {
                Kind::E if delta == 3 => 1,
                Kind::E => 3,
                _ if delta == 4 => 2,
                _ => 4,
            };
            let amend = repeats(cfg, kind, seed).then_some(alt);
            for (d, is_amendment) in std::iter::once((delta, false)).chain(amend.map(|a| (a, true)))
            {
                let mut buf = if is_amendment {
                    Vec::with_capacity(512)
                } else {
                    std::mem::take(&mut o.line)
                };
                match kind {
                    Kind::E => write_issue_record(
                        &mut buf,
                        iss,
                        issue_num(code),
                        seed,
                        &f,
                        d,
                        is_new,
                        cfg,
                        &mut o.desc,
                    ),
                    _ => {
                        write_attr_record(&mut buf, iss, issue_num(code), seed, &f, d, is_new, cfg)
                    }
                }
                if is_amendment && !cfg.repeat_adjacent {
                    o.amendments.push(buf);
                } else {
                    o.line = buf;
                    o.emit()?;
                }
            }
        }
    }
    Ok(())
}

/// An issuer's record, and its amendment when it gets one (`--repeat-pct`).
fn write_issuer(cfg: &Cfg, iss: &mut Issuer, o: &mut Out) -> std::io::Result<()> {
    write_issuer_record(&mut o.line, iss, cfg, &mut o.desc, &mut o.adl);
    o.emit()?;
    if repeats(cfg, Kind::R, iss.seed) {
        let mut buf = Vec::with_capacity(512);
        iss.amend = true;
        write_issuer_record(&mut buf, iss, cfg, &mut o.desc, &mut o.adl);
        iss.amend = false;
        if cfg.repeat_adjacent {
            o.line = buf;
            o.emit()?;
        } else {
            o.amendments.push(buf);
        }
    }
    Ok(())
}

fn write_file(cfg: &Cfg, kind: Kind, path: &Path) -> std::io::Result<Stats> {
    let mut o = Out {
        w: BufWriter::with_capacity(1 << 20, File::create(path)?),
        line: Vec::with_capacity(1024),
        desc: Vec::with_capacity(128),
        adl: Vec::with_capacity(128),
        codes: Vec::with_capacity(64),
        amendments: Vec::new(),
        st: Stats {
            records: 0,
            bytes: 0,
        },
    };
    let mut iss = Issuer {
        name: Vec::with_capacity(128),
        ..Default::default()
    };
    let mut gen = IssuerCodes::new(cfg);
    for i in 0..cfg.m {
        let code = gen.next();
        let seed = mix(cfg.seed ^ K_ISSUER, i);
        make_issuer(seed, code, false, &mut iss);
        if kind == Kind::R {
            write_issuer(cfg, &mut iss, &mut o)?;
        } else {
            write_issues(
                cfg,
                kind,
                &iss,
                issue_count(cfg, i),
                mix(seed, 5),
                mix(seed, 6),
                &mut o,
            )?;
        }
        if cfg.next {
            // a new issuer in the free issuer code just above this one, with 1-3 new issues
            let s = mix(cfg.seed ^ K_NEW_ISSUER ^ cfg.delta_key, i);
            let mut r = Rng::new(s);
            if r.pct(cfg.new_pct) {
                let count = 1 + r.below(3);
                make_issuer(mix(s, 1), code + 1, true, &mut iss);
                if kind == Kind::R {
                    write_issuer(cfg, &mut iss, &mut o)?;
                } else {
                    write_issues(cfg, kind, &iss, count, mix(s, 5), mix(s, 6), &mut o)?;
                }
            }
        }
    }
    for line in std::mem::take(&mut o.amendments) {
        o.line = line;
        o.emit()?;
    }
    o.line.extend_from_slice(b"999999|TRAILER|");
    push_num(&mut o.line, o.st.records, 1);
    o.line.push(b'\n');
    o.st.bytes += o.line.len() as u64;
    o.w.write_all(&o.line)?;
    o.w.flush()?;
    Ok(o.st)
}

// ------------------------------------------------------------------------------------ main

fn usage() -> ! {
    eprintln!(
        "usage: generate --issues N --out DIR [--date MM-DD] [--seed S]\n\
         \x20               [--next-of MM-DD [--changed-pct 1.0] [--new-pct 0.5]] [--delta-seed S]\n\
         \x20               [--repeat-pct 0 [--repeat-types REA] [--repeat-where end]]\n\
         Writes CED{{date}}R.PIP, CED{{date}}E.PIP, CED{{date}}A.PIP (N issues, ~N/25 issuers,\n\
         one attribute per issue). --date defaults to 01-15, or to the day after --next-of.\n\
         --next-of D regenerates day D's rows from the same seed and writes the next day's\n\
         full files with changed-pct % of rows modified and new-pct % new issues added.\n\
         --delta-seed S picks which rows change, are new and repeat (default: by --seed).\n\
         --repeat-pct P appends amendments of about P % of the records (same key, other\n\
         values) before the trailer, in the files of --repeat-types; with --repeat-where\n\
         adjacent, each right after its record instead."
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut n, mut out, mut date, mut seed, mut next_of) = (
        None::<u64>,
        None::<PathBuf>,
        None::<String>,
        1u64,
        None::<String>,
    );
    let (mut changed_pct, mut new_pct) = (1.0f64, 0.5f64);
    let (mut delta_seed, mut repeat_pct, mut repeat_types) =
        (None::<u64>, 0.0f64, "REA".to_string());
    let mut repeat_where = "end".to_string();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let val = || args.get(i + 1).cloned().unwrap_or_else(|| usage());
        match a {
            "--issues" => n = Some(val().replace('_', "").parse().unwrap_or_else(|_| usage())),
            "--out" => out = Some(PathBuf::from(val())),
            "--date" => date = Some(val()),
            "--seed" => seed = val().parse().unwrap_or_else(|_| usage()),
            "--next-of" => next_of = Some(val()),
            "--changed-pct" => changed_pct = val().parse().unwrap_or_else(|_| usage()),
            "--new-pct" => new_pct = val().parse().unwrap_or_else(|_| usage()),
            "--delta-seed" => delta_seed = Some(val().parse().unwrap_or_else(|_| usage())),
            "--repeat-pct" => repeat_pct = val().parse().unwrap_or_else(|_| usage()),
            "--repeat-types" => repeat_types = val(),
            "--repeat-where" => repeat_where = val(),
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("unknown argument {a}");
                usage()
            }
        }
        i += 2;
    }
    let (Some(n), Some(out)) = (n, out) else {
        usage()
    };
    if n == 0 || n > 40_000_000 {
        eprintln!("--issues must be 1..=40000000");
        std::process::exit(2);
    }
    if ![changed_pct, new_pct, repeat_pct]
        .iter()
        .all(|p| (0.0..=100.0).contains(p))
    {
        eprintln!("percentages must be within 0..100");
        std::process::exit(2);
    }
    let bad_date = |s: &str| -> ! {
        eprintln!("bad date {s:?}: expected MM-DD");
        std::process::exit(2)
    };
    let (base_day, today, next) = match &next_of {
        Some(p) => {
            let b = parse_mmdd(p).unwrap_or_else(|| bad_date(p));
            let t = match &date {
                Some(d) => parse_mmdd(d).unwrap_or_else(|| bad_date(d)),
                None => b + 1,
            };
            (b, t, true)
        }
        None => {
            let d = date.clone().unwrap_or_else(|| "01-15".into());
            let z = parse_mmdd(&d).unwrap_or_else(|| bad_date(&d));
            (z, z, false)
        }
    };
    let cfg = Cfg {
        n,
        m: n.div_ceil(25).max(1),
        seed,
        base_day,
        today,
        next,
        changed_pct,
        new_pct,
        // A delta seed of its own moves every per-day choice; none leaves them as they were.
        delta_key: delta_seed.map_or(0, |s| splitmix(s ^ 0xD17A)),
        repeat_pct,
        repeat_in: ['R', 'E', 'A'].map(|t| repeat_types.to_ascii_uppercase().contains(t)),
        repeat_adjacent: repeat_where == "adjacent",
    };
    if repeat_where != "end" && repeat_where != "adjacent" {
        eprintln!("--repeat-where takes end or adjacent");
        std::process::exit(2);
    }
    if repeat_types.chars().any(|c| !"REAea".contains(c)) {
        eprintln!("--repeat-types takes letters of REA");
        std::process::exit(2);
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {e}", out.display());
        std::process::exit(1);
    }
    let tag = mmdd(today);
    let t0 = Instant::now();
    for (kind, suf) in [(Kind::R, 'R'), (Kind::E, 'E'), (Kind::A, 'A')] {
        let path = out.join(format!("CED{tag}{suf}.PIP"));
        let t = Instant::now();
        match write_file(&cfg, kind, &path) {
            Ok(st) => eprintln!(
                "{}: {} records, {} bytes, {:.2}s",
                path.display(),
                st.records,
                st.bytes,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    eprintln!(
        "done in {:.2}s (seed {}, {} issues, {} issuers{})",
        t0.elapsed().as_secs_f64(),
        cfg.seed,
        cfg.n,
        cfg.m,
        if next {
            format!(
                ", next day of {} with {}% changed, {}% new",
                mmdd(base_day),
                changed_pct,
                new_pct
            )
        } else {
            String::new()
        }
    );
}
