#include "providers/vsphere/power.hpp"

#include "providers/vsphere/properties.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <thread>

namespace hypersdk::vsphere {
namespace {

Result<std::string> power_state(Session &s, const MoRef &vm) {
    HSDK_TRY(auto o, retrieve_one(s, vm, {"runtime.powerState"}));
    return o.text("runtime.powerState");
}

// The guest cannot be asked (no VMware Tools running, or the server says the state forbids it).
bool guest_unreachable(const Error &e) {
    return e.code == Errc::remote_error &&
           (e.message.find("ToolsUnavailable") != std::string::npos || e.message.find("InvalidState") != std::string::npos);
}

Result<void> power_off(Session &s, const MoRef &vm) {
    SoapCall call("PowerOffVM_Task", vm);
    HSDK_TRY(auto resp, s.invoke(call, CallKind::action));
    const xml::Element *task = resp.child("returnval");
    if (task == nullptr) return fail(Errc::remote_error, "PowerOffVM_Task returned no task");
    HSDK_TRYV(wait_for_task(s, moref_of(*task)));
    return success();
}

}  // namespace

Result<StopResult> stop_vm(Session &s, const MoRef &vm, const StopOptions &options) {
    const auto started = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
    HSDK_TRY(auto state, power_state(s, vm));
    if (state == "poweredOff") return StopResult{"already_off", elapsed()};
    if (state == "suspended" && !options.force)
        return fail(Errc::conflict, "the VM is suspended: its guest cannot shut down; power it off (or allow a forced power-off)");

    bool asked = false;
    if (state == "poweredOn") {
        SoapCall call("ShutdownGuest", vm);
        auto r = s.invoke(call, CallKind::action);
        if (r) {
            asked = true;
        } else if (!guest_unreachable(r.error()) || !options.force) {
            return fail(r.error().with_context("asking the guest to shut down (ShutdownGuest)"));
        } else {
            log(LogLevel::warn, fmt::format("cutover: the guest cannot be asked to shut down ({}); powering the VM off", r.error().message));
        }
    }
    if (asked) {
        const auto deadline = started + options.guest_timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            HSDK_TRYV(options.cancel.check());
            HSDK_TRY(state, power_state(s, vm));
            if (state == "poweredOff") return StopResult{"guest_shutdown", elapsed()};
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
        if (!options.force)
            return fail(Errc::timeout, fmt::format("the guest did not shut down within {} s; retry, or allow a forced power-off "
                                                   "(--force-power-off)",
                                                   options.guest_timeout.count()));
        log(LogLevel::warn, fmt::format("cutover: the guest did not shut down within {} s; powering the VM off", options.guest_timeout.count()));
    }
    HSDK_TRYV(options.cancel.check());
    HSDK_TRYV(power_off(s, vm));
    return StopResult{"forced_power_off", elapsed()};
}

}  // namespace hypersdk::vsphere
