package coherence

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/stratafs/strata/internal/mounttest"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the "other process" of the scenarios: run
// with helperEnv set, it performs one operation on a file and exits.
const helperEnv = "STRATA_COHERENCE_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		if err := helperMain(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(mounttest.RunTests(m))
}

// other runs one operation in a separate process and returns its output.
func other(args ...string) (string, error) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("helper %v: %v: %s", args, err, ee.Stderr)
		}
		return "", fmt.Errorf("helper %v: %v", args, err)
	}
	return string(out), nil
}

func atoi(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return n
}

func helperMain(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: OP PATH ...")
	}
	op, path := args[0], args[1]
	switch op {
	case "pwrite": // PATH OFF DATA
		fd, err := unix.Open(path, unix.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_, err = unix.Pwrite(fd, []byte(args[3]), atoi(args[2]))
		return err
	case "truncate": // PATH SIZE
		fd, err := unix.Open(path, unix.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Ftruncate(fd, atoi(args[2]))
	case "copyrange": // SRC OFF DST OFF LEN: copy_file_range(2)
		in, err := unix.Open(path, unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(in)
		out, err := unix.Open(args[3], unix.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(out)
		offIn, offOut, n := atoi(args[2]), atoi(args[4]), int(atoi(args[5]))
		for n > 0 {
			c, err := unix.CopyFileRange(in, &offIn, out, &offOut, n, 0)
			if err != nil {
				return err
			}
			if c == 0 {
				return fmt.Errorf("copy_file_range: the source ended with %d bytes left", n)
			}
			n -= c
		}
		return nil
	case "mapwrite": // PATH OFF DATA: write through a shared mapping
		fd, err := unix.Open(path, unix.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		m, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return err
		}
		copy(m[atoi(args[2]):], args[3])
		if err := unix.Msync(m, unix.MS_SYNC); err != nil {
			return err
		}
		return unix.Munmap(m)
	case "mapread": // PATH OFF LEN: read through a fresh shared mapping
		fd, err := unix.Open(path, unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		m, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return err
		}
		defer unix.Munmap(m)
		off, n := atoi(args[2]), atoi(args[3])
		_, err = os.Stdout.Write(m[off : off+n])
		return err
	case "read": // PATH OFF LEN
		fd, err := unix.Open(path, unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		buf := make([]byte, atoi(args[3]))
		n, err := unix.Pread(fd, buf, atoi(args[2]))
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(buf[:n])
		return err
	}
	return fmt.Errorf("unknown op %q", op)
}
