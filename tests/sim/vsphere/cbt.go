package main

// Changed block tracking (CBT) for the simulator, following the vSphere Web Services API:
//   - VirtualMachine.QueryChangedDiskAreas, answered from real disk content that the tests plant
//     (control "plant_disk"), compared in 64 KiB blocks;
//   - config.changeTrackingEnabled (ReconfigVM_Task) switches tracking on and off; switching it
//     on starts a new change-ID epoch;
//   - CreateSnapshot_Task / CreateSnapshotEx_Task record the disks' content as a new version and
//     put its changeId on the snapshot's disk backing and on the VM's current disk backing;
//   - controls to reset the tracking of a VM (new epoch) and to expire every session.
// See README.md.

import (
	"crypto/rand"
	"fmt"
	"hash/crc64"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	cbtBlock           = 64 * 1024 // granularity of QueryChangedDiskAreas answers
	cbtDefaultMaxAreas = 4         // areas per QueryChangedDiskAreas reply unless set by control
)

// cbtVersion is a disk's content as recorded by a snapshot taken while tracking was on.
type cbtVersion struct {
	epoch    string
	seq      int
	data     []byte   // nil: all zeros
	sums     []uint64 // CRC-64 of each 64 KiB block of data (see blockSums); nil with data
	capacity int64
}

// cbtDisk is one VirtualDisk's tracking state (keyed by device key in cbtVM).
type cbtDisk struct {
	epoch    string
	seq      int    // last recorded version of this epoch (0: none yet)
	data     []byte // the current content; nil: never planted (all zeros)
	sums     []uint64
	capacity int64
	versions map[string]*cbtVersion // changeId -> version, every epoch
}

type cbtVM struct {
	enabled bool // config.changeTrackingEnabled as last seen
	disks   map[int32]*cbtDisk
}

// newEpoch returns a random, UUID-like epoch in vSphere's changeId notation
// ("52 3c 1a ... 8e-4f ... 7d"); a changeId is "<epoch>/<seq>".
func newEpoch() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	parts := make([]string, 16)
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts[:8], " ") + "-" + strings.Join(parts[8:], " ")
}

func changeID(epoch string, seq int) string { return fmt.Sprintf("%s/%d", epoch, seq) }

// controlContext returns a context of its own for control-plane work: the simulator's object
// locks are owned by contexts, so concurrent control calls must not share one.
func (e *extensions) controlContext() *simulator.Context {
	c := *e.model.Service.Context
	c.Session = nil
	return &c
}

// cbtState returns the VM's tracking state, creating entries for disks seen for the first time,
// and follows config.changeTrackingEnabled: off -> on starts a new epoch, on -> off clears the
// changeIds of the current disks. Call with the VM locked by ctx.
func (e *extensions) cbtState(ctx *simulator.Context, vm *simulator.VirtualMachine) *cbtVM {
	e.cbtMu.Lock()
	st := e.cbt[vm.Self]
	if st == nil {
		st = &cbtVM{disks: map[int32]*cbtDisk{}}
		e.cbt[vm.Self] = st
	}
	for _, d := range vm.Config.Hardware.Device {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		if st.disks[disk.Key] == nil {
			st.disks[disk.Key] = &cbtDisk{epoch: newEpoch(), capacity: diskCapacity(disk), versions: map[string]*cbtVersion{}}
		}
	}
	enabled := vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
	was := st.enabled
	st.enabled = enabled
	if enabled && !was {
		for _, d := range st.disks {
			d.epoch, d.seq = newEpoch(), 0
		}
	}
	e.cbtMu.Unlock()
	if was && !enabled {
		e.setDiskBackings(ctx, vm, func(disk *types.VirtualDisk, b *types.VirtualDiskFlatVer2BackingInfo) { b.ChangeId = "" })
	}
	return st
}

func diskCapacity(disk *types.VirtualDisk) int64 {
	if disk.CapacityInBytes > 0 {
		return disk.CapacityInBytes
	}
	return disk.CapacityInKB * 1024
}

// setDiskBackings changes the VM's flat disks through edit, copy-on-write: snapshots share the
// device objects of the configuration they were taken from, so those are never modified.
func (e *extensions) setDiskBackings(ctx *simulator.Context, vm *simulator.VirtualMachine, edit func(*types.VirtualDisk, *types.VirtualDiskFlatVer2BackingInfo)) {
	vm.Config.Hardware.Device = editDisks(vm.Config.Hardware.Device, edit)
	ctx.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: vm.Config.Hardware.Device}})
}

func editDisks(devices []types.BaseVirtualDevice, edit func(*types.VirtualDisk, *types.VirtualDiskFlatVer2BackingInfo)) []types.BaseVirtualDevice {
	out := make([]types.BaseVirtualDevice, len(devices))
	copy(out, devices)
	for i, d := range out {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			continue
		}
		nd, nb := *disk, *b
		edit(&nd, &nb)
		nd.Backing = &nb
		out[i] = &nd
	}
	return out
}

// snapshotsOf lists the VM's snapshots (the whole tree). Call with the VM locked.
func snapshotsOf(ctx *simulator.Context, vm *simulator.VirtualMachine) []*simulator.VirtualMachineSnapshot {
	var out []*simulator.VirtualMachineSnapshot
	var walk func([]types.VirtualMachineSnapshotTree)
	walk = func(list []types.VirtualMachineSnapshotTree) {
		for _, s := range list {
			if snap, ok := ctx.Map.Get(s.Snapshot).(*simulator.VirtualMachineSnapshot); ok {
				out = append(out, snap)
			}
			walk(s.ChildSnapshotList)
		}
	}
	if vm.Snapshot != nil {
		walk(vm.Snapshot.RootSnapshotList)
	}
	return out
}

// ---- SOAP methods (reached through dispatch, on a session-scoped vmCBT wrapper) ----

type vmCBT struct {
	Self types.ManagedObjectReference
	vm   *simulator.VirtualMachine
	ext  *extensions
}

func (w *vmCBT) Reference() types.ManagedObjectReference { return w.Self }

// ReconfigVMTask runs the simulator's reconfiguration, then notes a change of
// config.changeTrackingEnabled at once (so that off -> on -> off -> on is not missed).
func (w *vmCBT) ReconfigVMTask(ctx *simulator.Context, req *types.ReconfigVM_Task) soap.HasFault {
	defer ctx.Session.Remove(ctx, w.Self)
	task := w.ext.wrapTask(ctx, w.vm, "reconfigVm",
		func() soap.HasFault { return w.vm.ReconfigVMTask(ctx, req) },
		func(result types.AnyType) { w.ext.cbtState(ctx, w.vm) })
	return &methods.ReconfigVM_TaskBody{Res: &types.ReconfigVM_TaskResponse{Returnval: task}}
}

func (w *vmCBT) CreateSnapshotTask(ctx *simulator.Context, req *types.CreateSnapshot_Task) soap.HasFault {
	defer ctx.Session.Remove(ctx, w.Self)
	task := w.ext.wrapTask(ctx, w.vm, "createSnapshot",
		func() soap.HasFault { return w.vm.CreateSnapshotTask(ctx, req) },
		func(result types.AnyType) { w.ext.recordSnapshot(ctx, w.vm, result) })
	return &methods.CreateSnapshot_TaskBody{Res: &types.CreateSnapshot_TaskResponse{Returnval: task}}
}

func (w *vmCBT) CreateSnapshotExTask(ctx *simulator.Context, req *types.CreateSnapshotEx_Task) soap.HasFault {
	defer ctx.Session.Remove(ctx, w.Self)
	task := w.ext.wrapTask(ctx, w.vm, "createSnapshotEx",
		func() soap.HasFault { return w.vm.CreateSnapshotExTask(ctx, req) },
		func(result types.AnyType) { w.ext.recordSnapshot(ctx, w.vm, result) })
	return &methods.CreateSnapshotEx_TaskBody{Res: &types.CreateSnapshotEx_TaskResponse{Returnval: task}}
}

// wrapTask returns a task on the VM that runs the simulator's own task (started by start),
// waits for it and then runs after with its result while still holding the VM's lock, so clients
// see the task finish only once our bookkeeping is done. This is the simulator's own pattern for
// a task that needs another task (Task.RunBlocking); both run on behalf of the same context.
func (e *extensions) wrapTask(ctx *simulator.Context, vm *simulator.VirtualMachine, name string, start func() soap.HasFault, after func(types.AnyType)) types.ManagedObjectReference {
	task := simulator.CreateTask(vm, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		res := start()
		if f := res.Fault(); f != nil {
			if mf, ok := f.VimFault().(types.BaseMethodFault); ok {
				return nil, mf
			}
			return nil, &types.SystemError{Reason: f.String}
		}
		ref := taskOf(res)
		inner, ok := ctx.Map.Get(ref).(*simulator.Task)
		if !ok {
			return nil, &types.SystemError{Reason: "task not found: " + ref.Value}
		}
		inner.Wait()
		if inner.Info.Error != nil {
			return nil, inner.Info.Error.Fault
		}
		after(inner.Info.Result)
		return inner.Info.Result, nil
	})
	return task.Run(ctx)
}

func taskOf(res soap.HasFault) types.ManagedObjectReference {
	switch b := res.(type) {
	case *methods.ReconfigVM_TaskBody:
		return b.Res.Returnval
	case *methods.CreateSnapshot_TaskBody:
		return b.Res.Returnval
	case *methods.CreateSnapshotEx_TaskBody:
		return b.Res.Returnval
	}
	return types.ManagedObjectReference{}
}

// recordSnapshot: while tracking is on, each disk's content becomes version seq+1 of its epoch;
// the changeId goes on the snapshot's disk backing and on the VM's current disk backing.
func (e *extensions) recordSnapshot(ctx *simulator.Context, vm *simulator.VirtualMachine, result types.AnyType) {
	ref, ok := result.(types.ManagedObjectReference)
	if !ok {
		return
	}
	snap, ok := ctx.Map.Get(ref).(*simulator.VirtualMachineSnapshot)
	if !ok {
		return
	}
	st := e.cbtState(ctx, vm)
	e.cbtMu.Lock()
	if !st.enabled {
		e.cbtMu.Unlock()
		return
	}
	ids := map[int32]string{}
	for _, dev := range snap.Config.Hardware.Device {
		disk, ok := dev.(*types.VirtualDisk)
		if !ok || st.disks[disk.Key] == nil {
			continue
		}
		key, d := disk.Key, st.disks[disk.Key]
		d.seq++
		id := changeID(d.epoch, d.seq)
		d.versions[id] = &cbtVersion{epoch: d.epoch, seq: d.seq, data: d.data, sums: d.sums, capacity: d.capacity}
		ids[key] = id
	}
	e.cbtMu.Unlock()
	set := func(disk *types.VirtualDisk, b *types.VirtualDiskFlatVer2BackingInfo) {
		if id, ok := ids[disk.Key]; ok {
			b.ChangeId = id
		}
	}
	ctx.WithLock(snap, func() {
		snap.Config.Hardware.Device = editDisks(snap.Config.Hardware.Device, set)
	})
	e.setDiskBackings(ctx, vm, set)
}

// QueryChangedDiskAreas answers from the recorded versions: for changeId "*" the areas of the
// snapshot's content that are not all zero, otherwise the areas where the version named by
// changeId and the snapshot's version differ; 64 KiB blocks, adjacent ones merged, at most
// cbt_max_areas areas per reply.
func (w *vmCBT) QueryChangedDiskAreas(ctx *simulator.Context, req *types.QueryChangedDiskAreas) soap.HasFault {
	defer ctx.Session.Remove(ctx, w.Self)
	body := new(methods.QueryChangedDiskAreasBody)
	var info types.DiskChangeInfo
	var fault *soap.Fault
	ctx.WithLock(w.vm, func() { info, fault = w.ext.queryChangedDiskAreas(ctx, w.vm, req) })
	if fault != nil {
		body.Fault_ = fault
	} else {
		body.Res = &types.QueryChangedDiskAreasResponse{Returnval: info}
	}
	return body
}

func invalidArgument(property, msg string) *soap.Fault {
	return simulator.Fault(msg, &types.InvalidArgument{InvalidProperty: property})
}

func (e *extensions) queryChangedDiskAreas(ctx *simulator.Context, vm *simulator.VirtualMachine, req *types.QueryChangedDiskAreas) (types.DiskChangeInfo, *soap.Fault) {
	var none types.DiskChangeInfo
	st := e.cbtState(ctx, vm)
	if !st.enabled {
		return none, simulator.Fault("change tracking is not enabled on this virtual machine", &types.NotSupported{})
	}

	devices := vm.Config.Hardware.Device
	if req.Snapshot != nil {
		snap, ok := ctx.Map.Get(*req.Snapshot).(*simulator.VirtualMachineSnapshot)
		if !ok || snap.Vm != vm.Self {
			return none, invalidArgument("snapshot", "not a snapshot of this virtual machine")
		}
		devices = snap.Config.Hardware.Device
	} else if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		return none, invalidArgument("snapshot", "a snapshot is required while the virtual machine is powered on")
	}
	var disk *types.VirtualDisk
	for _, d := range devices {
		if x, ok := d.(*types.VirtualDisk); ok && x.Key == req.DeviceKey {
			disk = x
		}
	}
	if disk == nil {
		return none, invalidArgument("deviceKey", fmt.Sprintf("no virtual disk with key %d", req.DeviceKey))
	}

	e.cbtMu.Lock()
	defer e.cbtMu.Unlock()
	d := st.disks[disk.Key]
	if d == nil {
		return none, invalidArgument("deviceKey", fmt.Sprintf("no virtual disk with key %d", req.DeviceKey))
	}
	var cur *cbtVersion
	if req.Snapshot == nil {
		cur = &cbtVersion{epoch: d.epoch, seq: d.seq, data: d.data, sums: d.sums, capacity: d.capacity}
	} else {
		b, _ := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if b == nil || d.versions[b.ChangeId] == nil {
			return none, invalidArgument("snapshot", "the snapshot was taken while change tracking was off")
		}
		cur = d.versions[b.ChangeId]
	}
	if req.StartOffset < 0 || req.StartOffset > cur.capacity {
		return none, invalidArgument("startOffset", "startOffset is beyond the end of the disk")
	}

	var areas []types.DiskChangeExtent
	var base *cbtVersion
	if req.ChangeId != "*" {
		base = d.versions[req.ChangeId]
		if base == nil || base.epoch != d.epoch || base.epoch != cur.epoch {
			return none, invalidArgument("changeId", "unknown or expired changeId "+req.ChangeId)
		}
	}
	// Recorded versions never change: a paged query computes its areas once, not once per page.
	cacheKey := ""
	if req.Snapshot != nil {
		cacheKey = fmt.Sprintf("%d|%s|%s", disk.Key, req.ChangeId, disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo).ChangeId)
	}
	if cached, ok := e.areaCache[cacheKey]; ok && cacheKey != "" {
		areas = cached
	} else {
		if base == nil {
			areas = changedAreas(nil, cur.sums, cur.capacity)
		} else {
			areas = changedAreas(base.sums, cur.sums, cur.capacity)
		}
		if cacheKey != "" {
			if e.areaCache == nil {
				e.areaCache = map[string][]types.DiskChangeExtent{}
			}
			e.areaCache[cacheKey] = areas
		}
	}

	maxAreas := e.cbtMaxAreas
	info := types.DiskChangeInfo{StartOffset: req.StartOffset, Length: cur.capacity - req.StartOffset}
	for _, a := range areas {
		end := a.Start + a.Length
		if end <= req.StartOffset {
			continue
		}
		if a.Start < req.StartOffset {
			a.Start, a.Length = req.StartOffset, end-req.StartOffset
		}
		if len(info.ChangedArea) == maxAreas {
			last := info.ChangedArea[len(info.ChangedArea)-1]
			info.Length = last.Start + last.Length - req.StartOffset
			break
		}
		info.ChangedArea = append(info.ChangedArea, a)
	}
	return info, nil
}

// blockSums: the CRC-64 of each 64 KiB block of data (the last one may be short). Computed once
// when content is planted, so that a query compares sums instead of whole disks.
func blockSums(data []byte) []uint64 {
	table := crc64.MakeTable(crc64.ECMA)
	sums := make([]uint64, 0, (len(data)+cbtBlock-1)/cbtBlock)
	for off := 0; off < len(data); off += cbtBlock {
		sums = append(sums, crc64.Checksum(data[off:min(off+cbtBlock, len(data))], table))
	}
	return sums
}

// zeroSum is the sum of an all-zero block of n bytes.
func zeroSum(n int64) uint64 {
	return crc64.Checksum(make([]byte, n), crc64.MakeTable(crc64.ECMA))
}

// changedAreas compares the block sums a and b (nil: zeros) over capacity bytes and returns the
// differing 64 KiB blocks, adjacent ones merged; the last block may be short.
func changedAreas(a, b []uint64, capacity int64) []types.DiskChangeExtent {
	fullZero := zeroSum(cbtBlock)
	sum := func(sums []uint64, i int, n int64) uint64 {
		if i < len(sums) {
			return sums[i]
		}
		if n == cbtBlock {
			return fullZero
		}
		return zeroSum(n)
	}
	var out []types.DiskChangeExtent
	// Past the end of both contents everything is zero on both sides.
	blocks := max(len(a), len(b))
	for i := 0; i < blocks; i++ {
		off := int64(i) * cbtBlock
		if off >= capacity {
			break
		}
		n := min(int64(cbtBlock), capacity-off)
		if sum(a, i, n) == sum(b, i, n) {
			continue
		}
		if k := len(out); k > 0 && out[k-1].Start+out[k-1].Length == off {
			out[k-1].Length += n
		} else {
			out = append(out, types.DiskChangeExtent{Start: off, Length: n})
		}
	}
	return out
}

// ---- control: planting disk content, resetting tracking, expiring sessions ----

type plantRequest struct {
	VM      string `json:"vm"`
	Raw     string `json:"raw"`
	DiskKey int32  `json:"disk_key"`
}

// plantDisk makes the raw file the disk's current content: it writes the disk's files in the
// ESXi layout (a monolithicFlat descriptor naming a "-flat" extent) and sets the capacity. A file
// that a snapshot refers to is never overwritten: the disk then moves to "<name>-NNNNNN.vmdk",
// as it would run on a delta after a snapshot on ESXi (here a full flat copy).
func (e *extensions) plantDisk(req plantRequest) (int, string) {
	vm := e.findVM(req.VM)
	if vm == nil {
		return 404, "no VM named " + fmt.Sprintf("%q", req.VM)
	}
	data, err := os.ReadFile(req.Raw)
	if err != nil {
		return 400, err.Error()
	}
	if len(data) == 0 || len(data)%512 != 0 {
		return 400, "the raw image must be a non-empty multiple of 512 bytes"
	}
	ctx := e.controlContext()
	status, msg := 204, ""
	ctx.WithLock(vm, func() {
		var disk *types.VirtualDisk
		for _, d := range vm.Config.Hardware.Device {
			if x, ok := d.(*types.VirtualDisk); ok && (req.DiskKey == 0 || x.Key == req.DiskKey) {
				disk = x
				break
			}
		}
		if disk == nil {
			status, msg = 404, fmt.Sprintf("VM %s has no virtual disk with key %d", req.VM, req.DiskKey)
			return
		}
		backing, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			status, msg = 400, "only flat (VirtualDiskFlatVer2BackingInfo) disks can be planted"
			return
		}
		st := e.cbtState(ctx, vm)

		var file object.DatastorePath
		if !file.FromString(backing.FileName) {
			status, msg = 500, "cannot parse the disk's file name "+backing.FileName
			return
		}
		ds := e.findDatastore(file.Datastore)
		if ds == nil {
			status, msg = 500, "no datastore named "+file.Datastore
			return
		}
		frozen := map[string]bool{}
		for _, snap := range snapshotsOf(ctx, vm) {
			for _, d := range snap.Config.Hardware.Device {
				if x, ok := d.(*types.VirtualDisk); ok {
					if b, ok := x.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
						frozen[b.GetVirtualDeviceFileBackingInfo().FileName] = true
					}
				}
			}
		}
		if frozen[file.String()] {
			stem := strings.TrimSuffix(file.Path, ".vmdk")
			if i := strings.LastIndex(stem, "-"); i >= 0 && len(stem)-i == 7 && strings.Trim(stem[i+1:], "0123456789") == "" {
				stem = stem[:i]
			}
			for n := 1; ; n++ {
				next := object.DatastorePath{Datastore: file.Datastore, Path: fmt.Sprintf("%s-%06d.vmdk", stem, n)}
				if _, err := os.Stat(filepath.Join(ds.Summary.Url, next.Path)); !frozen[next.String()] && os.IsNotExist(err) {
					file = next
					break
				}
			}
		}

		descPath := filepath.Join(ds.Summary.Url, filepath.FromSlash(file.Path))
		flatName := strings.TrimSuffix(path.Base(file.Path), ".vmdk") + "-flat.vmdk"
		flatPath := filepath.Join(filepath.Dir(descPath), flatName)
		desc := flatDescriptor(int64(len(data)), flatName)
		if err := writeFileAtomic(flatPath, data); err != nil {
			status, msg = 500, err.Error()
			return
		}
		if err := writeFileAtomic(descPath, []byte(desc)); err != nil {
			status, msg = 500, err.Error()
			return
		}

		size := int64(len(data))
		e.setDiskBackings(ctx, vm, func(d *types.VirtualDisk, b *types.VirtualDiskFlatVer2BackingInfo) {
			if d.Key != disk.Key {
				return
			}
			d.CapacityInBytes, d.CapacityInKB = size, size/1024
			b.FileName = file.String()
		})
		e.updateDiskLayout(ctx, vm, disk.Key, file, path.Join(path.Dir(file.Path), flatName), int64(len(desc)), size)

		e.cbtMu.Lock()
		d := st.disks[disk.Key]
		d.data, d.sums, d.capacity = data, blockSums(data), size
		e.cbtMu.Unlock()
	})
	return status, msg
}

func (e *extensions) findDatastore(name string) *simulator.Datastore {
	for _, obj := range e.model.Map().All("Datastore") {
		if ds, ok := obj.(*simulator.Datastore); ok && ds.Name == name {
			return ds
		}
	}
	return nil
}

// flatDescriptor is an ESXi-style text descriptor for a monolithicFlat disk of size bytes.
func flatDescriptor(size int64, extent string) string {
	sectors := size / 512
	cylinders := min(sectors/(255*63), 65535)
	var id [4]byte
	_, _ = rand.Read(id[:])
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=%x
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW %d FLAT "%s" 0

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.virtualHWVersion = "13"
`, id, sectors, extent, cylinders)
}

func writeFileAtomic(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	tmp := name + ".hsdk-tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// updateDiskLayout points the disk's layoutEx chain at the planted files (extent, then
// descriptor, in the simulator's own order) and records their sizes: clients estimate free space
// from layoutEx. Slices are replaced, never modified in place: snapshot layouts share them.
func (e *extensions) updateDiskLayout(ctx *simulator.Context, vm *simulator.VirtualMachine, key int32, desc object.DatastorePath, extent string, descSize, extentSize int64) {
	ext := object.DatastorePath{Datastore: desc.Datastore, Path: extent}
	names := []string{ext.String(), desc.String()}
	sizes := []int64{extentSize, descSize}
	kinds := []types.VirtualMachineFileLayoutExFileType{
		types.VirtualMachineFileLayoutExFileTypeDiskExtent, types.VirtualMachineFileLayoutExFileTypeDiskDescriptor,
	}
	if vm.LayoutEx == nil {
		vm.LayoutEx = new(types.VirtualMachineFileLayoutEx)
	}
	files := append([]types.VirtualMachineFileLayoutExFileInfo(nil), vm.LayoutEx.File...)
	var keys []int32
	for i, name := range names {
		found := false
		for j := range files {
			if files[j].Name == name {
				files[j].Size, files[j].UniqueSize = sizes[i], sizes[i]
				keys = append(keys, files[j].Key)
				found = true
				break
			}
		}
		if found {
			continue
		}
		next := int32(0)
		for _, f := range files {
			next = max(next, f.Key+1)
		}
		files = append(files, types.VirtualMachineFileLayoutExFileInfo{
			Key: next, Name: name, Type: string(kinds[i]), Size: sizes[i], UniqueSize: sizes[i], Accessible: types.NewBool(true),
		})
		keys = append(keys, next)
	}
	disks := append([]types.VirtualMachineFileLayoutExDiskLayout(nil), vm.LayoutEx.Disk...)
	found := false
	for i := range disks {
		if disks[i].Key == key {
			disks[i].Chain = []types.VirtualMachineFileLayoutExDiskUnit{{FileKey: keys}}
			found = true
		}
	}
	if !found {
		disks = append(disks, types.VirtualMachineFileLayoutExDiskLayout{Key: key, Chain: []types.VirtualMachineFileLayoutExDiskUnit{{FileKey: keys}}})
	}
	vm.LayoutEx.File, vm.LayoutEx.Disk, vm.LayoutEx.Timestamp = files, disks, time.Now()
}

// cbtReset gives every disk of the VM a new epoch: earlier changeIds stop being valid and the
// next snapshot records seq 1. The current disks' changeIds are cleared.
func (e *extensions) cbtReset(name string) (int, string) {
	vm := e.findVM(name)
	if vm == nil {
		return 404, "no VM named " + fmt.Sprintf("%q", name)
	}
	ctx := e.controlContext()
	ctx.WithLock(vm, func() {
		st := e.cbtState(ctx, vm)
		e.cbtMu.Lock()
		for _, d := range st.disks {
			d.epoch, d.seq = newEpoch(), 0
		}
		e.cbtMu.Unlock()
		e.setDiskBackings(ctx, vm, func(d *types.VirtualDisk, b *types.VirtualDiskFlatVer2BackingInfo) { b.ChangeId = "" })
	})
	return 204, ""
}

// expireSessions terminates every session through SessionManager.TerminateSession, called on
// behalf of a session of our own (TerminateSession refuses to end the caller's session). The
// keys are remembered: a call that still carries one is answered NotAuthenticated even where the
// simulator would serve an anonymous caller (the PropertyCollector), as vCenter does.
func (e *extensions) expireSessions() {
	m := e.model.Map()
	sm := m.SessionManager()
	own := &simulator.Session{
		UserSession: types.UserSession{Key: "hsdk-control-" + newEpoch()},
		Registry:    simulator.NewRegistry(),
		Map:         m,
	}
	view, ok := own.Get(sm.Reference()).(*simulator.SessionManager)
	if !ok {
		return
	}
	ctx := e.controlContext()
	ctx.Session = own
	for _, s := range view.SessionList {
		sm.TerminateSession(ctx, &types.TerminateSession{This: sm.Reference(), SessionId: []string{s.Key}})
		e.mu.Lock()
		e.expired[s.Key] = true
		e.mu.Unlock()
	}
}

// staleSession reports whether the call carries the cookie of a session expired by control.
func (e *extensions) staleSession(ctx *simulator.Context) (stale bool) {
	defer func() {
		if recover() != nil { // no HTTP request behind this context
			stale = false
		}
	}()
	key := simulator.HTTPCookie(ctx)
	if key == "" {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.expired[key]
}

// cbtReport is the "cbt" part of /_hsdk/state.
func (e *extensions) cbtReport() map[string]any {
	out := map[string]any{}
	ctx := e.controlContext()
	for _, obj := range e.model.Map().All("VirtualMachine") {
		vm, ok := obj.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		ctx.WithLock(vm, func() {
			st := e.cbtState(ctx, vm)
			files := map[int32]string{}
			for _, d := range vm.Config.Hardware.Device {
				if x, ok := d.(*types.VirtualDisk); ok {
					if b, ok := x.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
						files[x.Key] = b.GetVirtualDeviceFileBackingInfo().FileName
					}
				}
			}
			e.cbtMu.Lock()
			disks := map[string]any{}
			for key := range files {
				d := st.disks[key]
				id, n := "", 0
				if st.enabled && d.seq > 0 {
					id = changeID(d.epoch, d.seq)
				}
				for _, v := range d.versions {
					if v.epoch == d.epoch {
						n++
					}
				}
				disks[fmt.Sprint(key)] = map[string]any{
					"change_id": id, "versions": n, "capacity": d.capacity, "file": files[key],
				}
			}
			out[vm.Name] = map[string]any{"enabled": st.enabled, "disks": disks}
			e.cbtMu.Unlock()
		})
	}
	return out
}
