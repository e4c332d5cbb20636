// PropertyCollector.RetrievePropertiesEx with continuation, container views, SearchIndex and
// task waiting.
#pragma once

#include "providers/vsphere/session.hpp"

#include <map>
#include <string>
#include <vector>

namespace hypersdk::vsphere {

struct ObjectContent {
    MoRef obj;
    std::map<std::string, xml::Element> props;  // property path -> <val>
    [[nodiscard]] const xml::Element *prop(const std::string &path) const;
    [[nodiscard]] std::string text(const std::string &path) const;  // "" when absent
};

// Properties to collect per managed object type.
using PropertySets = std::map<std::string, std::vector<std::string>>;

// Every page of RetrievePropertiesEx / ContinueRetrievePropertiesEx for one filter spec.
Result<std::vector<ObjectContent>> retrieve(Session &s, const std::vector<MoRef> &objects, const PropertySets &props);
Result<ObjectContent> retrieve_one(Session &s, const MoRef &object, const std::vector<std::string> &props);
// `object`, every managed entity above it (its parent, the parent's parent, ... up to the root
// folder) and the networks it names (a VirtualMachine's `network`), in one call: a traversal of
// `parent` and `network` instead of one round trip per level.
Result<std::vector<ObjectContent>> retrieve_with_ancestors(Session &s, const MoRef &object, const PropertySets &props);
// Everything of the given types below `root` (recursive), through a ContainerView that is
// destroyed afterwards.
Result<std::vector<ObjectContent>> retrieve_container(Session &s, const MoRef &root, const PropertySets &props);

// SearchIndex: an empty reference when nothing matches.
Result<MoRef> find_by_inventory_path(Session &s, const std::string &path);
Result<MoRef> find_vm_by_uuid(Session &s, const std::string &uuid, bool instance_uuid);

// Polls the task until it ends; returns info.result (empty element when none). A failed task
// becomes its fault's error. With `cancel`, waiting stops on cancel (the task keeps running).
Result<xml::Element> wait_for_task(Session &s, const MoRef &task, bool cleanup = false);

}  // namespace hypersdk::vsphere
