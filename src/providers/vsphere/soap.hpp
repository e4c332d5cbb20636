// SOAP envelopes for the vSphere Web Services API (urn:vim25) and the faults that come back.
#pragma once

#include "xml/xml_tree.hpp"

#include <hypersdk/error.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hypersdk::vsphere {

// Parses what a server sent: malformed or hostile XML is a remote_error, with SOAP-sized limits
// (PropertyCollector pages can be large).
Result<xml::Element> parse_soap(std::string_view body, std::size_t max_depth = 64);

// ManagedObjectReference: <x type="VirtualMachine">vm-42</x>.
struct MoRef {
    std::string type;
    std::string value;
    [[nodiscard]] bool empty() const noexcept { return value.empty(); }
    friend bool operator==(const MoRef &, const MoRef &) = default;
};

// Reads a reference from an element carrying type="..." and the id as text.
MoRef moref_of(const xml::Element &e);

// Builds the body of one method call; values are escaped as they are added, and the first value
// XML cannot carry makes envelope() fail.
class SoapCall {
public:
    SoapCall(std::string_view method, const MoRef &self);
    SoapCall &text(std::string_view name, std::string_view value);
    SoapCall &boolean(std::string_view name, bool value);
    SoapCall &integer(std::string_view name, std::int64_t value);
    SoapCall &ref(std::string_view name, const MoRef &value);
    // Already well-formed XML (built with the helpers of this file).
    SoapCall &raw(std::string_view xml);
    [[nodiscard]] const std::string &method() const noexcept { return method_; }
    Result<std::string> envelope() const;

private:
    std::string method_;
    std::string body_;
    std::optional<Error> error_;
};

struct SoapFault {
    std::string type;     // vSphere fault type, e.g. "InvalidLogin", "ManagedObjectNotFound"
    std::string message;  // faultstring / localizedMessage
};

// The Fault inside an envelope's Body, if any.
std::optional<SoapFault> find_fault(const xml::Element &envelope);
// A fault from a task's info.error (LocalizedMethodFault).
SoapFault fault_of(const xml::Element &localized_method_fault);

// InvalidLogin / NotAuthenticated -> auth_failed, ManagedObjectNotFound -> not_found,
// NoPermission -> permission_denied, anything else -> remote_error naming the fault.
Error fault_error(const SoapFault &fault, std::string_view method);

}  // namespace hypersdk::vsphere
