package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/colcrypt/colcrypt/dialect"
	"github.com/colcrypt/colcrypt/schema"
)

var _ dialect.ChangeCapture = Dialect{}

// maxIdentBytes is PostgreSQL's identifier limit (NAMEDATALEN - 1): longer
// names are silently truncated, and two long table names sharing a prefix
// would then share one trigger function.
const maxIdentBytes = 63

// captureName names the trigger and its function for a table: the prefix
// and the table name, or when that is too long a cut of it with a hash of
// the whole, so that the name stays unique.
func captureName(table schema.TableName) string {
	return boundedIdent(dialect.CapturePrefix+table.Name, table.Name)
}

// boundedIdent is name when it fits PostgreSQL's identifier limit, and
// otherwise a cut of it ending with a hash of from, the object's own name,
// so that names made for two long names sharing a prefix stay apart.
func boundedIdent(name, from string) string {
	if len(name) <= maxIdentBytes {
		return name
	}
	sum := sha256.Sum256([]byte(from))
	suffix := "_" + hex.EncodeToString(sum[:4])
	cut := maxIdentBytes - len(suffix)
	for cut > 0 && !isRuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + suffix
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// AddCapture implements dialect.ChangeCapture, in one transaction: the two
// version columns (a NOT NULL column with a constant default is a catalog
// change only since PostgreSQL 11: no row is rewritten), a trigger function
// and a BEFORE INSERT OR UPDATE trigger calling it. Changes are compared as
// text, the form the codecs encrypt: numeric 1.0 and 1.00 are equal to
// IS DISTINCT FROM but are different plaintexts, and json and xml have no
// equality at all.
func (d Dialect) AddCapture(ctx context.Context, db *sql.DB, table schema.TableName, planned, _ []string) error {
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error { return execEach(ctx, tx, d.captureSQL(table, planned)) })
	if err != nil {
		return fmt.Errorf("add change capture to %s: %w", table, err)
	}
	return nil
}

func (d Dialect) captureSQL(table schema.TableName, planned []string) []string {
	qt := d.QuoteTable(table)
	name := captureName(table)
	fn := d.QuoteTable(schema.TableName{Schema: table.Schema, Name: name})
	version := d.Quote(dialect.VersionColumn)
	var changed []string
	for _, c := range planned {
		changed = append(changed, "NEW."+d.Quote(c)+"::text IS DISTINCT FROM OLD."+d.Quote(c)+"::text")
	}
	// An inserted row gets a random version rather than the default: a row
	// deleted and inserted again under the same key must not match a
	// compare-and-set prepared from the old row. random() has 52 bits; the
	// factor stays below 2^63.
	body := "\nBEGIN\n" +
		"  IF TG_OP = 'INSERT' THEN\n" +
		"    NEW." + version + " := (random() * 4e18)::bigint;\n" +
		"  ELSIF " + strings.Join(changed, "\n     OR ") + " THEN\n" +
		"    NEW." + version + " := OLD." + version + " + 1;\n" +
		"  END IF;\n" +
		"  RETURN NEW;\n" +
		"END\n"
	return []string{
		"ALTER TABLE " + qt + " ADD COLUMN IF NOT EXISTS " + version + " bigint NOT NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS " +
			d.Quote(dialect.EncVersionColumn) + " bigint",
		"CREATE OR REPLACE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql AS " + dollarQuote(body),
		"DROP TRIGGER IF EXISTS " + d.Quote(name) + " ON " + qt,
		"CREATE TRIGGER " + d.Quote(name) + " BEFORE INSERT OR UPDATE ON " + qt + " FOR EACH ROW EXECUTE FUNCTION " + fn + "()",
		enableAlways(qt, d.Quote(name)),
	}
}

// dropCaptureSQL drops the trigger, its function and the version columns,
// whichever exist.
func (d Dialect) dropCaptureSQL(table schema.TableName) []string {
	qt := d.QuoteTable(table)
	name := captureName(table)
	return []string{
		"DROP TRIGGER IF EXISTS " + d.Quote(name) + " ON " + qt,
		"DROP FUNCTION IF EXISTS " + d.QuoteTable(schema.TableName{Schema: table.Schema, Name: name}) + "()",
		"ALTER TABLE " + qt + " DROP COLUMN IF EXISTS " + d.Quote(dialect.VersionColumn) + ", DROP COLUMN IF EXISTS " +
			d.Quote(dialect.EncVersionColumn),
	}
}

// DropCapture implements dialect.ChangeCapture.
func (d Dialect) DropCapture(ctx context.Context, db *sql.DB, table schema.TableName) error {
	err := inDDLTx(ctx, db, func(tx *sql.Tx) error { return execEach(ctx, tx, d.dropCaptureSQL(table)) })
	if err != nil {
		return fmt.Errorf("drop change capture of %s: %w", table, err)
	}
	return nil
}

// dollarQuote quotes a function body with a dollar-quote tag it does not
// contain.
func dollarQuote(body string) string {
	tag := "$colcrypt$"
	for i := 1; strings.Contains(body, tag); i++ {
		tag = fmt.Sprintf("$colcrypt%d$", i)
	}
	return tag + body + tag
}
