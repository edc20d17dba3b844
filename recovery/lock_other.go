//go:build !unix

package recovery

import "os"

// lockDir only opens the LOCK file where flock does not exist: one process
// per data directory is then the operator's to ensure.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
}
