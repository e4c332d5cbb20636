// A mutex-guarded LRU of decoded L2 tables, shared by the reader's threads. Tables are immutable
// once loaded, so a caller keeps using its shared_ptr after the cache has dropped it.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hypersdk::format::qcow2 {

class L2Cache {
public:
    using Table = std::shared_ptr<const std::vector<std::uint64_t>>;  // entries in host byte order

    explicit L2Cache(std::size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

    Table find(std::uint64_t offset) {
        std::lock_guard lock(mutex_);
        auto it = index_.find(offset);
        if (it == index_.end()) return nullptr;
        lru_.splice(lru_.begin(), lru_, it->second);
        return it->second->second;
    }

    void insert(std::uint64_t offset, Table table) {
        std::lock_guard lock(mutex_);
        if (auto it = index_.find(offset); it != index_.end()) {
            lru_.splice(lru_.begin(), lru_, it->second);
            return;  // another thread loaded it first
        }
        lru_.emplace_front(offset, std::move(table));
        index_.emplace(offset, lru_.begin());
        if (lru_.size() > capacity_) {
            index_.erase(lru_.back().first);
            lru_.pop_back();
        }
    }

private:
    std::mutex mutex_;
    std::size_t capacity_;
    std::list<std::pair<std::uint64_t, Table>> lru_;
    std::unordered_map<std::uint64_t, std::list<std::pair<std::uint64_t, Table>>::iterator> index_;
};

}  // namespace hypersdk::format::qcow2
