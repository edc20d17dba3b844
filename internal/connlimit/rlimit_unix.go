//go:build unix

package connlimit

import "syscall"

// RaiseFDLimit raises the soft limit on open files to the hard limit where
// allowed and returns the soft limit in force afterwards (0 if unknown).
func RaiseFDLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = want.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(r.Cur), err
		}
		r = want
	}
	return uint64(r.Cur), nil
}
