// Package mountopt owns Strata's command line: it turns the arguments that
// fuse-overlayfs accepts (and the form the fuse3 mount helper produces) into
// an Options value, and checks that value against the filesystem before
// anything is mounted. It knows nothing of FUSE or of the overlay engine.
package mountopt

// IDMap is one range of a uidmapping=/gidmapping= option, as
// fuse-overlayfs and containers/storage mean it: IDs
// [Container, Container+Size) stored in the layers show through the mount
// as [Host, Host+Size), and the reverse for what is created or chowned
// through the mount.
type IDMap struct {
	Container uint32
	Host      uint32
	Size      uint32
}

// Options is everything a Strata mount needs, after parsing.
type Options struct {
	// Lowers are the lower layers, absolute and cleaned; Lowers[0] is the
	// top-most (the leftmost entry of lowerdir=).
	Lowers []string
	// Upper and Work are empty for a read-only mount of the lower stack.
	Upper string
	Work  string
	// Mountpoint is absolute and cleaned.
	Mountpoint string

	ReadOnly   bool // "ro", or no upperdir
	Foreground bool // -f, or implied by debug (as in libfuse)
	Debug      bool // -d, or -o debug

	UserXattr bool // userxattr: overlay xattrs live under "user.overlay."
	Volatile  bool // volatile or fsync=0: skip syncs

	// Passthrough: the kernel does I/O on upper-layer files itself (FUSE
	// passthrough), for an OPEN round trip per open.
	Passthrough bool

	// Writeback lets the kernel cache written data and send it to the
	// daemon later, in large requests, keeping files' sizes and
	// modification times itself (writeback=1, the default, as in
	// fuse-overlayfs; writeback=0 sends every write(2) through at once).
	// Off with Passthrough, which the kernel does not combine with it.
	Writeback bool

	// Threaded serves requests on several threads at once (threaded=1, as
	// in fuse-overlayfs). By default one thread reads a request, answers
	// it and reads the next (-s, threaded=0): see strata.go, serveModes.
	Threaded bool

	// ACL lets the kernel enforce POSIX ACLs and cache them (the
	// default, as in fuse-overlayfs; noacl turns it off). Not with
	// uidmapping, gidmapping, squashing or xattr_permissions, where the
	// ids and modes the mount shows are not the layers'.
	ACL bool

	AllowOther         bool // allow_other (default true when run as root)
	DefaultPermissions bool // always true in practice: the kernel checks permissions

	FsName  string // fsname=, default: the string "strata"
	Subtype string // subtype=, default "strata"

	// MaxWrite is max_write=, in bytes; 0 leaves the FUSE library's default.
	MaxWrite int

	// KernelOptions are options handed to the kernel's FUSE mount as they
	// are (nodev, nosuid, noexec, noatime, context="...", ...).
	KernelOptions []string

	UIDMap       []IDMap
	GIDMap       []IDMap
	SquashToUID  int // -1: none
	SquashToGID  int // -1: none
	SquashToRoot bool

	// XattrPermissions is fuse-overlayfs' xattr_permissions=0|1|2.
	XattrPermissions int

	// Notices are one-line messages for options that were accepted but
	// ignored; the CLI prints them on stderr.
	Notices []string
}
