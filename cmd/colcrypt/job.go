package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/colcrypt/colcrypt/dialect"
	_ "github.com/colcrypt/colcrypt/dialect/postgres"  // registers the postgres engine
	_ "github.com/colcrypt/colcrypt/dialect/sqlite"    // registers the sqlite engine
	_ "github.com/colcrypt/colcrypt/dialect/sqlserver" // registers the sqlserver engine
	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/keystore"
	"github.com/colcrypt/colcrypt/migrate"
	"github.com/colcrypt/colcrypt/planner"
)

func init() {
	register(newApplyCmd)
	register(newVerifyCmd)
	register(newStatusCmd)
	register(newRevertCmd)
}

// openPlan loads a plan and connects to its database. Plan errors come
// before any connection is made.
func (a *app) openPlan(ctx context.Context, path string) (*planner.Plan, dialect.Dialect, *sql.DB, error) {
	p, err := planner.Load(path)
	if err != nil {
		return nil, nil, nil, exitcode.Input(err)
	}
	d, err := dialect.Get(p.Database.Engine)
	if err != nil {
		return nil, nil, nil, exitcode.Input(err)
	}
	db, err := d.Open(ctx, d.ResolveDSN(p.Database.DSN, p.Dir))
	if err != nil {
		return nil, nil, nil, exitcode.Input(fmt.Errorf("connect to the %s database of plan %s: %w", p.Database.Engine, path, err))
	}
	return p, d, db, nil
}

// jobFlags are the tuning flags of commands that run chunked work.
type jobFlags struct {
	workers       int
	batchRows     int
	until         string
	noBackupCheck bool
	online        bool
}

// engine opens everything a job needs; withKeys opens the plan's keystore.
func (a *app) engine(ctx context.Context, path string, withKeys bool, f jobFlags) (*migrate.Engine, func(), error) {
	p, d, db, err := a.openPlan(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	var ks *keystore.Keystore
	if withKeys {
		if ks, err = a.openKeystore(p.Keystore); err != nil {
			db.Close()
			return nil, nil, err
		}
	}
	stderrFile, isFile := a.stderr.(*os.File)
	e, err := migrate.New(p, d, db, ks, migrate.Options{
		Workers: f.workers, BatchRows: f.batchRows, Until: f.until, NoBackupCheck: f.noBackupCheck, Online: f.online,
		Log: a.log, Progress: a.stderr, Terminal: isFile && term.IsTerminal(int(stderrFile.Fd())),
	})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return e, func() { db.Close() }, nil
}

// withEngine opens the plan's engine, runs fn with it, and closes the
// database connection.
func (a *app) withEngine(ctx context.Context, path string, withKeys bool, f jobFlags, fn func(*migrate.Engine) error) error {
	e, closeDB, err := a.engine(ctx, path, withKeys, f)
	if err != nil {
		return err
	}
	defer closeDB()
	return fn(e)
}

func (f *jobFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.workers, "workers", 0, fmt.Sprintf("parallel workers, 1 to %d (default: the plan's job.workers)", planner.MaxWorkers))
	cmd.Flags().IntVar(&f.batchRows, "batch-rows", 0, "rows per chunk to start from (default: the plan's job.batch_rows)")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error { return f.check(cmd) }
}

// check holds the tuning flags to the limits the plan file's job.workers
// and job.batch_rows have: each worker holds a connection, and a thousand
// of them took every connection the server had.
func (f *jobFlags) check(cmd *cobra.Command) error {
	for _, lim := range []struct {
		flag  string
		value int
		max   int
	}{
		{"workers", f.workers, planner.MaxWorkers},
		{"batch-rows", f.batchRows, planner.MaxBatchRows},
	} {
		if cmd.Flags().Changed(lim.flag) && (lim.value < 1 || lim.value > lim.max) {
			return exitcode.Input(fmt.Errorf("--%s must be between 1 and %d, got %d", lim.flag, lim.max, lim.value))
		}
	}
	return nil
}

func newApplyCmd(a *app) *cobra.Command {
	var f jobFlags
	cmd := &cobra.Command{
		Use:         "apply PLAN",
		Short:       "Encrypt the planned columns, or resume the job where it stopped",
		Args:        exactArgs(1),
		Annotations: map[string]string{resumesAnnotation: "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(cmd.Context(), args[0], true, f, func(e *migrate.Engine) error {
				res, err := e.Apply(cmd.Context())
				if err != nil {
					return err
				}
				if res.Already {
					fmt.Fprintf(a.stdout, "job %s: already done, nothing to do\n", res.JobID)
					return nil
				}
				if res.Verify != nil {
					fmt.Fprintf(a.stdout, "verified %d values in %d rows\n", res.Verify.Values, res.Verify.Rows)
					if res.Verify.Stale > 0 {
						fmt.Fprintf(a.stdout, "%d rows changed by other writers since they were copied: re-encrypted and checked at cut-over\n", res.Verify.Stale)
					}
				}
				fmt.Fprintf(a.stdout, "job %s: phase %s complete\n", res.JobID, res.Phase)
				return nil
			})
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&f.until, "until", "", "stop after this phase: prepare, copy, verify or cutover")
	cmd.Flags().BoolVar(&f.noBackupCheck, "no-backup-check", false, "cut over even without a keystore backup newer than the last key change, or with its file gone or changed (logged)")
	cmd.Flags().BoolVar(&f.online, "online", false, "let other sessions keep updating and inserting rows while the job runs (as job.online: true)")
	return cmd
}

func newVerifyCmd(a *app) *cobra.Command {
	var f jobFlags
	cmd := &cobra.Command{
		Use:   "verify PLAN",
		Short: "Decrypt every value and compare it with the plaintext or the digests recorded during copy",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(cmd.Context(), args[0], true, f, func(e *migrate.Engine) error {
				res, err := e.Verify(cmd.Context())
				if err != nil {
					return err
				}
				if err := res.Err(); err != nil {
					return exitcode.Fail(err)
				}
				if res.CopiedSoFar {
					fmt.Fprintf(a.stdout, "verify passed so far: the copy is not finished, and the %d values in the %d rows it has written "+
						"decrypt to the original plaintext (run colcrypt apply to finish it)\n", res.Values, res.Rows)
					return nil
				}
				fmt.Fprintf(a.stdout, "verify passed: %d values in %d rows decrypt to the original plaintext\n", res.Values, res.Rows)
				return nil
			})
		},
	}
	f.add(cmd)
	return cmd
}

func newRevertCmd(a *app) *cobra.Command {
	var f jobFlags
	cmd := &cobra.Command{
		Use:         "revert PLAN",
		Short:       "Decrypt the planned columns back to their original types and constraints",
		Args:        exactArgs(1),
		Annotations: map[string]string{resumesAnnotation: "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withEngine(cmd.Context(), args[0], true, f, func(e *migrate.Engine) error {
				res, err := e.Revert(cmd.Context())
				if err != nil {
					return err
				}
				if res.Already {
					fmt.Fprintln(a.stdout, "nothing to revert")
					return nil
				}
				fmt.Fprintf(a.stdout, "job %s: reverted\n", res.JobID)
				return nil
			})
		},
	}
	f.add(cmd)
	return cmd
}

func newStatusCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status PLAN",
		Short: "Show each planned column's encryption state and the job's progress",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return exitcode.Input(fmt.Errorf("--format %q: expected text or json", format))
			}
			return a.withEngine(cmd.Context(), args[0], false, jobFlags{}, func(e *migrate.Engine) error {
				rep, err := e.Status(cmd.Context())
				if err != nil {
					return err
				}
				if format == "json" {
					enc := json.NewEncoder(a.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(rep)
				}
				writeStatus(a, rep)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func writeStatus(a *app, rep *migrate.StatusReport) {
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tCOLUMN\tSTATE\tDONE\tKEY\tSUITE\tIV\tVALUES PER KEY VERSION")
	for _, c := range rep.Columns {
		key := c.Key
		if c.KeyVersion > 0 {
			key = fmt.Sprintf("%s v%d", c.Key, c.KeyVersion)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d %s\t%d%%\t%s\t%s\t%s\t%s\n", c.Table, c.Column, c.State, c.StateDesc, c.Percent, key, c.Suite, c.IV, c.VersionSummary())
	}
	tw.Flush()
	if rep.Job != nil {
		fmt.Fprintf(a.stdout, "\njob %s: %s, last phase completed: %s\n", rep.Job.ID, rep.Job.Kind, orNone(rep.Job.Phase))
		for _, ev := range rep.Events {
			fmt.Fprintf(a.stdout, "  %s  %s %s\n", ev.At, ev.Event, ev.Detail)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
