// Stopping a VM for a cutover: ShutdownGuest, waiting for poweredOff, and PowerOffVM_Task only
// when asked to force.
#pragma once

#include "providers/vsphere/session.hpp"
#include "providers/vsphere/soap.hpp"

#include <hypersdk/provider.hpp>

namespace hypersdk::vsphere {

Result<StopResult> stop_vm(Session &s, const MoRef &vm, const StopOptions &options);

}  // namespace hypersdk::vsphere
