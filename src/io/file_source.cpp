#include "io/file_source.hpp"

#include "io/file.hpp"
#include "io/reference.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk::io {
namespace {

class FileSource final : public ByteSource {
public:
    FileSource(File file, std::uint64_t size) : file_(std::move(file)), size_(size) {}

    const std::string &name() const noexcept override { return file_.path(); }
    std::uint64_t size() const noexcept override { return size_; }

    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        if (offset >= size_) return std::size_t{0};
        return file_.read_some(offset, buf.first(static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size_ - offset))));
    }

    // Holes of the file are zero runs. lseek moves the shared file offset, which nothing uses: all
    // reads are positional.
    Result<std::vector<ByteRun>> allocation(std::uint64_t offset, std::uint64_t length) const override {
        std::vector<ByteRun> out;
        const std::uint64_t end = offset >= size_ ? offset : offset + std::min(length, size_ - offset);
        auto push = [&](std::uint64_t from, std::uint64_t to, bool data) {
            if (to <= from) return;
            if (!out.empty() && out.back().data == data && out.back().offset + out.back().length == from)
                out.back().length += to - from;
            else
                out.push_back(ByteRun{from, to - from, data});
        };
        std::uint64_t pos = offset;
        while (pos < end) {
            const off_t data = ::lseek(file_.fd(), static_cast<off_t>(pos), SEEK_DATA);
            if (data < 0) {
                if (errno == ENXIO) {  // only a hole after pos
                    push(pos, end, false);
                    break;
                }
                if (errno == EINVAL || errno == ENOTSUP) {  // no SEEK_DATA here: all data
                    push(pos, end, true);
                    break;
                }
                return fail(errno_error(errno, "cannot map", file_.path()));
            }
            const std::uint64_t data_start = std::min<std::uint64_t>(static_cast<std::uint64_t>(data), end);
            push(pos, data_start, false);
            if (data_start >= end) break;
            const off_t hole = ::lseek(file_.fd(), static_cast<off_t>(data_start), SEEK_HOLE);
            if (hole < 0) return fail(errno_error(errno, "cannot map", file_.path()));
            const std::uint64_t data_end = std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), end);
            push(data_start, data_end, true);
            pos = data_end;
        }
        return out;
    }

    std::optional<std::uint64_t> allocated_size() const override {
        auto a = file_.allocated_size();
        if (!a) return std::nullopt;
        return a.value();
    }

    // The inode, so that links and /proc/self/fd names of one file are one file.
    std::string identity() const override {
        struct stat st {};
        if (::fstat(file_.fd(), &st) != 0) return file_.path();
        return fmt::format("file:{}:{}", static_cast<unsigned long long>(st.st_dev), static_cast<unsigned long long>(st.st_ino));
    }

    Result<std::shared_ptr<ByteSource>> open_reference(const std::string &reference, bool allow_external,
                                                       std::string_view what) const override {
        HSDK_TRY(auto path, resolve_reference(file_.path(), reference, allow_external, what));
        return open_file_source(path);
    }

private:
    File file_;
    std::uint64_t size_;
};

}  // namespace

Result<std::shared_ptr<ByteSource>> open_file_source(const std::string &path) {
    HSDK_TRY(auto file, File::open_read(path));
    HSDK_TRY(auto size, file.size());
    return std::shared_ptr<ByteSource>(std::make_shared<FileSource>(std::move(file), size));
}

}  // namespace hypersdk::io
