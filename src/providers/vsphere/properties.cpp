#include "providers/vsphere/properties.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace hypersdk::vsphere {
namespace {

Result<std::string> prop_sets_xml(const PropertySets &props) {
    std::string xml;
    for (const auto &[type, paths] : props) {
        HSDK_TRY(auto t, xml::escape_strict(type));
        xml += "<propSet><type>" + t + "</type>";
        for (const auto &p : paths) {
            HSDK_TRY(auto e, xml::escape_strict(p));
            xml += "<pathSet>" + e + "</pathSet>";
        }
        xml += "</propSet>";
    }
    return xml;
}

Result<std::string> ref_xml(std::string_view name, const MoRef &r) {
    HSDK_TRY(auto t, xml::escape_strict(r.type));
    HSDK_TRY(auto v, xml::escape_strict(r.value));
    return fmt::format("<{0} type=\"{1}\">{2}</{0}>", name, t, v);
}

void collect(const xml::Element &result, std::vector<ObjectContent> &out) {
    for (const xml::Element *o : result.children_named("objects")) {
        ObjectContent oc;
        if (const xml::Element *obj = o->child("obj")) oc.obj = moref_of(*obj);
        for (const xml::Element *p : o->children_named("propSet")) {
            const xml::Element *val = p->child("val");
            oc.props.emplace(p->child_text("name"), val ? *val : xml::Element{});
        }
        out.push_back(std::move(oc));
    }
}

Result<std::vector<ObjectContent>> run_spec(Session &s, const std::string &spec) {
    std::vector<ObjectContent> out;
    SoapCall first("RetrievePropertiesEx", s.content().property_collector);
    first.raw(spec).raw("<options><maxObjects>100</maxObjects></options>");
    HSDK_TRY(auto resp, s.invoke(first));
    const xml::Element *result = resp.child("returnval");
    std::string token;
    if (result != nullptr) {
        collect(*result, out);
        token = result->child_text("token");
    }
    // Continuation: the collector hands out a page at a time.
    for (unsigned pages = 0; !token.empty(); ++pages) {
        if (pages > 100000) return fail(Errc::remote_error, "RetrievePropertiesEx: the server keeps sending pages");
        SoapCall next("ContinueRetrievePropertiesEx", s.content().property_collector);
        next.text("token", token);
        HSDK_TRY(auto more, s.invoke(next));
        token.clear();
        if (const xml::Element *r = more.child("returnval")) {
            collect(*r, out);
            token = r->child_text("token");
        }
    }
    return out;
}

}  // namespace

const xml::Element *ObjectContent::prop(const std::string &path) const {
    auto it = props.find(path);
    return it == props.end() ? nullptr : &it->second;
}

std::string ObjectContent::text(const std::string &path) const {
    const xml::Element *e = prop(path);
    return e ? e->text : std::string();
}

Result<std::vector<ObjectContent>> retrieve(Session &s, const std::vector<MoRef> &objects, const PropertySets &props) {
    HSDK_TRY(std::string spec, prop_sets_xml(props));
    spec = "<specSet>" + spec;
    for (const auto &o : objects) {
        HSDK_TRY(auto r, ref_xml("obj", o));
        spec += "<objectSet>" + r + "<skip>false</skip></objectSet>";
    }
    spec += "</specSet>";
    return run_spec(s, spec);
}

Result<std::vector<ObjectContent>> retrieve_with_ancestors(Session &s, const MoRef &object, const PropertySets &props) {
    HSDK_TRY(std::string spec, prop_sets_xml(props));
    HSDK_TRY(auto r, ref_xml("obj", object));
    spec = "<specSet>" + spec + "<objectSet>" + r +
           "<skip>false</skip>"
           "<selectSet xsi:type=\"TraversalSpec\"><name>up</name><type>ManagedEntity</type><path>parent</path><skip>false</skip>"
           "<selectSet><name>up</name></selectSet></selectSet>"
           "<selectSet xsi:type=\"TraversalSpec\"><name>networks</name><type>VirtualMachine</type><path>network</path>"
           "<skip>false</skip></selectSet></objectSet></specSet>";
    return run_spec(s, spec);
}

Result<ObjectContent> retrieve_one(Session &s, const MoRef &object, const std::vector<std::string> &props) {
    HSDK_TRY(auto all, retrieve(s, {object}, PropertySets{{object.type, props}}));
    for (auto &oc : all)
        if (oc.obj == object) return std::move(oc);
    return fail(Errc::not_found, fmt::format("not found: {} {} returned no properties", object.type, object.value));
}

Result<std::vector<ObjectContent>> retrieve_container(Session &s, const MoRef &root, const PropertySets &props) {
    if (s.content().view_manager.empty()) return fail_unsupported("the server has no ViewManager");
    SoapCall create("CreateContainerView", s.content().view_manager);
    create.ref("container", root);
    for (const auto &[type, paths] : props) create.text("type", type);
    create.boolean("recursive", true);
    HSDK_TRY(auto created, s.invoke(create, CallKind::action));
    const xml::Element *rv = created.child("returnval");
    if (rv == nullptr) return fail(Errc::remote_error, "CreateContainerView returned no view");
    const MoRef view = moref_of(*rv);

    auto result = [&]() -> Result<std::vector<ObjectContent>> {
        HSDK_TRY(std::string spec, prop_sets_xml(props));
        HSDK_TRY(auto vref, ref_xml("obj", view));
        spec = "<specSet>" + spec + "<objectSet>" + vref +
               "<skip>true</skip><selectSet xsi:type=\"TraversalSpec\"><name>view</name><type>ContainerView</type>"
               "<path>view</path><skip>false</skip></selectSet></objectSet></specSet>";
        return run_spec(s, spec);
    }();
    (void)s.invoke(SoapCall("DestroyView", view), CallKind::cleanup);
    return result;
}

Result<MoRef> find_by_inventory_path(Session &s, const std::string &path) {
    SoapCall call("FindByInventoryPath", s.content().search_index);
    call.text("inventoryPath", path);
    HSDK_TRY(auto resp, s.invoke(call));
    const xml::Element *rv = resp.child("returnval");
    return rv ? moref_of(*rv) : MoRef{};
}

Result<MoRef> find_vm_by_uuid(Session &s, const std::string &uuid, bool instance_uuid) {
    SoapCall call("FindByUuid", s.content().search_index);
    call.text("uuid", uuid).boolean("vmSearch", true).boolean("instanceUuid", instance_uuid);
    HSDK_TRY(auto resp, s.invoke(call));
    const xml::Element *rv = resp.child("returnval");
    return rv ? moref_of(*rv) : MoRef{};
}

Result<xml::Element> wait_for_task(Session &s, const MoRef &task, bool cleanup) {
    auto delay = std::chrono::milliseconds(10);
    const CancelToken never;
    const CancelToken &cancel = cleanup ? never : s.options().cancel;
    for (;;) {
        HSDK_TRYV(cancel.check());
        SoapCall call("RetrievePropertiesEx", s.content().property_collector);
        HSDK_TRY(auto r, ref_xml("obj", task));
        call.raw("<specSet><propSet><type>Task</type><pathSet>info</pathSet></propSet><objectSet>" + r +
                 "<skip>false</skip></objectSet></specSet><options/>");
        HSDK_TRY(auto resp, s.invoke(call, cleanup ? CallKind::cleanup : CallKind::query));
        const xml::Element *info = resp.path("returnval.objects.propSet.val");
        if (info == nullptr) return fail(Errc::remote_error, fmt::format("task {} has no info", task.value));
        const std::string state = info->child_text("state");
        if (state == "success") {
            const xml::Element *res = info->child("result");
            return res ? *res : xml::Element{};
        }
        if (state == "error") {
            const xml::Element *err = info->child("error");
            const SoapFault f = err ? fault_of(*err) : SoapFault{"MethodFault", "task failed"};
            return fail(fault_error(f, info->child_text("descriptionId").empty() ? info->child_text("name")
                                                                                 : info->child_text("descriptionId")));
        }
        // queued or running: poll, backing off from 10 ms to once a second (short tasks such as
        // snapshots of small disks end within milliseconds).
        const auto until = std::chrono::steady_clock::now() + delay;
        while (std::chrono::steady_clock::now() < until) {
            HSDK_TRYV(cancel.check());
            std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(delay, std::chrono::milliseconds(20)));
        }
        delay = std::min<std::chrono::milliseconds>(delay * 2, std::chrono::milliseconds(1000));
    }
}

}  // namespace hypersdk::vsphere
