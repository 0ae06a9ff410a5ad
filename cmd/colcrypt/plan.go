package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	_ "github.com/colcrypt/colcrypt/dialect/postgres"  // registers the postgres engine
	_ "github.com/colcrypt/colcrypt/dialect/sqlite"    // registers the sqlite engine
	_ "github.com/colcrypt/colcrypt/dialect/sqlserver" // registers the sqlserver engine
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

func init() { register(newPlanCmd) }

// reportWriters are the formats of `colcrypt plan --format`.
var reportWriters = map[string]func(io.Writer, *planner.Report) error{
	"text":     planner.WriteText,
	"json":     planner.WriteJSON,
	"markdown": planner.WriteMarkdown,
}

// newPlanCmd builds `colcrypt plan PLAN`: the dry run of SPEC §1–§2. It
// reads the catalog and aggregates over the data, and changes nothing.
func newPlanCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "plan PLAN",
		Short: "Dry run: what would break, what colcrypt would do, and how much space the result needs",
		Long: `Read the live schema of every planned table and report, per column, the
findings (blocker: apply refuses to run; action: apply does it and revert
undoes it; warning) and the sizes now, after and during the migration.

Exit status: 0 without blockers, 1 with blockers, 2 for a bad plan or an
unreachable database.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			write, ok := reportWriters[format]
			if !ok {
				return exitcode.Input(fmt.Errorf("unknown --format %q (valid: text, json, markdown)", format))
			}
			ctx := cmd.Context()
			p, d, db, err := a.openPlan(ctx, args[0])
			if err != nil {
				return err
			}
			defer db.Close()
			opt, err := migrate.PlanOptions(ctx, p, d, db)
			if err != nil {
				return err
			}
			rep, err := planner.Analyze(ctx, p, d, db, opt)
			if err != nil {
				return err
			}
			if err := write(a.stdout, rep); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			if n := rep.Blockers(); n > 0 {
				noun := "blockers"
				if n == 1 {
					noun = "blocker"
				}
				return exitcode.Fail(fmt.Errorf("plan %s has %d %s", args[0], n, noun))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or markdown")
	return cmd
}
