package overlay

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Copying byte ranges between real files: the data of a copy-up, and
// copy_file_range(2) between two files of the mount (CopyRange).

// copyRangeMax bounds one CopyRange. The copy is made while the request
// waits, and a mount that serves one request at a time serves no other
// meanwhile; copy_file_range(2) callers take a short copy as they take a
// short write, and ask for the rest.
const copyRangeMax = 64 << 20

// CopyRange copies up to length bytes of src's data at offIn to dst's
// data at offOut, copying dst up first (with all its data), and returns
// how many it copied: fewer at src's end of file, and at most
// copyRangeMax. The real filesystems copy the data (copy_file_range, or
// read and write where they cannot), so it never passes through the
// caller. With keepMtime, dst's real file keeps its modification time,
// as with WriteKeepingMtime. src and dst may be the same node; the caller
// (the kernel) has refused overlapping ranges of one file.
func (fs *FS) CopyRange(src *Node, offIn int64, dst *Node, offOut int64, length int64, keepMtime bool) (int64, error) {
	if offIn < 0 || offOut < 0 || length < 0 {
		return 0, unix.EINVAL
	}
	length = min(length, copyRangeMax)
	sfd := -1
	if src != dst {
		// A descriptor of its own for the source, so that no two data
		// locks are ever held together (copy-up of dst takes locks that
		// come before them). The bytes it reads are src's at this moment:
		// a later copy-up of src only changes which file later writes go
		// to.
		fd, err := fs.dupData(src)
		if err != nil {
			return 0, err
		}
		defer unix.Close(fd)
		sfd = fd
	}
	// All of dst's data first: the copy writes to its real file directly,
	// past a fill's bookkeeping (fill.go).
	b, err := fs.acquireFor(dst, true, -1)
	if err != nil {
		return 0, err
	}
	defer dst.dataMu.RUnlock()
	if !dst.written.Load() {
		dst.written.Store(true)
	}
	if sfd < 0 {
		sfd = b.fd
	}
	var copied int64
	copyData := func() (err error) {
		copied, err = copyBetween(sfd, offIn, b.fd, offOut, length)
		return err
	}
	if !keepMtime {
		err = copyData()
		return copied, err
	}
	dst.timesMu.Lock()
	defer dst.timesMu.Unlock()
	err = keepingMtime(b.fd, copyData)
	return copied, err
}

// dupData returns a descriptor of the real file that holds all of n's
// data now: its backing file, after any copy-up data still to come has
// arrived (a fill's unfilled chunks are holes in the copy).
func (fs *FS) dupData(n *Node) (int, error) {
	for {
		b, err := fs.acquire(n, false)
		if err != nil {
			return -1, err
		}
		if n.fill.Load() == nil {
			fd, err := unix.FcntlInt(uintptr(b.fd), unix.F_DUPFD_CLOEXEC, 0)
			n.dataMu.RUnlock()
			return fd, err
		}
		n.dataMu.RUnlock()
		if err := fs.fillData(n); err != nil {
			return -1, err
		}
	}
}

// copyBetween copies up to n bytes from sfd at roff to tfd at woff and
// returns how many it copied (fewer if sfd ends first).
func copyBetween(sfd int, roff int64, tfd int, woff int64, n int64) (int64, error) {
	var total int64
	for total < n {
		chunk := min(n-total, 1<<30)
		c, err := unix.CopyFileRange(sfd, &roff, tfd, &woff, int(chunk), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				c, err := copyBetweenRW(sfd, roff, tfd, woff, n-total)
				return total + c, err
			}
			return total, err
		}
		if c == 0 {
			break // sfd ended
		}
		total += int64(c)
	}
	return total, nil
}

// copyBetweenRW is copyBetween by reading and writing, for filesystems
// that copy_file_range(2) cannot copy between.
func copyBetweenRW(sfd int, roff int64, tfd int, woff int64, n int64) (int64, error) {
	buf := make([]byte, min(n, 1<<20))
	var total int64
	for total < n {
		chunk := buf[:min(int64(len(buf)), n-total)]
		r, err := preadFull(sfd, chunk, roff+total)
		if r > 0 {
			if _, err := pwriteFull(tfd, chunk[:r], woff+total); err != nil {
				return total, err
			}
			total += int64(r)
		}
		if err != nil || r < len(chunk) {
			return total, err // an error, or sfd ended
		}
	}
	return total, nil
}

// copyRange copies [off, off+n) from sfd to the same offsets of tfd (a
// source that ends early leaves the rest to the caller's truncate).
func copyRange(sfd, tfd int, off, n int64) error {
	_, err := copyBetween(sfd, off, tfd, off, n)
	return err
}
