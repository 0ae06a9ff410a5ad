package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/colcrypt/colcrypt/internal/exitcode"
	"github.com/colcrypt/colcrypt/migrate"
)

func init() { register(newRekeyCmd) }

func newRekeyCmd(a *app) *cobra.Command {
	var f jobFlags
	var columns []string
	var all bool
	cmd := &cobra.Command{
		Use:         "rekey PLAN (--column TABLE.COLUMN ... | --all)",
		Short:       "Re-encrypt columns under their key's newest version (and the plan's suite and IV mode)",
		Args:        exactArgs(1),
		Annotations: map[string]string{resumesAnnotation: "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(columns) > 0) {
				return exitcode.Input(fmt.Errorf("give either --column TABLE.COLUMN (repeatable) or --all"))
			}
			return a.withEngine(cmd.Context(), args[0], true, f, func(e *migrate.Engine) error {
				res, err := e.Rekey(cmd.Context(), columns)
				if err != nil {
					return err
				}
				if res.Already {
					fmt.Fprintf(a.stdout, "job %s: nothing to rekey: every column named is already under its key's newest version "+
						"with the plan's suite and IV mode (to rotate the key, add a version first: colcrypt keys add KEYSTORE NAME)\n", res.JobID)
					return nil
				}
				fmt.Fprintf(a.stdout, "job %s: rekey complete; run colcrypt verify %s to check every value\n", res.JobID, args[0])
				return nil
			})
		},
	}
	f.add(cmd)
	cmd.Flags().StringArrayVar(&columns, "column", nil, "TABLE.COLUMN to re-encrypt (repeatable)")
	cmd.Flags().BoolVar(&all, "all", false, "re-encrypt every column of the plan")
	cmd.Flags().BoolVar(&f.noBackupCheck, "no-backup-check", false, "rekey even without a keystore backup taken after the new key version was added, or with its file gone or changed (logged)")
	return cmd
}
