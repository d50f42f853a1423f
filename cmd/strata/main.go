// Command strata mounts a Strata overlay. It takes fuse-overlayfs' command
// line:
//
//	strata [-f] [-d] [-s] -o lowerdir=L1:L2,upperdir=U,workdir=W MOUNTPOINT
//	strata SOURCE MOUNTPOINT -o OPTIONS   (as mount -t fuse.strata runs it)
//
// Without -f it daemonizes, and the command returns only once the mount
// serves requests: 0 when it does, non-zero with the reason when it
// cannot.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/stratafs/strata"
	"github.com/stratafs/strata/mountopt"
)

func main() {
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
		return runDaemon(o, readyFd)
	}
	for _, n := range o.Notices {
		fmt.Fprintf(os.Stderr, "strata: %s\n", n)
	}
	if err := o.Validate(); err != nil {
		return fail(err)
	}
	if !o.Foreground {
		return daemonize(args, o.Debug)
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
