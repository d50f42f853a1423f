package overlay

// IDRange maps IDs [Inside, Inside+Size) seen through the mount to
// [Outside, Outside+Size) stored in the layers.
type IDRange struct {
	Inside, Outside, Size uint32
}

// overflowID is what an unmapped owner shows as (the kernel's overflowuid).
const overflowID = 65534

// IDMapper translates file owners between the mount and the layers, as
// fuse-overlayfs' uidmapping=, gidmapping= and squash_to_* options do.
// A nil *IDMapper is the identity.
type IDMapper struct {
	UIDs, GIDs []IDRange
	// SquashUID and SquashGID, when not negative, are the owner every
	// object shows (what is stored is left alone).
	SquashUID, SquashGID int
}

func mapID(ranges []IDRange, id uint32, inside bool) uint32 {
	if len(ranges) == 0 {
		return id
	}
	for _, r := range ranges {
		from, to := r.Outside, r.Inside
		if !inside {
			from, to = r.Inside, r.Outside
		}
		if id >= from && id-from < r.Size {
			return to + (id - from)
		}
	}
	return overflowID
}

// toMount maps a stored owner to the owner shown through the mount.
func (m *IDMapper) toMount(uid, gid uint32) (uint32, uint32) {
	if m == nil {
		return uid, gid
	}
	uid, gid = mapID(m.UIDs, uid, true), mapID(m.GIDs, gid, true)
	if m.SquashUID >= 0 {
		uid = uint32(m.SquashUID)
	}
	if m.SquashGID >= 0 {
		gid = uint32(m.SquashGID)
	}
	return uid, gid
}

// toLayer maps an owner given through the mount to the owner stored.
func (m *IDMapper) toLayer(uid, gid uint32) (uint32, uint32) {
	if m == nil {
		return uid, gid
	}
	return mapID(m.UIDs, uid, false), mapID(m.GIDs, gid, false)
}
