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
	"strconv"
	"strings"
	"syscall"

	"github.com/stratafs/strata"
	"github.com/stratafs/strata/fusefs"
	"github.com/stratafs/strata/mountopt"
	"github.com/stratafs/strata/overlay"
)

// daemonEnv tells the re-executed daemon which descriptor to report
// readiness on.
const daemonEnv = "_STRATA_DAEMON_READY_FD"

// statsEnv names a file for the daemon's counters at exit.
const statsEnv = "STRATA_STATS_FILE"

// daemonize starts the daemon as a new session in the background and
// waits for its word: "ok" once the mount serves, or the error. The
// daemon's standard streams are /dev/null (unless debugging), so that a
// caller capturing them, as container engines do, is not kept waiting.
func daemonize(args []string, debug bool) int {
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
	if debug {
		cmd.Stderr = os.Stderr
	}
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

// runDaemon is the background half: mount, report, serve until the mount
// goes away.
func runDaemon(o *mountopt.Options, fdStr string) int {
	fd, err := strconv.Atoi(fdStr)
	if err != nil {
		return 1
	}
	os.Unsetenv(daemonEnv)
	os.Chdir("/") // paths are absolute by now; keep no directory busy
	ready := os.NewFile(uintptr(fd), "ready")
	srv, err := strata.MountHooks(o, testHooks())
	if err != nil {
		fmt.Fprintf(ready, "%s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		ready.Close()
		return 1
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
	if err == nil {
		os.WriteFile(path, append(b, '\n'), 0644)
	}
}
