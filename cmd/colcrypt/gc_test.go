package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestTuneGCLeavesTheUsersSettings: colcrypt sets its own garbage-collector
// settings only when neither GOGC nor GOMEMLIMIT is in the environment; a
// user who sets either keeps Go's own handling of both.
func TestTuneGCLeavesTheUsersSettings(t *testing.T) {
	percent := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, true},
		{map[string]string{"GOGC": "50"}, false},
		{map[string]string{"GOMEMLIMIT": "1GiB"}, false},
		{map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, false},
	} {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
		got := tuneGC(func(k string) string { return tc.env[k] })
		gotPercent, gotLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
		wantPercent, wantLimit := 100, int64(math.MaxInt64)
		if tc.want {
			wantPercent, wantLimit = gcPercent, gcMemoryLimit
		}
		if got != tc.want || gotPercent != wantPercent || gotLimit != wantLimit {
			t.Errorf("environment %v: applied %v, GOGC %d, memory limit %d; want %v, %d, %d",
				tc.env, got, gotPercent, gotLimit, tc.want, wantPercent, wantLimit)
		}
	}
}
