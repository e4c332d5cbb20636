package main

// OvfManager.CreateDescriptor, missing from the simulator: govc export.ovf (bench/export's peer)
// asks for the descriptor after its downloads. Follows the vSphere API reference
// (OvfCreateDescriptorParams: `name` for the top-level entity, `ovfFiles` for the References
// section) and DSP0243 OVF 1.1: References, DiskSection, NetworkSection and one VirtualSystem with
// its CPUs, memory, controllers and disks.

import (
	"bytes"
	"encoding/xml"
	"fmt"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type ovfDescriber struct {
	Self types.ManagedObjectReference
}

func (o *ovfDescriber) Reference() types.ManagedObjectReference { return o.Self }

func xmlText(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (o *ovfDescriber) CreateDescriptor(ctx *simulator.Context, req *types.CreateDescriptor) soap.HasFault {
	defer ctx.Session.Remove(ctx, o.Self)
	body := new(methods.CreateDescriptorBody)
	vm, ok := ctx.Map.Get(req.Obj).(*simulator.VirtualMachine)
	if !ok {
		body.Fault_ = simulator.Fault("", &types.ManagedObjectNotFound{Obj: req.Obj})
		return body
	}
	name := req.Cdp.Name
	if name == "" {
		name = vm.Name
	}
	var disks []*types.VirtualDisk
	for _, d := range vm.Config.Hardware.Device {
		if disk, ok := d.(*types.VirtualDisk); ok {
			disks = append(disks, disk)
		}
	}

	var refs, diskSection, items bytes.Buffer
	instance := 1
	item := func(format string, args ...any) {
		fmt.Fprintf(&items, "      <Item>\n        <rasd:InstanceID>%d</rasd:InstanceID>\n", instance)
		fmt.Fprintf(&items, format, args...)
		items.WriteString("      </Item>\n")
		instance++
	}
	item("        <rasd:ElementName>%d virtual CPU(s)</rasd:ElementName>\n        <rasd:ResourceType>3</rasd:ResourceType>\n        <rasd:VirtualQuantity>%d</rasd:VirtualQuantity>\n",
		vm.Config.Hardware.NumCPU, vm.Config.Hardware.NumCPU)
	item("        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n        <rasd:ElementName>%d MB of memory</rasd:ElementName>\n        <rasd:ResourceType>4</rasd:ResourceType>\n        <rasd:VirtualQuantity>%d</rasd:VirtualQuantity>\n",
		vm.Config.Hardware.MemoryMB, vm.Config.Hardware.MemoryMB)
	controller := instance
	item("        <rasd:ElementName>SCSI controller 0</rasd:ElementName>\n        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>\n        <rasd:ResourceType>6</rasd:ResourceType>\n")
	for i, f := range req.Cdp.OvfFiles {
		fileID, diskID := fmt.Sprintf("file%d", i+1), fmt.Sprintf("vmdisk%d", i+1)
		fmt.Fprintf(&refs, "    <File ovf:href=\"%s\" ovf:id=\"%s\" ovf:size=\"%d\"/>\n", xmlText(f.Path), fileID, f.Size)
		var capacity int64
		if i < len(disks) {
			capacity = disks[i].CapacityInBytes
		}
		fmt.Fprintf(&diskSection, "    <Disk ovf:capacity=\"%d\" ovf:capacityAllocationUnits=\"byte\" ovf:diskId=\"%s\" ovf:fileRef=\"%s\" ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>\n",
			capacity, diskID, fileID)
		item("        <rasd:AddressOnParent>%d</rasd:AddressOnParent>\n        <rasd:ElementName>Hard disk %d</rasd:ElementName>\n        <rasd:HostResource>ovf:/disk/%s</rasd:HostResource>\n        <rasd:Parent>%d</rasd:Parent>\n        <rasd:ResourceType>17</rasd:ResourceType>\n",
			i, i+1, diskID, controller)
	}

	var out bytes.Buffer
	out.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
`)
	out.Write(refs.Bytes())
	out.WriteString("  </References>\n  <DiskSection>\n    <Info>Virtual disk information</Info>\n")
	out.Write(diskSection.Bytes())
	out.WriteString("  </DiskSection>\n  <NetworkSection>\n    <Info>The list of logical networks</Info>\n    <Network ovf:name=\"VM Network\">\n      <Description>The VM Network network</Description>\n    </Network>\n  </NetworkSection>\n")
	fmt.Fprintf(&out, "  <VirtualSystem ovf:id=\"%s\">\n    <Info>A virtual machine</Info>\n    <Name>%s</Name>\n", xmlText(name), xmlText(name))
	fmt.Fprintf(&out, "    <OperatingSystemSection ovf:id=\"1\">\n      <Info>The kind of installed guest operating system</Info>\n      <Description>%s</Description>\n    </OperatingSystemSection>\n",
		xmlText(vm.Config.GuestFullName))
	fmt.Fprintf(&out, "    <VirtualHardwareSection>\n      <Info>Virtual hardware requirements</Info>\n      <System>\n        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n        <vssd:InstanceID>0</vssd:InstanceID>\n        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>\n        <vssd:VirtualSystemType>%s</vssd:VirtualSystemType>\n      </System>\n",
		xmlText(name), xmlText(vm.Config.Version))
	out.Write(items.Bytes())
	out.WriteString("    </VirtualHardwareSection>\n  </VirtualSystem>\n</Envelope>\n")

	body.Res = &types.CreateDescriptorResponse{Returnval: types.OvfCreateDescriptorResult{OvfDescriptor: out.String()}}
	return body
}
