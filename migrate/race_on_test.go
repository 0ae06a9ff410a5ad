//go:build race

package migrate_test

// raceEnabled: this test binary runs under the race detector.
const raceEnabled = true
