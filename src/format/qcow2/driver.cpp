// The qcow2 entry in the driver list.
#include "format/drivers.hpp"
#include "format/qcow2/qcow2.hpp"

namespace hypersdk::format {

const Driver &qcow2_driver() {
    static const Driver d{"qcow2", {}, &qcow2::probe, &qcow2::open, &qcow2::create};
    return d;
}

}  // namespace hypersdk::format
