package mountopt

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// rw sets the usual read-write layers on o.
	rw := func(o *Options) {
		o.Lowers = []string{"/l1", "/l2"}
		o.Upper, o.Work, o.Mountpoint = "/u", "/w", "/m"
	}
	podman := func(o *Options) {
		o.Lowers = []string{"/s/l/A", "/s/l/B"}
		o.Upper, o.Work, o.Mountpoint = "/s/id/diff", "/s/id/work", "/s/id/merged"
	}
	tests := []struct {
		name   string
		args   []string
		action Action
		want   func(o *Options) // applied to DefaultOptions()
	}{
		{
			name: "fuse-overlayfs form",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w", "/m"},
			want: rw,
		},
		{
			name: "options over several -o, glued -o, flags after the mountpoint",
			args: []string{"-o", "lowerdir=/l1:/l2", "-oupperdir=/u", "/m", "-o", "workdir=/w", "-f"},
			want: func(o *Options) { rw(o); o.Foreground = true },
		},
		{
			name: "mount helper form",
			args: []string{"overlay", "/m", "-o", "rw,lowerdir=/l1:/l2,upperdir=/u,workdir=/w"},
			want: rw,
		},
		{
			name: "mount helper form, options first",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w", "strata", "/m"},
			want: rw,
		},
		{
			name: "podman, trailing comma",
			args: []string{"-o", "lowerdir=/s/l/A:/s/l/B,upperdir=/s/id/diff,workdir=/s/id/work,", "/s/id/merged"},
			want: podman,
		},
		{
			name: "podman, empty option then volatile",
			args: []string{"-o", "lowerdir=/s/l/A:/s/l/B,upperdir=/s/id/diff,workdir=/s/id/work,,volatile", "/s/id/merged"},
			want: func(o *Options) { podman(o); o.Volatile = true },
		},
		{
			name: "podman, read-only image mount",
			args: []string{"-o", "lowerdir=/s/l/X:/s/l/Y", "/s/merged"},
			want: func(o *Options) {
				o.Lowers = []string{"/s/l/X", "/s/l/Y"}
				o.Mountpoint = "/s/merged"
				o.ReadOnly, o.Writeback = true, false
			},
		},
		{
			name: "podman, rootless mappings and squash",
			args: []string{"-o", "lowerdir=/s/l/A:/s/l/B,upperdir=/s/id/diff,workdir=/s/id/work,uidmapping=0:100000:65536,gidmapping=0:100000:65536,squash_to_uid=0,squash_to_gid=0", "/s/id/merged"},
			want: func(o *Options) {
				podman(o)
				o.UIDMap = []IDMap{{0, 100000, 65536}}
				o.GIDMap = []IDMap{{0, 100000, 65536}}
				o.SquashToUID, o.SquashToGID = 0, 0
			},
		},
		{
			name: "podman, SELinux context with commas and colons in quotes",
			args: []string{"-o", `lowerdir=/l1:/l2,upperdir=/u,workdir=/w,context="system_u:object_r:container_file_t:s0:c1,c2",nodev`, "/m"},
			want: func(o *Options) {
				rw(o)
				o.KernelOptions = []string{`context="system_u:object_r:container_file_t:s0:c1,c2"`, "nodev"}
			},
		},
		{
			name: "escapes in paths",
			args: []string{"-o", `lowerdir=/a\:b:/c\,d:/e\\f:/g\"h:/i\054j,upperdir=/u\:1,workdir=/w\,1`, "/m"},
			want: func(o *Options) {
				o.Lowers = []string{"/a:b", "/c,d", `/e\f`, `/g"h`, "/i,j"}
				o.Upper, o.Work, o.Mountpoint = "/u:1", "/w,1", "/m"
			},
		},
		{
			name: "quoted paths",
			args: []string{"-o", `lowerdir="/a,b:c":/d,upperdir="/u,v",workdir=/w`, "/m"},
			want: func(o *Options) {
				o.Lowers = []string{"/a,b:c", "/d"}
				o.Upper, o.Work, o.Mountpoint = "/u,v", "/w", "/m"
			},
		},
		{
			name: "relative paths resolved against the working directory and cleaned",
			args: []string{"-o", "lowerdir=l1:sub/../l2/,upperdir=./u,workdir=w//x", "mnt"},
			want: func(o *Options) {
				o.Lowers = []string{filepath.Join(cwd, "l1"), filepath.Join(cwd, "l2")}
				o.Upper = filepath.Join(cwd, "u")
				o.Work = filepath.Join(cwd, "w/x")
				o.Mountpoint = filepath.Join(cwd, "mnt")
			},
		},
		{
			name: "-- ends flags",
			args: []string{"-o", "lowerdir=/l", "--", "-m"},
			want: func(o *Options) {
				o.Lowers = []string{"/l"}
				o.Mountpoint = filepath.Join(cwd, "-m")
				o.ReadOnly, o.Writeback = true, false
			},
		},
		{
			name: "last lowerdir wins",
			args: []string{"-o", "lowerdir=/x,lowerdir=/l1:/l2,upperdir=/u,workdir=/w", "/m"},
			want: rw,
		},
		{
			name: "ro with an upper layer",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,ro", "/m"},
			want: func(o *Options) { rw(o); o.ReadOnly, o.Writeback = true, false },
		},
		{
			name: "rw after ro",
			args: []string{"-o", "ro,lowerdir=/l1:/l2,upperdir=/u,workdir=/w", "-o", "rw", "/m"},
			want: rw,
		},
		{
			name: "rw without upperdir stays read-only",
			args: []string{"-o", "rw,lowerdir=/l", "/m"},
			want: func(o *Options) {
				o.Lowers, o.Mountpoint, o.ReadOnly, o.Writeback = []string{"/l"}, "/m", true, false
			},
		},
		{
			name: "fsync=0 is volatile",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,fsync=0", "/m"},
			want: func(o *Options) { rw(o); o.Volatile = true },
		},
		{
			name: "passthrough",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,passthrough", "/m"},
			want: func(o *Options) { rw(o); o.Passthrough, o.Writeback = true, false },
		},
		{
			name: "writeback=0",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,writeback=0", "/m"},
			want: func(o *Options) { rw(o); o.Writeback = false },
		},
		{
			name: "noacl",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,noacl", "/m"},
			want: func(o *Options) { rw(o); o.ACL = false },
		},
		{
			name: "writeback=1 after writeback=0",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,writeback=0,writeback=1", "/m"},
			want: rw,
		},
		{
			name: "writeback=1 with passthrough",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,writeback=1,passthrough", "/m"},
			want: func(o *Options) {
				rw(o)
				o.Passthrough, o.Writeback = true, false
				o.Notices = []string{"option writeback=1 ignored: passthrough excludes the writeback cache"}
			},
		},
		{
			name: "threaded",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,threaded=1", "/m"},
			want: func(o *Options) { rw(o); o.Threaded = true },
		},
		{
			name: "-s after threaded=2",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,threaded=2", "-s", "/m"},
			want: rw,
		},
		{
			name: "threaded=0",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,threaded=1,threaded=0", "/m"},
			want: rw,
		},
		{
			name: "fsync=1 after volatile",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,volatile,fsync=1", "/m"},
			want: rw,
		},
		{
			name: "-d implies foreground",
			args: []string{"-d", "-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w", "/m"},
			want: func(o *Options) { rw(o); o.Debug, o.Foreground = true, true },
		},
		{
			name: "-o debug",
			args: []string{"-o", "debug,lowerdir=/l1:/l2,upperdir=/u,workdir=/w", "/m"},
			want: func(o *Options) { rw(o); o.Debug, o.Foreground = true, true },
		},
		{
			name: "implemented flags and values",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,userxattr,allow_other,default_permissions,fsname=myfs,subtype=over,max_write=131072,squash_to_root,xattr_permissions=2", "/m"},
			want: func(o *Options) {
				rw(o)
				o.UserXattr, o.AllowOther, o.DefaultPermissions = true, true, true
				o.FsName, o.Subtype, o.MaxWrite = "myfs", "over", 131072
				o.SquashToRoot, o.XattrPermissions = true, 2
			},
		},
		{
			name: "escaped fsname",
			args: []string{"-o", `lowerdir=/l1:/l2,upperdir=/u,workdir=/w,fsname=a\,b\:c`, "/m"},
			want: func(o *Options) { rw(o); o.FsName = "a,b:c" },
		},
		{
			name: "allow_root is allow_other, with a notice",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,allow_root", "/m"},
			want: func(o *Options) {
				rw(o)
				o.AllowOther = true
				o.Notices = []string{"option allow_root treated as allow_other"}
			},
		},
		{
			name: "several triples in one mapping option, and several options",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,uidmapping=0:1000:1:1:100000:65536,uidmapping=65537:200000:10,gidmapping=0:1000:1", "/m"},
			want: func(o *Options) {
				rw(o)
				o.UIDMap = []IDMap{{0, 1000, 1}, {1, 100000, 65536}, {65537, 200000, 10}}
				o.GIDMap = []IDMap{{0, 1000, 1}}
			},
		},
		{
			name: "kernel pass-through keeps order and spelling",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,nodev,nosuid,noexec,noatime", "-o", "dev,suid,exec,nodiratime,relatime,strictatime,sync,async,dirsync,atime,fscontext=a:b,defcontext=c,rootcontext=\"d:e\"", "/m"},
			want: func(o *Options) {
				rw(o)
				o.KernelOptions = []string{"nodev", "nosuid", "noexec", "noatime",
					"dev", "suid", "exec", "nodiratime", "relatime", "strictatime", "sync", "async", "dirsync", "atime",
					"fscontext=a:b", "defcontext=c", `rootcontext="d:e"`}
			},
		},
		{
			name: "ignored options leave a notice each, once",
			args: []string{"-o", "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,timeout=5,static_nlink,redirect_dir=on,auto_unmount,auto_unmount,max_read=4096,defaults,x-systemd.automount", "/m"},
			want: func(o *Options) {
				rw(o)
				o.Notices = []string{
					`option "timeout=5" ignored: fuse-overlayfs tuning, not used by strata`,
					`option "static_nlink" ignored: fuse-overlayfs tuning, not used by strata`,
					`option "redirect_dir=on" ignored: kernel overlayfs option, not supported by strata`,
					`option "auto_unmount" ignored: generic FUSE option, not supported by strata`,
					`option "max_read=4096" ignored: generic FUSE option, not supported by strata`,
				}
			},
		},
		{name: "-h", args: []string{"-h"}, action: ActionHelp},
		{name: "--help wins over errors", args: []string{"-o", "bogus", "--help", "a", "b", "c"}, action: ActionHelp},
		{name: "help wins over version", args: []string{"-V", "-h"}, action: ActionHelp},
		{name: "-V", args: []string{"-V"}, action: ActionVersion},
		{name: "--version", args: []string{"--version"}, action: ActionVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, action, err := ParseArgs(tc.args)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tc.args, err)
			}
			if action != tc.action {
				t.Errorf("action = %v, want %v", action, tc.action)
			}
			want := DefaultOptions()
			if tc.want != nil {
				tc.want(want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseArgs(%q)\n got %+v\nwant %+v", tc.args, got, want)
			}
		})
	}
}

func TestParseIDMapLeadingColon(t *testing.T) {
	o, _, err := ParseArgs([]string{"-o", "lowerdir=/l,upperdir=/u,workdir=/w,uidmapping=:0:100000:65536:65536:5:1,gidmapping=:0:100000:65536", "/m"})
	if err != nil {
		t.Fatal(err)
	}
	want := []IDMap{{0, 100000, 65536}, {65536, 5, 1}}
	if len(o.UIDMap) != 2 || o.UIDMap[0] != want[0] || o.UIDMap[1] != want[1] {
		t.Fatalf("UIDMap = %v, want %v", o.UIDMap, want)
	}
	if len(o.GIDMap) != 1 || o.GIDMap[0] != want[0] {
		t.Fatalf("GIDMap = %v", o.GIDMap)
	}
}

func TestParseArgsErrors(t *testing.T) {
	mount := func(opts string) []string { return []string{"-o", opts, "/m"} }
	layers := "lowerdir=/l,upperdir=/u,workdir=/w,"
	tests := []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"no arguments", nil, []string{"missing mountpoint"}},
		{"no mountpoint", []string{"-o", "lowerdir=/l"}, []string{"missing mountpoint"}},
		{"extra positional", []string{"-o", "lowerdir=/l", "a", "b", "c"}, []string{`unexpected argument "c"`}},
		{"unknown long flag", []string{"--bogus", "-o", "lowerdir=/l", "/m"}, []string{`unknown flag "--bogus"`}},
		{"unknown short flag", []string{"-x", "-o", "lowerdir=/l", "/m"}, []string{`unknown flag "-x"`}},
		{"-o without argument", []string{"/m", "-o"}, []string{"-o", "argument"}},
		{"unknown option", mount(layers + "foo"), []string{`unknown option "foo"`}},
		{"unknown option with value", mount(layers + "foo=bar"), []string{`unknown option "foo"`}},
		{"no lowerdir", mount("upperdir=/u,workdir=/w"), []string{"lowerdir"}},
		{"empty lowerdir entry", mount("lowerdir=a::b"), []string{`lowerdir: empty entry in "a::b"`}},
		{"trailing colon in lowerdir", mount("lowerdir=/a:"), []string{`lowerdir: empty entry in "/a:"`}},
		{"leading colon in lowerdir", mount("lowerdir=:/a"), []string{`lowerdir: empty entry in ":/a"`}},
		{"empty lowerdir", mount("lowerdir="), []string{"lowerdir: missing value"}},
		{"quoted empty upperdir", mount(`lowerdir=/l,upperdir="",workdir=/w`), []string{"upperdir: missing value"}},
		{"upperdir without value", mount("lowerdir=/l,upperdir,workdir=/w"), []string{"upperdir: missing value"}},
		{"workdir without upperdir", mount("lowerdir=/l,workdir=/w"), []string{"workdir= given without upperdir="}},
		{"upperdir without workdir", mount("lowerdir=/l,upperdir=/u"), []string{"upperdir= given without workdir="}},
		{"trailing backslash", []string{"-o", `lowerdir=/a\`, "/m"}, []string{"lowerdir", "trailing backslash"}},
		{"trailing backslash in upperdir", []string{"-o", `lowerdir=/l,workdir=/w,upperdir=/u\`, "/m"}, []string{"upperdir", "trailing backslash"}},
		{"bad escape", mount(`lowerdir=/a\qb`), []string{"lowerdir", `bad escape "\\q"`}},
		{"NUL escape", mount(`lowerdir=/a\000b`), []string{"lowerdir", "bad escape"}},
		{"unterminated quote", mount(layers + `context="system_u:object_r`), []string{"context", "unterminated quote"}},
		{"empty context", mount(layers + "context="), []string{"context: missing value"}},
		{"quoted empty context", mount(layers + `context=""`), []string{"context: missing value"}},
		{"flag with a value", mount(layers + "volatile=1"), []string{"volatile", "takes no value"}},
		{"kernel flag with a value", mount(layers + "nodev=1"), []string{"nodev", "takes no value"}},
		{"fsync=2", mount(layers + "fsync=2"), []string{"fsync", `"2"`}},
		{"threaded=yes", mount(layers + "threaded=yes"), []string{"threaded", `"yes"`}},
		{"threaded=-1", mount(layers + "threaded=-1"), []string{"threaded", `"-1"`}},
		{"threaded without value", mount(layers + "threaded"), []string{"threaded: missing value"}},
		{"writeback=2", mount(layers + "writeback=2"), []string{"writeback", `"2"`}},
		{"writeback without value", mount(layers + "writeback"), []string{"writeback: missing value"}},
		{"non-numeric squash_to_uid", mount(layers + "squash_to_uid=root"), []string{"squash_to_uid", `"root"`}},
		{"negative squash_to_uid", mount(layers + "squash_to_uid=-1"), []string{"squash_to_uid", `"-1"`}},
		{"squash_to_uid -1 in disguise", mount(layers + "squash_to_uid=4294967295"), []string{"squash_to_uid"}},
		{"squash_to_gid too big", mount(layers + "squash_to_gid=99999999999"), []string{"squash_to_gid"}},
		{"squash_to_gid empty", mount(layers + "squash_to_gid="), []string{"squash_to_gid: missing value"}},
		{"short mapping", mount(layers + "uidmapping=0:1"), []string{"uidmapping", "malformed", `"0:1"`}},
		{"four fields", mount(layers + "gidmapping=0:1:2:3"), []string{"gidmapping", "malformed"}},
		{"non-numeric mapping", mount(layers + "uidmapping=0:x:1"), []string{"uidmapping", `"x"`}},
		{"negative mapping", mount(layers + "uidmapping=0:-5:1"), []string{"uidmapping", `"-5"`}},
		{"empty mapping field", mount(layers + "uidmapping=0::1"), []string{"uidmapping", `""`}},
		{"zero-sized mapping", mount(layers + "uidmapping=0:0:0"), []string{"uidmapping", "empty range", `"0:0:0"`}},
		{"mapping past 2^32", mount(layers + "gidmapping=4294967295:0:2"), []string{"gidmapping", "4294967295:0:2"}},
		{"overlapping container IDs", mount(layers + "uidmapping=0:1000:10:5:2000:10"), []string{"uidmapping", "overlaps", "5:2000:10"}},
		{"overlapping host IDs across options", mount(layers + "gidmapping=0:1000:10,gidmapping=100:1005:1"), []string{"gidmapping", "overlaps"}},
		{"xattr_permissions=7", mount(layers + "xattr_permissions=7"), []string{"xattr_permissions", `"7"`}},
		{"max_write=0", mount(layers + "max_write=0"), []string{"max_write", `"0"`}},
		{"max_write not a number", mount(layers + "max_write=lots"), []string{"max_write", `"lots"`}},
		{"subtype with a slash", mount(layers + "subtype=a/b"), []string{"subtype", `"a/b"`}},
		{"empty fsname", mount(layers + "fsname="), []string{"fsname: missing value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, _, err := ParseArgs(tc.args)
			if err == nil {
				t.Fatalf("ParseArgs(%q) = %+v, want an error", tc.args, o)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not a single line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("ParseArgs(%q) error %q does not mention %q", tc.args, msg, w)
				}
			}
		})
	}
}

// Every option fuse-overlayfs accepts must be accepted, implemented or not.
func TestParseArgsAcceptsFuseOverlayfsOptions(t *testing.T) {
	for _, opt := range []string{
		"context=system_u:object_r:container_file_t:s0", "default_permissions",
		"allow_other", "allow_root", "uidmapping=0:1:1", "gidmapping=0:1:1",
		"timeout=1", "threaded=1", "fsync=0", "fsync=1", "fast_ino=1",
		"writeback=1", "noxattrs=1", "plugins=/p.so", "xattr_permissions=0",
		"xattr_permissions=1", "squash_to_root", "squash_to_uid=0",
		"squash_to_gid=0", "static_nlink", "volatile", "noacl", "ro", "rw",
		"suid", "nosuid", "dev", "nodev", "exec", "noexec", "atime",
		"noatime", "relatime", "strictatime", "nodiratime", "sync", "async",
		"dirsync", "debug", "max_write=65536", "fsname=x", "subtype=y",
		"userxattr", "redirect_dir=on", "index=off", "metacopy=on",
		"xino=auto", "nfs_export=off", "auto_unmount", "max_read=65536",
		"blksize=4096",
	} {
		args := []string{"-o", "lowerdir=/l,upperdir=/u,workdir=/w," + opt, "/m"}
		if _, _, err := ParseArgs(args); err != nil {
			t.Errorf("option %q rejected: %v", opt, err)
		}
	}
}

func TestParseArgsDefaults(t *testing.T) {
	o, action, err := ParseArgs([]string{"-o", "lowerdir=/l", "/m"})
	if err != nil || action != ActionMount {
		t.Fatalf("ParseArgs: %v, %v", action, err)
	}
	if o.SquashToUID != -1 || o.SquashToGID != -1 {
		t.Errorf("squash IDs = %d, %d; want -1, -1", o.SquashToUID, o.SquashToGID)
	}
	if o.AllowOther != (os.Geteuid() == 0) {
		t.Errorf("AllowOther = %v with euid %d", o.AllowOther, os.Geteuid())
	}
	if !o.DefaultPermissions || o.FsName != "strata" || o.Subtype != "strata" {
		t.Errorf("defaults: %+v", o)
	}
	if !o.ReadOnly {
		t.Error("no upperdir but not ReadOnly")
	}
	if o.Threaded {
		t.Error("threaded by default")
	}
	if o.Writeback {
		t.Error("read-only mount with the writeback cache")
	}
	rw, _, err := ParseArgs([]string{"-o", "lowerdir=/l,upperdir=/u,workdir=/w", "/m"})
	if err != nil {
		t.Fatal(err)
	}
	if !rw.Writeback {
		t.Error("read-write mount without the writeback cache by default")
	}
}

func TestEscapeValueRoundTrip(t *testing.T) {
	paths := []string{"/plain", "/a:b", "/c,d", `/e\f`, `/g"h`, "/sp ace", "/ü:x,y", `/\:,"`, "/x\\054"}
	var esc []string
	for _, p := range paths {
		esc = append(esc, EscapeValue(p))
	}
	args := []string{"-o", "lowerdir=" + strings.Join(esc, ":") + ",upperdir=" + EscapeValue("/u:,") + ",workdir=/w", "/m"}
	o, _, err := ParseArgs(args)
	if err != nil {
		t.Fatalf("ParseArgs(%q): %v", args, err)
	}
	if !reflect.DeepEqual(o.Lowers, paths) {
		t.Errorf("lowers %q, want %q (args %q)", o.Lowers, paths, args)
	}
	if o.Upper != "/u:," {
		t.Errorf("upper %q", o.Upper)
	}
}

func TestSplitOptions(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{",,", nil},
		{"a,b,", []string{"a", "b"}},
		{",a,,b", []string{"a", "b"}},
		{`a\,b,c`, []string{`a\,b`, "c"}},
		{`ctx="x,y",z`, []string{`ctx="x,y"`, "z"}},
		{`a="\"b,c",d`, []string{`a="\"b,c"`, "d"}},
		{`a\`, []string{`a\`}},
		{`a="b,c`, []string{`a="b,c`}},
	}
	for _, tc := range tests {
		if got := splitOptions(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitOptions(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestVersionAndUsage(t *testing.T) {
	first, _, _ := strings.Cut(VersionString(), "\n")
	if first != "strata version "+Version {
		t.Errorf("first line of VersionString() = %q", first)
	}
	u := Usage()
	for _, w := range []string{"lowerdir=", "upperdir=", "workdir=", "uidmapping=", "squash_to_uid=", "--version", "--help"} {
		if !strings.Contains(u, w) {
			t.Errorf("Usage() does not mention %q", w)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{ActionMount: "mount", ActionHelp: "help", ActionVersion: "version", 7: "Action(7)"} {
		if a.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(a), a.String(), want)
		}
	}
}
