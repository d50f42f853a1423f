package overlay

// Stats counts what the engine has done since it started.
type Stats struct {
	CopyUps uint64 // objects copied up
	Nodes   int    // nodes the kernel holds
}

// Stats returns the engine's counters.
func (fs *FS) Stats() Stats {
	return Stats{CopyUps: fs.copyUps.Load(), Nodes: fs.NodeCount()}
}
