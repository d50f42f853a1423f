package coherence

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

const block = 4096

// bigSize is the large file's size: 1 GiB, or STRATA_COHERENCE_SIZE bytes.
func bigSize() int64 {
	if s := os.Getenv("STRATA_COHERENCE_SIZE"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 64*block {
			return n / block * block
		}
	}
	return 1 << 30
}

// patternBlock is block i of the large file: its index, repeated.
func patternBlock(i int64, b []byte) {
	for o := 0; o < len(b); o += 8 {
		binary.LittleEndian.PutUint64(b[o:], uint64(i)+1)
	}
}

func bigFile(t *testing.T, lower string) {
	f, err := os.Create(lower + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < bigSize(); off += int64(len(buf)) {
		for o := 0; o < len(buf); o += block {
			patternBlock((off+int64(o))/block, buf[o:o+block])
		}
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
}

const writers = 4

func markerOffset(k int) int64 { return int64(k)*(bigSize()/writers) + 12344 }
func marker(k int) string      { return fmt.Sprintf("WRITER-%d", k) }

// checkBlock verifies block i as read: the pattern, except where a
// writer's marker may already be.
func checkBlock(i int64, got []byte) error {
	want := make([]byte, block)
	patternBlock(i, want)
	for k := 0; k < writers; k++ {
		off := markerOffset(k)
		if off/block == i {
			o := off % block
			if string(got[o:o+int64(len(marker(k)))]) == marker(k) {
				copy(want[o:], marker(k))
			}
		}
	}
	if string(got) != string(want) {
		return fmt.Errorf("block %d is neither the lower data nor a completed write (first bytes %x)", i, got[:16])
	}
	return nil
}

func concurrentCopyUp(e *env) error {
	size := bigSize()
	fd, err := unix.Open(e.path("big"), unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	m, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return err
	}
	closed := false
	defer func() {
		if !closed {
			unix.Munmap(m)
			unix.Close(fd)
		}
	}()

	// The reader checks random blocks through the mapping and the old
	// descriptor for as long as the copy-up and the writes run.
	var stop atomic.Bool
	readerErr := make(chan error, 1)
	var reads atomic.Int64
	go func() {
		rng := rand.New(rand.NewSource(1))
		buf := make([]byte, block)
		for !stop.Load() {
			i := rng.Int63n(size / block)
			got, err := mapped(m, int(i*block), block)
			if err != nil {
				readerErr <- fmt.Errorf("mapping, block %d: %v", i, err)
				return
			}
			if err := checkBlock(i, []byte(got)); err != nil {
				readerErr <- fmt.Errorf("mapping: %v", err)
				return
			}
			n, err := unix.Pread(fd, buf, i*block)
			if err != nil || n != block {
				readerErr <- fmt.Errorf("pread block %d: %d bytes, %v", i, n, err)
				return
			}
			if err := checkBlock(i, buf); err != nil {
				readerErr <- fmt.Errorf("pread: %v", err)
				return
			}
			reads.Add(1)
		}
		readerErr <- nil
	}()

	var wg sync.WaitGroup
	errs := make([]error, writers)
	for k := 0; k < writers; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			_, errs[k] = other("pwrite", e.path("big"), strconv.FormatInt(markerOffset(k), 10), marker(k))
		}(k)
	}
	wg.Wait()
	stop.Store(true)
	if err := <-readerErr; err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if reads.Load() == 0 {
		return fmt.Errorf("the reader never ran")
	}
	// Every write landed, through the mount and in the upper layer.
	for k := 0; k < writers; k++ {
		got, err := pread(fd, int(markerOffset(k)), len(marker(k)))
		if err != nil {
			return err
		}
		if err := expect("write of "+marker(k)+" through the old descriptor", got, marker(k)); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != size {
		return fmt.Errorf("size through the old descriptor: %d, %v", st.Size, err)
	}
	unix.Munmap(m)
	unix.Close(fd)
	closed = true
	if err := e.unmount(); err != nil {
		return err
	}
	n, err := e.copyUps()
	if err != nil {
		return err
	}
	if n >= 0 && n != 1 {
		return fmt.Errorf("%d copy-ups, want exactly 1", n)
	}
	// The whole upper copy: pattern everywhere but the markers.
	up, err := os.Open(e.upper("big"))
	if err != nil {
		return fmt.Errorf("upper layer: %v", err)
	}
	defer up.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := up.ReadAt(buf, off); err != nil {
			return fmt.Errorf("upper copy at %d: %v", off, err)
		}
		for o := 0; o < len(buf); o += block {
			i := (off + int64(o)) / block
			if err := checkBlock(i, buf[o:o+block]); err != nil {
				return fmt.Errorf("upper copy: %v", err)
			}
		}
	}
	for k := 0; k < writers; k++ {
		b := make([]byte, len(marker(k)))
		up.ReadAt(b, markerOffset(k))
		if string(b) != marker(k) {
			return fmt.Errorf("upper copy lost %s", marker(k))
		}
	}
	return nil
}
