package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stratafs/strata"
	"github.com/stratafs/strata/fusefs"
	"github.com/stratafs/strata/mountopt"
	"github.com/stratafs/strata/overlay"
)

// daemonEnv tells the re-executed daemon which descriptor to report
// readiness on.
const daemonEnv = "_STRATA_DAEMON_READY_FD"

// noDetachEnv keeps strata_detach (detach_cgo.go) from forking the
// command run again after "again".
const noDetachEnv = "_STRATA_NO_DETACH"

// statsEnv names a file for the daemon's counters at exit.
const statsEnv = "STRATA_STATS_FILE"

// daemonize starts the daemon as a new session in the background and
// waits for its word: "ok" once the mount serves, or the error. It runs
// the command again for that, in a new process, where strata_detach
// (detach_cgo.go) did not fork before Go started: without cgo, or for a
// command line it could not tell apart from a foreground one. The
// daemon's standard streams are /dev/null, so that a caller capturing
// them, as container engines do, is not kept waiting (debug output
// implies the foreground: mountopt).
func daemonize(args []string) int {
	self, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), daemonEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	w.Close()
	devnull.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fail(err)
	}
	line = strings.TrimSpace(line)
	if line == "ok" {
		cmd.Process.Release()
		return 0
	}
	cmd.Wait()
	if line == "" {
		return fail(errors.New("the daemon exited before the mount was ready"))
	}
	fmt.Fprintf(os.Stderr, "strata: %s\n", line)
	return 1
}

// runDaemon is the background half: mount, tell the parent waiting on
// ready, serve until the mount goes away. A daemon the command re-executed
// (daemonize) reports a failure to mount on ready, for the parent to show,
// and has /dev/null for its standard streams from the start; one forked
// before Go started (detached, detach_cgo.go) still has the caller's, so
// it shows a failure itself, the parent passing on its exit status, and
// lets go of them once the mount serves.
func runDaemon(o *mountopt.Options, ready *os.File, detached bool) int {
	defer ready.Close()
	os.Chdir("/") // paths are absolute by now; keep no directory busy
	srv, err := strata.MountHooks(o, testHooks())
	if err != nil {
		if detached {
			return fail(err)
		}
		fmt.Fprintf(ready, "%s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	if detached {
		if err := nullStdio(); err != nil {
			srv.Unmount()
			srv.Wait()
			return fail(err)
		}
	}
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		srv.Unmount()
	}()
	fmt.Fprintln(ready, "ok")
	ready.Close()
	stop := startProfile()
	srv.Wait()
	stop()
	writeStats(srv)
	return 0
}

// nullStdio points the standard streams at /dev/null, so that a caller
// capturing them, as container engines do, is not kept waiting by the
// daemon.
func nullStdio() error {
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(null)
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(null, fd, 0); err != nil {
			return err
		}
	}
	return nil
}

// again tells the parent that forked this process before Go started that
// the command is not a mount in the background after all (strata_detach
// errs on the side of forking only for what the C side can tell): it runs
// the command again, in itself, with no fork.
func again(fd int) {
	f := os.NewFile(uintptr(fd), "ready")
	fmt.Fprintln(f, "again")
	f.Close()
}

// writeStats leaves the engine's counters, as JSON, in the file named by
// STRATA_STATS_FILE when the mount ends (for tests and benchmarks).
func writeStats(srv *strata.Server) {
	path := os.Getenv(statsEnv)
	if path == "" {
		return
	}
	b, err := json.Marshal(struct {
		overlay.Stats
		Opens fusefs.OpenStats // with -o passthrough
	}{srv.FS.Stats(), srv.FUSE.OpenStats()})
	if err != nil {
		return
	}
	// Whole or not at all: a test waits for the file to appear and reads
	// it at once, and os.WriteFile creates it empty before writing.
	tmp := path + ".tmp"
	if os.WriteFile(tmp, append(b, '\n'), 0644) == nil {
		os.Rename(tmp, path)
	}
}
