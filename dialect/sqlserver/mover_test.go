package sqlserver

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

func TestMoverBasics(t *testing.T) {
	d := sqlServer{}
	want := dialect.StateTypes{Text: "NVARCHAR(MAX)", Key: "NVARCHAR(450)", Blob: "VARBINARY(MAX)", BigInt: "BIGINT"}
	if got := d.StateTypes(); got != want {
		t.Errorf("StateTypes = %+v, want %+v", got, want)
	}
	for n, want := range map[int]string{1: "@p1", 2: "@p2", 18: "@p18"} {
		if got := d.Placeholder(n); got != want {
			t.Errorf("Placeholder(%d) = %s, want %s", n, got, want)
		}
	}
	q := "SELECT [id] FROM [dbo].[t] WHERE (([id] > @p1)) ORDER BY [id]"
	if got, want := d.FirstRows(q, 4999, 1), q+" OFFSET 4999 ROWS FETCH NEXT 1 ROWS ONLY"; got != want {
		t.Errorf("FirstRows = %s, want %s", got, want)
	}
	if expr, mustAdd := d.RowID(); expr != "colcrypt_row_id" || !mustAdd {
		t.Errorf("RowID = %q, %v; want colcrypt_row_id, true", expr, mustAdd)
	}
	if got := lockTimeoutSQL(swapLockTimeout); got != "SET LOCK_TIMEOUT 5000" {
		t.Errorf("lock timeout statement = %s", got)
	}
}

// moverTables are the tables the statement tests run against: plain, in
// another schema, and with every character that needs quoting.
var moverTables = []schema.TableName{
	{Schema: "dbo", Name: "cc_customers"},
	{Name: "no schema"},
	accountsName,
	oddName,
}

// TestMoverStatementsAreTSQL puts every statement the mover can send
// through the T-SQL grammar: the state tables' queries as the engine shapes
// them, prepare's and revert's column changes, every swap and unswap step
// of the fixtures, the bulk-write batches, and purge.
func TestMoverStatementsAreTSQL(t *testing.T) {
	d := sqlServer{}
	st := d.StateTypes()
	requireTSQL(t, "state table", "CREATE TABLE [dbo].[colcrypt_chunks] (job_id "+st.Key+" NOT NULL, lo "+st.Key+
		" NOT NULL, hi "+st.Text+", rows_done "+st.BigInt+" NOT NULL, digest "+st.Blob+", PRIMARY KEY (job_id, lo))")
	requireTSQL(t, "paged query", d.FirstRows("SELECT [a], [b] FROM [dbo].[t] WHERE (([a] > "+d.Placeholder(1)+") OR ([a] = "+
		d.Placeholder(2)+" AND [b] > "+d.Placeholder(3)+")) ORDER BY [a], [b]", 99, 1))
	requireTSQL(t, "lock timeout", lockTimeoutSQL(swapLockTimeout))
	requireTSQL(t, "lock timeout reset", resetLockTimeoutSQL)
	requireTSQL(t, "identity query", identityColumnQuery)
	requireTSQL(t, "pending query", "SELECT COL_LENGTH(@p1, @p2)")

	var types []string
	for _, tc := range typeCases {
		types = append(types, buildColumn(1, tc.row).Declared)
	}
	types = append(types, "VARBINARY(48)", "VARBINARY(MAX)")
	for _, tn := range moverTables {
		tn = withDefaultSchema(tn)
		for _, col := range []string{"email__colcrypt", "we]ird 'col_iv", rowIDColumn} {
			requireTSQL(t, "add column", addColumnSQL(tn, col, "VARBINARY(48)"))
			for _, stmt := range dropColumnStatements(tn, col) {
				requireTSQL(t, "drop column", stmt)
			}
		}
		for _, stmt := range addRowIDSQL(tn) {
			requireTSQL(t, "add row id", stmt)
		}
		// The grammar's ALTER TABLE ... REBUILD branch lacks the bare form
		// Microsoft's syntax allows (REBUILD [ [PARTITION = ALL] [ WITH
		// (<rebuild_option>) ] ]), so purge is checked with an option that
		// changes nothing, MAXDOP = 0 (the server's setting).
		requireTSQL(t, "purge", purgeSQL(tn)+" WITH (MAXDOP = 0)")
	}

	// Revert adds its restore columns with every supported declared type.
	for _, typ := range types {
		requireTSQL(t, "add column", addColumnSQL(oddName, "we]ird 'col__colcrypt_plain", typ))
	}

	for name, group := range swapFixtures() {
		steps := stepsFor(t, name, group, allPending(group))
		if len(steps) == 0 {
			t.Errorf("%s: no statements", name)
		}
		for _, s := range steps {
			requireTSQL(t, name+": "+s.what, withinGrammar(s.sql))
		}
	}

	for name, u := range bulkFixtures() {
		b, err := planBulk(u)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		requireTSQL(t, name+" staging table", b.create)
		requireTSQL(t, name+" update", b.update)
	}
}

func stepsFor(t *testing.T, name string, group []dialect.TableSwap, pending [][]dialect.SwapColumn) []step {
	t.Helper()
	var steps []step
	var err error
	if strings.HasSuffix(name, "unswap") {
		steps, err = unswapSteps(group, pending)
	} else {
		steps, err = swapSteps(group, pending)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return steps
}

// TestSwapStatementsInOrder is the whole cut-over of customers and orders,
// statement by statement.
func TestSwapStatementsInOrder(t *testing.T) {
	steps, err := swapSteps(customersGroup(true), allPending(customersGroup(true)))
	if err != nil {
		t.Fatal(err)
	}
	customers, orders := schema.TableName{Schema: "dbo", Name: "cc_customers"}, schema.TableName{Schema: "dbo", Name: "cc_orders"}
	want := []string{
		"IF OBJECT_ID(N'[dbo].[cc_orders_ssn_fk]', N'F') IS NOT NULL ALTER TABLE [dbo].[cc_orders] DROP CONSTRAINT [cc_orders_ssn_fk]",
		"IF OBJECT_ID(N'[dbo].[colcrypt_guard_cc_customers]', N'TR') IS NOT NULL DROP TRIGGER [dbo].[colcrypt_guard_cc_customers]",
		saveColumnMetadataStep(customers, customersGroup(true)[0].Columns).sql,
		"IF OBJECT_ID(N'[dbo].[cc_customers_ssn_key]', N'UQ') IS NOT NULL ALTER TABLE [dbo].[cc_customers] DROP CONSTRAINT [cc_customers_ssn_key]",
		"IF EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'[dbo].[cc_customers]', N'U') AND name = N'cc_customers_email_idx') DROP INDEX [cc_customers_email_idx] ON [dbo].[cc_customers]",
		"IF OBJECT_ID(N'[dbo].[df]', N'D') IS NOT NULL ALTER TABLE [dbo].[cc_customers] DROP CONSTRAINT [df]",
		"IF OBJECT_ID(N'[dbo].[cc_customers_status_check]', N'C') IS NOT NULL ALTER TABLE [dbo].[cc_customers] DROP CONSTRAINT [cc_customers_status_check]",
		"ALTER TABLE [dbo].[cc_customers] DROP COLUMN [ssn]",
		"EXEC sp_rename N'[dbo].[cc_customers].[ssn__colcrypt]', N'ssn', N'COLUMN'",
		"ALTER TABLE [dbo].[cc_customers] ALTER COLUMN [ssn] VARBINARY(48) NOT NULL",
		"ALTER TABLE [dbo].[cc_customers] DROP COLUMN [email]",
		"EXEC sp_rename N'[dbo].[cc_customers].[email__colcrypt]', N'email', N'COLUMN'",
		"ALTER TABLE [dbo].[cc_customers] DROP COLUMN [status]",
		"EXEC sp_rename N'[dbo].[cc_customers].[status__colcrypt]', N'status', N'COLUMN'",
		"ALTER TABLE [dbo].[cc_customers] ALTER COLUMN [status] VARBINARY(48) NOT NULL",
		restoreColumnMetadataStep(customers).sql,
		"CREATE NONCLUSTERED INDEX [cc_customers_email_idx] ON [dbo].[cc_customers] ([email])",
		"ALTER TABLE [dbo].[cc_customers] ADD CONSTRAINT [cc_customers_ssn_key] UNIQUE NONCLUSTERED ([ssn])",
		"IF OBJECT_ID(N'[dbo].[colcrypt_guard_cc_orders]', N'TR') IS NOT NULL DROP TRIGGER [dbo].[colcrypt_guard_cc_orders]",
		saveColumnMetadataStep(orders, customersGroup(true)[1].Columns).sql,
		"ALTER TABLE [dbo].[cc_orders] DROP COLUMN [customer_ssn]",
		"EXEC sp_rename N'[dbo].[cc_orders].[customer_ssn__colcrypt]', N'customer_ssn', N'COLUMN'",
		restoreColumnMetadataStep(orders).sql,
		"ALTER TABLE [dbo].[cc_orders] ADD CONSTRAINT [cc_orders_ssn_fk] FOREIGN KEY ([customer_ssn]) REFERENCES [dbo].[cc_customers] ([ssn])",
	}
	if got := sqlOf(steps); !slices.Equal(got, want) {
		t.Errorf("cut-over statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The untouched foreign key (orders.customer_id → customers.id) and
	// the check and default are not recreated on the ciphertext.
	for _, s := range steps {
		if strings.Contains(s.sql, "cc_orders_customer_fk") {
			t.Errorf("a foreign key on no encrypted column was touched: %s", s.sql)
		}
		if strings.Contains(s.sql, "ADD CONSTRAINT [df]") || strings.Contains(s.sql, "ADD CONSTRAINT [cc_customers_status_check]") {
			t.Errorf("a dropped default or check was recreated on the ciphertext: %s", s.sql)
		}
	}
}

// TestSwapOrderRules checks, for every fixture in both directions, the
// order a cut-over depends on: foreign keys dropped before anything else
// and recreated after everything else; a column's keys, indexes, default
// and checks gone before it is dropped; the column dropped (or moved
// aside) before the other one takes its name, which comes before its
// NOT NULL and before its keys and indexes are rebuilt.
func TestSwapOrderRules(t *testing.T) {
	for name, group := range swapFixtures() {
		steps := stepsFor(t, name, group, allPending(group))
		forward := !strings.HasSuffix(name, "unswap")
		fks := swappedForeignKeys(group, allPending(group))
		for i, s := range steps {
			isFKDrop := strings.HasPrefix(s.what, "drop foreign key")
			isFKAdd := strings.HasPrefix(s.what, "recreate foreign key")
			if isFKDrop != (i < len(fks)) || isFKAdd != (i >= len(steps)-len(fks)) {
				t.Errorf("%s: step %d %q out of place (%d foreign keys)", name, i, s.what, len(fks))
			}
		}
		for _, ts := range group {
			for _, sc := range ts.Columns {
				t.Run(name+"/"+sc.Name, func(t *testing.T) {
					qc := quoteIdent(sc.Name)
					dropCol := find(t, steps, "ALTER TABLE "+quoteTable(withDefaultSchema(ts.Table.Name))+" DROP COLUMN "+qc)
					if forward && ts.KeepPlaintext && !isLegacyLOB(ts.Table.Column(sc.Name).Type) {
						dropCol = find(t, steps, "N'"+strings.ReplaceAll(sc.Plaintext, "'", "''")+"', N'COLUMN'")
					}
					rename := find(t, steps, "."+strings.ReplaceAll(quoteIdent(sc.Temp), "'", "''")+"', ")
					if dropCol < 0 || rename < 0 {
						t.Fatalf("no drop (%d) or no rename (%d) of %s", dropCol, rename, sc.Name)
					}
					if dropCol >= rename {
						t.Errorf("%s is renamed (step %d) before the column of its name goes (step %d)", sc.Temp, rename, dropCol)
					}
					for i, s := range steps {
						mentions := strings.Contains(s.sql, qc)
						switch {
						case strings.HasPrefix(s.what, "drop ") && strings.Contains(s.what, "index") && mentionsIndexOn(ts.Table, s, sc.Name),
							strings.HasPrefix(s.what, "drop primary key"), strings.HasPrefix(s.what, "drop unique"),
							strings.HasPrefix(s.what, "drop default"), strings.HasPrefix(s.what, "drop check"):
							if i > dropCol {
								t.Errorf("step %d %q comes after the column is dropped (step %d)", i, s.what, dropCol)
							}
						case strings.HasPrefix(s.what, "recreate index") && mentions,
							strings.HasPrefix(s.what, "restore") && mentions,
							strings.HasPrefix(s.what, "make "+sc.Name+" NOT NULL"):
							if i < rename {
								t.Errorf("step %d %q comes before the rename (step %d)", i, s.what, rename)
							}
						}
					}
				})
			}
		}
	}
}

func mentionsIndexOn(t *schema.Table, s step, column string) bool {
	all := append([]*schema.Index{}, t.Indexes...)
	if t.PrimaryKey != nil {
		all = append(all, t.PrimaryKey)
	}
	for _, ix := range all {
		if strings.HasSuffix(s.what, " "+ix.Name) && ix.HasColumn(column) {
			return true
		}
	}
	return false
}

// TestUnswapRestores checks what the revert puts back on the restored
// column, in order: the declared type with its collation and NOT NULL
// before the default (ALTER COLUMN refuses a column with a default), then
// the checks, the keys and indexes, and the foreign keys.
func TestUnswapRestores(t *testing.T) {
	steps, err := unswapSteps(customersGroup(false), allPending(customersGroup(false)))
	if err != nil {
		t.Fatal(err)
	}
	order := []string{
		"ALTER TABLE [dbo].[cc_orders] DROP CONSTRAINT [cc_orders_ssn_fk]",
		"DROP CONSTRAINT [cc_customers_ssn_key]",
		"ALTER TABLE [dbo].[cc_customers] DROP COLUMN [ssn]",
		"DROP COLUMN [email_iv]",
		"EXEC sp_rename N'[dbo].[cc_customers].[ssn__colcrypt_plain]', N'ssn', N'COLUMN'",
		"ALTER TABLE [dbo].[cc_customers] ALTER COLUMN [ssn] char(11) COLLATE SQL_Latin1_General_CP1_CI_AS NOT NULL",
		"ALTER TABLE [dbo].[cc_customers] ALTER COLUMN [status] varchar(10) COLLATE SQL_Latin1_General_CP1_CI_AS NOT NULL",
		"ALTER TABLE [dbo].[cc_customers] ADD CONSTRAINT [df] DEFAULT ('new') FOR [status]",
		"ALTER TABLE [dbo].[cc_customers] ADD CONSTRAINT [cc_customers_status_check] CHECK (([status]='new' OR [status]='vip'))",
		"ALTER TABLE [dbo].[cc_customers] ADD CONSTRAINT [cc_customers_ssn_key] UNIQUE NONCLUSTERED ([ssn])",
		"EXEC sp_rename N'[dbo].[cc_orders].[customer_ssn__colcrypt_plain]', N'customer_ssn', N'COLUMN'",
		"ALTER TABLE [dbo].[cc_orders] ALTER COLUMN [customer_ssn] char(11) COLLATE SQL_Latin1_General_CP1_CI_AS NULL",
		"ALTER TABLE [dbo].[cc_orders] ADD CONSTRAINT [cc_orders_ssn_fk] FOREIGN KEY ([customer_ssn]) REFERENCES [dbo].[cc_customers] ([ssn])",
	}
	last := -1
	for _, frag := range order {
		i := find(t, steps, frag)
		if i <= last {
			t.Errorf("%q (step %d) should come after step %d", frag, i, last)
		}
		last = i
	}
}

// TestKeepPlaintext checks plaintext: null: the column is moved aside,
// emptied and made NULLable, under its kept name, before the ciphertext
// takes the original name; a NOT NULL text column, which ALTER COLUMN
// refuses, is replaced by an empty one; and the clustered key is dropped
// after and rebuilt before the index over two encrypted columns, which is
// dropped and rebuilt once.
func TestKeepPlaintext(t *testing.T) {
	steps, err := swapSteps(accountsGroup(true), allPending(accountsGroup(true)))
	if err != nil {
		t.Fatal(err)
	}
	qt := "[sales].[acc'ounts [x]]]"
	order := []string{
		"DROP INDEX [ix two] ON " + qt,
		"DROP CONSTRAINT [pk acc]]ounts]",
		"EXEC sp_rename N'[sales].[acc''ounts [x]]].[iban]', N'iban_plaintext', N'COLUMN'",
		"ALTER TABLE " + qt + " ALTER COLUMN [iban_plaintext] varchar(34) COLLATE Latin1_General_BIN2 NULL",
		"UPDATE " + qt + " SET [iban_plaintext] = NULL WHERE [iban_plaintext] IS NOT NULL",
		"EXEC sp_rename N'[sales].[acc''ounts [x]]].[iban__colcrypt]', N'iban', N'COLUMN'",
		"ALTER TABLE " + qt + " ALTER COLUMN [iban] VARBINARY(64) NOT NULL",
		"EXEC sp_rename N'[sales].[acc''ounts [x]]].[we]]ird ''col]', N'we]ird ''col_plaintext', N'COLUMN'",
		"UPDATE " + qt + " SET [we]]ird 'col_plaintext] = NULL",
		"ALTER TABLE " + qt + " DROP COLUMN [memo]",
		"ALTER TABLE " + qt + " ADD [memo_plaintext] text NULL",
		"EXEC sp_rename N'[sales].[acc''ounts [x]]].[memo__colcrypt]', N'memo', N'COLUMN'",
		"ADD CONSTRAINT [pk acc]]ounts] PRIMARY KEY CLUSTERED ([region], [iban])",
		"CREATE NONCLUSTERED INDEX [ix two] ON " + qt + " ([iban], [we]]ird 'col] DESC)",
	}
	last := -1
	for _, frag := range order {
		i := find(t, steps, frag)
		if i <= last {
			t.Errorf("%q (step %d) should come after step %d", frag, i, last)
		}
		last = i
	}
	for _, frag := range []string{"[ix two]", "[pk acc]]ounts]"} {
		if n := count(steps, frag); n != 2 {
			t.Errorf("%s appears in %d statements, want one drop and one create", frag, n)
		}
	}
	for _, s := range steps {
		if strings.Contains(s.sql, "[ix score]") || strings.Contains(s.sql, "[ck score]") {
			t.Errorf("an index or check on no encrypted column was touched: %s", s.sql)
		}
		if strings.Contains(s.sql, "ALTER COLUMN [memo_plaintext]") || strings.Contains(s.sql, "DROP COLUMN [we]]ird 'col]") {
			t.Errorf("unexpected: %s", s.sql)
		}
	}
	// The nullable column stays NULLable: no ALTER COLUMN for it.
	if i := find(t, steps, "ALTER COLUMN [we]]ird 'col_plaintext]"); i >= 0 {
		t.Errorf("NULLable column altered: %s", steps[i].sql)
	}

	back, err := unswapSteps(accountsGroup(false), allPending(accountsGroup(false)))
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{
		"IF COL_LENGTH(N'[sales].[acc''ounts [x]]]', N'iban_plaintext') IS NOT NULL ALTER TABLE " + qt + " DROP COLUMN [iban_plaintext]",
		"IF COL_LENGTH(N'[sales].[acc''ounts [x]]]', N'we]ird ''col_iv') IS NOT NULL ALTER TABLE " + qt + " DROP COLUMN [we]]ird 'col_iv]",
		"ALTER TABLE " + qt + " ALTER COLUMN [iban] varchar(34) COLLATE Latin1_General_BIN2 NOT NULL",
		"ALTER TABLE " + qt + " ADD CONSTRAINT [DF__acc'ounts__memo] DEFAULT ('') FOR [memo]",
		"ALTER TABLE " + qt + " ADD CONSTRAINT [ck two] CHECK NOT FOR REPLICATION (([iban]<>'' AND len([we]]ird 'col])>(0)))",
	} {
		if find(t, back, frag) < 0 {
			t.Errorf("revert lacks %s", frag)
		}
	}
	// ALTER COLUMN refuses text: the known limit, documented on Unswap.
	if i := find(t, back, "ALTER COLUMN [memo]"); i >= 0 {
		t.Errorf("text column altered: %s", back[i].sql)
	}
}

func TestSwapRowID(t *testing.T) {
	for _, forward := range []bool{true, false} {
		group := heapGroup(forward)
		steps := stepsFor(t, map[bool]string{true: "heap swap", false: "heap unswap"}[forward], group, allPending(group))
		dropIndex := find(t, steps, "DROP INDEX [colcrypt_row_id_ux] ON [dbo].[cc_audit]")
		dropCol := find(t, steps, "ALTER TABLE [dbo].[cc_audit] DROP COLUMN [colcrypt_row_id]")
		if dropIndex < 0 || dropCol < 0 || dropIndex > dropCol {
			t.Errorf("forward=%v: row-id index (step %d) must go before its column (step %d)", forward, dropIndex, dropCol)
		}
	}
	if steps, _ := swapSteps(customersGroup(true), allPending(customersGroup(true))); find(t, steps, rowIDColumn) >= 0 {
		t.Error("a table with a key lost a row-id column it never had")
	}
}

// TestSwapOnlyWhatIsPending checks the idempotence: a table whose columns
// are all swapped produces nothing, and neither do its foreign keys; a
// column already swapped is left alone.
func TestSwapOnlyWhatIsPending(t *testing.T) {
	for name, group := range swapFixtures() {
		none := make([][]dialect.SwapColumn, len(group))
		if steps := stepsFor(t, name, group, none); len(steps) != 0 {
			t.Errorf("%s with nothing pending: %v", name, sqlOf(steps))
		}
	}
	group := customersGroup(true)
	pending := [][]dialect.SwapColumn{{group[0].Columns[1]}, nil} // only email
	steps, err := swapSteps(group, pending)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if strings.Contains(s.sql, "ssn") || strings.Contains(s.sql, "status") || strings.Contains(s.sql, "cc_orders") {
			t.Errorf("only email is pending, but: %s", s.sql)
		}
	}
	if find(t, steps, "N'email', N'COLUMN'") < 0 {
		t.Errorf("email not swapped: %v", sqlOf(steps))
	}
}

func TestSwapRejectsWhatItCannotRebuild(t *testing.T) {
	group := customersGroup(true)
	c := *group[0].Table
	pk := *c.Indexes[0]
	pk.Definition = ""
	c.Indexes = append([]*schema.Index{&pk}, c.Indexes[1:]...)
	group[0].Table = &c
	if _, err := swapSteps(group, allPending(group)); err == nil || !strings.Contains(err.Error(), pk.Name) {
		t.Errorf("an index without a definition: got %v, want an error naming %s", err, pk.Name)
	}
	group = customersGroup(true)
	group[0].Columns = append(group[0].Columns, dialect.SwapColumn{Name: "nope", Temp: "nope__colcrypt", TempType: "VARBINARY(16)"})
	if _, err := swapSteps(group, allPending(group)); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("an unknown column: got %v", err)
	}
}

func TestIsClustered(t *testing.T) {
	for def, want := range map[string]bool{
		"ALTER TABLE [dbo].[t] ADD CONSTRAINT [pk] PRIMARY KEY CLUSTERED ([id])":                        true,
		"ALTER TABLE [dbo].[t] ADD CONSTRAINT [uq] UNIQUE NONCLUSTERED ([id])":                          false,
		"CREATE UNIQUE CLUSTERED INDEX [ix] ON [dbo].[t] ([a])":                                         true,
		"CREATE NONCLUSTERED INDEX [x CLUSTERED y] ON [dbo].[CLUSTERED] ([a])":                          false,
		"CREATE NONCLUSTERED INDEX [ix] ON [dbo].[t] ([a]) WHERE ([a]<>' CLUSTERED ')":                  false,
		"CREATE NONCLUSTERED INDEX [i]]x CLUSTERED] ON [dbo].[t] ([a]) WHERE ([a]<>N'it''s CLUSTERED')": false,
	} {
		if got := isClustered(&schema.Index{Definition: def}); got != want {
			t.Errorf("isClustered(%s) = %v, want %v", def, got, want)
		}
	}
}

// bulkFixtures are the bulk writes of copy, revert and rekey.
func bulkFixtures() map[string]dialect.Update {
	restore := func(col *schema.Column) func(string) string {
		c, err := newCodec(col)
		if err != nil {
			panic(err)
		}
		return c.RestoreExpr
	}
	return map[string]dialect.Update{
		"copy": {Table: customersTable.Name, Key: []string{"id"}, KeyTypes: []string{"int"},
			Set:  []string{"email__colcrypt", "email_iv"},
			Rows: [][]any{{int64(1), []byte{1, 2}, []byte{9}}, {int64(2), nil, nil}}},
		"copy by row id": {Table: schema.TableName{Name: "cc_audit"}, Key: []string{rowIDColumn}, KeyTypes: []string{""},
			Set: []string{"email__colcrypt"}, Rows: [][]any{{int64(7), []byte{1}}}},
		"copy by character key": {Table: accountsName, Key: []string{"region", "iban"}, KeyTypes: []string{"char(2)", "varchar(34)"},
			Set: []string{"we]ird 'col__colcrypt", "we]ird 'col_iv"}, Rows: [][]any{{"ÄÖ", "DE89 3704", []byte{1}, []byte{2}}}},
		"revert": {Table: oddName, Key: []string{`the "key"`}, KeyTypes: []string{"int"},
			Set:     []string{"we]ird col__colcrypt_plain"},
			SetExpr: []func(string) string{restore(buildTable(oddRows).Column("we]ird col"))},
			Rows:    [][]any{{int64(1), []byte("x")}, {int64(2), []byte(nil)}, {int64(3), nil}}},
		"revert text": {Table: accountsName, Key: []string{"region", "iban"}, KeyTypes: []string{"char(2)", "varchar(34)"},
			Set:     []string{"memo__colcrypt_plain", "iban__colcrypt_plain"},
			SetExpr: []func(string) string{restore(accountsTable.Column("memo")), restore(accountsTable.Column("iban"))},
			Rows:    [][]any{{"DE", "DE89", []byte("memo"), []byte("DE89")}}},
		"rekey of an encrypted key": {Table: customersTable.Name, Key: []string{"ssn"}, KeyTypes: []string{"char(11)"},
			Set: []string{"ssn"}, Rows: [][]any{{[]byte{0xaa, 0xbb}, []byte{0xcc}}}},
		"decimal key": {Table: accountsName, Key: []string{"score"}, KeyTypes: []string{"decimal(5,2)"},
			Set: []string{"x"}, Rows: [][]any{{[]byte("-12.50"), []byte{1}}}},
	}
}

func TestPlanBulk(t *testing.T) {
	b, err := planBulk(bulkFixtures()["copy"])
	if err != nil {
		t.Fatal(err)
	}
	if want := "DROP TABLE IF EXISTS #colcrypt_stage;\nSELECT TOP (0) ISNULL(t.[id], t.[id]) AS [k1], CAST(NULL AS VARBINARY(MAX)) AS [v1], " +
		"CAST(NULL AS VARBINARY(MAX)) AS [v2] INTO #colcrypt_stage FROM [dbo].[cc_customers] AS t"; b.create != want {
		t.Errorf("create:\n%s\nwant\n%s", b.create, want)
	}
	if want := "UPDATE t SET t.[email__colcrypt] = s.[v1], t.[email_iv] = s.[v2] FROM [dbo].[cc_customers] AS t " +
		"JOIN #colcrypt_stage AS s ON t.[id] = s.[k1];\nDROP TABLE #colcrypt_stage"; b.update != want {
		t.Errorf("update:\n%s\nwant\n%s", b.update, want)
	}
	if want := []string{"k1", "v1", "v2"}; !slices.Equal(b.columns, want) {
		t.Errorf("columns %v, want %v", b.columns, want)
	}
	if want := [][]any{{int64(1), []byte{1, 2}, []byte{9}}, {int64(2), nil, nil}}; !reflect.DeepEqual(b.rows, want) {
		t.Errorf("rows %#v, want %#v", b.rows, want)
	}

	// Character keys go through Unicode in the column's own collation and
	// are cast back for the join.
	b, err = planBulk(bulkFixtures()["copy by character key"])
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{
		"CAST(t.[region] AS NVARCHAR(4000)) AS [k1], CAST(t.[iban] AS NVARCHAR(4000)) AS [k2]",
		"FROM [sales].[acc'ounts [x]]] AS t",
	} {
		if !strings.Contains(b.create, frag) {
			t.Errorf("create lacks %s:\n%s", frag, b.create)
		}
	}
	if !strings.Contains(b.update, "ON t.[region] = CAST(s.[k1] AS char(2)) AND t.[iban] = CAST(s.[k2] AS varchar(34))") {
		t.Errorf("update: %s", b.update)
	}
	if !strings.Contains(b.update, "t.[we]]ird 'col__colcrypt] = s.[v1], t.[we]]ird 'col_iv] = s.[v2]") {
		t.Errorf("update: %s", b.update)
	}

	// Revert: the codec's RestoreExpr wraps the staged bytes, and an empty
	// plaintext stays empty while NULL stays NULL.
	b, err = planBulk(bulkFixtures()["revert"])
	if err != nil {
		t.Fatal(err)
	}
	if want := "t.[we]]ird col__colcrypt_plain] = CAST(s.[v1] AS varchar(20)) COLLATE SQL_Latin1_General_CP1_CI_AS"; !strings.Contains(b.update, want) {
		t.Errorf("update lacks %s:\n%s", want, b.update)
	}
	if v, ok := b.rows[1][1].([]byte); !ok || v == nil || len(v) != 0 {
		t.Errorf("an empty plaintext became %#v, want a non-nil empty []byte (a nil one is sent as NULL)", b.rows[1][1])
	}
	if b.rows[2][1] != nil {
		t.Errorf("NULL became %#v", b.rows[2][1])
	}

	// The row id and an encrypted key (after cut-over) are staged with the
	// table's own type.
	for _, name := range []string{"copy by row id", "rekey of an encrypted key"} {
		b, err = planBulk(bulkFixtures()[name])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.create, "SELECT TOP (0) ISNULL(t.") || !strings.Contains(b.update, " = s.[k1]") {
			t.Errorf("%s:\n%s\n%s", name, b.create, b.update)
		}
	}
	if b.rows[0][0] == nil || reflect.TypeOf(b.rows[0][0]) != reflect.TypeOf([]byte{}) {
		t.Errorf("an encrypted key must stay bytes, got %#v", b.rows[0][0])
	}

	// decimal keys arrive as text in bytes and go to the bulk load as a
	// string; a ciphertext under a decimal KeyType stays bytes.
	u := bulkFixtures()["decimal key"]
	u.Rows = append(u.Rows, []any{[]byte{0xde, 0xad, 0xbe, 0xef}, nil})
	if b, err = planBulk(u); err != nil {
		t.Fatal(err)
	}
	if b.rows[0][0] != "-12.50" {
		t.Errorf("decimal key %#v, want the string -12.50", b.rows[0][0])
	}
	if _, ok := b.rows[1][0].([]byte); !ok {
		t.Errorf("ciphertext key %#v, want bytes", b.rows[1][0])
	}
}

func TestPlanBulkRejects(t *testing.T) {
	base := func() dialect.Update {
		return dialect.Update{Table: customersTable.Name, Key: []string{"id"}, KeyTypes: []string{"int"}, Set: []string{"c"}}
	}
	tests := map[string]struct {
		rows [][]any
		want string
	}{
		"short row":      {[][]any{{int64(1)}}, "row 1 has 1 values"},
		"NULL key":       {[][]any{{int64(1), []byte{1}}, {nil, []byte{2}}}, "key column id is NULL in row 2"},
		"mixed values":   {[][]any{{int64(1), []byte{1}}, {int64(2), "x"}}, "different types"},
		"mixed keys":     {[][]any{{int64(1), []byte{1}}, {"2", []byte{1}}}, "different types"},
		"odd value type": {[][]any{{int64(1), time.Now()}}, "unsupported value of type time.Time"},
	}
	for name, tc := range tests {
		u := base()
		u.Rows = tc.rows
		if _, err := planBulk(u); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, tc.want)
		}
	}
}

func TestStageTypes(t *testing.T) {
	for v, want := range map[any]string{nil: "VARBINARY(MAX)", "s": "NVARCHAR(MAX)", int64(1): "BIGINT", 1.5: "FLOAT", true: "BIT"} {
		if got, err := stageType(v); err != nil || got != want {
			t.Errorf("stageType(%T) = %s, %v; want %s", v, got, err, want)
		}
	}
	if got, _ := stageType([]byte{1}); got != "VARBINARY(MAX)" {
		t.Errorf("stageType([]byte) = %s", got)
	}
}

func sqlOf(steps []step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.sql
	}
	return out
}

// find returns the index of the first step whose SQL contains frag, -1
// when none does.
func find(t *testing.T, steps []step, frag string) int {
	t.Helper()
	for i, s := range steps {
		if strings.Contains(s.sql, frag) {
			return i
		}
	}
	return -1
}

func count(steps []step, frag string) int {
	n := 0
	for _, s := range steps {
		if strings.Contains(s.sql, frag) {
			n++
		}
	}
	return n
}

// TestTSQLCheckerRejectsBrokenMoverSQL is the negative control for the
// mover's statement shapes: the grammar must fail on their likely mistakes.
func TestTSQLCheckerRejectsBrokenMoverSQL(t *testing.T) {
	for what, text := range map[string]string{
		"sp_rename without a comma":     "EXEC sp_rename N'[dbo].[t].[c]' N'd', N'COLUMN'",
		"ALTER COLUMN without a type":   "ALTER TABLE [dbo].[t] ALTER COLUMN [c] NOT NULL",
		"ADD without a column":          "IF COL_LENGTH(N'[dbo].[t]', N'c') IS NULL ALTER TABLE [dbo].[t] ADD",
		"join without ON":               "UPDATE t SET t.[a] = s.[v1] FROM [dbo].[t] AS t JOIN #colcrypt_stage AS s",
		"INTO without a table":          "SELECT TOP (0) ISNULL(t.[k], t.[k]) AS [k1] INTO FROM [dbo].[t] AS t",
		"DROP INDEX without ON":         "IF EXISTS (SELECT 1) DROP INDEX [ix] [dbo].[t]",
		"DEFAULT without FOR":           "ALTER TABLE [dbo].[t] ADD CONSTRAINT [df] DEFAULT ('x') [c]",
		"FETCH without ROWS ONLY":       "SELECT a FROM t ORDER BY a OFFSET 1 ROWS FETCH NEXT 1",
		"unescaped quote in a literal":  "EXEC sp_rename N'[dbo].[t].[it's]', N'x', N'COLUMN'",
		"unescaped bracket in a name":   "ALTER TABLE [dbo].[t] DROP COLUMN [we]ird]",
		"NULL spelled in the type list": "ALTER TABLE [dbo].[t] ALTER COLUMN [c] NULL varchar(10)",
	} {
		if errs := tsqlErrors(text); len(errs) == 0 {
			t.Errorf("%s: the checker accepted %q", what, text)
		}
	}
}

// TestKeyArgBindsKeysAsTheirColumns: the walk's keyset condition must
// compare a decimal or money key with a number and a char or varchar key
// as non-Unicode text in the column's collation, not with the bytes and
// the NVARCHAR the driver would send; a ciphertext key (after cut-over)
// stays bytes. Each condition is put through the grammar inside the
// walk's query.
func TestKeyArgBindsKeysAsTheirColumns(t *testing.T) {
	ct := []byte{0x01, 0x00, 0x01, 0xfe, 0x31}
	cases := []struct {
		name     string
		col      *schema.Column
		v        any
		wantExpr string
		wantBind any
	}{
		{"numeric key", &schema.Column{Name: "id", Type: "numeric", Declared: "numeric(18,0)"},
			[]byte("12345"), "CAST(@p1 AS numeric(18,0))", "12345"},
		{"negative decimal key", &schema.Column{Name: "id", Type: "decimal", Declared: "decimal(10,2)"},
			[]byte("-3.50"), "CAST(@p1 AS decimal(10,2))", "-3.50"},
		{"money key", &schema.Column{Name: "id", Type: "money", Declared: "money"},
			[]byte("19.9900"), "CAST(@p1 AS money)", "19.9900"},
		{"varchar key", &schema.Column{Name: "code", Type: "varchar", Declared: "varchar(20)", Collation: "SQL_Latin1_General_CP1_CI_AS"},
			"a-c", "CAST(@p1 COLLATE SQL_Latin1_General_CP1_CI_AS AS varchar(20))", "a-c"},
		{"char key", &schema.Column{Name: "code", Type: "char", Declared: "char(4)", Collation: "Latin1_General_BIN2"},
			"ab  ", "CAST(@p1 COLLATE Latin1_General_BIN2 AS char(4))", "ab  "},
		{"nvarchar key", &schema.Column{Name: "code", Type: "nvarchar", Declared: "nvarchar(20)", Collation: "Latin1_General_CI_AS"},
			"a-c", "@p1", "a-c"},
		{"bigint key", &schema.Column{Name: "id", Type: "bigint", Declared: "bigint"}, int64(7), "@p1", int64(7)},
		{"encrypted decimal key after cut-over", &schema.Column{Name: "id", Type: "decimal", Declared: "decimal(10,2)"},
			ct, "@p1", ct},
		{"encrypted varchar key after cut-over", &schema.Column{Name: "code", Type: "varchar", Declared: "varchar(20)", Collation: "Latin1_General_CI_AS"},
			ct, "@p1", ct},
		{"row id", nil, int64(3), "@p1", int64(3)},
	}
	for _, c := range cases {
		expr, bind := sqlServer{}.KeyArg(c.col, c.v, "@p1")
		if expr != c.wantExpr || !reflect.DeepEqual(bind, c.wantBind) {
			t.Errorf("%s: KeyArg = %s bound to %#v, want %s bound to %#v", c.name, expr, bind, c.wantExpr, c.wantBind)
		}
		col := "[colcrypt_row_id]"
		if c.col != nil {
			col = quoteIdent(c.col.Name)
		}
		requireTSQL(t, c.name+" in the walk's query", sqlServer{}.FirstRows("SELECT "+col+" AS [colcrypt_k1] FROM [dbo].[t] WHERE (("+
			col+" > "+expr+")) AND (("+col+" = "+expr+" AND "+col+" <= "+expr+")) ORDER BY "+col, 0, 5000))
	}
}
