package difftest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratafs/strata"
	"github.com/stratafs/strata/internal/mounttest"
	"github.com/stratafs/strata/mountopt"
	"golang.org/x/sys/unix"
)

// Case is one differential test: lower layers, operations applied to a
// Strata mount and to a kernel overlayfs mount over copies of them, and,
// with Cross, operations applied after each implementation has mounted
// the upper layer the other one wrote.
type Case struct {
	Name string
	// Seed generates the layers (GenLayers) when Layers is nil.
	Seed   int64
	Layers *LayerSpec
	// OCI gives Strata its lower layers in the OCI format; the kernel
	// gets them converted to its own format.
	OCI bool
	// Ops are applied to both mounts, the trees compared after each.
	Ops []Op
	// UserXattr mounts both with the overlay's xattrs in user.overlay.*
	// (Strata's and the kernel's userxattr option).
	UserXattr bool
	// Cross remounts after Ops: Strata over the layers the kernel wrote,
	// the kernel over the layers Strata wrote. Ops2 are then applied to
	// both.
	Cross bool
	Ops2  []Op
	// KnownBug, when set, skips the case in the regression test (unless
	// STRATA_DIFF_KNOWN=1): it describes a reported, unfixed bug.
	KnownBug string
}

// Spec returns the case's layer set.
func (c *Case) Spec() *LayerSpec {
	if c.Layers != nil {
		return c.Layers
	}
	return GenLayers(c.Seed, GenOptions{OCI: c.OCI})
}

// Failure is the first difference a case found.
type Failure struct {
	Phase string // layers, ops, end, cross, cross-ops, cross-end
	Kind  string // errno, tree, kernel-reads-strata, upper-format, strata-reads-kernel, hang, setup, ...
	Step  int    // index of the operation in its phase's list, -1 for none
	Op    *Op
	Diffs []string
}

func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", f.Phase, f.Kind)
	if f.Op != nil {
		fmt.Fprintf(&b, " after op %d (%s)", f.Step, f.Op)
	}
	for i, d := range f.Diffs {
		if i == 12 {
			fmt.Fprintf(&b, "\n\t... %d more", len(f.Diffs)-i)
			break
		}
		b.WriteString("\n\t")
		b.WriteString(d)
	}
	return b.String()
}

// Signature identifies the failure for shrinking: a smaller case must
// fail in the same way to be kept.
func (f *Failure) Signature() string {
	s := strings.TrimPrefix(f.Phase, "cross-") + "/" + f.Kind
	if f.Kind == "errno" && f.Op != nil {
		s += "/" + f.Op.Kind.String()
	}
	if len(f.Diffs) > 0 {
		s += "/" + diffField(f.Diffs[0])
	}
	return s
}

// diffField extracts what differs from a Diff line (`"path": field: ...`).
func diffField(d string) string {
	if strings.HasPrefix(d, "strata ") {
		return d // errno lines: "strata X, kernel Y"
	}
	if i := strings.LastIndex(d, "\": "); i >= 0 {
		d = d[i+3:]
	}
	if i := strings.IndexAny(d, ":("); i >= 0 {
		d = d[:i]
	}
	return strings.TrimSpace(d)
}

// Runner runs cases in fresh directories under Dir.
type Runner struct {
	T     testing.TB
	Dir   string
	Every int // compare the trees after every Every operations (and at the end)
	// OpTimeout bounds one operation or one tree walk on the Strata
	// mount; a Strata hang is reported, not waited for.
	OpTimeout time.Duration
	// Logf, when set, receives every operation and its results.
	Logf func(format string, args ...any)
	// ShowKnown reports the differences of known bugs too (they are
	// left out of comparisons otherwise): STRATA_DIFF_KNOWN=1.
	ShowKnown bool
	// Keep leaves the directories of failing runs in place (and logs
	// where): STRATA_DIFF_KEEP=1.
	Keep  bool
	trial int
}

// filter leaves out the difference lines of known bugs and of the
// copy-up-on-write difference.
func (s *session) filter(d []string) []string {
	var out []string
	for _, l := range d {
		if s.deferredLine(l) || s.failedMoveLine(l) || !s.r.ShowKnown && knownLine(l, s.taints) != nil {
			continue
		}
		out = append(out, l)
	}
	return out
}

// NewRunner returns a runner for t with the settings from the
// environment.
func NewRunner(t testing.TB) *Runner {
	mounttest.Require(t)
	r := &Runner{T: t, Dir: t.TempDir(), Every: envInt("STRATA_DIFF_EVERY", 1), OpTimeout: time.Minute}
	if os.Getenv("STRATA_DIFF_KEEP") != "" {
		dir, err := os.MkdirTemp("", "difftest-")
		if err != nil {
			t.Fatal(err)
		}
		r.Dir, r.Keep = dir, true
	}
	// Operations as other users (Op.As) must reach the mount points.
	os.Chmod(r.Dir, 0755)
	os.Chmod(filepath.Dir(r.Dir), 0755)
	r.ShowKnown = os.Getenv("STRATA_DIFF_KNOWN") == "1"
	if os.Getenv("STRATA_DIFF_VERBOSE") != "" {
		r.Logf = t.Logf
	}
	return r
}

// mount is one live mount, Strata or kernel.
type mount struct {
	r                *Runner
	lowers           []string
	upper, work, mnt string
	userXattr        bool
	srv              *strata.Server
	hung             bool
	done             bool
}

// remount unmounts and mounts again over the same directories.
func (m *mount) remount() error {
	if err := m.unmount(); err != nil {
		return err
	}
	var m2 *mount
	var err error
	if m.srv != nil {
		m2, err = m.r.mountStrata(m.lowers, m.upper, m.work, m.mnt, m.userXattr)
	} else {
		m2, err = m.r.mountKernel(m.lowers, m.upper, m.work, m.mnt, m.userXattr)
	}
	if err != nil {
		return err
	}
	m.srv, m.done = m2.srv, false
	m2.done = true // m unmounts it from now on
	return nil
}

func (r *Runner) mountStrata(lowers []string, upper, work, mnt string, userXattr bool) (*mount, error) {
	o := mountopt.DefaultOptions()
	o.Lowers = append([]string(nil), lowers...)
	o.Upper, o.Work, o.Mountpoint = upper, work, mnt
	o.Foreground = true
	o.UserXattr = userXattr
	o.Passthrough = mounttest.Passthrough()
	o.Threaded = mounttest.Threaded()
	o.Writeback = mounttest.Writeback()
	srv, err := strata.Mount(o)
	if err != nil {
		return nil, fmt.Errorf("mount strata: %w", err)
	}
	m := &mount{r: r, lowers: lowers, upper: upper, work: work, mnt: mnt, userXattr: userXattr, srv: srv}
	r.T.Cleanup(func() { m.unmount() })
	return m, nil
}

// kernelOptions pins the features whose defaults vary between kernels
// to what Strata implements.
const kernelOptions = ",redirect_dir=off,index=off,metacopy=off"

func (r *Runner) mountKernel(lowers []string, upper, work, mnt string, userXattr bool) (*mount, error) {
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	if userXattr {
		// redirect_dir=off means "follow", which userxattr refuses.
		opts += ",redirect_dir=nofollow,index=off,metacopy=off,userxattr"
	} else {
		opts += kernelOptions
	}
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		return nil, fmt.Errorf("mount -t overlay -o %s: %w", opts, err)
	}
	m := &mount{r: r, lowers: lowers, upper: upper, work: work, mnt: mnt, userXattr: userXattr}
	r.T.Cleanup(func() { m.unmount() })
	return m, nil
}

func (m *mount) unmount() error {
	if m == nil || m.done {
		return nil
	}
	m.done = true
	if m.hung {
		mounttest.ForceUnmount(m.mnt)
		return fmt.Errorf("%s: Strata hung, detached", m.mnt)
	}
	if m.srv != nil {
		if err := m.srv.Unmount(); err != nil {
			mounttest.ForceUnmount(m.mnt)
			return err
		}
		return nil
	}
	for i := 0; i < 50; i++ {
		err := unix.Unmount(m.mnt, 0)
		if err == nil {
			return nil
		}
		if err != unix.EBUSY {
			return fmt.Errorf("umount %s: %w", m.mnt, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mounttest.ForceUnmount(m.mnt)
	return fmt.Errorf("umount %s: busy", m.mnt)
}

// stack is the directories of one side.
type stack struct {
	lowers           []string
	upper, work, mnt string
}

func newStack(dir string, n int) (*stack, error) {
	s := &stack{upper: dir + "/upper", work: dir + "/work", mnt: dir + "/mnt"}
	for i := 0; i < n; i++ {
		s.lowers = append(s.lowers, fmt.Sprintf("%s/lower%d", dir, i))
	}
	for _, d := range append([]string{s.upper, s.work, s.mnt}, s.lowers...) {
		if err := os.MkdirAll(d, 0755); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// within runs fn, giving up after d (fn keeps running).
func within(d time.Duration, fn func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// session is one run of a case.
type session struct {
	r      *Runner
	c      *Case
	base   string
	mounts []*mount
	taints map[string]bool // known bugs triggered so far
	// Paths opened for writing without a change: the kernel copied
	// them up, Strata not yet (the copy-up-on-write difference).
	deferred map[string]bool
	slots    [NSlots]string // the path each descriptor slot was opened on
	// Directories whose failed rename the kernel may have left opaque
	// (the kernel-failed-rename-opaque difference).
	failedMoves map[string]bool
}

// ns is the namespace of the overlay's xattrs.
func (s *session) ns() string {
	if s.c.UserXattr {
		return UserNS
	}
	return TrustedNS
}

func (s *session) setupFailure(err error) *Failure {
	return &Failure{Phase: "setup", Kind: "setup", Step: -1, Diffs: []string{err.Error()}}
}

// Run runs the case and returns its first difference, or nil.
func (r *Runner) Run(c *Case) (f *Failure) {
	r.trial++
	s := &session{r: r, c: c, base: filepath.Join(r.Dir, fmt.Sprintf("t%d", r.trial)), taints: map[string]bool{}, deferred: map[string]bool{},
		failedMoves: map[string]bool{}}
	defer func() {
		for i := len(s.mounts) - 1; i >= 0; i-- {
			s.mounts[i].unmount()
		}
		hung := false
		for _, m := range s.mounts {
			hung = hung || m.hung
		}
		if f != nil && r.Keep {
			r.T.Logf("run %d (%v) kept in %s", r.trial, f.Signature(), s.base)
		} else if !hung {
			os.RemoveAll(s.base)
		}
	}()
	return s.run()
}

func (s *session) mountStrata(lowers []string, upper, work, mnt string) (*mount, error) {
	m, err := s.r.mountStrata(lowers, upper, work, mnt, s.c.UserXattr)
	if err == nil {
		s.mounts = append(s.mounts, m)
	}
	return m, err
}

func (s *session) mountKernel(lowers []string, upper, work, mnt string) (*mount, error) {
	m, err := s.r.mountKernel(lowers, upper, work, mnt, s.c.UserXattr)
	if err == nil {
		s.mounts = append(s.mounts, m)
	}
	return m, err
}

// snapshot walks a mount, within the time limit when it is Strata's.
func (s *session) snapshot(m *mount) (Tree, bool) {
	var t Tree
	if m.srv == nil {
		t = Snapshot(m.mnt)
		dropLeakedWhiteouts(t)
		return t, true
	}
	if !within(s.r.OpTimeout, func() { t = Snapshot(m.mnt) }) {
		m.hung = true
		return nil, false
	}
	return t, true
}

func hangFailure(phase string, step int, op *Op, what string) *Failure {
	return &Failure{Phase: phase, Kind: "hang", Step: step, Op: op, Diffs: []string{"strata did not answer " + what}}
}

// compare snapshots both mounts and diffs them.
func (s *session) compare(phase, kind string, step int, op *Op, ms, mk *mount, o CmpOpts) (Tree, Tree, *Failure) {
	ts, ok := s.snapshot(ms)
	if !ok {
		return nil, nil, hangFailure(phase, step, op, "while its tree was walked")
	}
	tk, _ := s.snapshot(mk)
	if d := s.filter(Diff(ts, tk, "strata", "kernel", o)); len(d) > 0 {
		return ts, tk, &Failure{Phase: phase, Kind: kind, Step: step, Op: op, Diffs: d}
	}
	return ts, tk, nil
}

// compareTo diffs a mount against a tree taken earlier.
func (s *session) compareTo(phase, kind string, m *mount, want Tree, got, wantName string) *Failure {
	t, ok := s.snapshot(m)
	if !ok {
		return hangFailure(phase, -1, nil, "while its tree was walked")
	}
	if d := s.filter(Diff(t, want, got, wantName, CmpOpts{ExactTimes: true, DirentInoA: m.srv != nil})); len(d) > 0 {
		return &Failure{Phase: phase, Kind: kind, Step: -1, Diffs: d}
	}
	return nil
}

func (s *session) run() *Failure {
	c := s.c
	spec := c.Spec()
	ns := s.ns()
	S, err := newStack(s.base+"/s", spec.Lowers)
	if err != nil {
		return s.setupFailure(err)
	}
	K, err := newStack(s.base+"/k", spec.Lowers)
	if err != nil {
		return s.setupFailure(err)
	}
	if c.OCI {
		if err := MaterializeNS(spec, S.lowers, OCI, ns); err != nil {
			return s.setupFailure(err)
		}
		for i, l := range S.lowers {
			if out, err := exec.Command("cp", "-a", l+"/.", K.lowers[i]).CombinedOutput(); err != nil {
				return s.setupFailure(fmt.Errorf("cp -a: %v: %s", err, out))
			}
			if err := OCIToKernelNS(K.lowers[i], ns); err != nil {
				return s.setupFailure(err)
			}
		}
	} else {
		if err := MaterializeNS(spec, S.lowers, Kernel, ns); err != nil {
			return s.setupFailure(err)
		}
		if err := MaterializeNS(spec, K.lowers, Kernel, ns); err != nil {
			return s.setupFailure(err)
		}
	}
	ms, err := s.mountStrata(S.lowers, S.upper, S.work, S.mnt)
	if err != nil {
		return s.setupFailure(err)
	}
	mk, err := s.mountKernel(K.lowers, K.upper, K.work, K.mnt)
	if err != nil {
		return s.setupFailure(err)
	}
	if _, _, f := s.compare("layers", "tree", -1, nil, ms, mk, CmpOpts{DirentInoA: true}); f != nil {
		return f
	}
	fS, fK, f := s.runOps("ops", c.Ops, ms, mk)
	if f != nil {
		return f
	}
	// Strata's upper, with the kernel-format lowers, as the kernel reads it.
	if f := s.endChecks("end", ms, mk, S.upper, K.upper, K.lowers, fS, fK); f != nil {
		return f
	}
	if !c.Cross {
		return nil
	}
	// Swap: Strata continues on what the kernel wrote, the kernel on what
	// Strata wrote.
	ms2, err := s.mountStrata(S.lowers, K.upper, K.work, K.mnt)
	if err != nil {
		return &Failure{Phase: "cross", Kind: "strata-mounts-kernel-layers", Step: -1, Diffs: []string{err.Error()}}
	}
	mk2, err := s.mountKernel(K.lowers, S.upper, S.work, S.mnt)
	if err != nil {
		return &Failure{Phase: "cross", Kind: "kernel-mounts-strata-layers", Step: -1, Diffs: []string{err.Error()}}
	}
	if f := s.compareTo("cross", "strata-reads-kernel", ms2, fK, "strata(kernel's upper)", "kernel before unmount"); f != nil {
		return f
	}
	if f := s.compareTo("cross", "kernel-reads-strata", mk2, fS, "kernel(strata's upper)", "strata before unmount"); f != nil {
		return f
	}
	fS2, fK2, f := s.runOps("cross-ops", c.Ops2, ms2, mk2)
	if f != nil {
		return f
	}
	return s.endChecks("cross-end", ms2, mk2, K.upper, S.upper, K.lowers, fS2, fK2)
}

// runOps applies ops to both mounts, comparing results and trees, and
// returns the final trees.
func (s *session) runOps(phase string, ops []Op, ms, mk *mount) (Tree, Tree, *Failure) {
	ss, sk := NewSide(ms.mnt), NewSide(mk.mnt)
	defer sk.CloseAll()
	defer func() {
		if !ms.hung {
			ss.CloseAll()
		}
	}()
	every := max(s.r.Every, 1)
	for i := range ops {
		op := &ops[i]
		var rs, rk Result
		switch op.Kind {
		case OpDropCaches:
			if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
				return nil, nil, s.setupFailure(err)
			}
		case OpRemount:
			ss.CloseAll()
			sk.CloseAll()
			var err error
			if !within(s.r.OpTimeout, func() { err = ms.remount() }) {
				ms.hung = true
				return nil, nil, hangFailure(phase, i, op, "the unmount")
			}
			if err != nil {
				return nil, nil, &Failure{Phase: phase, Kind: "remount", Step: i, Op: op, Diffs: []string{err.Error()}}
			}
			if err := mk.remount(); err != nil {
				return nil, nil, s.setupFailure(err)
			}
		default:
			removed := s.removedSlotPath(*op, ms, mk)
			sameSize := sameSizeTruncate(*op, mk.mnt)
			if !within(s.r.OpTimeout, func() { rs = ss.Apply(*op) }) {
				ms.hung = true
				return nil, nil, hangFailure(phase, i, op, "the operation")
			}
			rk = sk.Apply(*op)
			if sameSize && rs.Errno == 0 && rk.Errno == 0 {
				if err := s.evenTimes(op.Path, ms, mk); err != nil {
					return nil, nil, s.setupFailure(err)
				}
			}
			if removed != "" && rs.Errno == 0 && rk.Errno == 0 && s.buryResurrected(mk.mnt, removed) {
				if s.r.Logf != nil {
					s.r.Logf("allowed difference kernel-resurrects-removed: %q removed again on the kernel's mount, slot %d closed", removed, op.Slot)
				}
				ss.Apply(Op{Kind: OpClose, Slot: op.Slot})
				sk.Apply(Op{Kind: OpClose, Slot: op.Slot})
				s.slots[op.Slot] = ""
				continue
			}
		}
		if s.r.Logf != nil {
			s.r.Logf("%s %d: %s: strata %v, kernel %v", phase, i, op, rs, rk)
		}
		if strings.HasPrefix(rs.Data, "helper:") || strings.HasPrefix(rk.Data, "helper:") {
			return nil, nil, s.setupFailure(fmt.Errorf("%s: %v / %v", op, rs, rk))
		}
		for _, b := range KnownBugs {
			if b.Trigger != nil && b.Trigger(s.c, *op, rs, rk) {
				s.taints[b.ID] = true
			}
		}
		s.noteDeferred(*op, rs, rk, mk.mnt)
		if op.Kind == OpRename && rs.Errno != 0 && rs.Errno == rk.Errno {
			s.failedMoves[op.Path] = true
		}
		if rs != rk && s.deferredResult(*op, rs, rk) {
			continue
		}
		if rs != rk {
			if d := allowedResult(*op, rs, rk); d != nil {
				if s.r.Logf != nil {
					s.r.Logf("allowed difference %s: closing slot %d", d.ID, op.Slot)
				}
				ss.Apply(Op{Kind: OpClose, Slot: op.Slot})
				sk.Apply(Op{Kind: OpClose, Slot: op.Slot})
				continue
			}
			return nil, nil, &Failure{Phase: phase, Kind: "errno", Step: i, Op: op,
				Diffs: []string{fmt.Sprintf("strata %v, kernel %v", rs, rk)}}
		}
		if (i+1)%every == 0 || i == len(ops)-1 {
			if _, _, f := s.compare(phase, "tree", i, op, ms, mk, CmpOpts{DirentInoA: true}); f != nil {
				return nil, nil, f
			}
		}
	}
	ss.CloseAll()
	sk.CloseAll()
	var last *Op
	if len(ops) > 0 {
		last = &ops[len(ops)-1]
	}
	return s.compare(phase, "tree", len(ops)-1, last, ms, mk, CmpOpts{DirentInoA: true})
}

// endChecks unmounts both, mounts each upper layer read-only under the
// kernel, compares what the kernel reads with what each mount showed,
// and compares the two upper layers structurally.
func (s *session) endChecks(phase string, ms, mk *mount, strataUpper, kernelUpper string, lowers []string, fS, fK Tree) *Failure {
	if err := ms.unmount(); err != nil {
		return &Failure{Phase: phase, Kind: "unmount", Step: -1, Diffs: []string{err.Error()}}
	}
	if err := mk.unmount(); err != nil {
		return s.setupFailure(err)
	}
	for _, x := range []struct {
		upper, name, kind string
		want              Tree
	}{
		{strataUpper, "strata", "kernel-reads-strata", fS},
		{kernelUpper, "kernel", "kernel-reads-kernel", fK},
	} {
		mnt := filepath.Join(s.base, phase+"-ro-"+x.name)
		if err := os.MkdirAll(mnt, 0755); err != nil {
			return s.setupFailure(err)
		}
		m, err := s.mountKernel(append([]string{x.upper}, lowers...), "", "", mnt)
		if err != nil {
			return &Failure{Phase: phase, Kind: x.kind, Step: -1, Diffs: []string{err.Error()}}
		}
		f := s.compareTo(phase, x.kind, m, x.want, "kernel-ro("+x.name+"'s upper)", x.name+" before unmount")
		m.unmount()
		if f != nil {
			return f
		}
	}
	ra, err := RawLayerNS(strataUpper, s.ns())
	if err != nil {
		return s.setupFailure(err)
	}
	rb, err := RawLayerNS(kernelUpper, s.ns())
	if err != nil {
		return s.setupFailure(err)
	}
	if d := s.filter(DiffRaw(ra, rb, "strata's upper", "kernel's upper")); len(d) > 0 {
		return &Failure{Phase: phase, Kind: "upper-format", Step: -1, Diffs: d}
	}
	return nil
}

// sameSizeTruncate reports whether op is a truncate(2) by path of a
// regular file to the size it has on the kernel's mount (the
// fuse-truncate-same-size difference).
func sameSizeTruncate(op Op, kernelRoot string) bool {
	if op.Kind != OpTruncate {
		return false
	}
	var st unix.Stat_t
	err := unix.Stat(filepath.Join(kernelRoot, op.Path), &st)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == op.Off
}

// evenTimes gives path the same explicit times on both mounts, after a
// truncate that left its size as it was (fuse-truncate-same-size).
func (s *session) evenTimes(path string, ms, mk *mount) error {
	ts := []unix.Timespec{{Sec: 1010101010}, {Sec: 1010101010}}
	for _, m := range []*mount{ms, mk} {
		if err := unix.UtimesNano(filepath.Join(m.mnt, path), ts); err != nil {
			return fmt.Errorf("fuse-truncate-same-size: utimes %s: %v", path, err)
		}
	}
	if s.r.Logf != nil {
		s.r.Logf("allowed difference fuse-truncate-same-size: %q given the same times on both mounts", path)
	}
	return nil
}

// noteDeferred records what an operation tells the copy-up-on-write
// difference: a file opened for writing, without O_TRUNC, and not
// written, on both mounts, was copied up by the kernel but not by
// Strata; and which path a descriptor slot holds.
func (s *session) noteDeferred(op Op, rs, rk Result, kernelRoot string) {
	if op.Kind == OpCopyRange {
		// Its destination was opened for writing; nothing was written
		// when nothing was copied.
		unchanged := func(r Result) bool { return r.Data == "copied 0" || r.Data == copyFailed }
		if unchanged(rs) && unchanged(rk) {
			s.deferred[resolved(kernelRoot, op.Path2)] = true
		}
		return
	}
	if rs.Errno != 0 || rk.Errno != 0 {
		return
	}
	switch op.Kind {
	case OpOpen:
		s.slots[op.Slot] = resolved(kernelRoot, op.Path)
	case OpClose:
		s.slots[op.Slot] = ""
		return
	case OpOpenClose:
	case OpWrite, OpAppend:
		// Opened for writing; nothing written when Len is 0.
		if op.Len == 0 && op.Flags&unix.O_TRUNC == 0 {
			s.deferred[resolved(kernelRoot, op.Path)] = true
		}
		return
	default:
		return
	}
	if op.Flags&unix.O_ACCMODE != unix.O_RDONLY && op.Flags&unix.O_TRUNC == 0 {
		s.deferred[resolved(kernelRoot, op.Path)] = true
	}
}

// removedSlotPath returns, for a metadata change through a descriptor,
// the path the descriptor was opened on if that name is gone from both
// mounts (the kernel-resurrects-removed difference), else "".
func (s *session) removedSlotPath(op Op, ms, mk *mount) string {
	switch op.Kind {
	case OpFdChmod, OpFdChown, OpFdUtimes, OpFdSetxattr:
	default:
		return ""
	}
	p := s.slots[op.Slot]
	if p == "" {
		return ""
	}
	var st unix.Stat_t
	if unix.Lstat(filepath.Join(ms.mnt, p), &st) != unix.ENOENT || unix.Lstat(filepath.Join(mk.mnt, p), &st) != unix.ENOENT {
		return ""
	}
	return p
}

// buryResurrected removes path from the kernel's mount again if the
// operation just made it reappear there, and reports whether it did.
func (s *session) buryResurrected(kernelRoot, path string) bool {
	// The copy takes the whiteout's place in the kernel's upper layer, but
	// its cached negative entry and listing may still hide it: look once
	// the caches are dropped.
	if os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0) != nil {
		return false
	}
	p := filepath.Join(kernelRoot, path)
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil {
		return false
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.Rmdir(p) == nil
	}
	return unix.Unlink(p) == nil
}

// resolved returns path (relative to root) with symlinks followed, as an
// open follows them, or path itself if it leads outside root.
func resolved(root, path string) string {
	p, err := filepath.EvalSymlinks(filepath.Join(root, path))
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return path
	}
	return rel
}

// deferredLine reports whether a difference line is the copy-up-on-write
// difference: the nlink of a file opened for writing (the kernel's copy
// has its own), or an entry only one upper layer has at or above such a
// file (the kernel's copy-up and its parents). The visible trees are
// compared in full otherwise, content, times and owners included.
func (s *session) deferredLine(l string) bool {
	if len(s.deferred) == 0 || !strings.HasPrefix(l, "\"") {
		return false
	}
	i := strings.Index(l, "\": ")
	if i < 0 {
		return false
	}
	p, err := strconv.Unquote(l[:i+1])
	if err != nil {
		return false
	}
	rest := l[i+3:]
	switch {
	case strings.HasPrefix(rest, "nlink: "):
		return s.deferred[p]
	case strings.HasPrefix(rest, "only in ") &&
		(strings.HasSuffix(rest, "upper (dir)") || strings.HasSuffix(rest, "upper (file)")):
		for d := range s.deferred {
			if d == p || strings.HasPrefix(d, p+"/") {
				return true
			}
		}
	}
	return false
}

// deferredResult reports whether two results of one operation differ
// only by the copy-up-on-write difference: fstat of a descriptor of a
// file opened for writing, apart from nlink.
func (s *session) deferredResult(op Op, rs, rk Result) bool {
	if op.Kind != OpFdStat || !s.deferred[s.slots[op.Slot]] || rs.Errno != rk.Errno {
		return false
	}
	strip := func(d string) string {
		f := strings.Fields(d)
		for i := range f {
			if strings.HasPrefix(f[i], "nlink=") {
				f[i] = ""
			}
		}
		return strings.Join(f, " ")
	}
	return strip(rs.Data) == strip(rk.Data)
}

// failedMoveLine reports whether a difference line is the
// kernel-failed-rename-opaque difference: a directory that was the source
// of a rename that failed on both mounts is opaque in one upper layer
// only.
func (s *session) failedMoveLine(l string) bool {
	if len(s.failedMoves) == 0 {
		return false
	}
	i := strings.Index(l, "\": ")
	if i < 0 || !strings.HasPrefix(l, "\"") {
		return false
	}
	p, err := strconv.Unquote(l[:i+1])
	if err != nil || !s.failedMoves[p] {
		return false
	}
	rest := l[i+3:]
	return strings.Contains(rest, "upper has dir, ") && strings.HasSuffix(rest, "upper has opaque dir") ||
		strings.Contains(rest, "upper has opaque dir, ") && strings.HasSuffix(rest, "upper has dir")
}
