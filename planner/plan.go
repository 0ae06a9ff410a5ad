// Package planner turns a plan file into what colcrypt will do: it loads and
// validates the plan (this file), checks every planned column against the
// live catalog, and sizes the result (findings and sizing, SPEC §1–§2).
package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/colcrypt/colcrypt/cipher"
	"github.com/colcrypt/colcrypt/schema"
)

// Plan is a validated plan file (SPEC §6) with every default applied.
type Plan struct {
	// Path is the absolute path of the plan file; Dir is its folder, against
	// which relative paths inside the plan resolve.
	Path string
	Dir  string

	Version  int
	Database Database
	// Keystore is the keystore file, absolute: a relative path in the plan
	// is resolved against Dir.
	Keystore string
	// Defaults are the settings a column gets for every key it leaves out.
	Defaults ColumnSettings
	Job      Job
	Tables   []TablePlan

	// file is the path as the user gave it, for messages.
	file string
}

// Database says which engine to connect to and how.
type Database struct {
	// Engine is one of Engines().
	Engine string
	// DSN is the connection string after ${VAR} expansion. It is not
	// resolved against the plan's folder: only the engine's dialect knows
	// whether it holds a file path (dialect.Dialect.ResolveDSN).
	DSN string
}

// ColumnSettings are the per-column encryption settings; the plan's
// `defaults` section and each column entry use the same keys.
type ColumnSettings struct {
	Suite     cipher.Suite
	IV        cipher.IVMode
	Key       string // the keystore's data-key name
	Versioned bool   // ciphertexts carry the 3-byte key-version header
}

// Job holds the options of the job that `apply` runs.
type Job struct {
	Workers   int
	BatchRows int
	Online    bool
	// Plaintext is what cut-over does with the plaintext column:
	// PlaintextDrop or PlaintextNull.
	Plaintext            string
	Purge                bool
	DropCheckConstraints bool
	DropDefaults         bool
	// LargeObjectLimit is the largest value, in bytes, the job encrypts;
	// larger values are a blocker.
	LargeObjectLimit int64
	// ChunkTarget is the time one chunk should take; the chunker sizes
	// chunks toward it.
	ChunkTarget time.Duration
}

// TablePlan is one table of the plan.
type TablePlan struct {
	// Name is the table as written, possibly schema-qualified
	// ("dbo.customers"); schema.ParseTableName splits it.
	Name    string
	Columns []ColumnPlan
	// Line and Col locate the table's name in the plan file, for messages
	// about the table (Plan.Errorf).
	Line, Col int
}

// ColumnPlan is one column of a table, with the plan's defaults applied
// for every setting the entry leaves out.
type ColumnPlan struct {
	Name string
	ColumnSettings
	// Line and Col locate the column's name in the plan file, for messages
	// about the column (Plan.Errorf).
	Line, Col int
}

// Values of Job.Plaintext.
const (
	PlaintextDrop = "drop" // drop the plaintext column at cut-over
	PlaintextNull = "null" // keep the column, set every value to NULL
)

// Defaults applied when the plan leaves a key out.
const (
	DefaultSuite = cipher.AEADAES256CBCHMACSHA256
	DefaultIV    = cipher.IVField
	DefaultKey   = "pii"
	// DefaultWorkers: the database's write path, not encryption, is the
	// bottleneck (SPEC §8); a few concurrent writers saturate it on small
	// servers without starving other sessions.
	DefaultWorkers = 4
	// MaxWorkers caps the pool: each worker holds a connection and an open
	// transaction, and beyond a few dozen they only contend for locks and
	// the log.
	MaxWorkers = 64
	// DefaultBatchRows: keyset chunks of 5,000 rows measured close to a
	// plain server-side rewrite (SPEC §8) while keeping each transaction
	// and its locks short.
	DefaultBatchRows = 5000
	// MaxBatchRows bounds job.batch_rows (and apply's --batch-rows): a
	// 32-bit row count, which every engine takes as a LIMIT, and far more
	// than a chunk holds anyway, since chunks are also cut by time
	// (DefaultChunkTarget).
	MaxBatchRows = math.MaxInt32
	// DefaultLargeObjectLimit is the per-value limit of SPEC §1.
	DefaultLargeObjectLimit int64 = 500 << 20
	// DefaultChunkTarget keeps each chunk's transaction, and so its locks
	// and the work redone after a crash, under about half a second.
	DefaultChunkTarget = 500 * time.Millisecond
)

// maxPlanColumns bounds the column entries one plan may hold, counting each
// time an aliased list is reused: no real plan comes near it, while a few
// kilobytes of aliases (`columns: *c` in many tables, each list itself
// aliased) could otherwise make the parser walk billions of entries.
const maxPlanColumns = 100_000

// maxPlanBytes bounds the plan file read: a plan is a few kilobytes, and a
// bigger file is almost surely the wrong path (a dump, a binary).
const maxPlanBytes = 4 << 20

// Engines lists the database engines a plan may name, in the order of the
// spec.
func Engines() []string { return []string{"sqlserver", "postgres", "sqlite"} }

// The keys each level of a plan file accepts, in documentation order, and
// those it requires. The parser rejects every other key, and the schema test
// checks that plans/plan.schema.json lists exactly these.
var (
	keysTop      = []string{"version", "database", "keystore", "defaults", "job", "tables"}
	keysDatabase = []string{"engine", "dsn"}
	keysSettings = []string{"suite", "iv", "key", "versioned"}
	keysJob      = []string{"workers", "batch_rows", "online", "plaintext", "purge",
		"drop_check_constraints", "drop_defaults", "large_object_limit", "chunk_target"}
	keysTable  = []string{"name", "columns"}
	keysColumn = []string{"name", "suite", "iv", "key", "versioned"}

	requiredTop      = []string{"version", "database", "keystore", "tables"}
	requiredDatabase = []string{"engine", "dsn"}
	requiredTable    = []string{"name", "columns"}
	requiredColumn   = []string{"name"}

	planPlaintextModes = []string{PlaintextDrop, PlaintextNull}
	planIVModes        = []string{string(cipher.IVField), string(cipher.IVColumn)}
)

// Forms of large_object_limit and chunk_target written as strings. They are
// written so that Go's regexp and the ECMA-262 patterns of JSON Schema read
// them the same way: the schema carries these exact strings.
const (
	byteSizePattern = `^[0-9]+ ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$`
	durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
)

var (
	byteSizeRE = regexp.MustCompile(byteSizePattern)
	durationRE = regexp.MustCompile(durationPattern)
)

// byteUnits gives the multiplier of each size unit. MB means 1024×1024 bytes,
// as SQL Server and PostgreSQL use it; KiB…TiB are accepted as synonyms.
var byteUnits = map[string]int64{
	"": 1, "B": 1,
	"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

// Error is a problem in a plan file, located at a line and column (both
// 1-based). Line is 0 when the problem concerns the whole file, Column 0
// when only the line is known (YAML syntax errors).
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	switch {
	case e.Line <= 0:
		return e.File + ": " + e.Msg
	case e.Column <= 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Errorf gives an error located in the plan file, for problems found after
// loading, such as a planned table or column missing from the database:
//
//	p.Errorf(c.Line, c.Col, "column %q not found in %s", c.Name, t.Name)
func (p *Plan) Errorf(line, col int, format string, args ...any) *Error {
	file := p.file
	if file == "" { // a Plan built in code rather than parsed
		file = p.Path
	}
	return &Error{File: file, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

// Load reads and validates the plan file at path. It touches no database.
// Every problem in the file is reported, each as an *Error; when there are
// several, the returned error joins them (errors.As finds the first).
func Load(path string) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPlanBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if len(data) > maxPlanBytes {
		return nil, &Error{File: path, Msg: fmt.Sprintf("plan file is larger than %d bytes; is this the right file?", maxPlanBytes)}
	}
	return Parse(data, path)
}

// Parse validates a plan held in memory. path names the file in messages
// and gives the folder relative paths resolve against ("" for the current
// directory). ${VAR} references are expanded from the environment.
func Parse(data []byte, path string) (*Plan, error) {
	return parsePlan(data, path, os.LookupEnv)
}

// parsePlan is Parse with the environment injected, for tests.
func parsePlan(data []byte, path string, lookupEnv func(string) (string, bool)) (*Plan, error) {
	d := &planDecoder{file: path, lookupEnv: lookupEnv}
	if path == "" {
		d.file = "plan"
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{File: d.file, Msg: fmt.Sprintf("resolve plan path: %v", err)}
	}
	p := &Plan{Path: abs, Dir: filepath.Dir(abs), file: d.file}
	if path == "" {
		p.Path, p.Dir = "", abs
	}

	root := d.document(data)
	if root != nil {
		d.plan(root, p)
	}
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	return p, nil
}

// planDecoder walks the YAML node tree itself rather than decoding into
// structs: yaml's KnownFields strictness is lost under custom unmarshalers,
// and walking gives every message an exact line and column. It collects
// every problem rather than stopping at the first, so one run shows them all.
type planDecoder struct {
	file      string
	lookupEnv func(string) (string, bool)
	errs      []*Error
	// columnsWalked counts column entries, against maxPlanColumns.
	columnsWalked int
}

func (d *planDecoder) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: d.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

func (d *planDecoder) errorAt(line, col int, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)})
}

// err returns the collected problems in file order: a lone *Error, or
// several joined.
func (d *planDecoder) err() error {
	sort.SliceStable(d.errs, func(i, j int) bool {
		a, b := d.errs[i], d.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	if len(d.errs) == 1 {
		return d.errs[0]
	}
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// yamlLineRE matches the line yaml.v3 puts in its syntax errors; it gives
// no column.
var yamlLineRE = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// syntaxError reports a YAML syntax error of data at its line. yaml.v3
// gives no column; where the line holds a tab before its first other
// character, the likeliest mistake, the tab's column is given with the fix.
func (d *planDecoder) syntaxError(data []byte, err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		lines := strings.Split(string(data), "\n")
		if line >= 1 && line <= len(lines) {
			text := lines[line-1]
			if i := strings.IndexByte(text, '\t'); i >= 0 && strings.TrimLeft(text[:i], " ") == "" {
				d.errorAt(line, utf8.RuneCountInString(text[:i])+1, "invalid YAML: %s: a tab, where YAML indents with spaces only", m[2])
				return
			}
		}
		d.errorAt(line, 0, "invalid YAML: %s", m[2])
		return
	}
	d.errorAt(0, 0, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// document parses data as exactly one YAML document and returns its root.
func (d *planDecoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorAt(0, 0, "plan file is empty")
		} else {
			d.syntaxError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(data, err)
		return nil
	default:
		d.errorf(&next, "a plan file holds one YAML document; a second one starts here")
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		d.errorAt(0, 0, "plan file is empty")
		return nil
	}
	root := resolveAlias(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		d.errorf(root, "plan file is empty")
		return nil
	}
	return root
}

// maxAliasHops bounds alias chasing; yaml.v3 already refuses an anchor that
// contains itself, so this only guards against surprises.
const maxAliasHops = 16

// resolveAlias follows an alias (*name) to the node it names; plans may use
// anchors to repeat a value.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < maxAliasHops; i++ {
		n = n.Alias
	}
	return n
}

// describeNode names what a node holds, for "must be X, got Y" messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "an empty value"
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!int":
			return "the integer " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		default:
			return fmt.Sprintf("%q tagged %s", n.Value, n.ShortTag())
		}
	}
	return "something else"
}

// yamlField is one key and its value in a checked mapping.
type yamlField struct{ key, value *yaml.Node }

// mapping checks that n is a mapping whose keys are all in allowed, each
// once, and returns the values by key. what names the mapping in messages.
func (d *planDecoder) mapping(n *yaml.Node, what string, allowed []string) (map[string]yamlField, bool) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping, got %s", what, describeNode(n))
		return nil, false
	}
	fields := make(map[string]yamlField, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolveAlias(n.Content[i]), resolveAlias(n.Content[i+1])
		switch {
		case k.Kind != yaml.ScalarNode:
			d.errorf(k, "keys in %s must be names, got %s", what, describeNode(k))
			continue
		case k.ShortTag() == "!!merge":
			d.errorf(k, "merge keys (<<) are not supported in %s; repeat the keys", what)
			continue
		case !slices.Contains(allowed, k.Value):
			d.errorf(k, "unknown key %q in %s (valid: %s)", k.Value, what, strings.Join(allowed, ", "))
			continue
		}
		if first, dup := fields[k.Value]; dup {
			d.errorf(k, "duplicate key %q in %s (first at line %d)", k.Value, what, first.key.Line)
			continue
		}
		fields[k.Value] = yamlField{key: k, value: v}
	}
	return fields, true
}

// require reports a missing key of the mapping at n (located at the key that
// holds the mapping, or the mapping itself at the top).
func (d *planDecoder) require(fields map[string]yamlField, at *yaml.Node, what string, keys []string) {
	for _, k := range keys {
		if _, ok := fields[k]; !ok {
			d.errorf(at, "missing required key %q in %s", k, what)
		}
	}
}

func (d *planDecoder) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, "%s must be a string, got %s", what, describeNode(n))
		return "", false
	}
	return n.Value, true
}

// name reads a string that must not be empty.
func (d *planDecoder) name(n *yaml.Node, what string) (string, bool) {
	s, ok := d.str(n, what)
	if ok && s == "" {
		d.errorf(n, "%s must not be empty", what)
		return "", false
	}
	return s, ok
}

func (d *planDecoder) integer(n *yaml.Node, what string) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.errorf(n, "%s must be an integer, got %s", what, describeNode(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		d.errorf(n, "%s must be an integer that fits in 64 bits, got %s", what, n.Value)
		return 0, false
	}
	return v, true
}

func (d *planDecoder) boolean(n *yaml.Node, what string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.errorf(n, "%s must be true or false, got %s", what, describeNode(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		d.errorf(n, "%s must be true or false, got %s", what, describeNode(n))
		return false, false
	}
	return v, true
}

// oneOf reads a string that must be one of valid, spelled exactly. key
// names the setting in type errors, noun the kind of value in others.
func (d *planDecoder) oneOf(n *yaml.Node, key, noun string, valid []string) (string, bool) {
	s, ok := d.str(n, key)
	if !ok {
		return "", false
	}
	if !slices.Contains(valid, s) {
		d.errorf(n, "unknown %s %q (valid: %s)", noun, s, strings.Join(valid, ", "))
		return "", false
	}
	return s, true
}

// optionalMapping is a section that may be left out or left empty.
func (d *planDecoder) optionalMapping(n *yaml.Node, what string, allowed []string) (map[string]yamlField, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return map[string]yamlField{}, true
	}
	return d.mapping(n, what, allowed)
}

func (d *planDecoder) plan(root *yaml.Node, p *Plan) {
	top, ok := d.mapping(root, "the plan", keysTop)
	if !ok {
		return
	}
	d.require(top, root, "the plan", requiredTop)

	if f, ok := top["version"]; ok {
		if v, ok := d.integer(f.value, "version"); ok {
			if v != 1 {
				d.errorf(f.value, "unsupported plan version %d (this colcrypt reads version 1)", v)
			} else {
				p.Version = 1
			}
		}
	}
	if f, ok := top["database"]; ok {
		d.database(f, &p.Database)
	}
	if f, ok := top["keystore"]; ok {
		if s, ok := d.name(f.value, "keystore"); ok {
			if s, ok = d.expand(f.value, s, "keystore"); ok {
				if !filepath.IsAbs(s) {
					s = filepath.Join(p.Dir, s)
				}
				p.Keystore = filepath.Clean(s)
			}
		}
	}

	p.Defaults = ColumnSettings{Suite: DefaultSuite, IV: DefaultIV, Key: DefaultKey, Versioned: true}
	if f, ok := top["defaults"]; ok {
		if fields, ok := d.optionalMapping(f.value, "defaults", keysSettings); ok {
			d.settings(fields, "defaults.", &p.Defaults)
		}
	}

	p.Job = Job{
		Workers:          DefaultWorkers,
		BatchRows:        DefaultBatchRows,
		Plaintext:        PlaintextDrop,
		LargeObjectLimit: DefaultLargeObjectLimit,
		ChunkTarget:      DefaultChunkTarget,
	}
	if f, ok := top["job"]; ok {
		if fields, ok := d.optionalMapping(f.value, "job", keysJob); ok {
			d.job(fields, &p.Job)
		}
	}

	if f, ok := top["tables"]; ok {
		p.Tables = d.tables(f, p.Defaults)
	}
}

func (d *planDecoder) database(f yamlField, db *Database) {
	fields, ok := d.mapping(f.value, "database", keysDatabase)
	if !ok {
		return
	}
	d.require(fields, f.key, "database", requiredDatabase)
	if e, ok := fields["engine"]; ok {
		db.Engine, _ = d.oneOf(e.value, "database.engine", "database engine", Engines())
	}
	if e, ok := fields["dsn"]; ok {
		if s, ok := d.name(e.value, "database.dsn"); ok {
			if s, ok = d.expand(e.value, s, "database.dsn"); ok {
				if s == "" {
					d.errorf(e.value, "database.dsn is empty once environment variables are expanded")
				}
				db.DSN = s
			}
		}
	}
}

// settings applies a defaults section or a column entry's settings over s.
// prefix qualifies the keys in messages.
func (d *planDecoder) settings(fields map[string]yamlField, prefix string, s *ColumnSettings) {
	if f, ok := fields["suite"]; ok {
		names := make([]string, 0, 5)
		for _, su := range cipher.Suites() {
			names = append(names, string(su))
		}
		if v, ok := d.oneOf(f.value, prefix+"suite", "cipher suite", names); ok {
			su, err := cipher.ParseSuite(v)
			if err != nil {
				d.errorf(f.value, "%s%s", prefix, err)
			} else {
				s.Suite = su
			}
		}
	}
	if f, ok := fields["iv"]; ok {
		if v, ok := d.oneOf(f.value, prefix+"iv", "IV mode", planIVModes); ok {
			m, err := cipher.ParseIVMode(v)
			if err != nil {
				d.errorf(f.value, "%s%s", prefix, err)
			} else {
				s.IV = m
			}
		}
	}
	if f, ok := fields["key"]; ok {
		if v, ok := d.name(f.value, prefix+"key"); ok {
			s.Key = v
		}
	}
	if f, ok := fields["versioned"]; ok {
		if v, ok := d.boolean(f.value, prefix+"versioned"); ok {
			s.Versioned = v
		}
	}
}

func (d *planDecoder) job(fields map[string]yamlField, j *Job) {
	if f, ok := fields["workers"]; ok {
		if v, ok := d.integer(f.value, "job.workers"); ok {
			if v < 1 || v > MaxWorkers {
				d.errorf(f.value, "job.workers must be between 1 and %d, got %d", MaxWorkers, v)
			} else {
				j.Workers = int(v)
			}
		}
	}
	if f, ok := fields["batch_rows"]; ok {
		if v, ok := d.integer(f.value, "job.batch_rows"); ok {
			if v < 1 || v > MaxBatchRows {
				d.errorf(f.value, "job.batch_rows must be between 1 and %d, got %d", MaxBatchRows, v)
			} else {
				j.BatchRows = int(v)
			}
		}
	}
	for key, dst := range map[string]*bool{
		"online":                 &j.Online,
		"purge":                  &j.Purge,
		"drop_check_constraints": &j.DropCheckConstraints,
		"drop_defaults":          &j.DropDefaults,
	} {
		if f, ok := fields[key]; ok {
			if v, ok := d.boolean(f.value, "job."+key); ok {
				*dst = v
			}
		}
	}
	if f, ok := fields["plaintext"]; ok {
		// SPEC §6 writes `plaintext: null` unquoted, which YAML reads as a
		// null; the word itself (not ~ or an empty value) means the mode.
		if n := f.value; n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" && n.Value == PlaintextNull {
			j.Plaintext = PlaintextNull
		} else if v, ok := d.oneOf(n, "job.plaintext", "plaintext mode", planPlaintextModes); ok {
			j.Plaintext = v
		}
	}
	if f, ok := fields["large_object_limit"]; ok {
		if v, ok := d.byteSize(f.value, "job.large_object_limit"); ok {
			j.LargeObjectLimit = v
		}
	}
	if f, ok := fields["chunk_target"]; ok {
		if v, ok := d.duration(f.value, "job.chunk_target"); ok {
			j.ChunkTarget = v
		}
	}
}

// byteSize reads a number of bytes: an integer, or a string such as "500MB".
func (d *planDecoder) byteSize(n *yaml.Node, what string) (int64, bool) {
	const form = "a number of bytes such as 524288000 or \"500MB\" (units B, KB, MB, GB, TB)"
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		v, ok := d.integer(n, what)
		if ok && v < 1 {
			d.errorf(n, "%s must be at least 1 byte, got %d", what, v)
			return 0, false
		}
		return v, ok
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, "%s must be %s, got %s", what, form, describeNode(n))
		return 0, false
	}
	m := byteSizeRE.FindStringSubmatch(n.Value)
	if m == nil {
		d.errorf(n, "%s must be %s, got %q", what, form, n.Value)
		return 0, false
	}
	digits := strings.TrimRight(n.Value[:len(n.Value)-len(m[1])], " ")
	num, err := strconv.ParseInt(digits, 10, 64)
	unit := byteUnits[m[1]]
	if err != nil || num > math.MaxInt64/unit {
		d.errorf(n, "%s: %q is too large", what, n.Value)
		return 0, false
	}
	if num < 1 {
		d.errorf(n, "%s must be at least 1 byte, got %q", what, n.Value)
		return 0, false
	}
	return num * unit, true
}

// duration reads a positive Go duration written as a string: "500ms", "2s".
func (d *planDecoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	const form = "a duration such as \"500ms\" or \"2s\" (units ns, us, ms, s, m, h)"
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, "%s must be %s, got %s", what, form, describeNode(n))
		return 0, false
	}
	if !durationRE.MatchString(n.Value) {
		d.errorf(n, "%s must be %s, got %q", what, form, n.Value)
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.errorf(n, "%s: %q is out of range", what, n.Value)
		return 0, false
	}
	if v <= 0 {
		d.errorf(n, "%s must be longer than zero, got %q", what, n.Value)
		return 0, false
	}
	return v, true
}

func (d *planDecoder) tables(f yamlField, defaults ColumnSettings) []TablePlan {
	n := f.value
	if n.Kind != yaml.SequenceNode {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			d.errorf(f.key, "tables is empty: a plan needs at least one table")
		} else {
			d.errorf(n, "tables must be a list, got %s", describeNode(n))
		}
		return nil
	}
	if len(n.Content) == 0 {
		d.errorf(n, "tables is empty: a plan needs at least one table")
		return nil
	}
	var tables []TablePlan
	seen := map[string]*yaml.Node{}
	for _, item := range n.Content {
		item = resolveAlias(item)
		fields, ok := d.mapping(item, "table entry", keysTable)
		if !ok {
			continue
		}
		d.require(fields, item, "table entry", requiredTable)
		t := TablePlan{Line: item.Line, Col: item.Column}
		if nf, ok := fields["name"]; ok {
			t.Line, t.Col = nf.value.Line, nf.value.Column
			if name, ok := d.name(nf.value, "table name"); ok {
				t.Name = name
				fold := strings.ToLower(name)
				switch first, dup := seen[fold]; {
				case schema.ParseTableName(name).Name == "":
					d.errorf(nf.value, "table name %q has an empty table part", name)
				case dup:
					d.errorf(nf.value, "table %q is listed twice (first at line %d); put all its columns in one entry", name, first.Line)
				default:
					seen[fold] = nf.value
				}
			}
		}
		if cf, ok := fields["columns"]; ok {
			t.Columns = d.columns(cf, t.Name, defaults)
		}
		tables = append(tables, t)
	}
	return tables
}

func (d *planDecoder) columns(f yamlField, table string, defaults ColumnSettings) []ColumnPlan {
	n := f.value
	if n.Kind != yaml.SequenceNode {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			d.errorf(f.key, "columns of table %q is empty: list at least one column", table)
		} else {
			d.errorf(n, "columns must be a list, got %s", describeNode(n))
		}
		return nil
	}
	if len(n.Content) == 0 {
		d.errorf(n, "columns of table %q is empty: list at least one column", table)
		return nil
	}
	if d.columnsWalked += len(n.Content); d.columnsWalked > maxPlanColumns {
		if d.columnsWalked-len(n.Content) <= maxPlanColumns {
			d.errorf(n, "the plan lists more than %d columns", maxPlanColumns)
		}
		return nil
	}
	var cols []ColumnPlan
	seen := map[string]*yaml.Node{}
	for _, item := range n.Content {
		item = resolveAlias(item)
		fields, ok := d.mapping(item, "column entry", keysColumn)
		if !ok {
			continue
		}
		d.require(fields, item, "column entry", requiredColumn)
		c := ColumnPlan{ColumnSettings: defaults, Line: item.Line, Col: item.Column}
		if nf, ok := fields["name"]; ok {
			c.Line, c.Col = nf.value.Line, nf.value.Column
			if name, ok := d.name(nf.value, "column name"); ok {
				c.Name = name
				fold := strings.ToLower(name)
				if first, dup := seen[fold]; dup {
					d.errorf(nf.value, "column %q is listed twice in table %q (first at line %d)", name, table, first.Line)
				} else {
					seen[fold] = nf.value
				}
			}
		}
		d.settings(fields, "", &c.ColumnSettings)
		cols = append(cols, c)
	}
	return cols
}

// expand replaces ${NAME} with the environment variable NAME; $$ stands for
// one $, and any other $ is kept as written (passwords contain them). An
// unset variable is an error, never an empty string: a DSN or path silently
// losing a part would connect to or write the wrong thing.
func (d *planDecoder) expand(n *yaml.Node, s, what string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 >= len(s) || (s[i+1] != '$' && s[i+1] != '{') {
			b.WriteByte(c)
			i++
			continue
		}
		if s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			d.errorAtOffset(n, s, i, "%s: unterminated ${ (write $$ for a literal $)", what)
			return "", false
		}
		name := s[i+2 : i+2+end]
		if !envNameRE.MatchString(name) {
			d.errorAtOffset(n, s, i, "%s: invalid variable reference ${%s}: a name is letters, digits and _ (write $$ for a literal $)", what, name)
			return "", false
		}
		v, ok := d.lookupEnv(name)
		if !ok {
			d.errorAtOffset(n, s, i, "%s: environment variable %s is not set", what, name)
			return "", false
		}
		b.WriteString(v)
		i += 2 + end + 1
	}
	return b.String(), true
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// errorAtOffset reports a problem at byte offset off of the scalar n holding
// s: exactly where the text on the line is the value as written (plain
// scalars, quoted ones without escapes), else at the scalar's start.
func (d *planDecoder) errorAtOffset(n *yaml.Node, s string, off int, format string, args ...any) {
	col := n.Column
	if !strings.ContainsAny(s, "\n\r") {
		switch n.Style {
		case 0:
			col += utf8.RuneCountInString(s[:off])
		case yaml.SingleQuotedStyle:
			if !strings.Contains(s, "'") {
				col += 1 + utf8.RuneCountInString(s[:off])
			}
		case yaml.DoubleQuotedStyle:
			if !strings.ContainsAny(s, "\\\"") {
				col += 1 + utf8.RuneCountInString(s[:off])
			}
		}
	}
	d.errorAt(n.Line, col, format, args...)
}

// fingerprintFormat names the canonical form below; change it whenever the
// form changes, so old and new fingerprints never compare equal by accident.
const fingerprintFormat = "colcrypt-plan-fingerprint/1"

// Fingerprint is the hex SHA-256 of a canonical form of everything that
// changes what the job does: the engine, every table and column with its
// resolved settings, and the job options that change the outcome. It leaves
// out what only changes speed (workers, batch_rows, chunk_target) and where
// things are (dsn, keystore path), so a job started under one plan can
// resume under a retuned copy of it. Comments, layout, key order, the order
// of tables and columns, and whether a setting came from defaults or was
// written on the column do not change it.
func (p *Plan) Fingerprint() string {
	type column struct {
		Name      string `json:"name"`
		Suite     string `json:"suite"`
		IV        string `json:"iv"`
		Key       string `json:"key"`
		Versioned bool   `json:"versioned"`
	}
	type table struct {
		Name    string   `json:"name"`
		Columns []column `json:"columns"`
	}
	canon := struct {
		Format               string  `json:"format"`
		Version              int     `json:"version"`
		Engine               string  `json:"engine"`
		Online               bool    `json:"online"`
		Plaintext            string  `json:"plaintext"`
		Purge                bool    `json:"purge"`
		DropCheckConstraints bool    `json:"drop_check_constraints"`
		DropDefaults         bool    `json:"drop_defaults"`
		LargeObjectLimit     int64   `json:"large_object_limit"`
		Tables               []table `json:"tables"`
	}{
		Format:               fingerprintFormat,
		Version:              p.Version,
		Engine:               p.Database.Engine,
		Online:               p.Job.Online,
		Plaintext:            p.Job.Plaintext,
		Purge:                p.Job.Purge,
		DropCheckConstraints: p.Job.DropCheckConstraints,
		DropDefaults:         p.Job.DropDefaults,
		LargeObjectLimit:     p.Job.LargeObjectLimit,
		Tables:               make([]table, 0, len(p.Tables)),
	}
	for _, t := range p.Tables {
		ct := table{Name: t.Name, Columns: make([]column, 0, len(t.Columns))}
		for _, c := range t.Columns {
			ct.Columns = append(ct.Columns, column{
				Name: c.Name, Suite: string(c.Suite), IV: string(c.IV), Key: c.Key, Versioned: c.Versioned,
			})
		}
		sort.Slice(ct.Columns, func(i, j int) bool { return ct.Columns[i].Name < ct.Columns[j].Name })
		canon.Tables = append(canon.Tables, ct)
	}
	sort.Slice(canon.Tables, func(i, j int) bool { return canon.Tables[i].Name < canon.Tables[j].Name })

	// Marshal cannot fail on these types; the form is deterministic because
	// struct fields are written in declaration order.
	data, _ := json.Marshal(canon)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
