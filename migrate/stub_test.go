package migrate

import "github.com/colcrypt/colcrypt/dialect"

// dialectMoverStub satisfies dialect.Mover for tests that only need
// Placeholder; calling anything else panics, so a test cannot pass by
// accident through it.
type dialectMoverStub struct{ dialect.Mover }
