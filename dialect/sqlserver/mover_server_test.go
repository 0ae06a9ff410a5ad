package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
	"github.com/colcrypt/colcrypt/schema"
)

// The whole engine against a real SQL Server: apply (prepare, bulk copy,
// verify, cut-over, purge), verify, rekey in place, then revert, after
// which every table must be what it was, column order aside. Runs only
// when COLCRYPT_SQLSERVER_DSN names a database the tests may change freely.

const serverTestPassphrase = "sqlserver mover test passphrase"

// cheapKDF keeps keystore creation fast: these keystores protect nothing.
var cheapKDF = keystore.WithKDF(keystore.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1})

// serverTestRole is granted and denied column permissions by the
// scenarios; it is dropped after each.
const serverTestRole = "cm_reader"

// colcryptTables are the engine's own tables, dropped around each scenario.
var colcryptTables = []string{"colcrypt_chunks", "colcrypt_ddl", "colcrypt_events", "colcrypt_columns", "colcrypt_job"}

type moverScenario struct {
	name      string
	ddl       []string                  // tables and rows
	tables    []schema.TableName        // in the order to drop them
	plaintext string                    // job.plaintext
	plan      string                    // the plan's tables: section
	encrypted map[string][]string       // table name → planned columns
	rekey     []string                  // TABLE.COLUMN to rekey; nil for all
	keyless   bool                      // no revert after cut-over (see TestMoverEndToEnd)
	extra     func(*testing.T, *sql.DB) // checks after apply
}

var oddMoverTable = schema.TableName{Schema: "dbo", Name: `cm odd "name" [x]-y`}

func moverScenarios() []moverScenario {
	return []moverScenario{
		{
			name:      "drop plaintext",
			plaintext: "drop",
			ddl: []string{
				`CREATE TABLE dbo.cm_customers (
    id int IDENTITY(1,1) NOT NULL CONSTRAINT cm_customers_pk PRIMARY KEY,
    ssn char(11) NOT NULL CONSTRAINT cm_customers_ssn_key UNIQUE,
    email varchar(64) NULL,
    status varchar(10) NOT NULL CONSTRAINT cm_customers_status_df DEFAULT ('new')
        CONSTRAINT cm_customers_status_ck CHECK (status IN ('new', 'vip', '')),
    notes nvarchar(max) NULL,
    code varchar(20) COLLATE Latin1_General_BIN2 NULL,
    amount decimal(10,2) NULL
)`,
				`CREATE NONCLUSTERED INDEX cm_customers_email_ix ON dbo.cm_customers (email)`,
				`CREATE TABLE dbo.cm_orders (
    id int NOT NULL CONSTRAINT cm_orders_pk PRIMARY KEY,
    customer_ssn char(11) NULL CONSTRAINT cm_orders_ssn_fk REFERENCES dbo.cm_customers (ssn)
)`,
				`CREATE TABLE dbo.[cm odd "name" [x]]-y] ([the "key"] int NOT NULL CONSTRAINT [cm odd pk] PRIMARY KEY, [we]]ird 'col] varchar(20) NULL)`,
				`INSERT INTO dbo.cm_customers (ssn, email, status, notes, code, amount) VALUES
    ('123-45-6789', 'a@example.com', 'new', N'Ünïcödé 日本語 😀', 'AbC', 12.50),
    ('987-65-4321', NULL, 'vip', N'', ' x ', -0.01),
    ('111-11-1111', '', '', NULL, NULL, NULL),
    ('222-22-2222', 'trailing  ', 'new', N'  leading', 'Ä', 99999999.99),
    ('333-33-3333', 'Ärger', 'vip', REPLICATE(CAST(N'é' AS nvarchar(max)), 5000), 'z', 0),
    ('444-44-4444', 'dup', 'new', N'dup', 'dup', 1),
    ('555-55-5555', 'dup', 'new', N'dup', 'dup', 1)`,
				`INSERT INTO dbo.cm_orders (id, customer_ssn) VALUES (1, '123-45-6789'), (2, NULL), (3, '987-65-4321'), (4, '123-45-6789')`,
				// What describes and guards the columns, which the swaps
				// must carry to the columns that take their names.
				`EXEC sys.sp_addextendedproperty @name = N'MS_Description', @value = N'Kundens e-post ''privat''',
    @level0type = N'SCHEMA', @level0name = N'dbo', @level1type = N'TABLE', @level1name = N'cm_customers',
    @level2type = N'COLUMN', @level2name = N'email'`,
				`DECLARE @v sql_variant = CAST(42 AS int);
EXEC sys.sp_addextendedproperty @name = N'retention days', @value = @v,
    @level0type = N'SCHEMA', @level0name = N'dbo', @level1type = N'TABLE', @level1name = N'cm_customers',
    @level2type = N'COLUMN', @level2name = N'ssn'`,
				`IF DATABASE_PRINCIPAL_ID(N'` + serverTestRole + `') IS NULL CREATE ROLE [` + serverTestRole + `]`,
				`GRANT SELECT (email, status) ON dbo.cm_customers TO [` + serverTestRole + `] WITH GRANT OPTION`,
				`DENY SELECT (ssn) ON dbo.cm_customers TO [` + serverTestRole + `]`,
				`GRANT UPDATE ([we]]ird 'col]) ON dbo.[cm odd "name" [x]]-y] TO [` + serverTestRole + `]`,
				// SQL Server 2019 and later.
				`IF OBJECT_ID(N'sys.sensitivity_classifications') IS NOT NULL
    EXEC (N'ADD SENSITIVITY CLASSIFICATION TO dbo.cm_customers.ssn
        WITH (LABEL = N''Highly Confidential'', INFORMATION_TYPE = N''National ID'', RANK = CRITICAL)')`,
				`INSERT INTO dbo.[cm odd "name" [x]]-y] VALUES (1, 'x'), (2, NULL), (3, ''), (4, 'it''s')`,
			},
			tables: []schema.TableName{{Schema: "dbo", Name: "cm_orders"}, {Schema: "dbo", Name: "cm_customers"}, oddMoverTable},
			plan: `  - name: dbo.cm_customers
    columns:
      - name: ssn
        iv: column
      - name: email
        suite: aes-256-cbc
      - name: status
      - name: notes
      - name: code
      - name: amount
  - name: dbo.cm_orders
    columns:
      - name: customer_ssn
        iv: column
  - name: "dbo.cm odd \"name\" [x]-y"
    columns:
      - name: "we]ird 'col"
        suite: aes-128-cbc
`,
			// Not ssn and customer_ssn: rekeying one side of a foreign key
			// breaks it (error 547) until the other side is rekeyed, and the
			// engine's rekey does not drop foreign keys (reported).
			rekey: []string{"dbo.cm_customers.email", "dbo.cm_customers.status", "dbo.cm_customers.notes",
				"dbo.cm_customers.code", "dbo.cm_customers.amount", `dbo.cm odd "name" [x]-y.we]ird 'col`},
			encrypted: map[string][]string{
				"cm_customers":     {"ssn", "email", "status", "notes", "code", "amount"},
				"cm_orders":        {"customer_ssn"},
				oddMoverTable.Name: {"we]ird 'col"},
			},
		},
		{
			name:      "keep plaintext, composite character key",
			plaintext: "null",
			ddl: []string{
				`CREATE TABLE dbo.cm_accounts (
    region char(2) NOT NULL,
    iban varchar(34) COLLATE Latin1_General_BIN2 NOT NULL,
    memo ntext NULL,
    opened date NULL,
    CONSTRAINT cm_accounts_pk PRIMARY KEY CLUSTERED (region, iban)
)`,
				`CREATE NONCLUSTERED INDEX cm_accounts_iban_ix ON dbo.cm_accounts (iban DESC)`,
				`INSERT INTO dbo.cm_accounts VALUES
    ('DE', 'DE89370400440532013000', N'memo 1', '2024-02-29'),
    ('ÄÖ', 'AT611904300234573201', NULL, NULL),
    ('FR', 'FR1420041010050500013M02606', N'', '0001-01-01'),
    ('DE', 'DE02120300000000202051', N'ü', NULL),
    ('é ', 'ES9121000418450200051332', N'x', '9999-12-31')`,
				`EXEC sys.sp_addextendedproperty @name = N'MS_Description', @value = N'IBAN',
    @level0type = N'SCHEMA', @level0name = N'dbo', @level1type = N'TABLE', @level1name = N'cm_accounts',
    @level2type = N'COLUMN', @level2name = N'iban'`,
				`IF DATABASE_PRINCIPAL_ID(N'` + serverTestRole + `') IS NULL CREATE ROLE [` + serverTestRole + `]`,
				`DENY SELECT (iban) ON dbo.cm_accounts TO [` + serverTestRole + `]`,
			},
			tables: []schema.TableName{{Schema: "dbo", Name: "cm_accounts"}},
			plan: `  - name: dbo.cm_accounts
    columns:
      - name: iban
        iv: column
      - name: memo
      - name: opened
        suite: aes-256-cbc
`,
			encrypted: map[string][]string{"cm_accounts": {"iban", "memo", "opened"}},
			extra: func(t *testing.T, db *sql.DB) {
				var n int
				if err := db.QueryRow(`SELECT COUNT(*) FROM dbo.cm_accounts
WHERE iban_plaintext IS NOT NULL OR memo_plaintext IS NOT NULL OR opened_plaintext IS NOT NULL`).Scan(&n); err != nil {
					t.Fatalf("kept plaintext columns: %v", err)
				}
				if n != 0 {
					t.Errorf("%d rows still hold plaintext in the kept columns", n)
				}
			},
		},
		{
			name:      "table without a key",
			plaintext: "drop",
			keyless:   true,
			ddl: []string{
				`CREATE TABLE dbo.cm_heap (note nvarchar(200) NULL, n int NULL)`,
				`INSERT INTO dbo.cm_heap VALUES (N'a', 1), (N'a', 1), (NULL, 2), (N'ü', 3), (N'', 4), (N'', 4), (N'z', NULL)`,
			},
			tables: []schema.TableName{{Schema: "dbo", Name: "cm_heap"}},
			plan: `  - name: dbo.cm_heap
    columns:
      - name: note
`,
			encrypted: map[string][]string{"cm_heap": {"note"}},
			extra: func(t *testing.T, db *sql.DB) {
				var length sql.NullInt64
				if err := db.QueryRow("SELECT COL_LENGTH(N'dbo.cm_heap', N'colcrypt_row_id')").Scan(&length); err != nil {
					t.Fatal(err)
				}
				if length.Valid {
					t.Error("colcrypt_row_id is still there after cut-over")
				}
			},
		},
	}
}

func TestMoverEndToEnd(t *testing.T) {
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		t.Skip(dsnEnv + " is not set: SQL Server mover integration test (apply, verify, rekey, revert) not run")
	}
	d, err := dialect.Get("sqlserver")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	db, err := d.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, sc := range moverScenarios() {
		t.Run(sc.name, func(t *testing.T) { runMoverScenario(ctx, t, d, db, sc) })
	}
}

func runMoverScenario(ctx context.Context, t *testing.T, d dialect.Dialect, db *sql.DB, sc moverScenario) {
	drop := func() {
		var stmts []string
		for _, tn := range sc.tables {
			stmts = append(stmts, "DROP TABLE IF EXISTS "+quoteTable(tn))
		}
		for _, name := range colcryptTables {
			stmts = append(stmts, "DROP TABLE IF EXISTS "+quoteTable(schema.TableName{Schema: "dbo", Name: name}))
		}
		stmts = append(stmts, "DROP ROLE IF EXISTS "+quoteIdent(serverTestRole))
		for _, s := range stmts {
			if _, err := db.ExecContext(context.Background(), s); err != nil {
				t.Logf("cleanup: %v (%s)", err, s)
			}
		}
	}
	drop()
	t.Cleanup(drop)
	for _, s := range sc.ddl {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("setup: %v\n%s", err, s)
		}
	}
	before := serverSnapshot(ctx, t, db, sc.tables)

	dir := t.TempDir()
	plan := moverPlan(t, dir, sc)
	ks := newServerKeystore(t, filepath.Join(dir, "test.keystore"))
	engine := func(opt migrate.Options) *migrate.Engine {
		t.Helper()
		e, err := migrate.New(plan, d, db, ks, opt)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	if sc.keyless {
		// Revert before cut-over drops the added columns, row id and its
		// index included, and leaves the table exactly as it was.
		if _, err := engine(migrate.Options{Until: "verify"}).Apply(ctx); err != nil {
			t.Fatalf("apply until verify: %v", err)
		}
		if _, err := engine(migrate.Options{}).Revert(ctx); err != nil {
			t.Fatalf("revert before cut-over: %v", err)
		}
		if diff := diffLines(before, serverSnapshot(ctx, t, db, sc.tables)); diff != "" {
			t.Fatalf("revert before cut-over changed the table:\n%s", diff)
		}
	}

	res, err := engine(migrate.Options{}).Apply(ctx)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if res.Phase != "done" {
		t.Fatalf("apply stopped at phase %q", res.Phase)
	}
	wantCiphertext(ctx, t, db, sc)
	// Every column keeps its extended properties and permissions under its
	// name (a kept plaintext column has its own besides).
	for _, tn := range sc.tables {
		now := columnMetadata(ctx, t, db, tn)
		for _, line := range before {
			if strings.HasPrefix(line, tn.String()+" column metadata ") && !slices.Contains(now, line) {
				t.Errorf("after the cut-over %s lost %s", tn, line)
			}
		}
	}
	if sc.extra != nil {
		sc.extra(t, db)
	}
	verifyOK(ctx, t, engine(migrate.Options{}))

	// Apply again: nothing to do, nothing changes.
	if res, err := engine(migrate.Options{}).Apply(ctx); err != nil || !res.Already {
		t.Fatalf("apply of a finished job: %+v, %v", res, err)
	}

	if sc.keyless {
		// Revert after cut-over needs the row id to page the table, and
		// cut-over dropped it: the migration engine does not add it back
		// (reported; it is not the dialect's to do).
		return
	}

	// Rekey in place under a new key version: the bulk write path again,
	// now keyed by ciphertext where the key is encrypted.
	if _, err := ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if err := ks.Backup(filepath.Join(dir, "test.keystore.backup2"), []byte("backup "+serverTestPassphrase), cheapKDF); err != nil {
		t.Fatal(err)
	}
	if _, err := engine(migrate.Options{}).Rekey(ctx, sc.rekey); err != nil {
		t.Fatalf("rekey: %v", err)
	}
	verifyOK(ctx, t, engine(migrate.Options{}))

	if _, err := engine(migrate.Options{}).Revert(ctx); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if diff := diffLines(before, serverSnapshot(ctx, t, db, sc.tables)); diff != "" {
		t.Errorf("after revert the tables differ from before the job:\n%s", diff)
	}
}

func moverPlan(t *testing.T, dir string, sc moverScenario) *planner.Plan {
	t.Helper()
	text := `version: 1
database:
  engine: sqlserver
  dsn: ${` + dsnEnv + `}
keystore: test.keystore
defaults:
  key: pii
  versioned: true
job:
  workers: 2
  batch_rows: 3
  plaintext: ` + sc.plaintext + `
  purge: true
  drop_check_constraints: true
  drop_defaults: true
tables:
` + sc.plan
	path := filepath.Join(dir, "plan.yaml")
	p, err := planner.Parse([]byte(text), path)
	if err != nil {
		t.Fatalf("plan:\n%s\n%v", text, err)
	}
	return p
}

// newServerKeystore creates a keystore with key "pii" and a backup taken
// after it, which cut-over requires.
func newServerKeystore(t *testing.T, path string) *keystore.Keystore {
	t.Helper()
	ks, err := keystore.Create(path, keystore.Secret{Passphrase: []byte(serverTestPassphrase)}, cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Add("pii"); err != nil {
		t.Fatal(err)
	}
	if err := ks.Backup(path+".backup", []byte("backup "+serverTestPassphrase), cheapKDF); err != nil {
		t.Fatal(err)
	}
	return ks
}

func verifyOK(ctx context.Context, t *testing.T, e *migrate.Engine) {
	t.Helper()
	vr, err := e.Verify(ctx)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !vr.OK() {
		t.Fatalf("verify: %v", vr.Err())
	}
	if vr.Rows == 0 {
		t.Fatal("verify read no rows")
	}
}

// wantCiphertext checks that every planned column is now VARBINARY and
// holds no value its plaintext had.
func wantCiphertext(ctx context.Context, t *testing.T, db *sql.DB, sc moverScenario) {
	t.Helper()
	for _, tn := range sc.tables {
		tbl, err := (sqlServer{}).ReadTable(ctx, db, tn)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range sc.encrypted[tn.Name] {
			col := tbl.Column(name)
			if col == nil {
				t.Errorf("%s.%s is gone after apply", tn, name)
				continue
			}
			if col.Type != "varbinary" {
				t.Errorf("%s.%s is %s after apply, want varbinary", tn, name, col.Declared)
			}
		}
	}
}

// serverSnapshot renders what a user could tell apart in the tables:
// columns (type, length, collation, nullability, default), keys and
// indexes, foreign keys, checks, and every value's bytes. Column order and
// object IDs are left out: Unswap cannot restore the first (see its
// comment), and recreated constraints get new IDs.
func serverSnapshot(ctx context.Context, t *testing.T, db *sql.DB, tables []schema.TableName) []string {
	t.Helper()
	var out []string
	for _, tn := range tables {
		rows, err := readCatalog(ctx, db, quoteTable(tn))
		if err != nil {
			t.Fatalf("snapshot of %s: %v", tn, err)
		}
		rows = withoutIDs(rows)
		for i := range rows.Columns {
			rows.Columns[i].ColumnID = 0
		}
		slices.SortFunc(rows.Columns, func(a, b columnRow) int { return strings.Compare(a.Name, b.Name) })
		for i := range rows.Indexes {
			rows.Indexes[i].IndexID = 0
		}
		slices.SortFunc(rows.Indexes, func(a, b indexColumnRow) int {
			if c := strings.Compare(a.Name, b.Name); c != 0 {
				return c
			}
			return a.IndexColumnID - b.IndexColumnID
		})
		for _, c := range rows.Columns {
			out = append(out, fmt.Sprintf("%s column %+v", tn, c))
		}
		for _, ix := range rows.Indexes {
			out = append(out, fmt.Sprintf("%s index %+v", tn, ix))
		}
		for _, fk := range rows.ForeignKeys {
			out = append(out, fmt.Sprintf("%s foreign key %+v", tn, fk))
		}
		for _, ck := range rows.Checks {
			out = append(out, fmt.Sprintf("%s check %+v", tn, ck))
		}
		out = append(out, columnMetadata(ctx, t, db, tn)...)
		out = append(out, tableData(ctx, t, db, tn)...)
	}
	return out
}

// columnMetadata renders the table's column extended properties (value and
// its type), column permissions and sensitivity classifications, by column
// name.
func columnMetadata(ctx context.Context, t *testing.T, db *sql.DB, tn schema.TableName) []string {
	t.Helper()
	queries := []string{columnMetadataQuery}
	var classified sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT OBJECT_ID(N'sys.sensitivity_classifications')").Scan(&classified); err != nil {
		t.Fatal(err)
	}
	if classified.Valid {
		queries = append(queries, classificationsQuery)
	}
	var out []string
	for _, q := range queries {
		rows, err := db.QueryContext(ctx, q, quoteTable(tn))
		if err != nil {
			t.Fatalf("column metadata of %s: %v", tn, err)
		}
		for rows.Next() {
			var column, what string
			if err := rows.Scan(&column, &what); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s column metadata %s: %s", tn, column, what))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// classificationsQuery lists the sensitivity classifications of the
// columns of the table @p1 (SQL Server 2019 and later).
const classificationsQuery = `SELECT c.name, N'classification ' + ISNULL(p.label, N'-') + N' / ' + ISNULL(p.label_id, N'-') + N' / ' +
    ISNULL(p.information_type, N'-') + N' / ' + ISNULL(p.information_type_id, N'-') + N' / ' + ISNULL(p.rank_desc, N'-')
FROM sys.sensitivity_classifications AS p JOIN sys.columns AS c ON c.object_id = p.major_id AND c.column_id = p.minor_id
WHERE p.class = 1 AND p.major_id = OBJECT_ID(@p1)
ORDER BY 1, 2`

// columnMetadataQuery lists the column extended properties and column
// permissions of the table @p1.
const columnMetadataQuery = `SELECT c.name, N'property ' + p.name + N' = ' + CONVERT(nvarchar(4000), p.value) +
    N' (' + CONVERT(nvarchar(128), SQL_VARIANT_PROPERTY(p.value, 'BaseType')) + N')'
FROM sys.extended_properties AS p JOIN sys.columns AS c ON c.object_id = p.major_id AND c.column_id = p.minor_id
WHERE p.class = 1 AND p.major_id = OBJECT_ID(@p1)
UNION ALL
SELECT c.name, p.state_desc + N' ' + p.permission_name + N' TO ' + u.name
FROM sys.database_permissions AS p JOIN sys.columns AS c ON c.object_id = p.major_id AND c.column_id = p.minor_id
JOIN sys.database_principals AS u ON u.principal_id = p.grantee_principal_id
WHERE p.class = 1 AND p.major_id = OBJECT_ID(@p1)
ORDER BY 1, 2`

// tableData renders every row as the canonical bytes of each column, in
// name order, sorted.
func tableData(ctx context.Context, t *testing.T, db *sql.DB, tn schema.TableName) []string {
	t.Helper()
	tbl, err := (sqlServer{}).ReadTable(ctx, db, tn)
	if err != nil {
		t.Fatal(err)
	}
	cols := append([]*schema.Column{}, tbl.Columns...)
	slices.SortFunc(cols, func(a, b *schema.Column) int { return strings.Compare(a.Name, b.Name) })
	var exprs []string
	for _, c := range cols {
		codec, err := newCodec(c)
		if err != nil {
			t.Fatalf("%s.%s: %v", tn, c.Name, err)
		}
		exprs = append(exprs, codec.SelectExpr(quoteIdent(c.Name)))
	}
	rows, err := db.QueryContext(ctx, "SELECT "+strings.Join(exprs, ", ")+" FROM "+quoteTable(tn))
	if err != nil {
		t.Fatalf("read %s: %v", tn, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for i, v := range vals {
			s := "NULL"
			if b, ok := v.([]byte); ok {
				s = fmt.Sprintf("0x%x", b)
			}
			parts = append(parts, cols[i].Name+"="+s)
		}
		out = append(out, fmt.Sprintf("%s row %s", tn, strings.Join(parts, " ")))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// diffLines describes the lines only one side has, "" when equal.
func diffLines(before, after []string) string {
	var out []string
	for _, l := range before {
		if !slices.Contains(after, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range after {
		if !slices.Contains(before, l) {
			out = append(out, "+ "+l)
		}
	}
	if len(before) != len(after) && len(out) == 0 {
		out = append(out, fmt.Sprintf("%d lines before, %d after (duplicates differ)", len(before), len(after)))
	}
	return strings.Join(out, "\n")
}

// TestBulkUpdateOnServer writes through BulkUpdate directly, keyed by the
// kinds of key the driver hands back in other Go types than the column's:
// varchar with characters outside ASCII (UTF-8 strings), decimal (text in
// bytes), an identity column, and a composite key; and checks that every
// row got its value, an empty one stayed empty and NULL stayed NULL.
func TestBulkUpdateOnServer(t *testing.T) {
	ctx, db := serverTable(t, "bulk-write", schema.TableName{Schema: "dbo", Name: "cm_bulk"},
		`CREATE TABLE dbo.cm_bulk (id int IDENTITY(1,1) NOT NULL, name varchar(20) NOT NULL, price decimal(9,3) NOT NULL,
    v varbinary(max) NULL, CONSTRAINT cm_bulk_pk PRIMARY KEY (name, price))`,
		`INSERT INTO dbo.cm_bulk (name, price) VALUES ('Äpfel', -1.5), ('Birnen', 2), ('Äpfel', 3.125), ('ß', 0)`)
	tn := schema.TableName{Schema: "dbo", Name: "cm_bulk"}
	read := func(q string) [][]any {
		t.Helper()
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out [][]any
		for rows.Next() {
			vals := make([]any, 3)
			if err := rows.Scan(&vals[0], &vals[1], &vals[2]); err != nil {
				t.Fatal(err)
			}
			out = append(out, vals)
		}
		return out
	}
	write := func(u dialect.Update) {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		if err := (sqlServer{}).BulkUpdate(ctx, tx, u); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string) {
		t.Helper()
		for _, r := range read("SELECT id, v, DATALENGTH(v) FROM dbo.cm_bulk ORDER BY id") {
			id := r[0].(int64)
			switch {
			case id == 4 && r[1] != nil:
				t.Errorf("%s: row %d: NULL became %#v", what, id, r[1])
			case id == 3 && (r[1] == nil || r[2].(int64) != 0):
				t.Errorf("%s: row %d: empty value became %#v", what, id, r[1])
			case id < 3 && fmt.Sprint(r[1]) != fmt.Sprint([]byte{byte(id)}):
				t.Errorf("%s: row %d holds %#v", what, id, r[1])
			}
		}
		if _, err := db.ExecContext(ctx, "UPDATE dbo.cm_bulk SET v = 0xff"); err != nil {
			t.Fatal(err)
		}
	}
	value := func(id int64) any {
		switch id {
		case 3:
			return []byte(nil) // an empty plaintext
		case 4:
			return nil
		}
		return []byte{byte(id)}
	}
	// By the composite character and decimal key, values as the driver
	// returns them.
	u := dialect.Update{Table: tn, Key: []string{"name", "price"}, KeyTypes: []string{"varchar(20)", "decimal(9,3)"}, Set: []string{"v"}}
	for _, r := range read("SELECT name, price, id FROM dbo.cm_bulk") {
		u.Rows = append(u.Rows, []any{r[0], r[1], value(r[2].(int64))})
	}
	write(u)
	check("by name and price")
	// By the identity column.
	u = dialect.Update{Table: tn, Key: []string{"id"}, KeyTypes: []string{"int"}, Set: []string{"v"}}
	for _, r := range read("SELECT id, id, id FROM dbo.cm_bulk") {
		u.Rows = append(u.Rows, []any{r[0], value(r[0].(int64))})
	}
	write(u)
	check("by identity")
}

// serverTable opens the test server, or skips the test (what names it)
// when there is none, and creates the table tn with the statements ddl,
// dropping it before and after. The context ends with the test.
func serverTable(t *testing.T, what string, tn schema.TableName, ddl ...string) (context.Context, *sql.DB) {
	t.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		t.Skip(dsnEnv + " is not set: SQL Server " + what + " test not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db, err := (sqlServer{}).Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	drop := func() { _, _ = db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+quoteTable(tn)) }
	drop()
	t.Cleanup(func() {
		drop()
		db.Close()
	})
	for _, s := range ddl {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
	return ctx, db
}
