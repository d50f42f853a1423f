package mountopt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Action is what the command line asks for.
type Action int

const (
	ActionMount Action = iota
	ActionHelp
	ActionVersion
)

func (a Action) String() string {
	switch a {
	case ActionMount:
		return "mount"
	case ActionHelp:
		return "help"
	case ActionVersion:
		return "version"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// DefaultOptions returns the options of a command line that sets nothing.
func DefaultOptions() *Options {
	return &Options{
		AllowOther:         os.Geteuid() == 0,
		DefaultPermissions: true,
		FsName:             "strata",
		Subtype:            "strata",
		SquashToUID:        -1,
		SquashToGID:        -1,
		Writeback:          true,
		ACL:                true,
	}
}

// ParseArgs parses a command line (args excludes argv[0]) in either of the
// forms
//
//	strata [-f] [-d] -o lowerdir=L1:L2,upperdir=U,workdir=W MOUNTPOINT
//	strata SOURCE MOUNTPOINT -o OPTIONS        (fuse3 mount helper)
//
// Flags and positionals may come in any order; "--" ends the flags. -h or
// -V anywhere wins over everything else and returns default options with
// ActionHelp or ActionVersion. Paths are made absolute against the current
// directory and cleaned, but not otherwise checked: see Validate.
func ParseArgs(args []string) (*Options, Action, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" {
			return DefaultOptions(), ActionHelp, nil
		}
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-V" || a == "--version" {
			return DefaultOptions(), ActionVersion, nil
		}
	}

	p := &parser{opts: DefaultOptions()}
	var positional []string
	flagsDone := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if flagsDone || a == "-" || !strings.HasPrefix(a, "-") {
			positional = append(positional, a)
			continue
		}
		switch {
		case a == "--":
			flagsDone = true
		case a == "-o":
			if i+1 == len(args) {
				return nil, ActionMount, errors.New("flag -o needs an argument")
			}
			i++
			if err := p.parseOptionString(args[i]); err != nil {
				return nil, ActionMount, err
			}
		case strings.HasPrefix(a, "-o"):
			if err := p.parseOptionString(a[2:]); err != nil {
				return nil, ActionMount, err
			}
		case a == "-f":
			p.opts.Foreground = true
		case a == "-d":
			p.setDebug()
		case a == "-s":
			p.opts.Threaded = false
		default:
			return nil, ActionMount, fmt.Errorf("unknown flag %q", a)
		}
	}

	switch len(positional) {
	case 0:
		return nil, ActionMount, errors.New("missing mountpoint")
	case 1, 2:
		// With two, the first is the mount helper's SOURCE: ignored.
		mp, err := absPath("mountpoint", positional[len(positional)-1])
		if err != nil {
			return nil, ActionMount, err
		}
		p.opts.Mountpoint = mp
	default:
		return nil, ActionMount, fmt.Errorf("unexpected argument %q", positional[2])
	}

	if err := p.finish(); err != nil {
		return nil, ActionMount, err
	}
	return p.opts, ActionMount, nil
}

// parser accumulates options over all -o flags.
type parser struct {
	opts         *Options
	ro           bool
	writebackSet bool // writeback= given
	seenNote     map[string]bool
}

func (p *parser) setDebug() {
	// As in libfuse, debug output implies staying in the foreground.
	p.opts.Debug = true
	p.opts.Foreground = true
}

func (p *parser) notice(msg string) {
	if p.seenNote[msg] {
		return
	}
	if p.seenNote == nil {
		p.seenNote = map[string]bool{}
	}
	p.seenNote[msg] = true
	p.opts.Notices = append(p.opts.Notices, msg)
}

func (p *parser) parseOptionString(s string) error {
	for _, tok := range splitOptions(s) {
		if err := p.parseOption(tok); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) parseOption(tok string) error {
	name, value, hasValue := strings.Cut(tok, "=")
	if strings.HasPrefix(name, "x-") {
		// fstab's userspace-only options (x-systemd.*, ...).
		return nil
	}
	spec, ok := optionTable[name]
	if !ok {
		return fmt.Errorf("unknown option %q", name)
	}
	switch spec.arg {
	case argNone:
		if hasValue {
			return fmt.Errorf("%s: takes no value, got %q", name, tok)
		}
	case argRequired:
		if value == "" {
			return fmt.Errorf("%s: missing value", name)
		}
	}
	return spec.apply(p, name, value, tok)
}

// finish applies the rules that involve several options.
func (p *parser) finish() error {
	o := p.opts
	if len(o.Lowers) == 0 {
		return errors.New("missing lowerdir= option")
	}
	if o.Work != "" && o.Upper == "" {
		return errors.New("workdir= given without upperdir=")
	}
	if o.Upper != "" && o.Work == "" {
		return errors.New("upperdir= given without workdir=")
	}
	o.ReadOnly = p.ro || o.Upper == ""
	if o.Passthrough && o.Writeback {
		// The kernel turns passthrough off when the writeback cache is on.
		if p.writebackSet {
			p.notice("option writeback=1 ignored: passthrough excludes the writeback cache")
		}
		o.Writeback = false
	}
	if o.ReadOnly {
		o.Writeback = false // nothing is written
	}
	return nil
}

type argRule int

const (
	argNone     argRule = iota // flag: name only
	argRequired                // name=value, value not empty
	argOptional                // either form
)

type optionSpec struct {
	arg   argRule
	apply func(p *parser, name, value, tok string) error
}

// optionTable lists every option strata accepts, fuse-overlayfs' and
// more. Options strata does not implement are ignored with a notice.
var optionTable = map[string]optionSpec{
	"lowerdir": {argRequired, func(p *parser, name, v, _ string) error {
		parts, err := decodeValue(v, ':')
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		lowers := make([]string, 0, len(parts))
		for _, part := range parts {
			if part == "" {
				return fmt.Errorf("%s: empty entry in %q", name, v)
			}
			abs, err := absPath(name, part)
			if err != nil {
				return err
			}
			lowers = append(lowers, abs)
		}
		p.opts.Lowers = lowers // the last lowerdir= wins, as with libfuse
		return nil
	}},
	"upperdir": {argRequired, func(p *parser, name, v, _ string) (err error) {
		p.opts.Upper, err = pathValue(name, v)
		return err
	}},
	"workdir": {argRequired, func(p *parser, name, v, _ string) (err error) {
		p.opts.Work, err = pathValue(name, v)
		return err
	}},

	"ro": {argNone, func(p *parser, _, _, _ string) error { p.ro = true; return nil }},
	"rw": {argNone, func(p *parser, _, _, _ string) error { p.ro = false; return nil }},
	"volatile": {argNone, func(p *parser, _, _, _ string) error {
		p.opts.Volatile = true
		return nil
	}},
	"fsync": {argRequired, func(p *parser, name, v, _ string) error {
		on, err := zeroOne(name, v)
		p.opts.Volatile = !on
		return err
	}},
	"passthrough": {argNone, func(p *parser, _, _, _ string) error {
		p.opts.Passthrough = true
		return nil
	}},
	"writeback": {argRequired, func(p *parser, name, v, _ string) (err error) {
		p.opts.Writeback, err = zeroOne(name, v)
		p.writebackSet = true
		return err
	}},
	"threaded": {argRequired, func(p *parser, name, v, _ string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("%s: invalid value %q (want 0 or 1)", name, v)
		}
		p.opts.Threaded = n > 0
		return nil
	}},
	"noacl": {argNone, func(p *parser, _, _, _ string) error {
		p.opts.ACL = false
		return nil
	}},
	"userxattr": {argNone, func(p *parser, _, _, _ string) error {
		p.opts.UserXattr = true
		return nil
	}},
	"debug": {argNone, func(p *parser, _, _, _ string) error { p.setDebug(); return nil }},
	"allow_other": {argNone, func(p *parser, _, _, _ string) error {
		p.opts.AllowOther = true
		return nil
	}},
	"allow_root": {argNone, func(p *parser, _, _, _ string) error {
		p.opts.AllowOther = true
		p.notice("option allow_root treated as allow_other")
		return nil
	}},
	"default_permissions": {argNone, func(p *parser, _, _, _ string) error {
		p.opts.DefaultPermissions = true
		return nil
	}},
	"fsname": {argRequired, func(p *parser, name, v, _ string) (err error) {
		p.opts.FsName, err = stringValue(name, v)
		return err
	}},
	"subtype": {argRequired, func(p *parser, name, v, _ string) error {
		s, err := stringValue(name, v)
		if err == nil && strings.ContainsAny(s, "/, \t\n") {
			err = fmt.Errorf("%s: invalid value %q", name, v)
		}
		p.opts.Subtype = s
		return err
	}},
	"max_write": {argRequired, func(p *parser, name, v, _ string) error {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil || n == 0 {
			return fmt.Errorf("%s: invalid value %q (want a positive number of bytes)", name, v)
		}
		p.opts.MaxWrite = int(n)
		return nil
	}},
	"uidmapping": {argRequired, func(p *parser, name, v, _ string) (err error) {
		p.opts.UIDMap, err = parseIDMap(name, v, p.opts.UIDMap)
		return err
	}},
	"gidmapping": {argRequired, func(p *parser, name, v, _ string) (err error) {
		p.opts.GIDMap, err = parseIDMap(name, v, p.opts.GIDMap)
		return err
	}},
	"squash_to_root": {argNone, func(p *parser, _, _, _ string) error {
		p.opts.SquashToRoot = true
		return nil
	}},
	"squash_to_uid": {argRequired, func(p *parser, name, v, _ string) (err error) {
		p.opts.SquashToUID, err = idValue(name, v)
		return err
	}},
	"squash_to_gid": {argRequired, func(p *parser, name, v, _ string) (err error) {
		p.opts.SquashToGID, err = idValue(name, v)
		return err
	}},
	"xattr_permissions": {argRequired, func(p *parser, name, v, _ string) error {
		switch v {
		case "0", "1", "2":
			p.opts.XattrPermissions = int(v[0] - '0')
			return nil
		}
		return fmt.Errorf("%s: invalid value %q (want 0, 1 or 2)", name, v)
	}},
	// Meaningless for strata, accepted without a word.
	"defaults": {argNone, func(*parser, string, string, string) error { return nil }},
}

func init() {
	for _, name := range []string{
		"nodev", "dev", "nosuid", "suid", "noexec", "exec",
		"atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
		"strictatime", "nostrictatime", "lazytime", "nolazytime",
		"sync", "async", "dirsync",
	} {
		optionTable[name] = optionSpec{argNone, kernelOption}
	}
	for _, name := range []string{"context", "fscontext", "defcontext", "rootcontext"} {
		optionTable[name] = optionSpec{argRequired, kernelOption}
	}

	ignore := func(reason string, names ...string) {
		for _, name := range names {
			optionTable[name] = optionSpec{argOptional, func(p *parser, _, _, tok string) error {
				p.notice(fmt.Sprintf("option %q ignored: %s", tok, reason))
				return nil
			}}
		}
	}
	ignore("fuse-overlayfs tuning, not used by strata",
		"timeout", "fast_ino", "noxattrs", "plugins",
		"static_nlink")
	ignore("kernel overlayfs option, not supported by strata",
		"redirect_dir", "index", "metacopy", "xino", "nfs_export", "uuid", "verity")
	ignore("generic FUSE option, not supported by strata",
		"auto_unmount", "max_read", "blksize", "max_readahead", "max_background",
		"congestion_threshold", "async_read", "sync_read", "atomic_o_trunc",
		"big_writes", "large_read", "kernel_cache", "auto_cache", "noforget",
		"remember", "entry_timeout", "negative_timeout", "attr_timeout",
		"ac_attr_timeout", "use_ino", "readdir_ino", "direct_io", "hard_remove",
		"nopath", "intr", "intr_signal", "umask", "uid", "gid", "nonempty",
		"clone_fd", "max_idle_threads", "max_threads", "splice_move",
		"splice_read", "splice_write", "no_splice_move", "no_splice_read",
		"no_splice_write", "writeback_cache", "no_remote_lock",
		"no_remote_posix_lock", "no_remote_flock", "modules", "rootmode",
		"user_id", "group_id", "fd")
	ignore("fstab option, meaningless here",
		"auto", "noauto", "user", "nouser", "users", "owner", "group",
		"_netdev", "nofail", "comment")
}

// zeroOne parses the value of a 0|1 option.
func zeroOne(name, v string) (bool, error) {
	switch v {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("%s: invalid value %q (want 0 or 1)", name, v)
}

// kernelOption hands an option to the kernel's FUSE mount as it was given.
func kernelOption(p *parser, name, v, tok string) error {
	parts, err := decodeValue(v, 0)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if strings.Contains(tok, "=") && parts[0] == "" {
		return fmt.Errorf("%s: missing value", name)
	}
	p.opts.KernelOptions = append(p.opts.KernelOptions, tok)
	return nil
}

// stringValue decodes a single, non-empty value.
func stringValue(name, v string) (string, error) {
	parts, err := decodeValue(v, 0)
	if err != nil {
		return "", fmt.Errorf("%s: %v", name, err)
	}
	if parts[0] == "" {
		return "", fmt.Errorf("%s: missing value", name)
	}
	return parts[0], nil
}

// pathValue decodes a single path and makes it absolute.
func pathValue(name, v string) (string, error) {
	s, err := stringValue(name, v)
	if err != nil {
		return "", err
	}
	return absPath(name, s)
}

// absPath resolves p against the current directory and cleans it.
func absPath(name, p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%s: empty path", name)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s %q: %v", name, p, err)
	}
	return abs, nil
}

// idValue parses a uid or gid; 4294967295 is (uid_t)-1, never a valid ID.
func idValue(name, v string) (int, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("%s: invalid ID %q", name, v)
	}
	return int(n), nil
}

// parseIDMap parses CONTAINER:HOST:SIZE[:CONTAINER:HOST:SIZE...] and
// appends the ranges to have, rejecting ranges that are empty, wrap past
// 2^32 or overlap another one on either side (as the kernel does for user
// namespaces).
func parseIDMap(name, v string, have []IDMap) ([]IDMap, error) {
	// containers/storage writes the list with a leading colon
	// ("uidmapping=:0:100000:65536"), as fuse-overlayfs accepts.
	fields, err := decodeValue(strings.TrimPrefix(v, ":"), ':')
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(fields)%3 != 0 {
		return nil, fmt.Errorf("%s: malformed mapping %q (want CONTAINER:HOST:SIZE[:CONTAINER:HOST:SIZE...])", name, v)
	}
	out := have
	for i := 0; i < len(fields); i += 3 {
		var n [3]uint64
		for j := range n {
			n[j], err = strconv.ParseUint(fields[i+j], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s: malformed mapping %q: %q is not an ID", name, v, fields[i+j])
			}
		}
		m := IDMap{Container: uint32(n[0]), Host: uint32(n[1]), Size: uint32(n[2])}
		triple := strings.Join(fields[i:i+3], ":")
		if m.Size == 0 {
			return nil, fmt.Errorf("%s: empty range %q", name, triple)
		}
		if n[0]+n[2] > 1<<32 || n[1]+n[2] > 1<<32 {
			return nil, fmt.Errorf("%s: range %q goes past ID 4294967295", name, triple)
		}
		for _, o := range out {
			if overlaps(m.Container, o.Container, m.Size, o.Size) || overlaps(m.Host, o.Host, m.Size, o.Size) {
				return nil, fmt.Errorf("%s: range %q overlaps range \"%d:%d:%d\"", name, triple, o.Container, o.Host, o.Size)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func overlaps(a, b, asize, bsize uint32) bool {
	return uint64(a) < uint64(b)+uint64(bsize) && uint64(b) < uint64(a)+uint64(asize)
}
