package mountopt

// Version is Strata's version.
const Version = "0.1.0"

// VersionString is what --version prints. Its first line is
// "strata version X": podman info shows only that line.
func VersionString() string {
	return "strata version " + Version + "\n" +
		"fuse-overlayfs: compatible\n" +
		"FUSE library version 3 (go-fuse v2.12.1)"
}

// Usage is what --help prints.
func Usage() string {
	return `usage: strata [options] <mountpoint>
       strata <source> <mountpoint> -o <options>    (mount helper form)

Strata is a copy-on-write overlay filesystem in FUSE, a drop-in
replacement for fuse-overlayfs.

general options:
    -o opt,[opt...]        mount options
    -h   --help            print help
    -V   --version         print version
    -d   -o debug          enable debug output (implies -f)
    -f                     foreground operation
    -s                     one request at a time (the default)

strata options:
    -o lowerdir=DIR[:DIR...]   lower layers, leftmost is top-most
    -o upperdir=DIR            upper (writable) layer; without it the
                               mount is read-only
    -o workdir=DIR             work directory, on upperdir's filesystem
    -o ro / -o rw              read-only or read-write mount
    -o volatile                never sync to disk (same as fsync=0)
    -o fsync=0|1               0: skip fsync, 1: honour it (default)
    -o userxattr               store overlay xattrs as user.overlay.*
    -o passthrough             let the kernel read and write files of the
                               upper layer itself (FUSE passthrough, Linux
                               6.9+): faster large-file I/O, but a round
                               trip to the daemon for every open
    -o noacl                   do not let the kernel enforce POSIX ACLs
                               (they are still stored and shown)
    -o threaded=0|1            0 (default, same as -s): one request at a
                               time, answered by the thread that read it;
                               1: several at once, on several threads
    -o uidmapping=C:H:S[:C:H:S...]
                               map container IDs C..C+S-1 to host IDs H..
    -o gidmapping=C:H:S[:C:H:S...]
                               the same for group IDs
    -o squash_to_root          every file appears owned by root
    -o squash_to_uid=UID       every file appears owned by UID
    -o squash_to_gid=GID       every file appears owned by group GID
    -o xattr_permissions=0|1|2 how file permissions are stored in xattrs
                               (0: off, 1: privileged, 2: user namespace)
    -o allow_other             let other users access the mount
                               (default when run as root)
    -o allow_root              same as allow_other
    -o default_permissions     let the kernel check permissions (always on)
    -o fsname=NAME             source name shown in /proc/mounts
    -o subtype=NAME            type shown as fuse.NAME (default strata)
    -o max_write=N             largest write request, in bytes
    -o context=CTX, fscontext=CTX, defcontext=CTX, rootcontext=CTX
                               SELinux contexts, passed to the kernel
    -o nodev, nosuid, noexec, noatime, relatime, sync, dirsync, ...
                               mount flags, passed to the kernel

Accepted and ignored, with a notice: the fuse-overlayfs tuning options
timeout, fast_ino, writeback, noxattrs, plugins and static_nlink;
the kernel overlayfs options redirect_dir, index, metacopy,
xino, nfs_export, uuid and verity; generic FUSE options such as
auto_unmount, max_read and blksize.

In option values, "\:" is a colon, "\," a comma and "\\" a backslash;
double quotes group text, as in context="system_u:object_r:x:s0:c1,c2".
Relative paths are resolved against the current directory.
`
}
