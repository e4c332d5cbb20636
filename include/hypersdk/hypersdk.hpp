// Umbrella header for the C++ API.
#pragma once

#include <hypersdk/artifact.hpp>
#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/executor.hpp>
#include <hypersdk/hash.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/progress.hpp>
#include <hypersdk/thread_pool.hpp>
#include <hypersdk/version.hpp>
#include <hypersdk/vm.hpp>
#include <hypersdk/disk.hpp>
#include <hypersdk/cbt.hpp>
#include <hypersdk/convert.hpp>
#include <hypersdk/kvm.hpp>
#include <hypersdk/ovf.hpp>
#include <hypersdk/writer.hpp>
