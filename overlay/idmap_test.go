package overlay_test

import (
	"os"
	"testing"

	"github.com/stratafs/strata/overlay"
)

func TestIDMap(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "mapped=", "unmapped=")
	os.Lchown(s.lower(0)+"/mapped", 100005, 100007)
	os.Lchown(s.lower(0)+"/unmapped", 5, 7)
	cfg := s.config()
	cfg.IDMap = &overlay.IDMapper{
		UIDs:      []overlay.IDRange{{Inside: 0, Outside: 100000, Size: 65536}},
		GIDs:      []overlay.IDRange{{Inside: 0, Outside: 100000, Size: 65536}},
		SquashUID: -1, SquashGID: -1,
	}
	fs := mountCfg(t, cfg)
	_, st := mustWalk(t, fs, "mapped")
	if st.Uid != 5 || st.Gid != 7 {
		t.Fatalf("mapped owner shows as %d:%d, want 5:7", st.Uid, st.Gid)
	}
	_, st = mustWalk(t, fs, "unmapped")
	if st.Uid != 65534 || st.Gid != 65534 {
		t.Fatalf("unmapped owner shows as %d:%d, want the overflow id", st.Uid, st.Gid)
	}
	_, h, st, err := fs.Create(fs.Root(), "new", objFile(0644), overlay.Caller{UID: 0, GID: 10})
	if err != nil {
		t.Fatal(err)
	}
	fs.Release(h)
	if ust := lstat(t, s.upper+"/new"); ust.Uid != 100000 || ust.Gid != 100010 {
		t.Fatalf("created file stored as %d:%d, want 100000:100010", ust.Uid, ust.Gid)
	}
	if st.Uid != 0 || st.Gid != 10 {
		t.Fatalf("created file shows as %d:%d", st.Uid, st.Gid)
	}
	m, _ := mustWalk(t, fs, "mapped")
	st, err = fs.Setattr(m, &overlay.SetAttr{Valid: overlay.SetUID | overlay.SetGID, UID: 1, GID: 2})
	if err != nil || st.Uid != 1 || st.Gid != 2 {
		t.Fatalf("chown: %d:%d %v", st.Uid, st.Gid, err)
	}
	if ust := lstat(t, s.upper+"/mapped"); ust.Uid != 100001 || ust.Gid != 100002 {
		t.Fatalf("chowned copy stored as %d:%d", ust.Uid, ust.Gid)
	}
}

func TestIDMapSquash(t *testing.T) {
	s := newStack(t, 1)
	build(t, s.lower(0), "f=")
	os.Lchown(s.lower(0)+"/f", 5, 7)
	cfg := s.config()
	cfg.IDMap = &overlay.IDMapper{SquashUID: 0, SquashGID: 0}
	fs := mountCfg(t, cfg)
	f, st := mustWalk(t, fs, "f")
	if st.Uid != 0 || st.Gid != 0 {
		t.Fatalf("squashed owner shows as %d:%d", st.Uid, st.Gid)
	}
	writeFile(t, fs, f, "x", 0)
	if ust := lstat(t, s.upper+"/f"); ust.Uid != 5 || ust.Gid != 7 {
		t.Fatalf("squash changed the stored owner: %d:%d", ust.Uid, ust.Gid)
	}
}
