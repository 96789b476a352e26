-- cusip-loader database schema (PostgreSQL 15).
--
-- Idempotent: applying it again changes nothing and never drops data. Tables and indexes are
-- created only when missing, views are re-created with the same definition, and code rows are
-- inserted only when their code is missing (existing descriptions are left alone).
--
-- The loader sends this file as one simple-query batch inside its own transaction, so it holds
-- no BEGIN/COMMIT and no psql meta-commands. Layout of the master tables is the spec's file
-- order (shared/pip-format.md) and must match src/layout.rs column for column.

------------------------------------------------------------------------------------------------
-- Code tables (code -> description)
------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS ref_issuer_type (
    code        varchar(1) NOT NULL,
    description text       NOT NULL,
    CONSTRAINT ref_issuer_type_pkey PRIMARY KEY (code)
);

CREATE TABLE IF NOT EXISTS ref_issuer_status (
    code        varchar(1) NOT NULL,
    description text       NOT NULL,
    CONSTRAINT ref_issuer_status_pkey PRIMARY KEY (code)
);

CREATE TABLE IF NOT EXISTS ref_issuer_transaction (
    code        varchar(1) NOT NULL,
    description text       NOT NULL,
    CONSTRAINT ref_issuer_transaction_pkey PRIMARY KEY (code)
);

CREATE TABLE IF NOT EXISTS ref_issue_status (
    code        varchar(1) NOT NULL,
    description text       NOT NULL,
    CONSTRAINT ref_issue_status_pkey PRIMARY KEY (code)
);

CREATE TABLE IF NOT EXISTS ref_issue_transaction (
    code        varchar(1) NOT NULL,
    description text       NOT NULL,
    CONSTRAINT ref_issue_transaction_pkey PRIMARY KEY (code)
);

CREATE TABLE IF NOT EXISTS ref_govt_stimulus_program (
    code        varchar(10) NOT NULL,
    description text        NOT NULL,
    CONSTRAINT ref_govt_stimulus_program_pkey PRIMARY KEY (code)
);

CREATE TABLE IF NOT EXISTS ref_payment_frequency (
    code        varchar(1) NOT NULL,
    description text       NOT NULL,
    CONSTRAINT ref_payment_frequency_pkey PRIMARY KEY (code)
);

CREATE TABLE IF NOT EXISTS ref_sale_type (
    code        varchar(1) NOT NULL,
    description text       NOT NULL,
    CONSTRAINT ref_sale_type_pkey PRIMARY KEY (code)
);

CREATE TABLE IF NOT EXISTS ref_offering_amount_code (
    code        varchar(1) NOT NULL,
    description text       NOT NULL,
    CONSTRAINT ref_offering_amount_code_pkey PRIMARY KEY (code)
);

INSERT INTO ref_issuer_type (code, description) VALUES
    ('C', 'Corporate Issuer'),
    ('M', 'Municipal Issuer'),
    ('G', 'U.S. Government Issuer'),
    ('S', 'Sovereign Issuer')
ON CONFLICT (code) DO NOTHING;

INSERT INTO ref_issuer_status (code, description) VALUES
    ('A', 'Active'),
    ('D', 'Suspend')
ON CONFLICT (code) DO NOTHING;

INSERT INTO ref_issuer_transaction (code, description) VALUES
    ('A', 'New Issuer'),
    ('B', 'New Issuer - Company Name Change'),
    ('L', 'Description Correction Not Requiring New Number'),
    ('N', 'Company Name Change Not Requiring New Number'),
    ('R', 'Suspend Drop: Merged, Name Changed, Assets Acquired, Re-Domiciled'),
    ('T', 'Suspend Drop: Bankrupt, Liquidated, Authority Discontinued'),
    ('W', 'Immediate Drop: Registration Withdrawn')
ON CONFLICT (code) DO NOTHING;

INSERT INTO ref_issue_status (code, description) VALUES
    ('A', 'Active'),
    ('T', 'Temporary Add - Rate/Maturity Not Final'),
    ('D', 'Suspend'),
    ('X', 'Issue Presumed Inactive'),
    ('Z', 'Issue Matured')
ON CONFLICT (code) DO NOTHING;

INSERT INTO ref_issue_transaction (code, description) VALUES
    ('A', 'New Issue'),
    ('D', 'Tentative Add - Coupon Rate Not Yet Available'),
    ('L', 'Description Correction Not Requiring New Number'),
    ('M', 'Tentative Add Now Permanent'),
    ('S', 'Suspend Drop: Called, Expired, Exchanged, Redeemed'),
    ('W', 'Immediate Drop: Registration Withdrawn')
ON CONFLICT (code) DO NOTHING;

INSERT INTO ref_govt_stimulus_program (code, description) VALUES
    ('A', 'Qualified Zone Academy Bonds (QZAB)'),
    ('B', 'Build America Bonds'),
    ('C', 'Recovery Zone Facility Bonds'),
    ('D', 'New Clean Renewable Energy Bonds (New CREB)'),
    ('E', 'Qualified Energy Conservation Bonds'),
    ('F', 'FDIC TLGP'),
    ('G', 'Tribal Economic Development Bonds'),
    ('H', 'New Issue Bond Program NIBP - US Treasury HFA'),
    ('M', 'Municipal Liquidity Facility'),
    ('N', 'N/A'),
    ('P', 'TARP'),
    ('Q', 'Qualified School Construction Bonds'),
    ('R', 'Recovery Zone Economic Development Bonds'),
    ('T', 'TALF'),
    ('V', 'Clean Renewable Energy Bonds (CREB)')
ON CONFLICT (code) DO NOTHING;

INSERT INTO ref_payment_frequency (code, description) VALUES
    ('1', 'Daily'),
    ('2', 'Weekly'),
    ('3', 'Monthly'),
    ('4', 'Quarterly'),
    ('5', 'Semi-Annually'),
    ('6', 'Annually'),
    ('7', 'At Maturity'),
    ('8', 'Zero Coupon / Capital Appreciation Bonds'),
    ('9', 'Semi-Monthly'),
    ('Z', 'Not Applicable')
ON CONFLICT (code) DO NOTHING;

INSERT INTO ref_sale_type (code, description) VALUES
    ('C', 'Competitive'),
    ('G', 'Negotiated')
ON CONFLICT (code) DO NOTHING;

INSERT INTO ref_offering_amount_code (code, description) VALUES
    ('K', 'Thousands'),
    ('M', 'Millions'),
    ('B', 'Billions')
ON CONFLICT (code) DO NOTHING;

------------------------------------------------------------------------------------------------
-- Master tables (columns in PIP file order)
--
-- Key columns are COLLATE "C": CUSIP numbers are codes, not words, so they sort by their bytes
-- as the files do ('#', '*' and '@' are valid CUSIP characters, which language collations
-- ignore when sorting). It also lets the loader compare a sorted file with the table in one
-- ordered pass (README, Performance). On a database whose default collation is not "C", a
-- table created before this clause simply keeps the comparison in the database.
------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS issuer (
    issuer_num          varchar(6) COLLATE "C" NOT NULL,
    issuer_check        varchar(1),
    issuer_name_1       varchar(30),
    issuer_name_2       varchar(30),
    issuer_name_3       varchar(30),
    issuer_adl_1        varchar(30),
    issuer_adl_2        varchar(30),
    issuer_adl_3        varchar(30),
    issuer_adl_4        varchar(30),
    issuer_sort_key     varchar(30),
    issuer_type         varchar(1),
    issuer_status       varchar(1),
    issuer_del_date     date,
    issuer_transaction  varchar(1),
    issuer_state_code   varchar(2),
    issuer_update_date  date,
    CONSTRAINT issuer_pkey PRIMARY KEY (issuer_num),
    CONSTRAINT issuer_issuer_type_fk
        FOREIGN KEY (issuer_type) REFERENCES ref_issuer_type (code),
    CONSTRAINT issuer_issuer_status_fk
        FOREIGN KEY (issuer_status) REFERENCES ref_issuer_status (code),
    CONSTRAINT issuer_issuer_transaction_fk
        FOREIGN KEY (issuer_transaction) REFERENCES ref_issuer_transaction (code)
);

CREATE TABLE IF NOT EXISTS issue (
    issuer_num             varchar(6) COLLATE "C" NOT NULL,
    issue_num              varchar(2) COLLATE "C" NOT NULL,
    issue_check            varchar(1),
    issue_desc_1           varchar(30),
    issue_desc_2           varchar(30),
    issue_adl_1            varchar(30),
    issue_adl_2            varchar(30),
    issue_adl_3            varchar(30),
    issue_adl_4            varchar(30),
    issue_status           varchar(1),
    dated_date             date,
    maturity_date          date,
    partial_maturity       integer,
    rate                   numeric(6,3),
    govt_stimulus_program  varchar(10),
    issue_transaction      varchar(1),
    issue_update_date      date,
    CONSTRAINT issue_pkey PRIMARY KEY (issuer_num, issue_num),
    CONSTRAINT issue_issuer_fk
        FOREIGN KEY (issuer_num) REFERENCES issuer (issuer_num),
    CONSTRAINT issue_issue_status_fk
        FOREIGN KEY (issue_status) REFERENCES ref_issue_status (code),
    CONSTRAINT issue_govt_stimulus_program_fk
        FOREIGN KEY (govt_stimulus_program) REFERENCES ref_govt_stimulus_program (code),
    CONSTRAINT issue_issue_transaction_fk
        FOREIGN KEY (issue_transaction) REFERENCES ref_issue_transaction (code)
);

CREATE TABLE IF NOT EXISTS issue_attribute (
    issuer_num            varchar(6) COLLATE "C" NOT NULL,
    issue_num             varchar(2) COLLATE "C" NOT NULL,
    alternative_min_tax   varchar(1),
    bank_q                varchar(1),
    callable              varchar(1),
    activity_date         date,
    first_coupon_date     date,
    init_pub_off          varchar(1),
    payment_frequency     varchar(1),
    currency_code         varchar(3),
    domicile_code         varchar(2),
    underwriter           varchar(60),
    us_cfi_code           varchar(6),
    closing_date          date,
    ticker_symbol         varchar(10),
    iso_cfi               varchar(6),
    depos_eligible        varchar(1),
    pre_refund            varchar(1),
    refundable            varchar(1),
    remarketed            varchar(1),
    sinking_fund          varchar(1),
    taxable               varchar(1),
    form                  varchar(50),
    enhancements          varchar(50),
    fund_distrb_policy    varchar(50),
    fund_inv_policy       varchar(50),
    fund_type             varchar(50),
    guarantee             varchar(50),
    income_type           varchar(50),
    insured_by            varchar(50),
    ownership_restr       varchar(50),
    payment_status        varchar(50),
    preferred_type        varchar(50),
    putable               varchar(50),
    rate_type             varchar(50),
    redemption            varchar(50),
    source_doc            varchar(50),
    sponsoring            varchar(50),
    voting_rights         varchar(50),
    warrant_assets        varchar(50),
    warrant_status        varchar(50),
    warrant_type          varchar(50),
    where_traded          varchar(50),
    auditor               varchar(60),
    paying_agent          varchar(60),
    tender_agent          varchar(60),
    xfer_agent            varchar(60),
    bond_counsel          varchar(60),
    financial_advisor     varchar(60),
    municipal_sale_date   date,
    sale_type             varchar(1),
    offering_amount       numeric(5,1),
    offering_amount_code  varchar(1),
    CONSTRAINT issue_attribute_pkey PRIMARY KEY (issuer_num, issue_num),
    CONSTRAINT issue_attribute_issue_fk
        FOREIGN KEY (issuer_num, issue_num) REFERENCES issue (issuer_num, issue_num),
    CONSTRAINT issue_attribute_payment_frequency_fk
        FOREIGN KEY (payment_frequency) REFERENCES ref_payment_frequency (code),
    CONSTRAINT issue_attribute_sale_type_fk
        FOREIGN KEY (sale_type) REFERENCES ref_sale_type (code),
    CONSTRAINT issue_attribute_offering_amount_code_fk
        FOREIGN KEY (offering_amount_code) REFERENCES ref_offering_amount_code (code)
);

-- Full-text search: one vector per master table over its text columns (src/layout.rs,
-- `search`), English configuration. A stored generated column: PostgreSQL computes it as each
-- row is written (COPY, INSERT, UPDATE alike), with no trigger call per row and no pass that
-- rewrites rows afterwards. Added after the table so that it is the last column, as in a
-- database built by the old service (which fills the same column with a trigger; the loader
-- leaves such a column and its trigger as they are). `--init-schema` adds it only to an empty
-- table: on one with rows it would rewrite the table (see `--rewrite-tables`).
ALTER TABLE issuer ADD COLUMN IF NOT EXISTS search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english',
        coalesce(issuer_name_1, '') || ' ' || coalesce(issuer_name_2, '') || ' ' ||
        coalesce(issuer_name_3, '') || ' ' || coalesce(issuer_sort_key, ''))) STORED;
ALTER TABLE issue ADD COLUMN IF NOT EXISTS search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english',
        coalesce(issue_desc_1, '') || ' ' || coalesce(issue_desc_2, '') || ' ' ||
        coalesce(issue_adl_1, '') || ' ' || coalesce(issue_adl_2, ''))) STORED;
ALTER TABLE issue_attribute ADD COLUMN IF NOT EXISTS search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english',
        coalesce(ticker_symbol, '') || ' ' || coalesce(underwriter, ''))) STORED;

-- Indexes the query side uses. `--init-schema` skips one when the table already has an index
-- of the same kind on the same columns under another name (the old service's idx_* names).
CREATE INDEX IF NOT EXISTS issuer_status_idx     ON issuer (issuer_status);
CREATE INDEX IF NOT EXISTS issuer_type_idx       ON issuer (issuer_type);
CREATE INDEX IF NOT EXISTS issuer_state_code_idx ON issuer (issuer_state_code);
CREATE INDEX IF NOT EXISTS issue_status_idx        ON issue (issue_status);
CREATE INDEX IF NOT EXISTS issue_maturity_date_idx ON issue (maturity_date);
CREATE INDEX IF NOT EXISTS issue_dated_date_idx    ON issue (dated_date);
CREATE INDEX IF NOT EXISTS issue_attribute_currency_code_idx ON issue_attribute (currency_code);
CREATE INDEX IF NOT EXISTS issue_attribute_domicile_code_idx ON issue_attribute (domicile_code);
CREATE INDEX IF NOT EXISTS issue_attribute_ticker_symbol_idx ON issue_attribute (ticker_symbol);
CREATE INDEX IF NOT EXISTS issuer_search_idx          ON issuer USING gin (search_vector);
CREATE INDEX IF NOT EXISTS issue_search_idx           ON issue USING gin (search_vector);
CREATE INDEX IF NOT EXISTS issue_attribute_search_idx ON issue_attribute USING gin (search_vector);

COMMENT ON TABLE issuer IS
    'CUSIP issuers, one row per 6-character issuer number (PIP file CED{MM-DD}R.PIP; last record of the day wins).';
COMMENT ON COLUMN issuer.issuer_num IS 'CUSIP issuer number: first 6 characters of the CUSIP.';
COMMENT ON COLUMN issuer.issuer_check IS 'Issuer check character from the file.';
COMMENT ON COLUMN issuer.issuer_name_1 IS 'Issuer name, segment 1 of 3; segments are consecutive pieces of one text, edge spaces significant (glued in v_issuer.issuer_name).';
COMMENT ON COLUMN issuer.issuer_name_2 IS 'Issuer name, segment 2 of 3.';
COMMENT ON COLUMN issuer.issuer_name_3 IS 'Issuer name, segment 3 of 3.';
COMMENT ON COLUMN issuer.issuer_adl_1 IS 'Issuer additional information, segment 1 of 4 (glued in v_issuer.issuer_additional_info).';
COMMENT ON COLUMN issuer.issuer_adl_2 IS 'Issuer additional information, segment 2 of 4.';
COMMENT ON COLUMN issuer.issuer_adl_3 IS 'Issuer additional information, segment 3 of 4.';
COMMENT ON COLUMN issuer.issuer_adl_4 IS 'Issuer additional information, segment 4 of 4.';
COMMENT ON COLUMN issuer.issuer_sort_key IS 'Sort key for alphabetical ordering of issuers.';
COMMENT ON COLUMN issuer.issuer_type IS 'Issuer type code, see ref_issuer_type.';
COMMENT ON COLUMN issuer.issuer_status IS 'Issuer status code, see ref_issuer_status.';
COMMENT ON COLUMN issuer.issuer_del_date IS 'Date the issuer was deleted/suspended, if any.';
COMMENT ON COLUMN issuer.issuer_transaction IS 'Last transaction applied to the issuer, see ref_issuer_transaction.';
COMMENT ON COLUMN issuer.issuer_state_code IS 'Two-letter state code of the issuer.';
COMMENT ON COLUMN issuer.issuer_update_date IS 'Date CUSIP last updated the issuer record.';
COMMENT ON COLUMN issuer.search_vector IS 'Full-text search vector (english) over the name segments and sort key; computed by PostgreSQL.';

COMMENT ON TABLE issue IS
    'CUSIP issues, one row per issuer number + 2-character issue number (PIP file CED{MM-DD}E.PIP; last record of the day wins).';
COMMENT ON COLUMN issue.issuer_num IS 'CUSIP issuer number (references issuer).';
COMMENT ON COLUMN issue.issue_num IS 'CUSIP issue number: characters 7-8 of the CUSIP.';
COMMENT ON COLUMN issue.issue_check IS 'CUSIP check digit: character 9 of the CUSIP.';
COMMENT ON COLUMN issue.issue_desc_1 IS 'Issue description, segment 1 of 2; edge spaces significant (glued in v_issue.issue_description).';
COMMENT ON COLUMN issue.issue_desc_2 IS 'Issue description, segment 2 of 2.';
COMMENT ON COLUMN issue.issue_adl_1 IS 'Issue additional information, segment 1 of 4 (glued in v_issue.issue_additional_info).';
COMMENT ON COLUMN issue.issue_adl_2 IS 'Issue additional information, segment 2 of 4.';
COMMENT ON COLUMN issue.issue_adl_3 IS 'Issue additional information, segment 3 of 4.';
COMMENT ON COLUMN issue.issue_adl_4 IS 'Issue additional information, segment 4 of 4.';
COMMENT ON COLUMN issue.issue_status IS 'Issue status code, see ref_issue_status.';
COMMENT ON COLUMN issue.dated_date IS 'Dated date of the issue.';
COMMENT ON COLUMN issue.maturity_date IS 'Maturity date of the issue.';
COMMENT ON COLUMN issue.partial_maturity IS 'Partial maturity indicator/number from the file.';
COMMENT ON COLUMN issue.rate IS 'Coupon rate in percent.';
COMMENT ON COLUMN issue.govt_stimulus_program IS 'Government stimulus program code, see ref_govt_stimulus_program.';
COMMENT ON COLUMN issue.issue_transaction IS 'Last transaction applied to the issue, see ref_issue_transaction.';
COMMENT ON COLUMN issue.issue_update_date IS 'Date CUSIP last updated the issue record.';
COMMENT ON COLUMN issue.search_vector IS 'Full-text search vector (english) over the description and the first two additional-information segments; computed by PostgreSQL.';

COMMENT ON TABLE issue_attribute IS
    'Additional attributes of CUSIP issues, at most one row per issue (PIP file CED{MM-DD}A.PIP; last record of the day wins).';
COMMENT ON COLUMN issue_attribute.issuer_num IS 'CUSIP issuer number (with issue_num references issue).';
COMMENT ON COLUMN issue_attribute.issue_num IS 'CUSIP issue number (with issuer_num references issue).';
COMMENT ON COLUMN issue_attribute.payment_frequency IS 'Payment frequency code, see ref_payment_frequency.';
COMMENT ON COLUMN issue_attribute.currency_code IS 'ISO currency code of the issue.';
COMMENT ON COLUMN issue_attribute.domicile_code IS 'Country of domicile code.';
COMMENT ON COLUMN issue_attribute.ticker_symbol IS 'Exchange ticker symbol.';
COMMENT ON COLUMN issue_attribute.where_traded IS 'Where the issue is traded.';
COMMENT ON COLUMN issue_attribute.sale_type IS 'Municipal sale type code, see ref_sale_type.';
COMMENT ON COLUMN issue_attribute.offering_amount IS 'Offering amount in the unit given by offering_amount_code (v_issue_attribute.offering_amount_full has the full amount).';
COMMENT ON COLUMN issue_attribute.offering_amount_code IS 'Unit of offering_amount (K/M/B), see ref_offering_amount_code.';
COMMENT ON COLUMN issue_attribute.search_vector IS 'Full-text search vector (english) over the ticker symbol and underwriter; computed by PostgreSQL.';

------------------------------------------------------------------------------------------------
-- Load journal: one row per file load attempt
------------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS load_journal (
    id              bigserial   PRIMARY KEY,
    file_name       text        NOT NULL,
    source          text        NOT NULL,
    file_type       text        NOT NULL,
    bytes           bigint,
    fingerprint     text,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    records_read    bigint,
    inserted        bigint,
    updated         bigint,
    unchanged       bigint,
    repeated_keys   bigint,
    status          text        NOT NULL,
    error           text,
    loader_version  text
);

-- Added after the first release: a journal an older loader made gains them here.
ALTER TABLE load_journal ADD COLUMN IF NOT EXISTS business_date date;
ALTER TABLE load_journal ADD COLUMN IF NOT EXISTS sha256 text;

CREATE INDEX IF NOT EXISTS load_journal_identity_idx
    ON load_journal (source, fingerprint) WHERE status = 'loaded';
CREATE INDEX IF NOT EXISTS load_journal_started_idx
    ON load_journal (started_at);
CREATE INDEX IF NOT EXISTS load_journal_newest_idx
    ON load_journal (file_type, id) WHERE status = 'loaded';

COMMENT ON TABLE load_journal IS
    'One row per attempt to load a PIP file. A file whose content is that of its table''s newest successful load is skipped as already loaded; one dated before the newest business date loaded into its table is refused unless forced.';
COMMENT ON COLUMN load_journal.id IS 'Attempt id.';
COMMENT ON COLUMN load_journal.file_name IS 'File name only, e.g. CED01-15R.PIP.';
COMMENT ON COLUMN load_journal.source IS 'Local path or s3:// URI the file was read from.';
COMMENT ON COLUMN load_journal.file_type IS 'issuer | issue | issue_attr.';
COMMENT ON COLUMN load_journal.bytes IS 'File size in bytes.';
COMMENT ON COLUMN load_journal.fingerprint IS 'sha256 hex of the content (local file) or the object ETag (S3).';
COMMENT ON COLUMN load_journal.started_at IS 'When the attempt started.';
COMMENT ON COLUMN load_journal.finished_at IS 'When the attempt ended; NULL while running or if the process died.';
COMMENT ON COLUMN load_journal.records_read IS 'Data records read (trailer and blank lines excluded).';
COMMENT ON COLUMN load_journal.inserted IS 'Rows inserted into the master table.';
COMMENT ON COLUMN load_journal.updated IS 'Existing rows whose values changed.';
COMMENT ON COLUMN load_journal.unchanged IS 'Existing rows already identical to the file.';
COMMENT ON COLUMN load_journal.repeated_keys IS 'Records whose key occurred earlier in the same file (the last one wins).';
COMMENT ON COLUMN load_journal.status IS 'loaded | failed | interrupted | already loaded.';
COMMENT ON COLUMN load_journal.error IS 'Error message of a failed or interrupted attempt.';
COMMENT ON COLUMN load_journal.loader_version IS 'cusip-loader version that made the attempt.';
COMMENT ON COLUMN load_journal.business_date IS 'The business day the file is for: --date, else the MM-DD of its name in the most recent such year; NULL when neither tells.';
COMMENT ON COLUMN load_journal.sha256 IS 'sha256 hex of the content as read (local or S3), so that the same file from either source is one file; NULL when the attempt did not read it all.';


------------------------------------------------------------------------------------------------
-- Views people query (PostgREST or SQL): the old service's query contract, column for column
-- (shared/old-service-contract.md; README, "Views, search and PostgREST").
--
-- Segmented texts are glued with concat (a NULL segment counts as empty; no separators: the
-- segments are consecutive pieces of one text), then trimmed of outer spaces: never NULL, ''
-- when every segment is empty. cusip is concat(issuer_num, issue_num, issue_check). Code
-- descriptions come from LEFT JOINs. Each view reads the base tables directly, so that none
-- depends on another view. `--init-schema` leaves a view that already answers this way as it
-- is, and replaces one that does not only when nothing else depends on it.
------------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW v_issuer AS
SELECT
    r.issuer_num,
    r.issuer_check,
    btrim(concat(r.issuer_name_1, r.issuer_name_2, r.issuer_name_3)) AS issuer_name,
    btrim(concat(r.issuer_adl_1, r.issuer_adl_2, r.issuer_adl_3, r.issuer_adl_4))
        AS issuer_additional_info,
    r.issuer_sort_key,
    r.issuer_type,
    ty.description AS issuer_type_desc,
    r.issuer_status,
    st.description AS issuer_status_desc,
    r.issuer_del_date,
    r.issuer_transaction,
    tx.description AS issuer_transaction_desc,
    r.issuer_state_code,
    r.issuer_update_date
FROM issuer r
LEFT JOIN ref_issuer_type        ty ON ty.code = r.issuer_type
LEFT JOIN ref_issuer_status      st ON st.code = r.issuer_status
LEFT JOIN ref_issuer_transaction tx ON tx.code = r.issuer_transaction;

CREATE OR REPLACE VIEW v_issue AS
SELECT
    i.issuer_num,
    i.issue_num,
    concat(i.issuer_num, i.issue_num, i.issue_check) AS cusip,
    i.issue_check,
    btrim(concat(i.issue_desc_1, i.issue_desc_2)) AS issue_description,
    btrim(concat(i.issue_adl_1, i.issue_adl_2, i.issue_adl_3, i.issue_adl_4))
        AS issue_additional_info,
    i.issue_status,
    st.description AS issue_status_desc,
    i.dated_date,
    i.maturity_date,
    i.partial_maturity,
    i.rate,
    i.govt_stimulus_program,
    gs.description AS govt_stimulus_program_desc,
    i.issue_transaction,
    tx.description AS issue_transaction_desc,
    i.issue_update_date
FROM issue i
LEFT JOIN ref_issue_status          st ON st.code = i.issue_status
LEFT JOIN ref_issue_transaction     tx ON tx.code = i.issue_transaction
LEFT JOIN ref_govt_stimulus_program gs ON gs.code = i.govt_stimulus_program;

CREATE OR REPLACE VIEW v_issue_attribute AS
SELECT
    a.issuer_num,
    a.issue_num,
    concat(a.issuer_num, a.issue_num) AS cusip_base,
    a.alternative_min_tax,
    a.bank_q,
    a.callable,
    a.activity_date,
    a.first_coupon_date,
    a.init_pub_off,
    a.payment_frequency,
    pf.description AS payment_frequency_desc,
    a.currency_code,
    a.domicile_code,
    a.underwriter,
    a.us_cfi_code,
    a.closing_date,
    a.ticker_symbol,
    a.iso_cfi,
    a.depos_eligible,
    a.pre_refund,
    a.refundable,
    a.remarketed,
    a.sinking_fund,
    a.taxable,
    a.form,
    a.enhancements,
    a.fund_distrb_policy,
    a.fund_inv_policy,
    a.fund_type,
    a.guarantee,
    a.income_type,
    a.insured_by,
    a.ownership_restr,
    a.payment_status,
    a.preferred_type,
    a.putable,
    a.rate_type,
    a.redemption,
    a.source_doc,
    a.sponsoring,
    a.voting_rights,
    a.warrant_assets,
    a.warrant_status,
    a.warrant_type,
    a.where_traded,
    a.auditor,
    a.paying_agent,
    a.tender_agent,
    a.xfer_agent,
    a.bond_counsel,
    a.financial_advisor,
    a.municipal_sale_date,
    a.sale_type,
    sa.description AS sale_type_desc,
    a.offering_amount,
    a.offering_amount_code,
    oa.description AS offering_amount_code_desc,
    CASE a.offering_amount_code
        WHEN 'K' THEN a.offering_amount * 1000
        WHEN 'M' THEN a.offering_amount * 1000000
        WHEN 'B' THEN a.offering_amount * 1000000000
        ELSE a.offering_amount
    END AS offering_amount_full
FROM issue_attribute a
LEFT JOIN ref_payment_frequency    pf ON pf.code = a.payment_frequency
LEFT JOIN ref_sale_type            sa ON sa.code = a.sale_type
LEFT JOIN ref_offering_amount_code oa ON oa.code = a.offering_amount_code;

CREATE OR REPLACE VIEW v_security AS
SELECT
    concat(i.issuer_num, i.issue_num, i.issue_check) AS cusip,
    i.issuer_num,
    i.issue_num,
    i.issue_check,
    btrim(concat(r.issuer_name_1, r.issuer_name_2, r.issuer_name_3)) AS issuer_name,
    r.issuer_type,
    ty.description AS issuer_type_desc,
    r.issuer_status,
    rs.description AS issuer_status_desc,
    r.issuer_state_code,
    btrim(concat(i.issue_desc_1, i.issue_desc_2)) AS issue_description,
    btrim(concat(i.issue_adl_1, i.issue_adl_2, i.issue_adl_3, i.issue_adl_4))
        AS issue_additional_info,
    i.issue_status,
    st.description AS issue_status_desc,
    i.dated_date,
    i.maturity_date,
    i.rate,
    i.govt_stimulus_program,
    gs.description AS govt_stimulus_program_desc,
    a.ticker_symbol,
    a.currency_code,
    a.domicile_code,
    a.us_cfi_code,
    a.iso_cfi,
    a.payment_frequency,
    pf.description AS payment_frequency_desc,
    a.callable,
    a.putable,
    a.sinking_fund,
    a.taxable,
    a.alternative_min_tax,
    a.bank_q,
    a.depos_eligible,
    a.form,
    a.guarantee,
    a.rate_type,
    a.redemption,
    a.where_traded,
    a.underwriter,
    a.offering_amount,
    a.offering_amount_code,
    CASE a.offering_amount_code
        WHEN 'K' THEN a.offering_amount * 1000
        WHEN 'M' THEN a.offering_amount * 1000000
        WHEN 'B' THEN a.offering_amount * 1000000000
        ELSE a.offering_amount
    END AS offering_amount_full,
    a.activity_date,
    a.first_coupon_date,
    a.closing_date,
    a.municipal_sale_date,
    i.issue_update_date
FROM issue i
JOIN issuer r ON r.issuer_num = i.issuer_num
LEFT JOIN issue_attribute           a  ON a.issuer_num = i.issuer_num AND a.issue_num = i.issue_num
LEFT JOIN ref_issuer_type           ty ON ty.code = r.issuer_type
LEFT JOIN ref_issuer_status         rs ON rs.code = r.issuer_status
LEFT JOIN ref_issue_status          st ON st.code = i.issue_status
LEFT JOIN ref_govt_stimulus_program gs ON gs.code = i.govt_stimulus_program
LEFT JOIN ref_payment_frequency     pf ON pf.code = a.payment_frequency;

CREATE OR REPLACE VIEW v_security_summary AS
SELECT
    concat(i.issuer_num, i.issue_num, i.issue_check) AS cusip,
    btrim(concat(r.issuer_name_1, r.issuer_name_2, r.issuer_name_3)) AS issuer_name,
    btrim(concat(i.issue_desc_1, i.issue_desc_2)) AS issue_description,
    a.ticker_symbol,
    ty.description AS issuer_type,
    st.description AS issue_status,
    i.rate,
    i.dated_date,
    i.maturity_date,
    a.currency_code,
    a.where_traded
FROM issue i
JOIN issuer r ON r.issuer_num = i.issuer_num
LEFT JOIN issue_attribute  a  ON a.issuer_num = i.issuer_num AND a.issue_num = i.issue_num
LEFT JOIN ref_issuer_type  ty ON ty.code = r.issuer_type
LEFT JOIN ref_issue_status st ON st.code = i.issue_status;

COMMENT ON VIEW v_issuer IS 'Issuers with glued name/additional info and code descriptions.';
COMMENT ON VIEW v_issue IS 'Issues with the 9-character CUSIP, glued description/additional info and code descriptions.';
COMMENT ON VIEW v_issue_attribute IS 'Issue attributes with code descriptions and the full offering amount.';
COMMENT ON VIEW v_security IS 'Issue joined to issuer and (when present) attributes: the columns people search on.';
COMMENT ON VIEW v_security_summary IS 'One line per security: CUSIP, names, type and status descriptions, rate, dates, currency, where traded.';

------------------------------------------------------------------------------------------------
-- Search (PostgREST RPC /rpc/search_securities)
--
-- Every issue (with its issuer, and its attributes when present) whose issuer, issue or
-- attribute vector matches plainto_tsquery('english', search_query). match_type names the
-- first that matches in that order; rank is the greatest of the three ts_rank values (a
-- missing attribute row counts 0); highest rank first, then by CUSIP.
--
-- SECURITY DEFINER, so that web_anon (which may read only the views and code tables) can
-- call it; its search_path is fixed to the schema it is created in (`--init-schema` sets it,
-- then FROM CURRENT records it) with pg_temp last, so no caller can put other objects in its
-- way. The candidates come from each vector's GIN index, then are joined: no scan of the
-- whole issue table per search.
------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION search_securities(search_query text)
RETURNS TABLE (
    cusip             varchar(9),
    issuer_name       text,
    issue_description text,
    ticker_symbol     varchar(10),
    underwriter       varchar(60),
    match_type        text,
    rank              real
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
WITH q AS (SELECT plainto_tsquery('english', search_query) AS q),
hit AS (
    SELECT i.issuer_num, i.issue_num
      FROM q, issuer r JOIN issue i ON i.issuer_num = r.issuer_num
     WHERE r.search_vector @@ q.q
    UNION
    SELECT i.issuer_num, i.issue_num FROM q, issue i WHERE i.search_vector @@ q.q
    UNION
    SELECT a.issuer_num, a.issue_num FROM q, issue_attribute a WHERE a.search_vector @@ q.q
)
SELECT
    concat(i.issuer_num, i.issue_num, i.issue_check)::varchar(9),
    btrim(concat(r.issuer_name_1, r.issuer_name_2, r.issuer_name_3)),
    btrim(concat(i.issue_desc_1, i.issue_desc_2)),
    a.ticker_symbol,
    a.underwriter,
    CASE
        WHEN r.search_vector @@ q.q THEN 'issuer'
        WHEN i.search_vector @@ q.q THEN 'issue'
        WHEN a.search_vector @@ q.q THEN 'attribute'
    END,
    greatest(ts_rank(r.search_vector, q.q), ts_rank(i.search_vector, q.q),
             coalesce(ts_rank(a.search_vector, q.q), 0))
FROM q, hit h
JOIN issue i ON i.issuer_num = h.issuer_num AND i.issue_num = h.issue_num
JOIN issuer r ON r.issuer_num = i.issuer_num
LEFT JOIN issue_attribute a ON a.issuer_num = i.issuer_num AND a.issue_num = i.issue_num
ORDER BY 7 DESC, 1
$$;

COMMENT ON FUNCTION search_securities(text) IS
    'Full-text search over issuers, issues and attributes (english); one row per matching issue, best rank first.';
