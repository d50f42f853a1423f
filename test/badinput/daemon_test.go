package badinput

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// TestDaemonDetaches: the command returns once the mount serves and leaves
// a daemon that holds nothing of its caller's: a session of its own, its
// standard streams on /dev/null (runStrata's pipes reached EOF, or it
// would not have returned), no directory but "/" as its working directory.
// Both ways of getting there are checked: forked before Go starts (where
// the binary has cgo; the daemon's environment then lacks the variable a
// re-executed daemon is started with), and the command run again in the
// background, which it falls back to for a command line the C side cannot
// tell from a foreground one (here a mount point whose name holds
// "debug").
func TestDaemonDetaches(t *testing.T) {
	mounttest.Require(t)
	bin := mounttest.Binary(t)
	forks := false
	if info, err := buildinfo.ReadFile(bin); err == nil {
		for _, s := range info.Settings {
			forks = forks || s.Key == "CGO_ENABLED" && s.Value == "1"
		}
	}
	for _, c := range []struct {
		mnt    string
		forked bool
	}{
		{"m", forks},
		{"debug-m", false},
	} {
		t.Run(c.mnt, func(t *testing.T) {
			e := newEnv(t, t.TempDir())
			mnt := e.mkdir(filepath.Join(e.Root, c.mnt))
			pid := mountStrata(t, "", mnt, "-o", opts(e.L1+":"+e.L2, e.U, e.W), mnt)

			if got, err := os.ReadFile(filepath.Join(mnt, "a")); err != nil || string(got) != "lower one\n" {
				t.Errorf("a through the mount: %q, %v", got, err)
			}
			if sid, err := unix.Getsid(pid); err != nil || sid != pid {
				t.Errorf("daemon %d: session %d (%v), want a session of its own", pid, sid, err)
			}
			for fd := 0; fd <= 2; fd++ {
				if to, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); to != os.DevNull {
					t.Errorf("daemon %d: fd %d is %q (%v), want %s", pid, fd, to, err, os.DevNull)
				}
			}
			if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != "/" {
				t.Errorf("daemon %d: working directory %q (%v), want /", pid, cwd, err)
			}
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err != nil {
				t.Fatal(err)
			}
			reexecuted := bytes.Contains(environ, []byte("_STRATA_DAEMON_READY_FD="))
			if reexecuted == c.forked {
				t.Errorf("daemon %d: started by running the command again: %v, want %v", pid, reexecuted, !c.forked)
			}
		})
	}
}
