package sqlserver

import (
	"reflect"
	"strings"
	"testing"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

// TestCaptureStatementsAreTSQL puts everything online mode sends through
// the T-SQL grammar: the change capture's columns and trigger, its drop,
// the cut-over's table lock, the engine's reads of stale rows, a guarded
// bulk write and an online swap.
func TestCaptureStatementsAreTSQL(t *testing.T) {
	keys := map[string][]string{
		"cc_customers": {"id"}, "acc'ounts [x]": {"region", "iban"}, "no schema": {rowIDColumn},
	}
	for _, tn := range moverTables {
		tn = withDefaultSchema(tn)
		key := keys[tn.Name]
		if key == nil {
			key = []string{`the "key"`, "we]ird col"}
		}
		stmts := captureSQL(tn, []string{"email", "we]ird 'col"}, key)
		if len(stmts) != 3 {
			t.Fatalf("%d capture statements", len(stmts))
		}
		for _, s := range stmts {
			requireTSQL(t, "change capture of "+tn.String(), withinTriggerGrammar(s))
		}
		for _, s := range dropCaptureSteps(tn) {
			requireTSQL(t, s.what+" of "+tn.String(), s.sql)
		}
		requireTSQL(t, "table lock", lockTableSQL(tn))

		// The engine's reads of stale rows, as it shapes them for this
		// dialect (migrate.selectStale and the count under the lock).
		q := "SELECT [id] AS [colcrypt_k1], CAST([email] AS VARBINARY(MAX)) AS [colcrypt_v1], [colcrypt_version] AS [colcrypt_v2] FROM " +
			quoteTable(tn) + " WHERE ([colcrypt_enc_version] IS NULL OR [colcrypt_enc_version] <> [colcrypt_version]) AND (([id] > @p1)) ORDER BY [id]"
		requireTSQL(t, "stale rows", sqlServer{}.FirstRows(q, 0, 300))
		requireTSQL(t, "stale count", "SELECT COUNT(*) FROM "+quoteTable(tn)+" WHERE ([colcrypt_enc_version] IS NULL OR [colcrypt_enc_version] <> [colcrypt_version])")
	}

	stmts := captureSQL(withDefaultSchema(schema.TableName{Name: "cc_customers"}), []string{"email", "ssn"}, []string{"id"})
	for _, frag := range []string{
		"BIGINT NOT NULL CONSTRAINT [colcrypt_version_df_cc_customers] DEFAULT 0",
		"CREATE OR ALTER TRIGGER [dbo].[colcrypt_capture_cc_customers] ON [dbo].[cc_customers] AFTER INSERT, UPDATE AS",
		"SET NOCOUNT ON;",
		"IF NOT EXISTS (SELECT 1 FROM deleted)",
		"UPDATE t SET t.[colcrypt_version] = CAST(CRYPT_GEN_RANDOM(7) AS BIGINT) FROM [dbo].[cc_customers] AS t INNER JOIN inserted AS i ON t.[id] = i.[id];",
		"ELSE IF UPDATE([email]) OR UPDATE([ssn])",
		"UPDATE t SET t.[colcrypt_version] = t.[colcrypt_version] + 1 FROM [dbo].[cc_customers] AS t INNER JOIN inserted AS i ON t.[id] = i.[id];",
	} {
		if !strings.Contains(strings.Join(stmts, "\n"), frag) {
			t.Errorf("capture statements lack %q:\n%s", frag, strings.Join(stmts, "\n"))
		}
	}
	// Negative control: the grammar does check triggers.
	for _, broken := range []string{
		"CREATE OR ALTER TRIGGER [dbo].[x] ON [dbo].[t] AFTER INSERT, UPDATE BEGIN SET NOCOUNT ON; END",
		"CREATE OR ALTER TRIGGER [dbo].[x] ON [dbo].[t] AFTER INSERT, UPDATE AS BEGIN UPDATE t SET t.[v] = 1 FROM [dbo].[t] AS t INNER JOIN inserted AS i; END",
	} {
		if len(tsqlErrors(broken)) == 0 {
			t.Errorf("the checker accepted %q", broken)
		}
	}
	long := boundedName(dialect.CapturePrefix, strings.Repeat("é", 130))
	if n := len([]rune(long)); n != maxIdentChars || long == boundedName(dialect.CapturePrefix, strings.Repeat("é", 131)) {
		t.Errorf("a long capture name has %d characters, or two long names collide: %s", n, long)
	}
}

// withinTriggerGrammar rewrites the trigger function UPDATE(column), which
// the checking grammar lacks, into a predicate it parses with the same
// argument, so the rest of the trigger is still checked.
func withinTriggerGrammar(stmt string) string {
	return strings.ReplaceAll(stmt, "UPDATE([", "1 = LEN([")
}

func TestGuardedBulk(t *testing.T) {
	u := bulkFixtures()["copy"]
	u.Set = append(u.Set, dialect.EncVersionColumn)
	u.Guard = dialect.VersionColumn
	u.Rows = [][]any{{int64(1), []byte{1, 2}, []byte{9}, int64(7), int64(7)}, {int64(2), nil, nil, int64(0), int64(0)}}
	b, err := planBulk(u)
	if err != nil {
		t.Fatal(err)
	}
	requireTSQL(t, "guarded staging table", b.create)
	requireTSQL(t, "guarded update", b.update)
	if !strings.Contains(b.create, ", CAST(NULL AS BIGINT) AS [v3], CAST(NULL AS BIGINT) AS [g] INTO #colcrypt_stage") {
		t.Errorf("create: %s", b.create)
	}
	if !strings.Contains(b.update, "t.[colcrypt_enc_version] = s.[v3] FROM [dbo].[cc_customers] AS t JOIN #colcrypt_stage AS s ON t.[id] = s.[k1] AND t.[colcrypt_version] = s.[g];") {
		t.Errorf("update: %s", b.update)
	}
	if want := []string{"k1", "v1", "v2", "v3", "g"}; !reflect.DeepEqual(b.columns, want) {
		t.Errorf("columns %v, want %v", b.columns, want)
	}
	if !reflect.DeepEqual(b.rows, u.Rows) {
		t.Errorf("rows %#v, want %#v", b.rows, u.Rows)
	}
	u.Rows = [][]any{{int64(1), []byte{1}, nil, int64(1)}}
	if _, err := planBulk(u); err == nil {
		t.Error("a row without its guard value was accepted")
	}
	u.Rows = [][]any{{int64(1), []byte{1}, nil, int64(1), "1"}}
	if _, err := planBulk(u); err == nil {
		t.Error("a guard value of another type was accepted")
	}
}

// TestOnlineSwapDropsCapture: an online table's cut-over drops the capture
// trigger first, then the version columns' default and columns.
func TestOnlineSwapDropsCapture(t *testing.T) {
	group := customersGroup(true)
	group[0].Online = true
	steps, err := swapSteps(group, allPending(group))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		requireTSQL(t, s.what, withinGrammar(s.sql))
	}
	trigger := find(t, steps, "DROP TRIGGER [dbo].[colcrypt_capture_cc_customers]")
	plaintext := find(t, steps, "DROP COLUMN [ssn]")
	if trigger < 0 || plaintext < 0 || trigger > plaintext {
		t.Errorf("the capture trigger is dropped at step %d, the plaintext at %d:\n%s", trigger, plaintext, strings.Join(sqlOf(steps), "\n"))
	}
	for _, frag := range []string{"DROP CONSTRAINT [colcrypt_version_df_cc_customers]", "DROP COLUMN [colcrypt_version]", "DROP COLUMN [colcrypt_enc_version]"} {
		if count(steps, frag) != 1 {
			t.Errorf("online swap: %q %d times", frag, count(steps, frag))
		}
	}
	if count(steps, "colcrypt_capture_cc_orders") != 0 {
		t.Error("an offline table of the group lost a capture it never had")
	}
}
