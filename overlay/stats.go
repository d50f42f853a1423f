package overlay

// Stats counts what the engine has done since it started.
type Stats struct {
	CopyUps      uint64 // objects copied up
	LazyFills    uint64 // copy-ups whose data followed in the background, a chunk at a time
	Nodes        int    // nodes the kernel holds
	OpenFiles    int    // backing files open
	Pending      int    // copy-ups not linked into the upper layer yet
	LinkFailures uint64 // background links that failed (and were retried)
	BatchSyncs   uint64 // flushes of the upper filesystem for pending copy-ups
	FileSyncs    uint64 // pending copy-ups flushed one by one (fsync, rename, link)
	// ProbesSkipped counts lower-layer lookups answered from a directory
	// listing (the layer's copy of the directory does not list the name).
	ProbesSkipped uint64
}

// Stats returns the engine's counters.
func (fs *FS) Stats() Stats {
	fs.pending.mu.Lock()
	pending := len(fs.pending.nodes)
	fs.pending.mu.Unlock()
	return Stats{CopyUps: fs.copyUps.Load(), LazyFills: fs.lazyFills.Load(), Nodes: fs.NodeCount(), OpenFiles: fs.OpenFiles(),
		Pending: pending, LinkFailures: fs.linkFailures.Load(),
		BatchSyncs: fs.batchSyncs.Load(), FileSyncs: fs.fileSyncs.Load(),
		ProbesSkipped: fs.probesSkipped.Load()}
}
