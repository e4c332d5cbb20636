package main

import (
	"fmt"
	"path"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// addDiskRequest: control "add_disk" gives a VM one more thin flat disk of capacity_kb, on the
// controller and datastore folder of its first disk, through ReconfigVM as a client would add it
// (the simulator creates the file), so tests can migrate VMs with several disks.
type addDiskRequest struct {
	VM         string `json:"vm"`
	CapacityKB int64  `json:"capacity_kb"`
}

func (e *extensions) addDisk(req addDiskRequest) (int, string) {
	vm := e.findVM(req.VM)
	if vm == nil {
		return 404, fmt.Sprintf("no VM named %q", req.VM)
	}
	if req.CapacityKB <= 0 {
		return 400, "capacity_kb must be positive"
	}
	ctx := e.controlContext()
	// ReconfigVM posts an event naming the caller: a session of our own.
	ctx.Session = &simulator.Session{
		UserSession: types.UserSession{Key: "hsdk-control-" + newEpoch(), UserName: "hsdk-control"},
		Registry:    simulator.NewRegistry(),
		Map:         e.model.Map(),
	}
	var first *types.VirtualDisk
	used := map[int32]bool{7: true} // unit 7 is the SCSI controller's own
	ctx.WithLock(vm, func() {
		for _, d := range vm.Config.Hardware.Device {
			if x, ok := d.(*types.VirtualDisk); ok {
				if first == nil {
					first = x
				}
				if x.UnitNumber != nil {
					used[*x.UnitNumber] = true
				}
			}
		}
	})
	if first == nil {
		return 400, "the VM has no disk to add one beside"
	}
	backing, ok := first.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	var file object.DatastorePath
	if !ok || !file.FromString(backing.FileName) {
		return 400, "the VM's first disk has no flat backing file"
	}
	unit := int32(0)
	for used[unit] {
		unit++
	}
	name := fmt.Sprintf("[%s] %s/%s_%d.vmdk", file.Datastore, path.Dir(file.Path), vm.Name, unit)
	disk := &types.VirtualDisk{
		CapacityInKB: req.CapacityKB,
		VirtualDevice: types.VirtualDevice{
			Key:           -1,
			ControllerKey: first.ControllerKey,
			UnitNumber:    &unit,
			Backing: &types.VirtualDiskFlatVer2BackingInfo{
				DiskMode:                     string(types.VirtualDiskModePersistent),
				ThinProvisioned:              types.NewBool(true),
				VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: name},
			},
		},
	}
	spec := types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{&types.VirtualDeviceConfigSpec{
		Operation:     types.VirtualDeviceConfigSpecOperationAdd,
		FileOperation: types.VirtualDeviceConfigSpecFileOperationCreate,
		Device:        disk,
	}}}
	var ref types.ManagedObjectReference
	ctx.WithLock(vm, func() {
		body := vm.ReconfigVMTask(ctx, &types.ReconfigVM_Task{This: vm.Self, Spec: spec}).(*methods.ReconfigVM_TaskBody)
		ref = body.Res.Returnval
	})
	task, ok := ctx.Map.Get(ref).(*simulator.Task)
	if !ok {
		return 500, "ReconfigVM started no task"
	}
	task.Wait()
	if task.Info.Error != nil {
		return 500, "ReconfigVM failed: " + task.Info.Error.LocalizedMessage
	}
	return 204, ""
}
