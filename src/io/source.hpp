// io::Source: a shared, read-only handle on a ByteSource with the reading calls the format drivers
// use (the names io::File has). Copies share the source.
#pragma once

#include <hypersdk/byte_source.hpp>

#include <memory>
#include <string>
#include <utility>

namespace hypersdk::io {

class Source {
public:
    Source() = default;
    explicit Source(std::shared_ptr<const ByteSource> source) : source_(std::move(source)) {}

    [[nodiscard]] bool is_open() const noexcept { return source_ != nullptr; }
    [[nodiscard]] const std::string &path() const noexcept { return source_->name(); }
    [[nodiscard]] std::uint64_t size() const noexcept { return source_->size(); }
    Result<void> read_exact(std::uint64_t offset, std::span<std::byte> buf) const { return source_->read_exact(offset, buf); }
    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const {
        return source_->read_some(offset, buf);
    }
    Result<std::vector<ByteRun>> allocation(std::uint64_t offset, std::uint64_t length) const {
        return source_->allocation(offset, length);
    }
    [[nodiscard]] std::optional<std::uint64_t> allocated_size() const { return source_->allocated_size(); }
    Result<Source> open_reference(const std::string &reference, bool allow_external, std::string_view what) const {
        HSDK_TRY(auto next, source_->open_reference(reference, allow_external, what));
        return Source(std::move(next));
    }
    [[nodiscard]] const ByteSource &source() const noexcept { return *source_; }
    [[nodiscard]] const std::shared_ptr<const ByteSource> &shared() const noexcept { return source_; }

private:
    std::shared_ptr<const ByteSource> source_;
};

}  // namespace hypersdk::io
