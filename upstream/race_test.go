//go:build race

package upstream

// raceEnabled: the race detector multiplies memory, so RSS bounds are only logged.
const raceEnabled = true
