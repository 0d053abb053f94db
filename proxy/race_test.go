//go:build race

package proxy

// raceEnabled: the race detector multiplies memory, so memory bounds are only logged.
const raceEnabled = true
