package sqlite

import (
	"reflect"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	type tk struct {
		kind tokenKind
		text string
	}
	tests := []struct {
		sql  string
		want []tk
	}{
		{`a "b ""c""" [d e] ` + "`f``g`", []tk{{tokWord, "a"}, {tokQuoted, `"b ""c"""`}, {tokQuoted, "[d e]"}, {tokQuoted, "`f``g`"}}},
		{`'it''s' x'0A' X'' 'x'`, []tk{{tokString, `'it''s'`}, {tokBlob, `x'0A'`}, {tokBlob, `X''`}, {tokString, `'x'`}}},
		{`1 1.5 .5 1e10 1.5E-3 0x1F 1_000`, []tk{{tokNumber, "1"}, {tokNumber, "1.5"}, {tokNumber, ".5"},
			{tokNumber, "1e10"}, {tokNumber, "1.5E-3"}, {tokNumber, "0x1F"}, {tokNumber, "1_000"}}},
		{"a -- comment 'x\n/* block \"y\" */ b", []tk{{tokWord, "a"}, {tokWord, "b"}}},
		{`a||b<=c->>'$.x' ? ?2 :n @m $v`, []tk{{tokWord, "a"}, {tokPunct, "||"}, {tokWord, "b"}, {tokPunct, "<="},
			{tokWord, "c"}, {tokPunct, "->>"}, {tokString, `'$.x'`}, {tokVariable, "?"}, {tokVariable, "?2"},
			{tokVariable, ":n"}, {tokVariable, "@m"}, {tokVariable, "$v"}}},
		{`größe_1 t.c`, []tk{{tokWord, "größe_1"}, {tokWord, "t"}, {tokPunct, "."}, {tokWord, "c"}}},
		{`'unterminated`, []tk{{tokString, `'unterminated`}}},
		{`"unterminated`, []tk{{tokQuoted, `"unterminated`}}},
	}
	for _, tt := range tests {
		var got []tk
		for _, tok := range tokenize(tt.sql) {
			got = append(got, tk{tok.kind, tok.text})
			if tt.sql[tok.pos:tok.end] != tok.text {
				t.Errorf("tokenize(%q): token %q has wrong offsets %d:%d", tt.sql, tok.text, tok.pos, tok.end)
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("tokenize(%q)\n got %v\nwant %v", tt.sql, got, tt.want)
		}
	}
}

func TestUnquoteIdent(t *testing.T) {
	for in, want := range map[string]string{
		`"a""b"`: `a"b`, "[a\"b]": `a"b`, "`a``b`": "a`b", `'a''b'`: "a'b", "plain": "plain",
	} {
		if got := unquoteIdent(in); got != want {
			t.Errorf("unquoteIdent(%s) = %q, want %q", in, got, want)
		}
	}
	// SQLite has no escape inside brackets: the first ] ends the name.
	toks := tokenize("[we]]ird]")
	if name, _ := toks[0].name(); name != "we" {
		t.Errorf("bracketed identifiers end at the first ]: got %q", name)
	}
}

func TestColumnRefs(t *testing.T) {
	cols := []string{"id", "Status", "e-mail", `we"ird`, "length", "new", "t"}
	tests := []struct {
		name, sql string
		want      []string
	}{
		{"bare, case-insensitive", `STATUS IN ('new', 'vip')`, []string{"Status"}},
		{"strings never count", `'id' || 'status' || x'00'`, nil},
		{"quoted forms", `"e-mail" = [we"ird] OR ` + "`id`" + ` > 0`, []string{"id", "e-mail", `we"ird`}},
		{"doubled quote", `"we""ird" IS NULL`, []string{`we"ird`}},
		{"function names are not columns", `length(status) > 3`, []string{"Status"}},
		{"qualifier is not a column", `NEW.id = t.status`, []string{"id", "Status"}},
		{"comments never count", `id /* status */ -- "e-mail"`, []string{"id"}},
		{"select star", `SELECT * FROM x`, cols},
		{"qualified star", `SELECT a, t.* FROM t`, cols},
		{"aliases and table names are not columns", `SELECT status AS t, CAST(id AS length) FROM t JOIN new ON new.id = t.id`, []string{"id", "Status"}},
		{"count star is not every column", `SELECT count(*), 2 * id FROM t`, []string{"id"}},
	}
	for _, tt := range tests {
		got := columnRefs(tokenize(tt.sql), cols)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: columnRefs(%q) = %q, want %q", tt.name, tt.sql, got, tt.want)
		}
	}
}

func TestParseCreateTable(t *testing.T) {
	const sql = `CREATE TABLE "cust""omers" (
		id INTEGER PRIMARY KEY DESC,
		ssn char(11) NOT NULL CONSTRAINT ssn_key UNIQUE CONSTRAINT ssn_len CHECK (length(ssn) = 11),
		"e-mail" varchar(64) COLLATE NOCASE DEFAULT 'a,b)' CHECK ("e-mail" LIKE '%@%'),
		status text CONSTRAINT st_ck CHECK (status IN ('new', ')')) REFERENCES statuses ON DELETE CASCADE NOT DEFERRABLE,
		[full name] text GENERATED ALWAYS AS (ssn || ' ' || "e-mail") STORED,
		amount numeric(10, 2) AS (1 + 2),
		CONSTRAINT pk_named UNIQUE ("e-mail" COLLATE NOCASE DESC, ssn),
		CONSTRAINT fk_named FOREIGN KEY (ssn, status) REFERENCES other (a, b),
		CHECK (amount >= 0 OR ssn <> 'CHECK (x)')
	) WITHOUT ROWID, STRICT`
	def := parseCreateTable(sql)
	if !def.withoutRowid || def.virtual {
		t.Errorf("withoutRowid=%v virtual=%v", def.withoutRowid, def.virtual)
	}
	var names []string
	for _, c := range def.columns {
		names = append(names, c.name)
	}
	if want := []string{"id", "ssn", "e-mail", "status", "full name", "amount"}; !reflect.DeepEqual(names, want) {
		t.Errorf("columns = %q, want %q", names, want)
	}
	if c := def.column("ID"); c == nil || !c.pkDesc {
		t.Errorf("id: %+v, want pkDesc", c)
	}
	if c := def.column("e-mail"); c.collation != "NOCASE" {
		t.Errorf("e-mail collation = %q", c.collation)
	}
	if c := def.column("full name"); c.generated != `ssn || ' ' || "e-mail"` {
		t.Errorf("full name generated = %q", c.generated)
	}
	if c := def.column("amount"); c.generated != "1 + 2" {
		t.Errorf("amount generated = %q", c.generated)
	}

	type con struct {
		kind            constraintKind
		name            string
		columns         []string
		expr, ref, text string
		refColumns      []string
	}
	var got []con
	for _, c := range def.constraints {
		got = append(got, con{c.kind, c.name, c.columns, c.expr, c.refTable, c.text, c.refColumns})
	}
	want := []con{
		{kind: conPrimaryKey, columns: []string{"id"}, text: "PRIMARY KEY DESC"},
		{kind: conUnique, name: "ssn_key", columns: []string{"ssn"}, text: "CONSTRAINT ssn_key UNIQUE"},
		{kind: conCheck, name: "ssn_len", expr: "length(ssn) = 11", text: "CONSTRAINT ssn_len CHECK (length(ssn) = 11)"},
		{kind: conCheck, expr: `"e-mail" LIKE '%@%'`, text: `CHECK ("e-mail" LIKE '%@%')`},
		{kind: conCheck, name: "st_ck", expr: "status IN ('new', ')')", text: "CONSTRAINT st_ck CHECK (status IN ('new', ')'))"},
		{kind: conForeignKey, columns: []string{"status"}, ref: "statuses", text: "REFERENCES statuses ON DELETE CASCADE NOT DEFERRABLE"},
		{kind: conUnique, name: "pk_named", columns: []string{"e-mail", "ssn"},
			text: `CONSTRAINT pk_named UNIQUE ("e-mail" COLLATE NOCASE DESC, ssn)`},
		{kind: conForeignKey, name: "fk_named", columns: []string{"ssn", "status"}, ref: "other", refColumns: []string{"a", "b"},
			text: "CONSTRAINT fk_named FOREIGN KEY (ssn, status) REFERENCES other (a, b)"},
		{kind: conCheck, expr: "amount >= 0 OR ssn <> 'CHECK (x)'", text: "CHECK (amount >= 0 OR ssn <> 'CHECK (x)')"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("constraints:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseCreateTableVirtual(t *testing.T) {
	def := parseCreateTable(`CREATE VIRTUAL TABLE docs USING fts5(title, body)`)
	if !def.virtual || len(def.columns) != 0 {
		t.Errorf("virtual table parsed as %+v", def)
	}
}

func TestTriggerColumns(t *testing.T) {
	cols := []string{"id", "email", "notes", "status"}
	tests := []struct {
		sql   string
		table string
		want  []string
	}{
		{`CREATE TRIGGER a AFTER UPDATE ON cust BEGIN INSERT INTO audit (email) VALUES (NEW.email); END`,
			"cust", []string{"email"}},
		{`CREATE TRIGGER IF NOT EXISTS "notes" BEFORE UPDATE OF status, [notes] ON main.cust FOR EACH ROW
			WHEN OLD.id > 0 BEGIN SELECT RAISE(ABORT, 'email must not change'); END`,
			"cust", []string{"id", "notes", "status"}},
		{`CREATE TRIGGER email INSTEAD OF DELETE ON v BEGIN DELETE FROM cust WHERE id = OLD.id; END`,
			"v", []string{"id"}},
	}
	for _, tt := range tests {
		updateOf, table, body := triggerParts(tt.sql)
		if table != tt.table {
			t.Errorf("triggerParts(%q): table %q, want %q", tt.sql, table, tt.table)
		}
		got := columnRefs(append(append([]token(nil), updateOf...), body...), cols)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("trigger columns of %q = %q, want %q", tt.sql, got, tt.want)
		}
	}
}

func TestViewBody(t *testing.T) {
	body := viewBody(`CREATE VIEW "as" (id, notes) AS SELECT c.id, c.notes FROM cust AS c`)
	got := columnRefs(body, []string{"id", "notes", "as", "email"})
	if want := []string{"id", "notes"}; !reflect.DeepEqual(got, want) {
		t.Errorf("view columns = %q, want %q", got, want)
	}
	if !mentions(body, "CUST") || mentions(body, "other") {
		t.Errorf("mentions: wrong answer for %q", tokensText(body))
	}
}

func TestIndexParts(t *testing.T) {
	keys, where := indexParts(`CREATE UNIQUE INDEX "on" ON t (lower(email), "a b" DESC) WHERE status <> 'x'`)
	if len(keys) != 2 || tokensText(keys[0]) != "lower ( email )" || tokensText(keys[1]) != `"a b" DESC` {
		t.Errorf("keys = %v", keys)
	}
	if tokensText(where) != "status <> 'x'" {
		t.Errorf("where = %q", tokensText(where))
	}
}

func TestDefaultSQL(t *testing.T) {
	for in, want := range map[string]string{
		"'new'": "'new'", "-1": "-1", "CURRENT_TIMESTAMP": "CURRENT_TIMESTAMP", "x'00'": "x'00'",
		"1 + 2": "(1 + 2)", "datetime('now')": "(datetime('now'))", "": "",
	} {
		if got := defaultSQL(in); got != want {
			t.Errorf("defaultSQL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDeclaredType(t *testing.T) {
	tests := []struct {
		in                  string
		base                string
		length, prec, scale int
	}{
		{"VARCHAR(64)", "varchar", 64, 0, 0},
		{"char(11)", "char", 11, 0, 0},
		{"numeric(10, 2)", "numeric", 0, 10, 2},
		{"DECIMAL(5)", "decimal", 0, 5, 0},
		{"TEXT", "text", -1, 0, 0},
		{"", "", -1, 0, 0},
		{"UNSIGNED  BIG INT", "unsigned big int", 0, 0, 0},
		{"VARBINARY(16)", "varbinary", 16, 0, 0},
		{"DATETIME", "datetime", 0, 0, 0},
	}
	for _, tt := range tests {
		base, l, p, s := parseDeclaredType(tt.in)
		if base != tt.base || l != tt.length || p != tt.prec || s != tt.scale {
			t.Errorf("parseDeclaredType(%q) = %q %d %d %d, want %q %d %d %d", tt.in, base, l, p, s, tt.base, tt.length, tt.prec, tt.scale)
		}
	}
}

func tokensText(toks []token) string {
	var parts []string
	for _, t := range toks {
		parts = append(parts, t.text)
	}
	return strings.Join(parts, " ")
}
