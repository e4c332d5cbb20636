package main

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// ignoredShutdown answers ShutdownGuest while the test armed "guest_shutdown_ignored": accepted,
// as vCenter does once the request reached VMware Tools, but the guest never powers off (a hung
// guest), so a cutover has to time out or force a power-off. With "guest_tools_missing" it fails
// ToolsUnavailable, as vCenter answers for a guest without running VMware Tools.
type ignoredShutdown struct {
	Self         types.ManagedObjectReference
	toolsMissing bool
}

func (g *ignoredShutdown) Reference() types.ManagedObjectReference { return g.Self }

func (g *ignoredShutdown) ShutdownGuest(ctx *simulator.Context, req *types.ShutdownGuest) soap.HasFault {
	defer ctx.Session.Remove(ctx, g.Self)
	if g.toolsMissing {
		return &methods.ShutdownGuestBody{Fault_: simulator.Fault("VMware Tools is not running in the guest", &types.ToolsUnavailable{})}
	}
	return &methods.ShutdownGuestBody{Res: &types.ShutdownGuestResponse{}}
}
