#!/usr/bin/env python3
"""Generate the committed sample CUSIP PIP files of testdata/.

Deterministic: one fixed seed, no set iteration, no clock; rerunning it rewrites
byte-identical files.  Usage:  python3 testdata/make_sample.py [OUTDIR]
(OUTDIR defaults to the directory of this script).

Writes
  CED01-15R.PIP CED01-15E.PIP CED01-15A.PIP   full-ish day, LF line ends
  CED01-16R.PIP CED01-16E.PIP CED01-16A.PIP   next day's delta (E: CRLF, A: ends with 0x1A)
  bad/*.PIP                                   one rejection kind per file
  latin1/latin1-R.PIP latin1/cp1252-R.PIP     valid files in legacy 8-bit encodings

Record layouts and code tables: /work/shared/pip-format.md.  check_sample.py
validates everything written here and computes the expected load results.
"""
import datetime as dt
import random
import sys
from pathlib import Path

SEED = 20240115
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
rng = random.Random(SEED)

FILE_DATE = dt.date(2024, 1, 15)
NEXT_DATE = dt.date(2024, 1, 16)

# --------------------------------------------------------------------------- helpers

def seg(text, n, width=30):
    """Split text into n consecutive segments of `width` characters (edge spaces kept)."""
    assert len(text) <= n * width, (text, len(text))
    return [text[i * width:(i + 1) * width] for i in range(n)]


def fmt_date(d, style="iso"):
    if d is None:
        return ""
    if style == "iso":
        return d.strftime("%Y-%m-%d")
    if style == "compact":
        return d.strftime("%Y%m%d")
    if style == "us":
        return d.strftime("%m/%d/%Y")
    raise ValueError(style)


def rdate(d):
    """A date in a random accepted format (mostly ISO), as real mixed feeds look in tests."""
    r = rng.random()
    style = "iso" if r < 0.86 else ("compact" if r < 0.93 else "us")
    return fmt_date(d, style)


def days(d, n):
    return d + dt.timedelta(days=n)


def rand_day(start, end):
    return days(start, rng.randrange((end - start).days + 1))


def yn(p_yes=0.5, p_blank=0.0):
    r = rng.random()
    if r < p_blank:
        return ""
    return "Y" if rng.random() < p_yes else "N"


CUSIP_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def cusip_check(s8):
    total = 0
    for i, c in enumerate(s8):
        if c.isdigit():
            v = ord(c) - 48
        elif "A" <= c <= "Z":
            v = ord(c) - 55
        else:
            v = {"*": 36, "@": 37, "#": 38}[c]
        if i % 2 == 1:
            v *= 2
        total += v // 10 + v % 10
    return str((10 - total % 10) % 10)


def pad_to(text, width, filler=" ASSN"):
    """Grow text to exactly `width` characters (used for full-width values)."""
    while len(text) < width:
        text += filler
    return text[:width]


# --------------------------------------------------------------------------- vocabulary

STATES = [  # (name, CUSIP abbreviation, state code, cities)
    ("CALIFORNIA", "CALIF", "CA", ["LOS ANGELES", "SAN DIEGO", "SAN FRANCISCO", "SACRAMENTO", "FRESNO", "OAKLAND"]),
    ("TEXAS", "TEX", "TX", ["HOUSTON", "AUSTIN", "DALLAS", "SAN ANTONIO", "FORT WORTH", "EL PASO"]),
    ("NEW YORK", "N Y", "NY", ["NEW YORK", "BUFFALO", "ROCHESTER", "YONKERS", "ALBANY", "SYRACUSE"]),
    ("FLORIDA", "FLA", "FL", ["MIAMI-DADE", "ORLANDO", "TAMPA", "JACKSONVILLE", "BROWARD"]),
    ("ILLINOIS", "ILL", "IL", ["CHICAGO", "NAPERVILLE", "PEORIA", "SPRINGFIELD", "COOK"]),
    ("PENNSYLVANIA", "PA", "PA", ["PHILADELPHIA", "PITTSBURGH", "ALLENTOWN", "ERIE"]),
    ("OHIO", "OHIO", "OH", ["COLUMBUS", "CLEVELAND", "CINCINNATI", "TOLEDO", "AKRON"]),
    ("MICHIGAN", "MICH", "MI", ["DETROIT", "GRAND RAPIDS", "LANSING", "ANN ARBOR"]),
    ("GEORGIA", "GA", "GA", ["ATLANTA", "SAVANNAH", "AUGUSTA", "FULTON"]),
    ("MASSACHUSETTS", "MASS", "MA", ["BOSTON", "WORCESTER", "SPRINGFIELD", "CAMBRIDGE"]),
    ("WASHINGTON", "WASH", "WA", ["SEATTLE", "SPOKANE", "TACOMA", "KING"]),
    ("ARIZONA", "ARIZ", "AZ", ["PHOENIX", "TUCSON", "MESA", "MARICOPA"]),
    ("COLORADO", "COLO", "CO", ["DENVER", "COLORADO SPRINGS", "AURORA", "BOULDER"]),
    ("NEW JERSEY", "N J", "NJ", ["NEWARK", "JERSEY CITY", "PATERSON", "TRENTON"]),
    ("VIRGINIA", "VA", "VA", ["RICHMOND", "NORFOLK", "FAIRFAX", "ARLINGTON"]),
    ("MINNESOTA", "MINN", "MN", ["MINNEAPOLIS", "SAINT PAUL", "ROCHESTER", "DULUTH"]),
    ("TENNESSEE", "TENN", "TN", ["NASHVILLE", "MEMPHIS", "KNOXVILLE", "CHATTANOOGA"]),
    ("NORTH CAROLINA", "N C", "NC", ["CHARLOTTE", "RALEIGH", "DURHAM", "GREENSBORO"]),
    ("OREGON", "ORE", "OR", ["PORTLAND", "SALEM", "EUGENE"]),
    ("WISCONSIN", "WIS", "WI", ["MILWAUKEE", "MADISON", "GREEN BAY"]),
    ("MISSOURI", "MO", "MO", ["KANSAS CITY", "SAINT LOUIS", "SPRINGFIELD"]),
    ("PUERTO RICO", "P R", "PR", ["SAN JUAN", "PONCE", "BAYAMON"]),
]

MUNI_PATTERNS = [
    "{city} {ab}",
    "{city} {ab}",
    "{state} ST",
    "{city} {ab} INDPT SCH DIST",
    "{city} {ab} UNI SCH DIST",
    "{state} HEALTH & EDL FACS AUTH REV",
    "{city} CNTY {ab} WTR & SWR REV",
    "{state} HSG FIN AGY",
    "{city} {ab} ARPT REV",
    "{state} ST UNIV REV",
    "{city} {ab} PUB IMPT",
    "{state} TPK AUTH REV",
    "{state} DEV FIN AUTH REV",
    "{city} {ab} MET TRANSN AUTH REV",
    "{state} ST PUB WKS BRD LEASE REV",
    "{city} {ab} CITY TRANSITIONAL FIN AUTH REV",
    "{state} STATEWIDE CMNTYS DEV AUTH STUDENT HSG REV",
    "{state} MUN FIN AUTH SOLID WASTE DISP REV",
    "{city} {ab} HARBOR DEPT REV",
    "{state} INFRASTRUCTURE & ECONOMIC DEV BK REV CLEAN WTR",
    "{city} {ab} CMNTY FACS DIST NO 2023-1 SPL TAX IMPT AREA NO 1",
    "{state} HIGHER EDL FACS AUTH REV {city} CMNTY COLLEGE DIST PROJ",
]

CORP_WORDS = ["APEX", "MERIDIAN", "BLUE RIDGE", "NORTHSTAR", "CASCADE", "PINNACLE", "HARBOR", "SUMMIT",
              "IRONWOOD", "SILVER LAKE", "REDWOOD", "GRANITE", "ATLAS", "BEACON", "LIBERTY", "PIONEER",
              "KEYSTONE", "SENTINEL", "HORIZON", "EVERGREEN", "FRONTIER", "CRESTVIEW", "OAKMONT", "TRIDENT"]
CORP_INDUSTRY = ["ENERGY", "HOLDINGS", "FINANCIAL", "TECHNOLOGIES", "PHARMACEUTICALS", "INDUSTRIES",
                 "COMMUNICATIONS", "REALTY TRUST", "BANCORP", "UTILITIES", "SEMICONDUCTOR", "CAPITAL",
                 "MEDICAL SYSTEMS", "RESOURCES", "INSURANCE GROUP", "LOGISTICS", "BRANDS", "AEROSPACE"]
CORP_SUFFIX = ["INC", "CORP", "LLC", "CO", "L P", "INC NEW", "CORP DEL", "HLDGS INC", "PLC", "TR"]
FOREIGN_CORPS = [  # multibyte UTF-8 on purpose
    ("Société Générale", "FR", "EUR"),
    ("Zürich Insurance Group AG", "CH", "CHF"),
    ("Nestlé S.A.", "CH", "CHF"),
    ("Crédit Agricole Corporate and Investment Bank", "FR", "EUR"),
    ("Ørsted A/S", "DK", "DKK"),
    ("Česká spořitelna a.s.", "CZ", "CZK"),
    ("Bayerische Motoren Werke Aktiengesellschaft München", "DE", "EUR"),
    ("Banco Santander México S.A. Institución de Banca Múltiple", "MX", "MXN"),
    ("東京電力ホールディングス株式会社", "JP", "JPY"),
    ("L'Oréal S.A.", "FR", "EUR"),
    ("Skandinaviska Enskilda Banken AB (publ) Göteborg", "SE", "SEK"),
]
GOVT = [
    ("912796", "UNITED STATES TREAS BILLS"), ("912797", "UNITED STATES TREAS BILLS CASH MGMT"),
    ("912810", "UNITED STATES TREAS BDS"), ("912828", "UNITED STATES TREAS NTS"),
    ("91282C", "UNITED STATES TREAS NTS"), ("9128CC", "UNITED STATES TREAS INFLATION INDEXED NTS"),
    ("3130AT", "FEDERAL HOME LN BKS"), ("3133EN", "FEDERAL FARM CR BKS"),
    ("3135G0", "FEDERAL NATL MTG ASSN"), ("3137EA", "FEDERAL HOME LN MTG CORP"),
    ("880591", "TENNESSEE VALLEY AUTH"), ("38378B", "GOVERNMENT NATL MTG ASSN"),
    ("76116E", "RESOLUTION FDG CORP"), ("31331Y", "FEDERAL AGRIC MTG CORP"),
]
SOVEREIGN = [
    ("CANADA GOVT", "CA", "CAD"), ("MEXICO UNITED MEXICAN STS", "MX", "USD"),
    ("JAPAN BK FOR INTL COOPERATION", "JP", "USD"), ("ISRAEL ST", "IL", "USD"),
    ("ITALY REP", "IT", "USD"), ("KOREA REP", "KR", "USD"), ("PHILIPPINES REP", "PH", "USD"),
    ("BRAZIL FEDERATIVE REP", "BR", "USD"), ("CHILE REP", "CL", "USD"), ("PANAMA REP", "PA", "USD"),
    ("COLOMBIA REP", "CO", "USD"), ("PERU REP", "PE", "USD"), ("QUEBEC PROV CDA", "CA", "USD"),
    ("ONTARIO PROV CDA", "CA", "USD"), ("RÉPUBLIQUE FRANÇAISE", "FR", "EUR"),
    ("KOMMUNALBANKEN AS NORWAY", "NO", "USD"),
]

UNDERWRITERS = ["MORGAN STANLEY & CO LLC", "J.P. MORGAN SECURITIES LLC", "SIEBERT WILLIAMS SHANK & CO LLC",
                "RBC CAPITAL MARKETS LLC", "PIPER SANDLER & CO", "GOLDMAN SACHS & CO LLC",
                "BOFA SECURITIES INC", "WELLS FARGO BANK NATIONAL ASSOCIATION", "RAYMOND JAMES & ASSOCIATES INC",
                "STIFEL NICOLAUS & COMPANY INCORPORATED", "LOOP CAPITAL MARKETS LLC", "CITIGROUP GLOBAL MARKETS INC"]
PAYING_AGENTS = ["THE BANK OF NEW YORK MELLON TRUST COMPANY, N.A.", "U.S. BANK TRUST COMPANY, NATIONAL ASSOCIATION",
                 "COMPUTERSHARE TRUST COMPANY, N.A.", "ZIONS BANCORPORATION, NATIONAL ASSOCIATION",
                 "WILMINGTON TRUST, NATIONAL ASSOCIATION", "REGIONS BANK", "UMB BANK, N.A."]
BOND_COUNSEL = ["ORRICK, HERRINGTON & SUTCLIFFE LLP", "HAWKINS DELAFIELD & WOOD LLP", "NORTON ROSE FULBRIGHT US LLP",
                "SQUIRE PATTON BOGGS (US) LLP", "KUTAK ROCK LLP", "CHAPMAN AND CUTLER LLP", "BALLARD SPAHR LLP",
                "STRADLING YOCCA CARLSON & RAUTH, A PROFESSIONAL CORPORATION"]
FIN_ADVISORS = ["PFM FINANCIAL ADVISORS LLC", "PUBLIC RESOURCES ADVISORY GROUP, INC.", "HILLTOP SECURITIES INC.",
                "KAUFMAN, HALL & ASSOCIATES, LLC", "MONTAGUE DEROSE AND ASSOCIATES, LLC", "SPECIALIZED PUBLIC FINANCE INC."]
AUDITORS = ["ERNST & YOUNG LLP", "KPMG LLP", "PRICEWATERHOUSECOOPERS LLP", "DELOITTE & TOUCHE LLP", "GRANT THORNTON LLP"]
XFER_AGENTS = ["COMPUTERSHARE TRUST COMPANY, N.A.", "EQUINITI TRUST COMPANY, LLC", "BROADRIDGE CORPORATE ISSUER SOLUTIONS, LLC"]
INSURERS = ["ASSURED GUARANTY MUNICIPAL CORP", "BUILD AMERICA MUTUAL ASSURANCE CO", "NATIONAL PUBLIC FINANCE GUARANTEE CORP"]
REDEMPTION = ["CALLABLE", "NON-CALLABLE", "MAKE WHOLE CALL", "EXTRAORDINARY REDEMPTION", "SINKING FUND REDEMPTION"]

# Code tables (spec "Code tables").
ISSUER_TYPE = ["C", "M", "G", "S"]
ISSUER_STATUS = ["A", "D"]
ISSUER_TRANSACTION = ["A", "B", "L", "N", "R", "T", "W"]
ISSUE_STATUS = ["A", "T", "D", "X", "Z"]
ISSUE_TRANSACTION = ["A", "D", "L", "M", "S", "W"]
GOVT_STIMULUS = ["A", "B", "C", "D", "E", "F", "G", "H", "M", "N", "P", "Q", "R", "T", "V"]
PAYMENT_FREQUENCY = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "Z"]
SALE_TYPE = ["C", "G"]
OFFERING_AMOUNT_CODE = ["K", "M", "B"]

# --------------------------------------------------------------------------- issuers

def new_issuer_num(used, kind):
    while True:
        if kind == "M":  # municipal numbers often end with a letter
            s = "".join(rng.choice("012345678") if i == 0 else rng.choice("0123456789") for i in range(5))
            s += rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")
        elif kind == "S" and rng.random() < 0.5:  # CINS style: foreign, leading letter
            s = rng.choice("CEGLMPY") + "".join(rng.choice("0123456789") for _ in range(4)) + rng.choice(CUSIP_ALNUM)
        else:
            s = rng.choice("012345678") + "".join(rng.choice("0123456789") for _ in range(4))
            s += rng.choice("0123456789" * 3 + "ABCDEFGHJKLMNPRSTUVWXYZ")
        if s not in used and not ("990000" <= s <= "999999"):
            used[s] = True
            return s


def issuer_record(num, typ, name, state_code, status, txn, adl="", upd=None, del_date=None, sort_key=None):
    n1, n2, n3 = seg(name, 3)
    a = seg(adl, 4)
    if sort_key is None:
        sort_key = "".join(c for c in name.upper() if c.isalnum() or c == " ")[:30].rstrip()
    return [num, cusip_check(num + "10"), n1, n2, n3, a[0], a[1], a[2], a[3], sort_key, typ, status,
            del_date if del_date is not None else "", txn, state_code, upd if upd is not None else ""]


ISSUER_TXN_COMBOS_FORCED = [("A", "A"), ("A", "B"), ("A", "L"), ("A", "N"), ("D", "R"), ("D", "T"), ("D", "W")]

# Crafted names that pin down edge cases (index -> text); all others are generated.
CRAFTED_NAMES = {
    # segment 1 ends with a space (char 30 is ' '), segment 2 starts with a letter
    "edge_end": "LOS ANGELES CALIF DEPT WTR &  PWR REV",          # char 29 (0-based) is ' '
    # segment 2 starts with a space (char 31 is ' ')
    "edge_start": "SACRAMENTO CNTY CALIF SANTN DI STS FING AUTH REV",
    # 3 segments, segment 3 starts with a space
    "three": "NEW YORK ST DORM AUTH REVS NON ST SUPPORTED DEBT MEMORIAL SLOAN- KETTERING CANCER CTR",
    # exactly 30 characters, multibyte (35 bytes), a single full-width segment
    "mb_full": "Société Générale Zürich Bräu S",
    # quotes and backslashes are ordinary data
    "quote": '"THE" QUOTED HOLDINGS "INC"',
    "backslash": "C\\O ACME TRUST \\ ESCROW\\",
    "dq_only": '"',
}


def build_issuers():
    used = {}
    issuers = []
    # fixed government issuers
    for num, name in GOVT:
        used[num] = True
        issuers.append({"num": num, "type": "G", "name": name, "state": "", "country": "US", "cur": "USD"})
    counts = {"M": 178, "C": 92, "S": 16}
    for typ, n in counts.items():
        for i in range(n):
            num = new_issuer_num(used, typ)
            if typ == "M":
                st = rng.choice(STATES)
                name = rng.choice(MUNI_PATTERNS).format(city=rng.choice(st[3]), ab=st[1], state=st[0])
                issuers.append({"num": num, "type": "M", "name": name, "state": st[2], "country": "US", "cur": "USD"})
            elif typ == "C":
                if i < len(FOREIGN_CORPS):
                    name, country, cur = FOREIGN_CORPS[i]
                    if len(name) > 90:
                        name = name[:90]
                    issuers.append({"num": num, "type": "C", "name": name, "state": "", "country": country, "cur": cur})
                else:
                    name = f"{rng.choice(CORP_WORDS)} {rng.choice(CORP_INDUSTRY)} {rng.choice(CORP_SUFFIX)}"
                    if rng.random() < 0.12:  # long corporate names spill into segment 2
                        name = f"{rng.choice(CORP_WORDS)} {rng.choice(CORP_WORDS)} {rng.choice(CORP_INDUSTRY)} AND {rng.choice(CORP_INDUSTRY)} {rng.choice(CORP_SUFFIX)}"
                    st = rng.choice(["DE", "NY", "DE", "NV", "MD", "TX", "CA", ""])
                    issuers.append({"num": num, "type": "C", "name": name, "state": st, "country": "US", "cur": "USD"})
            else:
                name, country, cur = SOVEREIGN[i]
                issuers.append({"num": num, "type": "S", "name": name, "state": "", "country": country, "cur": cur})
    # put crafted names on some municipal / corporate issuers
    munis = [x for x in issuers if x["type"] == "M"]
    corps = [x for x in issuers if x["type"] == "C" and x["country"] == "US"]
    munis[3]["name"] = CRAFTED_NAMES["edge_end"]; munis[3]["state"] = "CA"
    munis[7]["name"] = CRAFTED_NAMES["edge_start"]; munis[7]["state"] = "CA"
    munis[11]["name"] = CRAFTED_NAMES["three"]; munis[11]["state"] = "NY"
    corps[2]["name"] = CRAFTED_NAMES["quote"]
    corps[5]["name"] = CRAFTED_NAMES["backslash"]
    corps[8]["name"] = CRAFTED_NAMES["mb_full"]; corps[8]["country"] = "CH"; corps[8]["cur"] = "CHF"
    issuers.sort(key=lambda x: x["num"])

    # status / transaction with every code forced at least once
    forced_pos = rng.sample(range(len(issuers)), len(ISSUER_TXN_COMBOS_FORCED))
    for idx, iss in enumerate(issuers):
        if idx in forced_pos:
            status, txn = ISSUER_TXN_COMBOS_FORCED[forced_pos.index(idx)]
        else:
            r = rng.random()
            status, txn = (("A", "A") if r < 0.80 else ("A", "N") if r < 0.86 else ("A", "L") if r < 0.90
                           else ("A", "B") if r < 0.92 else ("D", rng.choice("RTW")))
        iss["status"], iss["txn"] = status, txn
        upd = rand_day(dt.date(2005, 1, 1), FILE_DATE)
        iss["upd_raw"] = upd
        del_date = ""
        if status == "D":
            del_date = rdate(rand_day(upd, FILE_DATE))
        elif rng.random() < 0.04:
            del_date = rng.choice(["0000-00-00", "00000000"])  # zero-date NULL placeholder
        adl = ""
        if txn in "BN" and rng.random() < 0.8:
            adl = f"FORMERLY {rng.choice(CORP_WORDS)} {rng.choice(CORP_INDUSTRY)} {rng.choice(CORP_SUFFIX)}"
        elif rng.random() < 0.06:
            adl = rng.choice(["SEE ALSO " + new_issuer_num(dict(used), "C"), "OBLIGOR: " + rng.choice(CORP_WORDS) + " HEALTH SYS",
                              "ISSUED ON BEHALF OF " + rng.choice(CORP_WORDS) + " UNIVERSITY AND AFFILIATED HOSPITALS OF THE REGION"])
        if iss["name"] == CRAFTED_NAMES["quote"]:
            adl = CRAFTED_NAMES["dq_only"]
        if iss["name"] == CRAFTED_NAMES["backslash"]:
            adl = '"ESCROW AGENT" C\\O TRUSTEE'
        iss["adl"] = adl
        iss["del_date"] = del_date
        iss["upd"] = rdate(upd)
        iss["rec"] = issuer_record(iss["num"], iss["type"], iss["name"], iss["state"], status, txn, adl,
                                   iss["upd"], del_date)
    return issuers


# --------------------------------------------------------------------------- issues

ISSUE_COMBOS_FORCED = [("A", "A"), ("A", "L"), ("A", "M"), ("T", "D"), ("D", "S"), ("D", "W"), ("X", "A"), ("Z", "A")]


def issue_nums_for(n, typ):
    pool = [a + b for a in CUSIP_ALNUM for b in CUSIP_ALNUM if a + b not in ("00",)]
    if typ == "C":
        pool = ["10", "20", "30"] + [x for x in pool if x[0] in "ABCDEFGH"]
        return sorted(rng.sample(pool[:3], min(n, 1)) + rng.sample(pool[3:], max(0, n - 1)))
    return sorted(rng.sample(pool, n))


def rate_text(r):
    """Rate in one of the textual forms seen in feeds."""
    style = rng.random()
    if style < 0.55:
        s = f"{r:.3f}"
    elif style < 0.85:
        s = f"{r:.3f}".rstrip("0").rstrip(".") or "0"
    else:
        s = f"{r:.2f}" if abs(round(r, 2) - r) < 1e-9 else f"{r:.3f}"
    return s


def muni_desc(iss, dated):
    yr = dated.year
    ser = rng.choice(["", "A", "B", "C", "A-1", "B-2"])
    base = rng.choice(["GO BDS", "GEN OBLIG BDS", "REV BDS", "REF BDS", "REV REF BDS", "WTR & SWR SYS REV BDS",
                       "SPL TAX REV BDS", "CTFS PARTN", "SALES TAX REV BDS", "LEASE REV BDS", "TAXABLE GO BDS"])
    d = f"{base} SER {yr}{ser}" if rng.random() < 0.7 else f"{base} {yr}{ser}"
    if rng.random() < 0.25:
        proj = rng.choice(["(SAINT LUKE'S HEALTH SYS PROJ)", "(GREEN BDS)", "(SUSTAINABILITY BDS)",
                           "(UNIVERSITY STUDENT HSG PROJ)", "(FORWARD DELIVERY)", "(ASSURED GTY MUN INS)",
                           "(CLIMATE BOND CERTIFIED)", "(BUILD AMERICA BDS-DIRECT PAYMENT)"])
        d = f"{base} {proj} SER {yr}{ser}"
    return d[:60]


def issue_desc(iss, inum, dated, maturity, rate):
    t = iss["type"]
    if t == "M":
        return muni_desc(iss, dated)
    if t == "G":
        if "BILLS" in iss["name"]:
            return f"BILL {maturity:%m/%d/%y}" if maturity else "BILL"
        if "TREAS" in iss["name"]:
            return f"{rate:.3f}% {'BD' if 'BDS' in iss['name'] else 'NT'} {maturity:%m/%d/%Y}" if maturity else "NT"
        return rng.choice(["BD", "DISC NT", "CONS BD", "MEDIUM TERM NT"]) + (f" {rate:.3f}% {maturity:%m/%d/%Y}" if maturity else "")
    if t == "S":
        return rng.choice(["GLOBAL BD", "NT", "BD", "GLOBAL NT"]) + (f" {rate:.3f}% {maturity:%Y}" if maturity else "")
    if inum in ("10", "20", "30"):
        return {"10": "COM", "20": "CL B", "30": "PFD SER A"}[inum]
    d = rng.choice(["SR NT", "NT", "SUB NT", "SR SECD NT 144A", "DEB", "MTN BE", "FIXED TO FLTG RT SUB NT",
                    "SR UNSECD NT", "GTD SR NT REG S", "CONV SR NT"])
    d = f"{d} {rate:.3f}% {maturity:%m/%d/%Y}" if maturity else d
    if rng.random() < 0.1:
        d = f"{d} CALLABLE MAKE WHOLE +25 BP"
    return d[:60]


def issue_record(iss, inum, status, txn, forced_rate=None, forced_stim=None, dated_from=dt.date(1998, 1, 1)):
    t = iss["type"]
    equity = t == "C" and inum in ("10", "20", "30")
    dated = rand_day(dated_from, FILE_DATE)
    if equity:
        dated_s, maturity, maturity_s, rate, rate_s = "", None, "", None, ""
    else:
        term = rng.choice([1, 2, 3, 5, 7, 10, 15, 20, 25, 30]) if t != "G" or "BILLS" not in iss["name"] else 0
        maturity = days(dated, term * 365 + rng.randrange(0, 200)) if term else days(dated, rng.choice([28, 91, 182, 364]))
        if status == "Z":
            maturity = rand_day(days(dated, 30), days(FILE_DATE, -1))
        rate = round(rng.choice([0.0, 0.5, 1.25, 2.0, 2.75, 3.0, 3.125, 3.5, 4.0, 4.25, 4.5, 5.0, 5.25, 5.5,
                                 6.125, 6.75, 7.0, 8.375]) + (rng.randrange(0, 8) * 0.125 if rng.random() < 0.2 else 0), 3)
        if "BILLS" in iss["name"]:
            rate = 0.0
        dated_s = rdate(dated)
        maturity_s = rdate(maturity)
        rate_s = rate_text(rate)
        if status == "T":  # temporary add: rate not final
            rate_s = ""
        if rng.random() < 0.015:
            dated_s = rng.choice(["0000-00-00", "00000000"])
    if forced_rate is not None:
        rate_s = forced_rate
    desc = issue_desc(iss, inum, dated, maturity, rate if rate is not None else 0.0)
    d1, d2 = seg(desc, 2)
    adl = ""
    r = rng.random()
    if t == "M" and r < 0.15:
        adl = rng.choice(["INSURED BY " + rng.choice(INSURERS), "PRE-REFUNDED TO " + fmt_date(rand_day(FILE_DATE, dt.date(2030, 1, 1)), "us") + " @ 100",
                          "ESCROWED TO MATURITY", "SUBJECT TO MANDATORY TENDER", "CONV CAP APPREC BDS CONVERTS TO CURRENT INTEREST ON 08/01/2028 AT 5.000%"])
    elif t == "C" and r < 0.05:
        adl = "EXCHANGED FOR REGISTERED NOTES"
    a = seg(adl, 4)
    partial = ""
    if t == "M" and rng.random() < 0.12:
        partial = str(rng.choice([1, 2, 3, 5, 10, 25, 100, 250]))
    stim = ""
    if forced_stim is not None:
        stim = forced_stim
    elif t == "M" and rng.random() < 0.06:
        stim = rng.choice(["B", "Q", "N", "A", "R"])
    upd = rand_day(dated, FILE_DATE)
    return [iss["num"], inum, cusip_check(iss["num"] + inum), d1, d2, a[0], a[1], a[2], a[3], status,
            dated_s, maturity_s, partial, rate_s, stim, txn, rdate(upd)]


def build_issues(issuers):
    plan = []  # (issuer, inum)
    for iss in issuers:
        t = iss["type"]
        if t == "M":
            n = rng.choice([0, 1, 1, 2, 2, 2, 3, 3, 4, 5])
        elif t == "G":
            n = rng.choice([3, 4, 5, 6, 8])
        elif t == "S":
            n = rng.choice([1, 2, 3])
        else:
            n = rng.choice([0, 1, 1, 1, 2, 2, 3])
        if iss["name"] in (CRAFTED_NAMES["mb_full"], CRAFTED_NAMES["quote"], CRAFTED_NAMES["backslash"]):
            n = max(n, 2)
        for inum in issue_nums_for(n, t):
            plan.append((iss, inum))
    forced_combo_pos = rng.sample(range(len(plan)), len(ISSUE_COMBOS_FORCED))
    bonds = [i for i, (iss, inum) in enumerate(plan) if not (iss["type"] == "C" and inum in ("10", "20", "30"))
             and i not in forced_combo_pos]
    special_rates = ["5.25", "5.250", ".5", "0", "999.999", "0.125", "12", "4.1"]
    rate_pos = rng.sample(bonds, len(special_rates))
    stim_pos = rng.sample(bonds, len(GOVT_STIMULUS))
    issues = []
    for i, (iss, inum) in enumerate(plan):
        if i in forced_combo_pos:
            status, txn = ISSUE_COMBOS_FORCED[forced_combo_pos.index(i)]
        else:
            r = rng.random()
            status, txn = (("A", "A") if r < 0.78 else ("A", "L") if r < 0.83 else ("A", "M") if r < 0.86
                           else ("T", "D") if r < 0.89 else ("Z", "A") if r < 0.94 else ("X", "A") if r < 0.96
                           else ("D", rng.choice("SW")))
        fr = special_rates[rate_pos.index(i)] if i in rate_pos else None
        fs = GOVT_STIMULUS[stim_pos.index(i)] if i in stim_pos else None
        if fr is not None and status == "T":
            status, txn = "A", "A"
        rec = issue_record(iss, inum, status, txn, fr, fs)
        issues.append({"issuer": iss, "rec": rec})
    return issues


# --------------------------------------------------------------------------- attributes

def cfi(iss, equity):
    if equity:
        return rng.choice(["ESVUFR", "ESVUFN", "EPNXXR"])
    if iss["type"] == "M":
        return rng.choice(["DBFNFR", "DBFTFR", "DBFUFR", "DBVTFR"])
    return rng.choice(["DBFTFR", "DBFUGR", "DTZXXR", "DBVUFR"])


def attr_record(issue, forced=None):
    forced = forced or {}
    iss = issue["issuer"]
    rec = issue["rec"]
    inum = rec[1]
    t = iss["type"]
    equity = t == "C" and inum in ("10", "20", "30")
    muni = t == "M"
    f = [""] * 53
    f[0], f[1] = iss["num"], inum
    f[2] = yn(0.15) if muni else ""                      # alternative_min_tax
    f[3] = yn(0.2) if muni else ""                       # bank_q
    f[4] = "" if equity else yn(0.5)                     # callable
    f[5] = rdate(rand_day(days(FILE_DATE, -400), FILE_DATE))          # activity_date
    if not equity:
        f[6] = rdate(rand_day(dt.date(1998, 6, 1), dt.date(2025, 6, 1)))  # first_coupon_date
        if rng.random() < 0.02:
            f[6] = rng.choice(["0000-00-00", "00000000"])
    f[7] = yn(0.3)                                       # init_pub_off
    if equity:
        f[8] = rng.choice(["4", "Z"])
    elif "BILLS" in iss["name"]:
        f[8] = rng.choice(["7", "8"])
    else:
        f[8] = rng.choice(["5", "5", "5", "5", "6", "3", "4", "7"])
    f[9] = iss["cur"]
    f[10] = iss["country"]
    if not equity and t != "G":
        f[11] = rng.choice(UNDERWRITERS)
    f[12] = cfi(iss, equity)
    if rng.random() < 0.08:
        f[12] = ""
    f[13] = rdate(rand_day(dt.date(1998, 1, 1), FILE_DATE)) if not equity else ""
    if equity:
        f[14] = "".join(c for c in iss["name"].upper() if "A" <= c <= "Z")[:4] + ("" if inum == "10" else ".B")
    f[15] = f[12]
    f[16] = "Y" if rng.random() < 0.95 else "N"           # depos_eligible
    if muni:
        f[17] = yn(0.1)
        f[18] = yn(0.4)
        f[19] = yn(0.05, 0.3)
    f[20] = "" if equity else yn(0.1)
    f[21] = yn(0.2) if muni else ("" if equity else "Y")
    f[22] = rng.choice(["BOOK ENTRY ONLY", "BOOK ENTRY ONLY", "REGISTERED", "BEARER"]) if not equity else "REGISTERED"
    if muni and rng.random() < 0.25:
        f[23] = rng.choice(["BOND INSURANCE", "LETTER OF CREDIT", "STATE INTERCEPT PROGRAM", "PERMANENT SCHOOL FUND GUARANTEE"])
        if f[23] == "BOND INSURANCE":
            f[29] = rng.choice(INSURERS)
    if equity and rng.random() < 0.3:
        f[24] = "QUARTERLY CASH DIVIDEND"
        f[25] = ""
    if t == "G":
        f[27] = "FULL FAITH AND CREDIT OF THE UNITED STATES GOVT" if "TREAS" in iss["name"] else ""
    elif t == "C" and rng.random() < 0.1:
        f[27] = "GUARANTEED BY PARENT"
    f[28] = ("TAX-EXEMPT" if f[21] == "N" else "TAXABLE") if muni else ("DIVIDEND" if equity else "INTEREST")
    if t == "C" and not equity and rng.random() < 0.2:
        f[30] = rng.choice(["144A", "REG S", "144A/REG S"])
    f[31] = rng.choice(["CURRENT", "CURRENT", "CURRENT", "MATURED" if rec[9] == "Z" else "CURRENT"])
    if inum == "30":
        f[32] = rng.choice(["CUMULATIVE", "NON-CUMULATIVE"])
    if not equity and rng.random() < 0.05:
        f[33] = "PUTABLE AT OPTION OF HOLDER"
    f[34] = "" if equity else ("ZERO COUPON" if rec[13] in ("0", "0.000", "0.00") else rng.choice(["FIXED", "FIXED", "FIXED", "VARIABLE", "FLOATING"]))
    if not equity:
        f[35] = rng.choice(REDEMPTION)
    f[36] = rng.choice(["OFFICIAL STATEMENT", "PRELIMINARY OFFICIAL STATEMENT"]) if muni else rng.choice(["PROSPECTUS", "PRICING SUPPLEMENT", "OFFERING CIRCULAR", "PRESS RELEASE"])
    if equity:
        f[38] = "ONE VOTE PER SHARE" if inum == "10" else "TEN VOTES PER SHARE"
    f[42] = rng.choice(["NYSE", "NASDAQ", "NYSE AMERICAN"]) if equity else ("MSRB EMMA" if muni else "OTC")
    if t == "C":
        f[43] = rng.choice(AUDITORS)
    if not equity:
        f[44] = rng.choice(PAYING_AGENTS)
    if rng.random() < 0.04:
        f[45] = rng.choice(PAYING_AGENTS)
    if equity:
        f[46] = rng.choice(XFER_AGENTS)
    if muni:
        f[47] = rng.choice(BOND_COUNSEL)
        f[48] = rng.choice(FIN_ADVISORS) if rng.random() < 0.7 else ""
        f[49] = rdate(rand_day(dt.date(1998, 1, 1), FILE_DATE))
        f[50] = rng.choice(SALE_TYPE)
    if not equity:
        code = rng.choice(["K", "M", "M", "M", "B"])
        if code == "K":
            amt = rng.choice(["500", "750.0", "250", "995.5"])
        elif code == "M":
            amt = rng.choice(["12.5", "25", "100.0", "150", "47.3", "8.7", "250.0", "1.0"])
        else:
            amt = rng.choice(["1.5", "2", "3.2", "10.0"])
        f[51], f[52] = amt, code
    for k, v in forced.items():
        f[k] = v
    return f


def build_attrs(issues):
    n = len(issues)
    missing = rng.sample(range(n), n // 12)               # ~8% of issues have no attribute record
    have = [i for i in range(n) if i not in missing]
    forced = {}
    for col, codes in ((8, PAYMENT_FREQUENCY), (50, SALE_TYPE), (52, OFFERING_AMOUNT_CODE)):
        for code, pos in zip(codes, rng.sample(have, len(codes))):
            forced.setdefault(pos, {})[col] = code
    for amt, pos in zip(["12.5", "9999.9", ".5", "0"], rng.sample(have, 4)):
        forced.setdefault(pos, {})[51] = amt
        forced[pos].setdefault(52, rng.choice(OFFERING_AMOUNT_CODE))
    # full-width values: ASCII at 60 / 50, multibyte at exactly 60 characters
    specials = rng.sample(have, 5)
    forced.setdefault(specials[0], {})[44] = pad_to("THE BANK OF NEW YORK MELLON TRUST COMPANY, NATIONAL", 60)
    forced.setdefault(specials[1], {})[11] = pad_to("SOCIÉTÉ GÉNÉRALE CORPORATE & INVESTMENT BANKING ZÜRICH", 60, " Ü")
    forced.setdefault(specials[2], {})[35] = pad_to("CALLABLE 01/15/2034 @ 100 \\ MAKE WHOLE T+25BP", 50, ".")
    forced.setdefault(specials[3], {})[11] = '"RBC" CAPITAL MARKETS, LLC \\ "LOOP" CAPITAL'
    forced.setdefault(specials[4], {})[14] = "ABCDEFGHIJ"  # ticker at full width 10
    attrs = []
    for i in have:
        attrs.append({"issue": issues[i], "rec": attr_record(issues[i], forced.get(i))})
    missing_issues = [issues[i] for i in sorted(missing)]
    return attrs, missing_issues


# --------------------------------------------------------------------------- writing

def line_bytes(fields, encoding="utf-8"):
    out = []
    for f in fields:
        out.append(f if isinstance(f, bytes) else f.encode(encoding))
    return b"|".join(out)


def write_pip(path, records, eol=b"\n", eof_byte=False, trailer=True, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytearray()
    for r in records:
        data += line_bytes(r, encoding) + eol
    if trailer:
        data += f"999999|TRAILER|{len(records)}".encode() + eol
    if eof_byte:
        data += b"\x1a"
    path.write_bytes(bytes(data))


def sort_recs(recs, nkey):
    return sorted(recs, key=lambda r: tuple(r[:nkey]))  # stable: repeats keep their order


# --------------------------------------------------------------------------- day 1

issuers = build_issuers()
issues = build_issues(issuers)
attrs, issues_without_attr = build_attrs(issues)

R15 = [x["rec"] for x in issuers]
E15 = [x["rec"] for x in issues]
A15 = [x["rec"] for x in attrs]

write_pip(OUT / "CED01-15R.PIP", R15)
write_pip(OUT / "CED01-15E.PIP", E15)
write_pip(OUT / "CED01-15A.PIP", A15)

# --------------------------------------------------------------------------- day 2 (delta)

upd16 = fmt_date(NEXT_DATE)
by_num = {x["num"]: x for x in issuers}
issuers_with_issues = []
for x in issues:
    if x["issuer"]["num"] not in issuers_with_issues:
        issuers_with_issues.append(x["issuer"]["num"])


def cp(rec):
    return list(rec)


# R: 3 new issuers (one twice), 4 updates, 3 unchanged repeats, 2 repeated existing keys
R16 = []
used = {x["num"]: True for x in issuers}
new_r = []
for typ, name, st in (("M", "AUSTIN TEX INDPT SCH DIST UNLIMITED TAX SCH BLDG", "TX"),
                      ("C", "NORTHSTAR QUANTUM COMPUTING INC", "DE"),
                      ("M", "ZÜRICH TOWNSHIP N J BD OF ED", "NJ")):
    num = new_issuer_num(used, typ)
    new_r.append(issuer_record(num, typ, name, st, "A", "A", "", upd16))
R16 += new_r
# the last new issuer occurs twice: first with a typo, then the correction (last wins)
typo = cp(new_r[2]); typo[2] = "ZURICH TWP N J BD OF ED"; typo[13] = "A"
R16.insert(R16.index(new_r[2]), typo)

cand = [r for r in R15 if r[11] == "A" and r[10] in "MC"]
picks = rng.sample(cand, 9)
u_name, u_susp, u_state, u_corr, same1, same2, same3, rep_upd, rep_same = picks
r = cp(u_name); r[2:5] = seg("MERIDIAN NEXTGEN ENERGY HOLDINGS CORPORATION (FORMERLY " + u_name[2].strip() + ")", 3); r[13] = "N"; r[15] = upd16; R16.append(r)
r = cp(u_susp); r[11] = "D"; r[12] = upd16; r[13] = "T"; r[15] = upd16; R16.append(r)
r = cp(u_state); r[14] = "NV" if r[14] != "NV" else "DE"; r[13] = "L"; r[15] = fmt_date(NEXT_DATE, "compact"); R16.append(r)
r = cp(u_corr); r[5] = "OBLIGOR: \"NEW\" HEALTH SYS \\"; r[13] = "L"; r[15] = upd16; R16.append(r)
R16 += [cp(same1), cp(same2), cp(same3)]
# repeated existing key, both differ from day 1, the last one wins (updated)
r1 = cp(rep_upd); r1[11] = "D"; r1[12] = upd16; r1[13] = "R"; r1[15] = upd16
r2 = cp(rep_upd); r2[2:5] = seg(rep_upd[2] + " " + rep_upd[3] + " REORGANIZED", 3); r2[13] = "B"; r2[15] = upd16
if r2[2:5] == rep_upd[2:5]:
    raise SystemExit("bad pick")
R16 += [r1, r2]
# repeated existing key, the first differs, the last equals day 1 (unchanged)
r1 = cp(rep_same); r1[11] = "D"; r1[12] = upd16; r1[13] = "W"; r1[15] = upd16
R16 += [r1, cp(rep_same)]
R16 = sort_recs(R16, 1)
write_pip(OUT / "CED01-16R.PIP", R16)

# E: new issues (for new and old issuers), updates, unchanged repeats, repeated keys
E16 = []
new_issuers16 = {r[0]: {"num": r[0], "type": r[10], "name": "".join(r[2:5]), "state": r[14],
                        "country": "US", "cur": "USD"} for r in new_r}
new_issues16 = []
e15_keys = {(r[0], r[1]) for r in E15}
for num, n in zip(list(new_issuers16), (3, 1, 2)):
    for inum in issue_nums_for(n, new_issuers16[num]["type"]):
        new_issues16.append({"issuer": new_issuers16[num],
                             "rec": issue_record(new_issuers16[num], inum, "A", "A", dated_from=dt.date(2023, 11, 1))})
for num in rng.sample([n for n in issuers_with_issues if by_num[n]["status"] == "A"], 4):
    iss = by_num[num]
    while True:
        inum = rng.choice(CUSIP_ALNUM[1:]) + rng.choice(CUSIP_ALNUM)
        if (num, inum) not in e15_keys:
            break
    new_issues16.append({"issuer": iss, "rec": issue_record(iss, inum, "T", "D", dated_from=dt.date(2023, 11, 1))})
for x in new_issues16:
    x["rec"][16] = upd16
E16 += [x["rec"] for x in new_issues16]
# a new issue occurs twice: tentative add then permanent (M), rate now known
tent = [x for x in new_issues16 if x["rec"][9] == "T"][0]
perm = cp(tent["rec"]); perm[9] = "A"; perm[15] = "M"; perm[13] = "4.375"
E16.insert(E16.index(tent["rec"]) + 1, perm)

act = [x for x in issues if x["rec"][9] == "A" and x["rec"][13] not in ("",)]
picks = rng.sample(act, 9)
u_rate, u_mat, u_stim, same1, same2, same3, same4, rep_upd, rep_same = picks
u_desc = rng.choice([x for x in act if x["issuer"]["type"] == "M" and x not in picks])
r = cp(u_rate["rec"]); r[13] = "3.875"; r[15] = "L"; r[16] = upd16; E16.append(r)
r = cp(u_mat["rec"]); r[9] = "Z"; r[11] = fmt_date(FILE_DATE); r[16] = fmt_date(NEXT_DATE, "us"); E16.append(r)
r = cp(u_desc["rec"]); r[3:5] = seg("REV REF BDS (GREEN BDS) \"CLIMATE\" SER 2024A\\B", 2); r[15] = "L"; r[16] = upd16; E16.append(r)
r = cp(u_stim["rec"]); r[14] = "B" if r[14] != "B" else "Q"; r[12] = "7"; r[16] = upd16; E16.append(r)
E16 += [cp(x["rec"]) for x in (same1, same2, same3, same4)]
r1 = cp(rep_upd["rec"]); r1[9] = "D"; r1[15] = "S"; r1[16] = upd16
r2 = cp(rep_upd["rec"]); r2[9] = "D"; r2[15] = "W"; r2[16] = upd16; r2[5] = "REGISTRATION WITHDRAWN"
E16 += [r1, r2]
r1 = cp(rep_same["rec"]); r1[13] = "9.999"; r1[15] = "L"
E16 += [r1, cp(rep_same["rec"])]
E16 = sort_recs(E16, 2)
write_pip(OUT / "CED01-16E.PIP", E16, eol=b"\r\n")

# A: attributes for new issues, for day-1 issues that had none, updates, unchanged, repeats
A16 = []
for x in new_issues16:
    A16.append(attr_record(x))
for x in issues_without_attr[:3]:
    A16.append(attr_record(x))
picks = rng.sample(attrs, 8)
u_ticker, u_pay, u_cur, same1, same2, same3, rep_upd, rep_same = picks
r = cp(u_ticker["rec"]); r[14] = "NEWTICKR"; r[5] = upd16; A16.append(r)
r = cp(u_pay["rec"]); r[44] = "COMPUTERSHARE TRUST COMPANY, N.A. \\ SUCCESSOR \"PAYING\" AGENT"; r[5] = upd16; A16.append(r)
r = cp(u_cur["rec"]); r[51] = "12.5" if r[51] != "12.5" else "13.5"; r[52] = "M"; r[8] = "4"; A16.append(r)
A16 += [cp(x["rec"]) for x in (same1, same2, same3)]
r1 = cp(rep_upd["rec"]); r1[22] = "BEARER"; r1[5] = upd16
r2 = cp(rep_upd["rec"]); r2[22] = "REGISTERED"; r2[31] = "DEFAULT"; r2[5] = upd16
if r2[22] == rep_upd["rec"][22] and r2[31] == rep_upd["rec"][31]:
    raise SystemExit("bad pick")
A16 += [r1, r2]
r1 = cp(rep_same["rec"]); r1[31] = "SUSPENDED"; r1[5] = upd16
A16 += [r1, cp(rep_same["rec"])]
# a new attribute occurs twice too
na = [r for r in A16 if (r[0], r[1]) in {(x["rec"][0], x["rec"][1]) for x in new_issues16}][0]
na1 = cp(na); na1[34] = "VARIABLE" if na[34] != "VARIABLE" else "FLOATING"; na1[14] = ""
assert na1 != na
A16.insert(A16.index(na), na1)
A16 = sort_recs(A16, 2)
write_pip(OUT / "CED01-16A.PIP", A16, eof_byte=True)

# --------------------------------------------------------------------------- bad files
# E/A bad files reuse day-1 records (loadable once CED01-15R / CED01-15E are loaded);
# exactly one kind of error per file.

BAD = OUT / "bad"


def window(recs, start, n):
    return [cp(r) for r in recs[start:start + n]]


r = window(R15, 40, 6); r[3] = r[3][:15]                              # 15 fields instead of 16
write_pip(BAD / "fieldcount-R.PIP", r)
e = window(E15, 60, 5); e[2][3] = "GENERAL OBLIGATION BONDS SERIES"  # 31 characters
assert len(e[2][3]) == 31
write_pip(BAD / "toolong-E.PIP", e)
r = window(R15, 50, 5); r[1][2] = "ABCDEFGHIJ KLMNOPQRST UVWXYZ12 "   # 30 + one trailing space
assert len(r[1][2]) == 31
write_pip(BAD / "toolong-space-R.PIP", r)
e = window(E15, 70, 6); e[4][11] = "2024-02-30"
write_pip(BAD / "baddate-E.PIP", e)
e = window(E15, 80, 5); e[1][10] = "15/01/2024x"
write_pip(BAD / "baddateformat-E.PIP", e)
e = window(E15, 90, 5); e[2][12] = "TWELVE"
write_pip(BAD / "badint-E.PIP", e)
e = window(E15, 100, 5); e[3][13] = "5.2505"
write_pip(BAD / "numscale-E.PIP", e)
e = window(E15, 110, 5); e[2][13] = "1234.5"
write_pip(BAD / "numprecision-E.PIP", e)
e = window(E15, 120, 5); e[1][9] = "Q"
write_pip(BAD / "badcode-E.PIP", e)
r = window(R15, 60, 5); r[2][2] = b"CAF\xe9 HOLDINGS INC"               # lone Latin-1 0xE9
write_pip(BAD / "badutf8-R.PIP", r)
r = window(R15, 70, 5); r[3][2] = b"ACME\x00 CORP"                      # NUL byte
write_pip(BAD / "nul-R.PIP", r)
r = window(R15, 80, 5)
write_pip(BAD / "notrailer-R.PIP", r, trailer=False)
r = window(R15, 90, 5); r[2][0] = ""
write_pip(BAD / "emptykey-R.PIP", r)
e = window(E15, 130, 4)
fk = cp(E15[135]); fk[0] = "ZZZZZ9"; fk[2] = cusip_check("ZZZZZ9" + fk[1])
write_pip(BAD / "fkissuer-E.PIP", sort_recs(e + [fk], 2))
a = window(A15, 140, 4)
e15k = {(x[0], x[1]) for x in E15}
ghost = cp(a[1])
for cand_inum in ("ZY", "ZX", "ZW", "YZ"):
    if (ghost[0], cand_inum) not in e15k:
        ghost[1] = cand_inum
        break
write_pip(BAD / "fkissue-A.PIP", sort_recs(a + [ghost], 2))
e = window(E15, 150, 27)
bad_dates = ["2024-02-30", "2023-02-29", "2024-13-01", "2024-00-10", "2024-04-31", "2024-06-31", "2024-09-31",
             "2024-11-31", "2021-02-29", "2024-01-32", "2025-02-29", "2024-01-00", "20240230", "02/30/2024",
             "13/01/2024", "2024-02-30", "1900-02-29", "2100-02-29", "2024-03-32", "2024-10-32", "20241301",
             "00/10/2024", "2024-04-31", "2024-02-31", "20230229"]
assert len(bad_dates) == 25
for i, d in enumerate(bad_dates):
    e[1 + i][11] = d
write_pip(BAD / "baddate25-E.PIP", e)

# --------------------------------------------------------------------------- 8-bit encodings

LAT = OUT / "latin1"
l_used = dict(used)
for r16 in R16:
    l_used[r16[0]] = True
lat_recs = []
for name, adl in (("Café München Holdings AG", "gegründet in München"),
                  ("Société Générale SFH Émissions", ""),         # exactly 30 characters
                  ("Zürich Kantonalbank", "Sitz: Zürich, Bahnhofstraße 9"),
                  ("CRÉDIT AGRICOLE HOME LOAN SFH", ""),
                  ("Nestlé Holdings Inc", "")):
    num = new_issuer_num(l_used, "C")
    lat_recs.append(issuer_record(num, "C", name, "", "A", "A", adl, upd16))
assert len("Société Générale SFH Émissions") == 30
write_pip(LAT / "latin1-R.PIP", sort_recs(lat_recs, 1), encoding="latin-1")
cp_recs = []
for name, adl, skey in (("EURO € FUNDING CORP", "ISSUES IN € ONLY", "EURO FUNDING CORP"),
                        ("“BEST” BANK PLC", "KNOWN AS “THE BEST”", "BEST BANK PLC"),
                        ("MÜLLER € CAPITAL SA", "", "MULLER CAPITAL SA"),
                        ("PRICE’S “VALUE” TRUST", "", "PRICES VALUE TRUST")):
    num = new_issuer_num(l_used, "C")
    cp_recs.append(issuer_record(num, "C", name, "", "A", "A", adl, upd16, sort_key=skey))
write_pip(LAT / "cp1252-R.PIP", sort_recs(cp_recs, 1), encoding="cp1252")

print(f"wrote to {OUT}: R15={len(R15)} E15={len(E15)} A15={len(A15)} R16={len(R16)} E16={len(E16)} A16={len(A16)}",
      file=sys.stderr)
