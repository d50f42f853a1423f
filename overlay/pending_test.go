package overlay

import "testing"

// The linker stops gathering copy-ups once the queue is half full, so
// that copy-ups do not wait for room while it waits for more.
func TestPendingHurriesWhenHalfFull(t *testing.T) {
	var fs FS
	fs.pending.init()
	hurried := func() bool {
		select {
		case <-fs.pending.full:
			return true
		default:
			return false
		}
	}
	for i := 0; i < maxPending/2-1; i++ {
		fs.addPending(&Node{})
	}
	if hurried() {
		t.Fatalf("linker hurried with %d of %d copy-ups queued", maxPending/2-1, maxPending)
	}
	fs.addPending(&Node{})
	if !hurried() {
		t.Fatalf("linker not hurried with %d of %d copy-ups queued", maxPending/2, maxPending)
	}
}
