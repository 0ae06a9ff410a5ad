package postgres_test

import (
	"strconv"
	"testing"

	"github.com/colcrypt/colcrypt/dialect/dialecttest"
)

// TestConformance runs the suite every engine passes.
func TestConformance(t *testing.T) {
	t.Parallel()
	d, db := openDB(t)
	var types []dialecttest.TypeCase
	for _, tc := range typeCases {
		types = append(types, dialecttest.TypeCase{Declared: tc.Declared, Literals: tc.Literals})
	}
	dialecttest.Run(t, dialecttest.Engine{
		Dialect:     d,
		DB:          db,
		Fixture:     append(unsupportedFixture[:len(unsupportedFixture):len(unsupportedFixture)], conformanceFixture...),
		Types:       types,
		Unsupported: append(unsupportedTypes[:len(unsupportedTypes):len(unsupportedTypes)], "shadow.text"),
		Same:        same,
		Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
	})
}
