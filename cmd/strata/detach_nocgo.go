//go:build !cgo

package main

// detachedFd is -1: without cgo there is no constructor that forks before
// Go starts, and main.go re-executes itself to daemonize.
func detachedFd() int { return -1 }
