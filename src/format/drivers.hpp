// One accessor per format driver, defined in that driver's folder.
#pragma once

#include "format/layer.hpp"

namespace hypersdk::format {

const Driver &raw_driver();
const Driver &qcow2_driver();
const Driver &vhdx_driver();
const Driver &vhd_driver();
const Driver &vdi_driver();

}  // namespace hypersdk::format
