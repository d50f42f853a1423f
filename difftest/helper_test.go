package difftest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
)

// Operations with Op.As run in a child process of the test binary (this
// test, re-executed) with the user's credentials: a Go program cannot
// change the credentials of one thread only, and the in-process Strata
// server must stay root.
func init() {
	RunAs = runAsHelper
}

type helperResult struct {
	Errno int
	Data  string
}

func runAsHelper(root string, o Op) Result {
	enc, err := json.Marshal(o)
	if err != nil {
		panic(err)
	}
	bin, err := helperBinary()
	if err != nil {
		return Result{Errno: syscall.EIO, Data: "helper: " + err.Error()}
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DIFFTEST_HELPER=1", "DIFFTEST_ROOT="+root, "DIFFTEST_OP="+string(enc))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(o.As), Gid: uint32(o.As), Groups: []uint32{}}}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return Result{Errno: syscall.EIO, Data: fmt.Sprintf("helper: %v: %s", err, errOut.String())}
	}
	var r helperResult
	line := out.Bytes()
	if i := bytes.Index(line, []byte("DIFFTEST_RESULT ")); i >= 0 {
		line = line[i+len("DIFFTEST_RESULT "):]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return Result{Errno: syscall.EIO, Data: fmt.Sprintf("helper output %q: %v", out.String(), err)}
	}
	return Result{Errno: syscall.Errno(r.Errno), Data: r.Data}
}

var (
	helperOnce sync.Once
	helperDir  string
	helperBin  string
	helperErr  error
)

// helperBinary copies the test binary where other users can run it (go
// test builds it in a private directory).
func helperBinary() (string, error) {
	helperOnce.Do(func() {
		helperDir, helperErr = os.MkdirTemp("", "difftest-helper-")
		if helperErr != nil {
			return
		}
		if helperErr = os.Chmod(helperDir, 0755); helperErr != nil {
			return
		}
		var data []byte
		if data, helperErr = os.ReadFile(os.Args[0]); helperErr != nil {
			return
		}
		helperBin = helperDir + "/difftest.test"
		helperErr = os.WriteFile(helperBin, data, 0755)
	})
	return helperBin, helperErr
}

func TestMain(m *testing.M) {
	code := m.Run()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

// TestHelperProcess is the child of runAsHelper; it does nothing in a
// normal run.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("DIFFTEST_HELPER") == "" {
		t.Skip("helper process for operations as another user")
	}
	var o Op
	if err := json.Unmarshal([]byte(os.Getenv("DIFFTEST_OP")), &o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o.As = 0
	r := NewSide(os.Getenv("DIFFTEST_ROOT")).Apply(o)
	enc, _ := json.Marshal(helperResult{Errno: int(r.Errno), Data: r.Data})
	fmt.Printf("DIFFTEST_RESULT %s\n", enc)
	os.Exit(0)
}
