package overlay

import (
	"errors"
	"syscall"
)

// errno extracts the errno from err; anything that is not one becomes EIO.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// ignoreENOENT maps ENOENT to nil.
func ignoreENOENT(err error) error {
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}
