// Package treecmp records what a directory tree shows (names, types,
// permissions, owners, sizes, content hashes, symlink targets, link counts
// and user xattrs) and reports how two records differ. Tests use it to
// compare a Strata mount with kernel overlayfs over the same layers.
package treecmp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Entry is what one path shows.
type Entry struct {
	Mode   uint32 // type and permission bits
	UID    uint32
	GID    uint32
	Size   int64  // regular files and symlinks
	Nlink  uint64 // non-directories
	Hash   string // regular files
	Target string // symlinks
	Xattrs string // user.* names and values, sorted
}

// Tree maps slash-separated paths relative to the root to entries.
type Tree map[string]Entry

// Walk records the tree under root.
func Walk(root string) (Tree, error) {
	t := Tree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := Entry{Mode: st.Mode, UID: st.Uid, GID: st.Gid}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
		case unix.S_IFREG:
			e.Size, e.Nlink = st.Size, st.Nlink
			h, err := hashFile(p)
			if err != nil {
				return err
			}
			e.Hash = h
		case unix.S_IFLNK:
			e.Size, e.Nlink = st.Size, st.Nlink
			e.Target, _ = os.Readlink(p)
		default:
			e.Nlink = st.Nlink
		}
		e.Xattrs = userXattrs(p)
		t[filepath.ToSlash(rel)] = e
		return nil
	})
	return t, err
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

func userXattrs(p string) string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var parts []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			continue
		}
		parts = append(parts, name+"="+string(v[:m]))
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}

// Diff lists the differences between a and b, at most max of them.
func Diff(a, b Tree, max int) []string {
	var out []string
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		ea, oka := a[k]
		eb, okb := b[k]
		switch {
		case !oka:
			out = append(out, fmt.Sprintf("%s: only in the second (%+v)", k, eb))
		case !okb:
			out = append(out, fmt.Sprintf("%s: only in the first (%+v)", k, ea))
		case ea != eb:
			out = append(out, fmt.Sprintf("%s: %+v vs %+v", k, ea, eb))
		}
		if len(out) >= max {
			break
		}
	}
	return out
}
