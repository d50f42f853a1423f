// Command strata mounts a Strata overlay. It takes fuse-overlayfs' command
// line:
//
//	strata [-f] [-d] [-s] -o lowerdir=L1:L2,upperdir=U,workdir=W MOUNTPOINT
//	strata SOURCE MOUNTPOINT -o OPTIONS   (as mount -t fuse.strata runs it)
//
// Without -f it daemonizes, and the command returns only once the mount
// serves requests: 0 when it does, non-zero with the reason when it
// cannot. The daemon is forked before the Go runtime starts where cgo
// allows it (detach_cgo.go), else the command runs itself again in the
// background (daemon.go).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/stratafs/strata"
	"github.com/stratafs/strata/mountopt"
)

func main() {
	os.Unsetenv(noDetachEnv)
	os.Exit(run(os.Args[1:]))
}

func fail(err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(os.Stderr, "strata: %s\n", msg)
	return 1
}

func run(args []string) int {
	o, action, err := mountopt.ParseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata: %s (see strata --help)\n", err)
		return 2
	}
	switch action {
	case mountopt.ActionHelp:
		fmt.Print(mountopt.Usage())
		return 0
	case mountopt.ActionVersion:
		fmt.Println(mountopt.VersionString())
		return 0
	}
	setProcs(o.Threaded)
	if readyFd := os.Getenv(daemonEnv); readyFd != "" {
		fd, err := strconv.Atoi(readyFd)
		if err != nil {
			return 1
		}
		os.Unsetenv(daemonEnv)
		return runDaemon(o, os.NewFile(uintptr(fd), "ready"), false)
	}
	detached := detachedFd()
	if detached >= 0 && o.Foreground {
		// Forked before Go started, for a mount that is to stay in the
		// foreground after all: the parent runs the command again.
		again(detached)
		return 0
	}
	for _, n := range o.Notices {
		fmt.Fprintf(os.Stderr, "strata: %s\n", n)
	}
	if detached >= 0 {
		// The mount validates the options, and fails as below.
		return runDaemon(o, os.NewFile(uintptr(detached), "ready"), true)
	}
	if err := o.Validate(); err != nil {
		return fail(err)
	}
	if !o.Foreground {
		return daemonize(args)
	}
	srv, err := strata.MountHooks(o, testHooks())
	if err != nil {
		return fail(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		if err := srv.Unmount(); err != nil {
			fmt.Fprintf(os.Stderr, "strata: %s\n", err)
		}
	}()
	srv.Wait()
	writeStats(srv)
	return 0
}
