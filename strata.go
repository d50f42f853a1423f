// Package strata is the Go API for mounting a Strata overlay: validate the
// options, mount, wait for the mount to end, unmount. The command in
// cmd/strata is a thin layer over it, and so are the tests.
//
// The overlay semantics live in package overlay (no FUSE there), the FUSE
// protocol in package fusefs, and the command line in package mountopt.
package strata
