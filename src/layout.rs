//! The three PIP record layouts, declared once as data.
//!
//! Everything that depends on a file's shape — field counts, value conversion, the binary
//! COPY encoding, the staging table, the merge and check SQL — is derived from the tables
//! below, so adding or widening a column is a one-line change here and in `schema.sql`.

use std::fmt;

/// The PostgreSQL type of a column, which decides how its text is checked and encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `varchar(n)`: at most `n` characters, byte-exact, never trimmed.
    Varchar(u16),
    /// `date`: `YYYY-MM-DD`, `YYYYMMDD` or `MM/DD/YYYY`; all-zero means NULL.
    Date,
    /// `integer`: optional sign and digits.
    Integer,
    /// `numeric(precision, scale)`, checked so the server never rounds.
    Numeric { precision: u8, scale: u8 },
}

impl Kind {
    /// The SQL type name, as used in the staging table.
    pub fn sql_type(self) -> String {
        match self {
            Kind::Varchar(n) => format!("varchar({n})"),
            Kind::Date => "date".to_string(),
            Kind::Integer => "integer".to_string(),
            Kind::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql_type())
    }
}

/// One column of a master table, in file order.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// Part of the primary key (and therefore NOT NULL).
    pub key: bool,
    /// The code table whose `code` this column must hold, if any.
    pub code_table: Option<&'static str>,
}

const fn v(name: &'static str, width: u16) -> Column {
    Column {
        name,
        kind: Kind::Varchar(width),
        key: false,
        code_table: None,
    }
}
const fn key(name: &'static str, width: u16) -> Column {
    Column {
        name,
        kind: Kind::Varchar(width),
        key: true,
        code_table: None,
    }
}
const fn code(name: &'static str, width: u16, table: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Varchar(width),
        key: false,
        code_table: Some(table),
    }
}
const fn date(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Date,
        key: false,
        code_table: None,
    }
}
const fn int(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Integer,
        key: false,
        code_table: None,
    }
}
const fn num(name: &'static str, precision: u8, scale: u8) -> Column {
    Column {
        name,
        kind: Kind::Numeric { precision, scale },
        key: false,
        code_table: None,
    }
}

/// The file types, in the order they must load (foreign keys point backwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileType {
    Issuer,
    Issue,
    IssueAttr,
}

impl FileType {
    pub const ALL: [FileType; 3] = [FileType::Issuer, FileType::Issue, FileType::IssueAttr];

    /// The name used on the command line, in the journal and in reports.
    pub fn name(self) -> &'static str {
        match self {
            FileType::Issuer => "issuer",
            FileType::Issue => "issue",
            FileType::IssueAttr => "issue_attr",
        }
    }

    /// The letter before `.PIP` in a file name.
    pub fn letter(self) -> char {
        match self {
            FileType::Issuer => 'R',
            FileType::Issue => 'E',
            FileType::IssueAttr => 'A',
        }
    }

    pub fn from_name(s: &str) -> Option<FileType> {
        FileType::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Infers the type from a file name's `R.PIP` / `E.PIP` / `A.PIP` suffix, ignoring case.
    pub fn from_file_name(name: &str) -> Option<FileType> {
        let upper = name.to_ascii_uppercase();
        let stem = upper.strip_suffix(".PIP")?;
        let letter = stem.chars().last()?;
        FileType::ALL.into_iter().find(|t| t.letter() == letter)
    }

    pub fn layout(self) -> &'static Layout {
        match self {
            FileType::Issuer => &ISSUER,
            FileType::Issue => &ISSUE,
            FileType::IssueAttr => &ISSUE_ATTR,
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A foreign key from this table's leading key columns to a parent table.
#[derive(Debug)]
pub struct ForeignKey {
    pub columns: &'static [&'static str],
    pub parent: &'static str,
}

/// One record layout: the master table and its columns in file order.
#[derive(Debug)]
pub struct Layout {
    pub file_type: FileType,
    pub table: &'static str,
    pub columns: &'static [Column],
    pub foreign_key: Option<ForeignKey>,
    /// The text columns the table's full-text `search_vector` covers, in the order they are
    /// joined (with a space between, NULL as empty) before `to_tsvector('english', …)`: the
    /// old service's trigger and `schema.sql`'s generated column both compute exactly this.
    pub search: &'static [&'static str],
}

impl Layout {
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.key)
    }

    pub fn non_key_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.key)
    }

    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }

    pub fn key_names(&self) -> Vec<&'static str> {
        self.key_columns().map(|c| c.name).collect()
    }

    /// The SQL that computes the search vector from the row's columns, each prefixed with
    /// `prefix` (`""` for the generated column, `"new."` for a trigger's body).
    pub fn search_expression(&self, prefix: &str) -> String {
        let parts: Vec<String> = self
            .search
            .iter()
            .map(|c| format!("coalesce({prefix}{c}, '')"))
            .collect();
        format!("to_tsvector('english', {})", parts.join(" || ' ' || "))
    }
}

pub static ISSUER: Layout = Layout {
    file_type: FileType::Issuer,
    table: "issuer",
    foreign_key: None,
    search: &[
        "issuer_name_1",
        "issuer_name_2",
        "issuer_name_3",
        "issuer_sort_key",
    ],
    columns: &[
        key("issuer_num", 6),
        v("issuer_check", 1),
        v("issuer_name_1", 30),
        v("issuer_name_2", 30),
        v("issuer_name_3", 30),
        v("issuer_adl_1", 30),
        v("issuer_adl_2", 30),
        v("issuer_adl_3", 30),
        v("issuer_adl_4", 30),
        v("issuer_sort_key", 30),
        code("issuer_type", 1, "ref_issuer_type"),
        code("issuer_status", 1, "ref_issuer_status"),
        date("issuer_del_date"),
        code("issuer_transaction", 1, "ref_issuer_transaction"),
        v("issuer_state_code", 2),
        date("issuer_update_date"),
    ],
};

pub static ISSUE: Layout = Layout {
    file_type: FileType::Issue,
    table: "issue",
    foreign_key: Some(ForeignKey {
        columns: &["issuer_num"],
        parent: "issuer",
    }),
    search: &["issue_desc_1", "issue_desc_2", "issue_adl_1", "issue_adl_2"],
    columns: &[
        key("issuer_num", 6),
        key("issue_num", 2),
        v("issue_check", 1),
        v("issue_desc_1", 30),
        v("issue_desc_2", 30),
        v("issue_adl_1", 30),
        v("issue_adl_2", 30),
        v("issue_adl_3", 30),
        v("issue_adl_4", 30),
        code("issue_status", 1, "ref_issue_status"),
        date("dated_date"),
        date("maturity_date"),
        int("partial_maturity"),
        num("rate", 6, 3),
        code("govt_stimulus_program", 10, "ref_govt_stimulus_program"),
        code("issue_transaction", 1, "ref_issue_transaction"),
        date("issue_update_date"),
    ],
};

pub static ISSUE_ATTR: Layout = Layout {
    file_type: FileType::IssueAttr,
    table: "issue_attribute",
    foreign_key: Some(ForeignKey {
        columns: &["issuer_num", "issue_num"],
        parent: "issue",
    }),
    search: &["ticker_symbol", "underwriter"],
    columns: &[
        key("issuer_num", 6),
        key("issue_num", 2),
        v("alternative_min_tax", 1),
        v("bank_q", 1),
        v("callable", 1),
        date("activity_date"),
        date("first_coupon_date"),
        v("init_pub_off", 1),
        code("payment_frequency", 1, "ref_payment_frequency"),
        v("currency_code", 3),
        v("domicile_code", 2),
        v("underwriter", 60),
        v("us_cfi_code", 6),
        date("closing_date"),
        v("ticker_symbol", 10),
        v("iso_cfi", 6),
        v("depos_eligible", 1),
        v("pre_refund", 1),
        v("refundable", 1),
        v("remarketed", 1),
        v("sinking_fund", 1),
        v("taxable", 1),
        v("form", 50),
        v("enhancements", 50),
        v("fund_distrb_policy", 50),
        v("fund_inv_policy", 50),
        v("fund_type", 50),
        v("guarantee", 50),
        v("income_type", 50),
        v("insured_by", 50),
        v("ownership_restr", 50),
        v("payment_status", 50),
        v("preferred_type", 50),
        v("putable", 50),
        v("rate_type", 50),
        v("redemption", 50),
        v("source_doc", 50),
        v("sponsoring", 50),
        v("voting_rights", 50),
        v("warrant_assets", 50),
        v("warrant_status", 50),
        v("warrant_type", 50),
        v("where_traded", 50),
        v("auditor", 60),
        v("paying_agent", 60),
        v("tender_agent", 60),
        v("xfer_agent", 60),
        v("bond_counsel", 60),
        v("financial_advisor", 60),
        date("municipal_sale_date"),
        code("sale_type", 1, "ref_sale_type"),
        num("offering_amount", 5, 1),
        code("offering_amount_code", 1, "ref_offering_amount_code"),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_counts_match_the_spec() {
        assert_eq!(ISSUER.columns.len(), 16);
        assert_eq!(ISSUE.columns.len(), 17);
        assert_eq!(ISSUE_ATTR.columns.len(), 53);
    }

    #[test]
    fn keys_lead_every_layout() {
        for t in FileType::ALL {
            let l = t.layout();
            let n = l.key_names().len();
            assert!(l.columns[..n].iter().all(|c| c.key), "{}", l.table);
            if let Some(fk) = &l.foreign_key {
                assert_eq!(fk.columns, &l.key_names()[..fk.columns.len()]);
            }
        }
    }

    #[test]
    fn type_from_file_name() {
        assert_eq!(
            FileType::from_file_name("CED01-15R.PIP"),
            Some(FileType::Issuer)
        );
        assert_eq!(
            FileType::from_file_name("ced01-15e.pip"),
            Some(FileType::Issue)
        );
        assert_eq!(
            FileType::from_file_name("/x/y/CED12-31A.Pip"),
            Some(FileType::IssueAttr)
        );
        assert_eq!(FileType::from_file_name("CED01-15X.PIP"), None);
        assert_eq!(FileType::from_file_name("issuer.txt"), None);
        assert_eq!(FileType::from_file_name(".PIP"), None);
    }
}
