// The conversion pipeline: source extents -> parallel read / zero detection / encoding -> ordered commit.
#pragma once

#include <hypersdk/cbt.hpp>
#include <hypersdk/disk.hpp>
#include <hypersdk/progress.hpp>

#include "convert/unit.hpp"
#include "format/layer.hpp"

#include <functional>
#include <optional>

namespace hypersdk::pipeline {

struct PipelineOptions {
    unsigned threads = 0;                     // workers; 0 = one per core
    std::uint64_t unit_bytes = 2ULL << 20;    // work unit, rounded to the writer's granularity
    ProgressReporter *progress = nullptr;     // optional; its token is also checked
    CancelToken cancel;
    // When the output sits on a backing image: only ranges that differ from it are written, and
    // zeros over its data become explicit zero writes.
    BlockDevice *backing = nullptr;
    // The output has a backing image that is not read (ConvertOptions::read_backing off): zeros
    // become explicit zero writes, so that no stale backing data shows through.
    bool unread_backing = false;
    // The output's write-behind (AtomicOutputSet::io_ticket / wait_io); empty when nothing writes behind.
    IoFence io_fence;
    // qemu-img convert -S: only zero runs of at least this many bytes (rounded up to the writer's
    // granularity) become holes; 0 writes every byte of the disk (a fully allocated output).
    // Unset: the writer's granularity.
    std::optional<std::uint64_t> sparse_size;
    // Only these ranges of the source (with a backing image: the rest of the output reads from
    // it). Null: the whole disk.
    const ChangedExtents *only = nullptr;
};

struct PipelineStats {
    std::uint64_t bytes_read = 0;
    std::uint64_t bytes_written = 0;
    std::uint64_t units = 0;
};

// Copies every byte of `source` into `writer` (not calling finish()).
Result<PipelineStats> run_pipeline(BlockDevice &source, format::DiskWriter &writer, const PipelineOptions &options);

}  // namespace hypersdk::pipeline
