// A VMDK disk as one layer: its descriptor (separate file, embedded, or absent) and its extents,
// concatenated in descriptor order into the virtual disk.
#pragma once

#include "format/layer.hpp"
#include "format/vmdk/descriptor.hpp"
#include "format/vmdk/extent.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk::format::vmdk {

class VmdkLayer final : public Layer {
public:
    static Result<std::unique_ptr<Layer>> open(OpenRequest request);

    std::uint64_t virtual_size() const noexcept override { return size_; }
    Result<void> layer_status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override;
    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override;
    std::optional<BackingRef> backing() const override;
    Result<void> verify_parent(const Layer &parent) override;
    ImageInfo info() const override;
    Result<CheckReport> check() override;

    // The content ID of this disk (from its descriptor), if it has one.
    [[nodiscard]] std::optional<std::uint32_t> cid() const noexcept { return descriptor_.cid; }

private:
    struct Part {
        ExtentLine line;
        std::uint64_t start = 0;  // bytes into the disk
        std::uint64_t size = 0;   // bytes
        std::unique_ptr<ExtentReader> reader;  // null for NOACCESS extents
        std::shared_ptr<ExtentFile> file;      // null for ZERO and NOACCESS extents
    };

    VmdkLayer() = default;
    Result<void> open_monolithic(std::shared_ptr<ExtentFile> own);
    Result<void> open_cowd(std::shared_ptr<ExtentFile> own);
    Result<void> open_described(const Descriptor &descriptor, const OpenOptions &options);
    Result<std::shared_ptr<ExtentFile>> extent_file(const std::string &reference, const OpenOptions &options);
    Result<void> finish_open();
    // Index of the part holding byte `offset`.
    [[nodiscard]] std::size_t part_at(std::uint64_t offset) const noexcept;
    Result<void> noaccess_error(const Part &p) const;

    std::string path_;
    std::shared_ptr<ExtentFile> own_;  // the opened file: descriptor or monolithic extent
    Descriptor descriptor_;
    bool has_descriptor_ = false;
    std::string create_type_;
    std::vector<Part> parts_;
    std::map<std::string, std::shared_ptr<ExtentFile>> files_;  // extent files by the name the descriptor gives
    std::vector<std::string> findings_;  // descriptor-level inconsistencies, reported by check()
    std::uint64_t size_ = 0;
    bool single_data_file_ = false;  // host offsets mean something only when all data sits in one file
};

}  // namespace hypersdk::format::vmdk
