package planner

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func sampleReport() *Report {
	r := &Report{
		Engine: "sqlserver",
		Tables: []*TableReport{{
			Name: "dbo.customers", Rows: 10000, BytesNow: 1234567, BytesAfter: 1300000, BytesPeak: 1900000,
			MaxRowBytesNow: 120, MaxRowBytesAfter: 180, MaxRowBytesDuring: 260, RowLimit: 8060,
			Columns: []*ColumnReport{{
				Name: "ssn", SourceType: "char(11)", Suite: "aes-256-cbc", IV: "column", Rows: 10000, Nulls: 12,
				BytesNow: 109868, CiphertextType: "VARBINARY(19)", MaxCiphertextBytes: 19, BytesAfter: 189772,
			}},
			Findings: []Finding{
				{SeverityWarning, RuleIndex, "ix_ssn", "ssn", "index ix_ssn on dbo.customers.ssn will serve equality lookups only | pipes"},
				{SeverityBlocker, RuleDefault, "dbo.customers.ssn", "ssn", "a default writes plaintext into the ciphertext column"},
				{SeverityAction, RuleIndex, "ix_ssn", "ssn", "index ix_ssn is rebuilt"},
			},
		}},
		Groups: [][]string{{"dbo.customers"}},
	}
	r.total()
	return r
}

// TestJSONShape checks the object against SPEC §5, key by key: every
// documented key is there with its JSON type, so scripts written against
// the spec keep working.
func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	if !strings.Contains(buf.String(), "\n  \"engine\"") {
		t.Errorf("JSON is not indented:\n%s", buf.String())
	}
	requireKeys(t, "report", got, map[string]string{"engine": "string", "tables": "array", "totals": "object"})
	requireKeys(t, "totals", got["totals"].(map[string]any), map[string]string{
		"bytes_now": "number", "bytes_after": "number", "bytes_peak": "number", "blockers": "number"})
	tbl := got["tables"].([]any)[0].(map[string]any)
	requireKeys(t, "table", tbl, map[string]string{
		"name": "string", "rows": "number", "bytes_now": "number", "bytes_after": "number", "bytes_peak": "number",
		"max_row_bytes_now": "number", "max_row_bytes_after": "number", "max_row_bytes_during": "number",
		"row_limit": "number", "columns": "array", "findings": "array"})
	requireKeys(t, "column", tbl["columns"].([]any)[0].(map[string]any), map[string]string{
		"name": "string", "source_type": "string", "suite": "string", "iv": "string", "rows": "number",
		"nulls": "number", "bytes_now": "number", "ciphertext_type": "string", "max_ciphertext_bytes": "number",
		"bytes_after": "number", "iv_bytes": "number"})
	requireKeys(t, "finding", tbl["findings"].([]any)[0].(map[string]any), map[string]string{
		"severity": "string", "rule": "string", "object": "string", "column": "string", "message": "string"})

	if n := got["totals"].(map[string]any)["blockers"].(float64); n != 1 {
		t.Errorf("totals.blockers = %v, want 1", n)
	}
	if v := tbl["row_limit"].(float64); v != 8060 {
		t.Errorf("row_limit = %v", v)
	}
}

func TestJSONEmptyListsAreArrays(t *testing.T) {
	r := &Report{Engine: "sqlite", Tables: []*TableReport{{Name: "t"}}}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"columns": []`, `"findings": []`, `"groups": []`} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("want %s in\n%s", s, buf.String())
		}
	}
	if r.Tables[0].Columns != nil {
		t.Error("WriteJSON changed the report")
	}
}

func requireKeys(t *testing.T, what string, obj map[string]any, keys map[string]string) {
	t.Helper()
	for k, typ := range keys {
		v, ok := obj[k]
		if !ok {
			t.Errorf("%s: missing key %q", what, k)
			continue
		}
		var got string
		switch v.(type) {
		case string:
			got = "string"
		case float64:
			got = "number"
		case []any:
			got = "array"
		case map[string]any:
			got = "object"
		default:
			got = "other"
		}
		if got != typ {
			t.Errorf("%s.%s is %s, want %s", what, k, got, typ)
		}
	}
}

func TestWriteText(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteText(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, s := range []string{
		"Table dbo.customers: 10,000 rows",
		"bytes now 1,234,567",
		"(limit: 8,060)",
		"Blockers (1)",
		"Actions (1)",
		"Warnings (1)",
		"[default] dbo.customers.ssn: a default writes plaintext",
		"1 blocker: apply refuses to run until you resolve it",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("missing %q in:\n%s", s, out)
		}
	}
	// Severities come in order: blockers, then actions, then warnings.
	b, a, w := strings.Index(out, "Blockers"), strings.Index(out, "Actions"), strings.Index(out, "Warnings")
	if !(b < a && a < w) {
		t.Errorf("severity sections out of order:\n%s", out)
	}
	// The column table is aligned: header and row have the same width up
	// to the last column, and numbers are right-aligned under their header.
	lines := strings.Split(out, "\n")
	hi := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "COLUMN") })
	if hi < 0 {
		t.Fatalf("no column header in:\n%s", out)
	}
	header, row := lines[hi], lines[hi+1]
	if end := strings.Index(header, "BYTES NOW") + len("BYTES NOW"); row[end-len("109,868"):end] != "109,868" {
		t.Errorf("bytes now not right-aligned under its header:\n%s\n%s", header, row)
	}
}

func TestWriteMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, s := range []string{
		"## dbo.customers",
		"| column | type | suite | iv | rows |",
		"| ssn | char(11) | aes-256-cbc | column | 10,000 | 12 |",
		`serve equality lookups only \| pipes`,
		"| blocker | default | dbo.customers.ssn | ssn |",
		"**1 blocker: apply refuses to run until you resolve it",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("missing %q in:\n%s", s, out)
		}
	}
	// Every table row has as many cells as its header.
	var cells int
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "|") {
			cells = 0
			continue
		}
		n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|")
		if cells == 0 {
			cells = n
		} else if n != cells {
			t.Errorf("row has %d separators, header %d: %s", n, cells, l)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 560000: "560,000",
		1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
