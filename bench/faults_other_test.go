//go:build !unix

package bench

// minorFaults cannot be read on this system.
func minorFaults() (n int64, ok bool) { return 0, false }
