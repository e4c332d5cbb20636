// The three VMDK writers, one per subformat.
#pragma once

#include "format/layer.hpp"
#include "format/vmdk/writer_common.hpp"

#include <memory>

namespace hypersdk::format::vmdk {

Result<std::unique_ptr<DiskWriter>> create_stream_optimized(const CreateRequest &request, const WriterSettings &settings);
Result<std::unique_ptr<DiskWriter>> create_monolithic_sparse(const CreateRequest &request, const WriterSettings &settings);
Result<std::unique_ptr<DiskWriter>> create_monolithic_flat(const CreateRequest &request, const WriterSettings &settings);

}  // namespace hypersdk::format::vmdk
