#include "providers/vsphere/soap.hpp"

#include <fmt/format.h>

namespace hypersdk::vsphere {

Result<xml::Element> parse_soap(std::string_view body, std::size_t max_depth) {
    xml::Limits limits;
    limits.max_bytes = 256u << 20;
    limits.max_depth = max_depth;
    limits.max_elements = 4u << 20;
    limits.error_code = Errc::remote_error;
    return xml::parse(body, "XML from the server", limits);
}

MoRef moref_of(const xml::Element &e) { return MoRef{e.attribute("type"), e.text}; }

SoapCall::SoapCall(std::string_view method, const MoRef &self) : method_(method) { ref("_this", self); }

SoapCall &SoapCall::text(std::string_view name, std::string_view value) {
    auto escaped = xml::escape_strict(value);
    if (!escaped) {
        if (!error_) error_ = escaped.error().with_context(fmt::format("{} argument {}", method_, name));
        return *this;
    }
    body_ += fmt::format("<{0}>{1}</{0}>", name, escaped.value());
    return *this;
}

SoapCall &SoapCall::boolean(std::string_view name, bool value) { return raw(fmt::format("<{0}>{1}</{0}>", name, value ? "true" : "false")); }

SoapCall &SoapCall::integer(std::string_view name, std::int64_t value) { return raw(fmt::format("<{0}>{1}</{0}>", name, value)); }

SoapCall &SoapCall::ref(std::string_view name, const MoRef &value) {
    auto type = xml::escape_strict(value.type);
    auto id = xml::escape_strict(value.value);
    if (!type || !id) {
        if (!error_) error_ = Error{Errc::invalid_argument, fmt::format("{}: invalid managed object reference", method_)};
        return *this;
    }
    body_ += fmt::format("<{0} type=\"{1}\">{2}</{0}>", name, type.value(), id.value());
    return *this;
}

SoapCall &SoapCall::raw(std::string_view xml) {
    body_ += xml;
    return *this;
}

Result<std::string> SoapCall::envelope() const {
    if (error_) return fail(*error_);
    return fmt::format(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "
        "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
        "<soapenv:Body><{0} xmlns=\"urn:vim25\">{1}</{0}></soapenv:Body></soapenv:Envelope>",
        method_, body_);
}

namespace {

std::string fault_type_of(const xml::Element &fault_element) {
    std::string type = fault_element.xsi_type();
    if (type.empty()) {
        type = fault_element.local;
        // <InvalidLoginFault> without xsi:type still names the fault.
        if (type.size() > 5 && type.ends_with("Fault")) type.resize(type.size() - 5);
    }
    return type;
}

}  // namespace

std::optional<SoapFault> find_fault(const xml::Element &envelope) {
    const xml::Element *body = envelope.child("Body");
    if (body == nullptr) return std::nullopt;
    const xml::Element *fault = body->child("Fault");
    if (fault == nullptr) return std::nullopt;
    SoapFault f;
    f.message = fault->child_text("faultstring");
    if (const xml::Element *detail = fault->child("detail"); detail != nullptr && !detail->children.empty())
        f.type = fault_type_of(detail->children.front());
    if (f.type.empty()) f.type = fault->child_text("faultcode");
    return f;
}

SoapFault fault_of(const xml::Element &lmf) {
    SoapFault f;
    f.message = lmf.child_text("localizedMessage");
    if (const xml::Element *inner = lmf.child("fault"); inner != nullptr) f.type = fault_type_of(*inner);
    if (f.type.empty()) f.type = "MethodFault";
    return f;
}

Error fault_error(const SoapFault &fault, std::string_view method) {
    Errc code = Errc::remote_error;
    if (fault.type == "InvalidLogin" || fault.type == "NotAuthenticated")
        code = Errc::auth_failed;
    else if (fault.type == "ManagedObjectNotFound")
        code = Errc::not_found;
    else if (fault.type == "NoPermission")
        code = Errc::permission_denied;
    std::string text = fault.message.empty() ? fault.type : fault.message;
    switch (code) {
    case Errc::auth_failed:
        return Error{code, fmt::format("authentication failed ({}): {}", fault.type, text)};
    case Errc::not_found:
        return Error{code, fmt::format("not found ({} in {}): {}", fault.type, method, text)};
    case Errc::permission_denied:
        return Error{code, fmt::format("permission denied ({} in {}): {}", fault.type, method, text)};
    default:
        return Error{code, fmt::format("vSphere fault {} in {}: {}", fault.type, method, text)};
    }
}

}  // namespace hypersdk::vsphere
