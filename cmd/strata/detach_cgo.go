//go:build cgo

package main

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

// The write end of the pipe to the waiting parent in a process that
// strata_detach forked, -1 anywhere else.
int strata_detached_fd = -1;

// strata_stays reports whether the command line may ask for anything
// but a mount in the background: help, the version, the foreground
// (-f, -d, or the debug option, which implies it), no arguments, or a Go
// test binary's flags. It errs on the side of staying: a false yes only
// costs the slower way (daemonize in daemon.go runs the command again).
static int strata_stays(int argc, char **argv)
{
#ifndef __GLIBC__
	return 1; // only glibc hands constructors the arguments
#endif
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			break;
		if (strcmp(a, "-f") == 0 || strcmp(a, "-d") == 0 ||
		    strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 ||
		    strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0 ||
		    strncmp(a, "-test.", 6) == 0 || strstr(a, "debug") != NULL)
			return 1;
	}
	return getenv("_STRATA_DAEMON_READY_FD") != NULL ||
	       getenv("_STRATA_NO_DETACH") != NULL;
}

// strata_detach runs before the Go runtime starts (an ELF constructor),
// while the process is still one thread and can fork: the child goes on
// into Go as the daemon, in a session of its own, and the parent, which
// never starts Go, waits for its word on a pipe: "ok" once the mount
// serves (runDaemon in daemon.go), "again" when Go finds a foreground
// mount after all, or the pipe's end, when the child's exit status is
// the command's.
__attribute__((constructor)) static void strata_detach(int argc, char **argv)
{
	int p[2], st;
	char buf[8];
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (strata_stays(argc, argv) || pipe2(p, O_CLOEXEC) != 0)
		return;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		strata_detached_fd = p[1];
		return;
	}
	close(p[1]);
	while (n < sizeof buf && memchr(buf, '\n', n) == NULL) {
		r = read(p[0], buf + n, sizeof buf - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
	}
	if (n == 3 && memcmp(buf, "ok\n", 3) == 0)
		_exit(0);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "strata: waiting for the daemon: %s\n", strerror(errno));
			_exit(1);
		}
	}
	if (n == 6 && memcmp(buf, "again\n", 6) == 0) {
		setenv("_STRATA_NO_DETACH", "1", 1);
		execv("/proc/self/exe", argv);
		fprintf(stderr, "strata: re-executing itself: %s\n", strerror(errno));
		_exit(1);
	}
	if (WIFEXITED(st))
		_exit(WEXITSTATUS(st));
	fprintf(stderr, "strata: the daemon was killed (signal %d) before the mount was ready\n",
		WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	_exit(1);
}
*/
import "C"

import "unsafe"

// detachedFd is the pipe to the parent waiting for the daemon's word when
// the process was forked before Go started (strata_detach above), or -1.
func detachedFd() int { return int(C.strata_detached_fd) }

// cStays asks strata_stays about a command line (args without the
// program's name), for the test that holds it to mountopt.ParseArgs.
func cStays(args []string) bool {
	argv := make([]*C.char, 0, len(args)+2)
	argv = append(argv, C.CString("strata"))
	for _, a := range args {
		argv = append(argv, C.CString(a))
	}
	argv = append(argv, nil)
	defer func() {
		for _, p := range argv {
			C.free(unsafe.Pointer(p))
		}
	}()
	return C.strata_stays(C.int(len(argv)-1), &argv[0]) != 0
}
