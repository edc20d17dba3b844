//go:build !unix

package edge

import "os"

// inode is 0 where the platform does not give one: mtime and size decide.
func inode(os.FileInfo) uint64 { return 0 }
