package overlay

import (
	"golang.org/x/sys/unix"
)

// SharedWhiteout is the name, in workdir/work, of the whiteout that new
// whiteouts are hard links to. Kernel overlayfs does the same (its
// "shared whiteout"): a link costs a directory entry, where a new device
// node costs the filesystem an inode to allocate and, later, to free,
// which on ext4 is several times slower (unlinking every file of a lower
// layer is mostly making whiteouts). Every link is a whiteout like any
// other, a character device 0/0, to the kernel and to Strata. The work
// directory is emptied at mount (by Strata and by the kernel), which
// removes this name but not the links.
const SharedWhiteout = "whiteout"

// makeWhiteout creates a whiteout at rel under dirfd, where nothing may
// be: a link to the shared whiteout, which it creates when missing; or,
// where links cannot be made (a filesystem without hard links, upper and
// work directories on different mounts), a device node of its own, as
// for every whiteout after that. When the shared whiteout has all the
// links the filesystem allows, it becomes this whiteout itself, and the
// next call creates a new one, as the kernel does.
//
// The caller holds treeMu exclusively, which keeps the shared whiteout's
// creation and replacement to one goroutine at a time.
func (fs *FS) makeWhiteout(dirfd int, rel string) error {
	if fs.noSharedWhiteout.Load() {
		return unix.Mknodat(dirfd, rel, unix.S_IFCHR, 0)
	}
	for try := 0; ; try++ {
		err := unix.Linkat(fs.workDir, SharedWhiteout, dirfd, rel, 0)
		switch {
		case err == nil:
			return nil
		case err == unix.EEXIST:
			return err // rel exists: a new whiteout cannot be put there
		case err == unix.ENOENT && try == 0:
			// The shared whiteout is missing (first use since mount), or
			// rel's directory is: create the former and try once more.
			err := unix.Mknodat(fs.workDir, SharedWhiteout, unix.S_IFCHR, 0)
			if err != nil && err != unix.EEXIST {
				return err
			}
		case err == unix.ENOENT:
			return err // rel's directory is missing
		case err == unix.EMLINK:
			// As many links as the filesystem allows: the shared whiteout
			// becomes this one, and the next call makes a new one.
			err := unix.Renameat2(fs.workDir, SharedWhiteout, dirfd, rel, unix.RENAME_NOREPLACE)
			if err == unix.EINVAL {
				err = unix.Mknodat(dirfd, rel, unix.S_IFCHR, 0)
			}
			return err
		default:
			// EXDEV, EPERM, ...: no links here. Make whiteouts of their
			// own from now on.
			fs.noSharedWhiteout.Store(true)
			return unix.Mknodat(dirfd, rel, unix.S_IFCHR, 0)
		}
	}
}
