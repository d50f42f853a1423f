package mountopt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// IsInside reports whether child is strictly below parent, comparing
// cleaned paths component-wise: /a/b/c is inside /a/b, while /a/b and
// /a/bc are not. Both paths should be absolute.
func IsInside(parent, child string) bool {
	parent, child = filepath.Clean(parent), filepath.Clean(child)
	if parent == child {
		return false
	}
	if parent == "/" {
		return strings.HasPrefix(child, "/")
	}
	return strings.HasPrefix(child, parent+"/")
}

// dir is one directory named by the options.
type dir struct {
	role  string // "lowerdir", "upperdir", "workdir" or "mountpoint"
	given string // as in Options, for messages
	real  string // absolute, symlinks resolved
	st    *syscall.Stat_t
}

// same reports whether a and b are the same directory, by path or inode.
func (a *dir) same(b *dir) bool {
	return a.real == b.real || (a.st.Dev == b.st.Dev && a.st.Ino == b.st.Ino)
}

// Validate checks the options against the filesystem before mounting: the
// layer directories and the mountpoint exist and are directories, layers
// do not overlap, workdir shares upperdir's filesystem and both are
// writable unless ReadOnly. On success it replaces every path by its
// absolute, symlink-free form; on failure it changes nothing. It never
// creates or removes anything.
func (o *Options) Validate() error {
	if len(o.Lowers) == 0 {
		return errors.New("no lowerdir given")
	}
	if o.Work != "" && o.Upper == "" {
		return errors.New("workdir= given without upperdir=")
	}
	if o.Upper != "" && o.Work == "" {
		return errors.New("upperdir= given without workdir=")
	}
	if o.Mountpoint == "" {
		return errors.New("missing mountpoint")
	}

	lowers := make([]*dir, len(o.Lowers))
	for i, l := range o.Lowers {
		if l == "" {
			return fmt.Errorf("lowerdir: empty entry (layer %d)", i+1)
		}
		d, err := lookupDir("lowerdir", l)
		if err != nil {
			return err
		}
		for _, prev := range lowers[:i] {
			if d.same(prev) {
				if d.given == prev.given {
					return fmt.Errorf("lowerdir %q is given twice", d.given)
				}
				return fmt.Errorf("lowerdir %q and lowerdir %q are the same directory", prev.given, d.given)
			}
		}
		lowers[i] = d
	}

	var upper, work *dir
	if o.Upper != "" {
		var err error
		if upper, err = lookupDir("upperdir", o.Upper); err != nil {
			return err
		}
		if work, err = lookupDir("workdir", o.Work); err != nil {
			return err
		}
	}
	mnt, err := lookupDir("mountpoint", o.Mountpoint)
	if err != nil {
		return err
	}

	if upper != nil {
		if err := checkApart(upper, work); err != nil {
			return err
		}
		for _, l := range lowers {
			if err := checkApart(upper, l); err != nil {
				return err
			}
			if err := checkApart(work, l); err != nil {
				return err
			}
		}
		if upper.st.Dev != work.st.Dev {
			return fmt.Errorf("workdir %q and upperdir %q are on different filesystems", work.given, upper.given)
		}
		// The mountpoint may not hide the upper layers: equal is as bad as inside.
		for _, d := range []*dir{upper, work} {
			if mnt.same(d) {
				return fmt.Errorf("mountpoint %q is the same directory as %s %q", mnt.given, d.role, d.given)
			}
		}
	}
	// Mounting over a lowerdir itself is allowed, as with fuse-overlayfs.
	for _, d := range append([]*dir{upper, work}, lowers...) {
		if d != nil && IsInside(d.real, mnt.real) {
			return fmt.Errorf("mountpoint %q is inside %s %q", mnt.given, d.role, d.given)
		}
	}

	if upper != nil && !o.ReadOnly {
		for _, d := range []*dir{upper, work} {
			if err := unix.Access(d.real, unix.W_OK); err != nil {
				return fmt.Errorf("%s %q is not writable: %v", d.role, d.given, err)
			}
		}
	}

	for i, l := range lowers {
		o.Lowers[i] = l.real
	}
	if upper != nil {
		o.Upper, o.Work = upper.real, work.real
	}
	o.Mountpoint = mnt.real
	return nil
}

// lookupDir checks that path names a directory and resolves it.
func lookupDir(role, path string) (*dir, error) {
	if strings.Contains(path, "\n") {
		return nil, fmt.Errorf("%s %q: path contains a newline", role, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %v", role, path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("%s %q: no such directory", role, path)
		}
		return nil, fmt.Errorf("%s %q: %v", role, path, unwrapPathError(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s %q is not a directory", role, path)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %v", role, path, unwrapPathError(err))
	}
	if strings.Contains(real, "\n") {
		return nil, fmt.Errorf("%s %q: resolved path %q contains a newline", role, path, real)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("%s %q: cannot stat", role, path)
	}
	return &dir{role: role, given: path, real: real, st: st}, nil
}

// checkApart fails if a and b are the same directory or one is inside the other.
func checkApart(a, b *dir) error {
	switch {
	case a.same(b):
		if a.given == b.given {
			return fmt.Errorf("%s and %s are the same directory %q", a.role, b.role, a.given)
		}
		return fmt.Errorf("%s %q and %s %q are the same directory", a.role, a.given, b.role, b.given)
	case IsInside(a.real, b.real):
		return fmt.Errorf("%s %q is inside %s %q", b.role, b.given, a.role, a.given)
	case IsInside(b.real, a.real):
		return fmt.Errorf("%s %q is inside %s %q", a.role, a.given, b.role, b.given)
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
