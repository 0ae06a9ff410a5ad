//go:build tools

// Package tools pins modules that are imported only by packages still being
// written, so that go mod tidy keeps them; it is never built.
package tools

import (
	_ "github.com/antlr4-go/antlr/v4"
	_ "github.com/bytebase/tsql-parser"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/microsoft/go-mssqldb"
	_ "github.com/schollz/progressbar/v3"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/term"
	_ "modernc.org/sqlite"
)
