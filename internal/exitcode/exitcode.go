// Package exitcode carries the process exit code of SPEC §5 inside an error,
// so that library packages can say "this is bad input" without knowing about
// os.Exit, and main maps any error to 0, 1 or 2 in one place.
package exitcode

import "errors"

// Exit codes of SPEC §5.
const (
	OK       = 0 // success
	Failed   = 1 // the plan has blockers, or verification failed
	BadInput = 2 // bad usage or bad input: plan file, keystore, passphrase, connection
)

// Error wraps an error with the exit code it should produce.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Input marks err as bad input (exit 2). A nil err stays nil.
func Input(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: BadInput, Err: err}
}

// Fail marks err as a failed check (exit 1): blockers or a verify mismatch.
func Fail(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: Failed, Err: err}
}

// Of returns the exit code for err: 0 for nil, the wrapped code when err
// carries one, and 2 otherwise, because an unclassified error most often
// comes from a connection or input problem and must never look like success.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return BadInput
}
