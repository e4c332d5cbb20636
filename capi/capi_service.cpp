// C ABI: the in-process service (hypervisord's routes without a daemon).
#include "capi_internal.hpp"

#include <hypersdk/service.hpp>

using namespace hypersdk;

extern "C" {

HSDK_API hsdk_status hsdk_service_request(const char *request_json, char **out_response_json) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_response_json != nullptr);
        *out_response_json = nullptr;
        HSDK_CHECK_ARG(request_json != nullptr);
        const auto j = nlohmann::json::parse(request_json, nullptr, false);
        if (j.is_discarded() || !j.is_object())
            return capi::set_error(Errc::invalid_argument, "invalid argument: request_json must be a JSON object {method, target, headers, body}");
        service::Request req;
        req.method = j.value("method", "GET");
        req.target = j.value("target", "/");
        req.body = j.value("body", "");
        if (j.contains("headers") && j["headers"].is_object())
            for (const auto &[k, v] : j["headers"].items()) {
                std::string name = k;
                for (auto &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                if (v.is_string()) req.headers[name] = v.get<std::string>();
            }
        auto svc = service::in_process_service();
        if (!svc) return capi::set_error(svc.error());
        const auto resp = svc.value()->handle(req);
        nlohmann::json headers = nlohmann::json::array();
        for (const auto &[k, v] : resp.headers) headers.push_back({k, v});
        *out_response_json = capi::copy_out(capi::dump(
            {{"status", resp.status}, {"content_type", resp.content_type}, {"headers", headers}, {"body", resp.body}}));
        return HSDK_OK;
    });
}

}  // extern "C"
