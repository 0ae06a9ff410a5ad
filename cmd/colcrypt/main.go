// Command colcrypt encrypts sensitive columns of live database tables in
// place. This file only parses flags, calls the library and maps errors to
// the exit codes of SPEC §5; the work happens in the packages it imports.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/colcrypt/colcrypt/internal/exitcode"
)

// app is what every command shares: where results and logs go.
type app struct {
	stdout io.Writer
	stderr io.Writer
	stdin  *os.File
	log    *slog.Logger
	level  slog.LevelVar
}

// commands holds the constructors of the top-level commands; each command's
// file adds itself from init, so commands live in their own files.
var commands []func(*app) *cobra.Command

func register(newCmd func(*app) *cobra.Command) { commands = append(commands, newCmd) }

func main() {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal stops the job at its next checkpoint; a second one
	// (the default action again) ends the process at once, which loses
	// nothing either (SPEC §7) when the stop takes too long.
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Stdin)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, stdin *os.File) int {
	a := &app{stdout: stdout, stderr: stderr, stdin: stdin}
	a.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: &a.level}))

	var verbose bool
	root := &cobra.Command{
		Use:           "colcrypt",
		Short:         "Encrypt sensitive columns of live database tables in place",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			if verbose {
				a.level.Set(slog.LevelDebug)
			}
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log at debug level (row keys, never values)")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	for _, newCmd := range commands {
		root.AddCommand(newCmd(a))
	}
	// cobra reports flag and argument mistakes as plain errors; they are bad usage.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitcode.Input(err) })

	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitcode.OK
	}
	if ctx.Err() != nil && exitcode.Of(err) != exitcode.Failed {
		// Interrupted (Ctrl-C, SIGTERM): whatever error the cancellation
		// surfaced as ("context canceled" from deep inside a chunk) says
		// less than what the user needs to know. A verdict the command
		// reached before the signal (blockers, a failed verify) stands.
		err = exitcode.Input(interrupted(cmd, args))
	}
	code := exitcode.Of(err)
	var ee *exitcode.Error
	if !errors.As(err, &ee) || ee.Err.Error() != "" {
		fmt.Fprintln(stderr, "colcrypt:", err)
	}
	return code
}

// resumesAnnotation marks the commands whose work is a resumable job
// (apply, revert, rekey): an interrupted run of them loses nothing and the
// same command line resumes it.
const resumesAnnotation = "resumes"

// interrupted is the error of a command stopped by a signal. Exit code 2
// (SPEC §5 has no other for it), as before.
func interrupted(cmd *cobra.Command, args []string) error {
	if cmd != nil && cmd.Annotations[resumesAnnotation] != "" {
		return fmt.Errorf("interrupted: the job stopped at its last checkpoint and nothing it did is lost; "+
			"run the same command again to resume it: colcrypt %s", shellJoin(args))
	}
	return fmt.Errorf("interrupted: colcrypt %s stopped before it finished", shellJoin(args))
}

// shellJoin writes a command line back so that it can be pasted into a
// shell: arguments with anything but plain characters are single-quoted.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// exactArgs is cobra.ExactArgs whose error is bad usage (exit 2) and
// shows the command's usage line.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return exitcode.Input(fmt.Errorf("%w; usage: %s", err, cmd.UseLine()))
		}
		return nil
	}
}
