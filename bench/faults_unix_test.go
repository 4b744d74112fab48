//go:build unix

package bench

import "syscall"

// minorFaults returns how many minor page faults the process has taken:
// first touches of memory the kernel had not yet mapped, which is what a
// heap growing into fresh memory costs. ok is false if it cannot be read.
func minorFaults() (n int64, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return int64(ru.Minflt), true
}
