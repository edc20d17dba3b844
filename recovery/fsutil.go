package recovery

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File names in the data directory (see doc.go).
const (
	lockName   = "LOCK"
	walSuffix  = ".wal"
	snapSuffix = ".snap"
	tmpSuffix  = ".tmp"
	// brokenSuffix marks bytes set aside by Recover: never read again,
	// kept for a person to look at.
	brokenSuffix = ".broken"
)

func segName(index uint64) string  { return fmt.Sprintf("%016x%s", index, walSuffix) }
func snapName(index uint64) string { return fmt.Sprintf("%016x%s", index, snapSuffix) }

// parseIndex returns the index of a segment or snapshot file name.
func parseIndex(name, suffix string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, suffix)
	if !ok || len(base) != 16 {
		return 0, false
	}
	i, err := strconv.ParseUint(base, 16, 64)
	return i, err == nil
}

// syncDir makes a create, rename or remove in dir durable: on Linux the
// directory entry is only on disk once the directory itself is fsynced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFileAtomic writes data to dir/name through a temporary file:
// write, fsync, rename, fsync the directory. A crash leaves either no file
// or the whole file, never half of it (at worst a *.tmp that Recover
// removes).
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// asideName returns a free name for bytes set aside from path.
func asideName(path string, now time.Time) string {
	base := fmt.Sprintf("%s.%d", path, now.UnixMilli())
	name := base + brokenSuffix
	for i := 1; i < 1000; i++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			break
		}
		name = fmt.Sprintf("%s-%d%s", base, i, brokenSuffix)
	}
	return name
}

// moveAside renames a whole file out of the way. It returns the new name.
func moveAside(path string, now time.Time) (string, error) {
	to := asideName(path, now)
	if err := os.Rename(path, to); err != nil {
		return "", err
	}
	return to, syncDir(filepath.Dir(path))
}

// cutTail copies the bytes of path from off to the end into a file set
// aside, fsyncs it, then truncates path at off and fsyncs it: the good part
// stays where it is, the bad part is kept for a person to look at, and a
// crash in between at worst leaves the copy twice.
func cutTail(path string, off int64, now time.Time) (string, error) {
	src, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer src.Close()
	to := asideName(path, now)
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, off, 1<<62))
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = src.Truncate(off)
	}
	if err == nil {
		err = src.Sync()
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	return to, err
}
