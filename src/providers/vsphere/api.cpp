// The public vSphere discovery API (include/hypersdk/vsphere.hpp).
#include "io/http.hpp"
#include "providers/vsphere/discovery.hpp"
#include "providers/vsphere/session.hpp"
#include "core/env.hpp"

#include <hypersdk/vsphere.hpp>

#include <cstdlib>
#include <string>

namespace hypersdk::vsphere {
namespace {

using core::env;


}  // namespace

Result<ConnectionOptions> with_environment(ConnectionOptions o) {
    if (o.url.empty()) o.url = env("GOVC_URL");
    if (o.url.empty()) return fail(Errc::invalid_argument, "no vSphere URL: pass --url or set GOVC_URL");
    // govc accepts https://user:password@host/sdk; take the credentials out of the URL here so
    // that nothing downstream ever sees them in a URL.
    const auto scheme = o.url.find("://");
    const std::size_t host_start = scheme == std::string::npos ? 0 : scheme + 3;
    const auto slash = o.url.find('/', host_start);
    const auto at = o.url.substr(0, slash).rfind('@');
    if (at != std::string::npos && at >= host_start) {
        const std::string userinfo = o.url.substr(host_start, at - host_start);
        o.url.erase(host_start, at + 1 - host_start);
        const auto colon = userinfo.find(':');
        if (o.username.empty()) o.username = io::http::percent_decode(userinfo.substr(0, colon));
        if (o.password.empty() && colon != std::string::npos) o.password = io::http::percent_decode(userinfo.substr(colon + 1));
    }
    if (o.username.empty()) o.username = env("GOVC_USERNAME");
    if (o.password.empty()) o.password = env("GOVC_PASSWORD");
    if (!o.insecure) {
        const std::string insecure = env("GOVC_INSECURE");
        o.insecure = insecure == "1" || insecure == "true" || insecure == "TRUE" || insecure == "True";
    }
    if (o.username.empty()) return fail(Errc::invalid_argument, "no vSphere user name: pass --username or set GOVC_USERNAME");
    return o;
}

Result<std::vector<VirtualMachine>> list_vms(const ConnectionOptions &options) {
    HSDK_TRY(auto session, Session::open(options));
    HSDK_TRY(auto vms, discover_all(*session));
    (void)session->logout();
    return vms;
}

Result<VirtualMachine> find_vm(const ConnectionOptions &options, const std::string &inventory_path) {
    HSDK_TRY(auto session, Session::open(options));
    HSDK_TRY(auto found, discover_vm(*session, inventory_path));
    (void)session->logout();
    return std::move(found.vm);
}

}  // namespace hypersdk::vsphere
