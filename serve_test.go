package strata_test

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratafs/strata"
	"github.com/stratafs/strata/internal/mounttest"
	"github.com/stratafs/strata/overlay"
	"golang.org/x/sys/unix"
)

// TestServeOneRequestAtATime checks the two ways of serving requests
// (strata.go, fuseOptions): by default a request that the daemon is busy
// with holds up every other, as in fuse-overlayfs; with threaded=1 others
// are answered meanwhile. A creation in a lower directory is held inside
// the daemon (its directory's copy-up, stopped by a hook) while another
// process looks up a name elsewhere.
func TestServeOneRequestAtATime(t *testing.T) {
	for _, threaded := range []bool{false, true} {
		name := "serial"
		if threaded {
			name = "threaded"
		}
		t.Run(name, func(t *testing.T) {
			mounttest.Require(t)
			s := mounttest.NewStack(t, 1)
			mounttest.WriteFile(t, filepath.Join(s.Lowers[0], "slow"), "data")
			mounttest.WriteFile(t, filepath.Join(s.Lowers[0], "other"), "x")
			var armed atomic.Bool
			held, release := make(chan struct{}), make(chan struct{})
			hooks := overlay.Hooks{AttrAfterFstat: func(*overlay.Node) {
				if armed.CompareAndSwap(true, false) {
					close(held)
					<-release
				}
			}}
			o := s.Options()
			o.Threaded = threaded
			srv, err := strata.MountHooks(o, hooks)
			if err != nil {
				t.Fatalf("mount: %v", err)
			}
			released := false
			t.Cleanup(func() {
				if !released {
					close(release)
				}
				if err := srv.Unmount(); err != nil {
					t.Errorf("unmount: %v", err)
					mounttest.ForceUnmount(s.Mnt)
				}
			})

			// Reading the file opens it in the daemon, so that its
			// attributes come from the open file (where the hook is).
			slow := filepath.Join(s.Mnt, "slow")
			if _, err := os.ReadFile(slow); err != nil {
				t.Fatal(err)
			}
			armed.Store(true)
			statted := make(chan error, 1)
			go func() {
				// Past the kernel's attribute cache: a GETATTR is sent.
				var stx unix.Statx_t
				statted <- unix.Statx(unix.AT_FDCWD, slow, unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS, &stx)
			}()
			select {
			case <-held:
			case err := <-statted:
				t.Fatalf("the stat did not stop in the daemon (%v): the test is void", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the stat never reached the hook")
			}
			looked := make(chan error, 1)
			go func() {
				_, err := os.Lstat(filepath.Join(s.Mnt, "other"))
				looked <- err
			}()
			if threaded {
				select {
				case err := <-looked:
					if err != nil {
						t.Fatalf("lookup meanwhile: %v", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("threaded: a lookup waited for another request")
				}
			} else {
				select {
				case err := <-looked:
					t.Fatalf("serial: a lookup was answered (%v) while another request was being served", err)
				case <-time.After(300 * time.Millisecond):
				}
			}
			close(release)
			released = true
			if err := <-statted; err != nil {
				t.Fatalf("stat: %v", err)
			}
			if !threaded {
				if err := <-looked; err != nil {
					t.Fatalf("lookup after: %v", err)
				}
			}
		})
	}
}
