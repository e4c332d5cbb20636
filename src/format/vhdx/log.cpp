#include "format/vhdx/log.hpp"

#include "core/endian.hpp"
#include "format/vhdx/constants.hpp"
#include "format/vhdx/crc32c.hpp"

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <optional>

namespace hypersdk::format::vhdx {

namespace {

// A log this big is unheard of (Hyper-V and qemu use 1 MiB); it would be read whole into memory.
constexpr std::uint64_t max_log_length = 64 * MiB;
// Bounds on the work a hostile log can cause while searching for the active sequence.
constexpr std::uint64_t max_checksummed_bytes = 1 * GiB;
constexpr std::uint64_t max_sequence_steps = std::uint64_t{1} << 22;

struct Descriptor {
    bool zero = false;
    std::uint64_t file_offset = 0;
    std::uint64_t zero_length = 0;  // zero descriptors
    std::uint64_t leading = 0;      // data descriptors: bytes 0..7 of the sector
    std::uint32_t trailing = 0;     // data descriptors: bytes 4092..4095 of the sector
    std::uint64_t data_sector = 0;  // data descriptors: log offset of the data sector
};

struct Entry {
    std::uint64_t offset = 0;  // in the log
    std::uint32_t length = 0;
    std::uint32_t tail = 0;
    std::uint64_t sequence = 0;
    std::uint64_t flushed_file_offset = 0;
    std::uint64_t last_file_offset = 0;
    std::vector<Descriptor> descriptors;
};

class LogBuffer {
public:
    explicit LogBuffer(std::vector<std::byte> bytes) : bytes_(std::move(bytes)) {}
    [[nodiscard]] std::uint64_t size() const noexcept { return bytes_.size(); }
    // `n` bytes starting at `offset`, wrapping around the end of the circular log.
    void copy(std::uint64_t offset, std::span<std::byte> out) const {
        std::size_t done = 0;
        std::uint64_t pos = offset % bytes_.size();
        while (done < out.size()) {
            const std::size_t n = std::min<std::size_t>(out.size() - done, static_cast<std::size_t>(bytes_.size() - pos));
            std::memcpy(out.data() + done, bytes_.data() + pos, n);
            done += n;
            pos = 0;
        }
    }

private:
    std::vector<std::byte> bytes_;
};

class EntryScanner {
public:
    EntryScanner(const LogBuffer &log, const Guid &log_guid) : log_(log), guid_(log_guid) {}

    // The valid entry starting at `offset`, if any. Fails only when the work budget is exhausted.
    Result<std::optional<Entry>> parse(std::uint64_t offset) {
        std::byte head[log_entry_header_size];
        log_.copy(offset, head);
        if (std::memcmp(head, log_entry_signature, 4) != 0) return std::optional<Entry>{};
        Entry e;
        e.offset = offset;
        e.length = le32(head, 8);
        e.tail = le32(head, 12);
        e.sequence = le64(head, 16);
        const std::uint32_t count = le32(head, 24);
        e.flushed_file_offset = le64(head, 48);
        e.last_file_offset = le64(head, 56);
        if (Guid::read(head + 32) != guid_ || e.sequence == 0) return std::optional<Entry>{};
        if (e.length == 0 || e.length % log_sector_size != 0 || e.length > log_.size()) return std::optional<Entry>{};
        if (e.tail % log_sector_size != 0 || e.tail >= log_.size()) return std::optional<Entry>{};
        // The header takes the first two descriptor slots of the first sector.
        const std::uint64_t descriptor_sectors = (std::uint64_t{count} + 2 + 127) / 128;
        const std::uint64_t sectors = e.length / log_sector_size;
        if (descriptor_sectors > sectors) return std::optional<Entry>{};

        checksummed_ += e.length;
        if (checksummed_ > max_checksummed_bytes)
            return fail_corrupt("log holds too many overlapping entries to search (more than 1 GiB to checksum)");
        std::vector<std::byte> bytes(e.length);
        log_.copy(offset, bytes);
        if (le32(bytes.data(), 4) != crc32c_with_zeroed_field(bytes, 4)) return std::optional<Entry>{};

        std::uint64_t next_data = descriptor_sectors;
        for (std::uint32_t i = 0; i < count; ++i) {
            const std::byte *d = bytes.data() + log_entry_header_size + std::size_t{i} * log_descriptor_size;
            Descriptor desc;
            desc.file_offset = le64(d, 16);
            if (le64(d, 24) != e.sequence || desc.file_offset % log_sector_size != 0) return std::optional<Entry>{};
            if (std::memcmp(d, zero_descriptor_signature, 4) == 0) {
                desc.zero = true;
                desc.zero_length = le64(d, 8);
                if (desc.zero_length % log_sector_size != 0) return std::optional<Entry>{};
            } else if (std::memcmp(d, data_descriptor_signature, 4) == 0) {
                desc.trailing = le32(d, 4);
                desc.leading = le64(d, 8);
                if (next_data >= sectors) return std::optional<Entry>{};
                const std::byte *s = bytes.data() + next_data * log_sector_size;
                if (std::memcmp(s, data_sector_signature, 4) != 0 || le32(s, 4) != static_cast<std::uint32_t>(e.sequence >> 32) ||
                    le32(s, log_sector_size - 4) != static_cast<std::uint32_t>(e.sequence))
                    return std::optional<Entry>{};
                desc.data_sector = (offset + next_data * log_sector_size) % log_.size();
                ++next_data;
            } else {
                return std::optional<Entry>{};
            }
            e.descriptors.push_back(desc);
        }
        return std::optional<Entry>{std::move(e)};
    }

private:
    const LogBuffer &log_;
    Guid guid_;
    std::uint64_t checksummed_ = 0;
};

}  // namespace

std::string LogReplay::describe() const {
    switch (state) {
    case State::none: return "clean (no log entries to replay)";
    case State::empty: return "log GUID set but no valid entries (nothing to replay)";
    case State::replayed: return fmt::format("log replayed in memory: {} entries", entries);
    }
    return {};
}

Result<LogReplay> replay_log(const io::Source &file, std::uint64_t file_size, const Header &header) {
    LogReplay out;
    out.logical_size = file_size;
    if (header.log_guid.is_zero() || header.log_length == 0) return out;
    if (header.log_version != 0)
        return fail_unsupported(fmt::format("VHDX log version {} (only version 0 is known)", header.log_version));
    if (header.log_offset < header_section_size || header.log_offset % MiB != 0 || header.log_length % MiB != 0)
        return fail_corrupt(fmt::format("log at {:#x}+{:#x} is not aligned to 1 MiB outside the header section",
                                        header.log_offset, header.log_length));
    if (header.log_offset > file_size || header.log_length > file_size - header.log_offset)
        return fail_corrupt(fmt::format("log ({:#x}+{:#x}) lies beyond the end of the file ({:#x} bytes)", header.log_offset,
                                        header.log_length, file_size));
    if (header.log_length > max_log_length)
        return fail_unsupported(fmt::format("log of {} bytes (this reader replays logs of up to {} MiB)", header.log_length,
                                            max_log_length / MiB));
    std::vector<std::byte> raw(header.log_length);
    HSDK_TRYV(file.read_exact(header.log_offset, raw));
    const LogBuffer log(std::move(raw));

    EntryScanner scanner(log, header.log_guid);
    std::map<std::uint64_t, Entry> valid;
    for (std::uint64_t off = 0; off < log.size(); off += log_sector_size) {
        HSDK_TRY(auto entry, scanner.parse(off));
        if (entry) valid.emplace(off, std::move(*entry));
    }

    // Each valid entry may be the head of a sequence that starts at its tail; the one with the
    // highest sequence number wins.
    const Entry *best_head = nullptr;
    std::vector<const Entry *> best_sequence, sequence;
    std::uint64_t steps = 0;
    for (const auto &[off, head] : valid) {
        sequence.clear();
        auto it = valid.find(head.tail);
        if (it == valid.end()) continue;
        const Entry *cur = &it->second;
        std::uint64_t span = 0;
        bool ok = true;
        for (;;) {
            sequence.push_back(cur);
            span += cur->length;
            if (++steps > max_sequence_steps) return fail_corrupt("log sequences are too long to search");
            if (span > log.size()) {
                ok = false;
                break;
            }
            if (cur == &head) break;
            auto next = valid.find((cur->offset + cur->length) % log.size());
            if (next == valid.end() || next->second.sequence != cur->sequence + 1) {
                ok = false;
                break;
            }
            cur = &next->second;
        }
        if (!ok) continue;
        if (best_head == nullptr || head.sequence > best_head->sequence) {
            best_head = &head;
            best_sequence = sequence;
        }
    }
    if (best_head == nullptr) {
        out.state = LogReplay::State::empty;
        return out;
    }

    if (best_head->flushed_file_offset > file_size)
        return fail_corrupt(fmt::format("log entry {} says the file was flushed up to {:#x} but it has only {:#x} bytes "
                                        "(truncated file?)",
                                        best_head->sequence, best_head->flushed_file_offset, file_size));
    if (best_head->last_file_offset > max_virtual_size + 64 * GiB)
        return fail_corrupt(fmt::format("log entry {} claims a file size of {:#x} bytes", best_head->sequence,
                                        best_head->last_file_offset));
    out.logical_size = std::max(file_size, best_head->last_file_offset);
    const std::uint64_t log_begin = header.log_offset, log_end = header.log_offset + header.log_length;
    for (const Entry *e : best_sequence) {
        for (const auto &d : e->descriptors) {
            const std::uint64_t len = d.zero ? d.zero_length : log_sector_size;
            if (len == 0) continue;
            const char *what = d.zero ? "zero" : "data";
            if (d.file_offset > out.logical_size || len > out.logical_size - d.file_offset)
                return fail_corrupt(fmt::format("log entry {} writes {} at {:#x}+{:#x}, beyond the file's last offset {:#x}",
                                                e->sequence, what, d.file_offset, len, out.logical_size));
            if (d.file_offset < region_table1_offset)
                return fail_corrupt(fmt::format("log entry {} writes {} at {:#x}, into the file identifier or headers",
                                                e->sequence, what, d.file_offset));
            if (d.file_offset < log_end && log_begin < d.file_offset + len)
                return fail_corrupt(fmt::format("log entry {} writes {} at {:#x}+{:#x}, into the log itself", e->sequence,
                                                what, d.file_offset, len));
            if (d.zero) {
                out.overlay.zero(d.file_offset, len);
            } else {
                std::vector<std::byte> sector(log_sector_size);
                log.copy(d.data_sector, sector);
                store_le<std::uint64_t>(sector.data(), d.leading);
                store_le<std::uint32_t>(sector.data() + log_sector_size - 4, d.trailing);
                out.overlay.write(d.file_offset, std::move(sector));
            }
            ++out.descriptors;
        }
    }
    out.state = LogReplay::State::replayed;
    out.entries = best_sequence.size();
    out.head_sequence = best_head->sequence;
    return out;
}

}  // namespace hypersdk::format::vhdx
