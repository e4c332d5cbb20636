#include "io/gpg.hpp"

#include "io/atomic_output.hpp"
#include "io/file.hpp"
#include "io/output_target.hpp"

#include <fmt/format.h>

#include <gpgme.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <memory>
#include <optional>
#include <random>
#include <string_view>
#include <sys/file.h>
#include <sys/stat.h>
#include <type_traits>
#include <unistd.h>
#include <utility>

namespace hypersdk::io {
namespace {

// legacy_cipher_nomdc in the decrypt result, and GPGME failing a message without an MDC even
// when an old gpg only warns, came with GPGME 1.12; gpgme_op_encrypt_ext with 1.11.
constexpr const char *gpg_min_gpgme_version = "1.12.0";

// ---- GPGME set-up and errors -------------------------------------------------------------------

// gpgme_strerror is not thread-safe (it may return strerror's static buffer); this is.
std::string gpg_reason(gpgme_error_t err) {
    std::array<char, 256> buf{};
    (void)gpgme_strerror_r(err, buf.data(), buf.size());
    buf.back() = '\0';
    return buf.data();
}

// GPGME must be initialised once per process before any other call (gpgme_check_version does it,
// and sets SIGPIPE to SIG_IGN). A function-local static makes that thread-safe; its outcome,
// including whether gpg itself can be run, is kept for every later call.
Result<void> gpg_initialise() {
    static const std::optional<Error> failure = []() -> std::optional<Error> {
        const char *have = gpgme_check_version(nullptr);
        if (gpgme_check_version(gpg_min_gpgme_version) == nullptr)
            return Error{Errc::unsupported, fmt::format("unsupported: OpenPGP encryption needs GPGME {} or later (this is {})",
                                                        gpg_min_gpgme_version, have != nullptr ? have : "unknown")};
        if (const gpgme_error_t err = gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP); err != 0)
            return Error{Errc::unsupported,
                         fmt::format("unsupported: OpenPGP encryption needs GnuPG (gpg), which GPGME cannot use: {}", gpg_reason(err))};
        return std::nullopt;
    }();
    if (failure) return fail(*failure);
    return success();
}

// Our code for a GPGME error: the caller's error model (see the header) in one table.
Errc gpg_errc(gpgme_error_t err) noexcept {
    switch (gpgme_err_code(err)) {
    case GPG_ERR_CANCELED:
    case GPG_ERR_FULLY_CANCELED:
    case GPG_ERR_ECANCELED: return Errc::cancelled;
    case GPG_ERR_NO_SECKEY:
    case GPG_ERR_DECRYPT_FAILED:
    case GPG_ERR_BAD_PASSPHRASE:
    case GPG_ERR_NO_PASSPHRASE:
    case GPG_ERR_BAD_KEY:
    case GPG_ERR_WRONG_SECKEY:
    case GPG_ERR_BAD_SECKEY:
    case GPG_ERR_NO_PIN:
    case GPG_ERR_BAD_PIN: return Errc::auth_failed;
    case GPG_ERR_NO_PUBKEY:
    case GPG_ERR_UNUSABLE_PUBKEY:
    case GPG_ERR_AMBIGUOUS_NAME:
    case GPG_ERR_INV_USER_ID:
    case GPG_ERR_NO_USER_ID:
    case GPG_ERR_KEY_EXPIRED:
    case GPG_ERR_CERT_REVOKED:
    case GPG_ERR_WRONG_KEY_USAGE:
    case GPG_ERR_NO_DATA: return Errc::invalid_argument;
    case GPG_ERR_BAD_DATA:
    case GPG_ERR_INV_PACKET:
    case GPG_ERR_UNKNOWN_PACKET:
    case GPG_ERR_TRUNCATED:
    case GPG_ERR_INV_ARMOR:
    case GPG_ERR_BAD_MPI:
    case GPG_ERR_CHECKSUM:
    case GPG_ERR_INV_DATA: return Errc::corrupt_image;
    case GPG_ERR_UNSUPPORTED_ALGORITHM:
    case GPG_ERR_CIPHER_ALGO:
    case GPG_ERR_PUBKEY_ALGO:
    case GPG_ERR_DIGEST_ALGO:
    case GPG_ERR_COMPR_ALGO:
    case GPG_ERR_NOT_SUPPORTED:
    case GPG_ERR_NOT_IMPLEMENTED:
    case GPG_ERR_UNKNOWN_VERSION:
    case GPG_ERR_UNSUPPORTED_PROTOCOL:
    case GPG_ERR_INV_ENGINE: return Errc::unsupported;
    case GPG_ERR_ENOMEM: return Errc::no_memory;
    case GPG_ERR_ENOSPC:
    case GPG_ERR_EDQUOT:
    case GPG_ERR_EFBIG: return Errc::no_space;
    case GPG_ERR_EACCES:
    case GPG_ERR_EPERM:
    case GPG_ERR_EROFS: return Errc::permission_denied;
    case GPG_ERR_ENOENT:
    case GPG_ERR_NOT_FOUND: return Errc::not_found;
    case GPG_ERR_TIMEOUT:
    case GPG_ERR_ETIMEDOUT: return Errc::timeout;
    case GPG_ERR_INV_VALUE:
    case GPG_ERR_BUG: return Errc::internal;
    default: return Errc::io_error;
    }
}

Error gpg_failure(gpgme_error_t err, std::string_view what) {
    return Error{gpg_errc(err), fmt::format("{}: {}", what, gpg_reason(err))};
}

// "the GnuPG home 'H'" or the default one, for messages.
std::string gpg_home_name(const GpgOptions &options) {
    return options.home.empty() ? std::string("the default GnuPG home") : fmt::format("the GnuPG home '{}'", options.home);
}

struct GpgContextFree {
    void operator()(gpgme_ctx_t ctx) const noexcept { gpgme_release(ctx); }
};
using GpgContext = std::unique_ptr<std::remove_pointer_t<gpgme_ctx_t>, GpgContextFree>;

struct GpgDataFree {
    void operator()(gpgme_data_t data) const noexcept { gpgme_data_release(data); }
};
using GpgData = std::unique_ptr<std::remove_pointer_t<gpgme_data_t>, GpgDataFree>;

struct GpgKeyUnref {
    void operator()(gpgme_key_t key) const noexcept { gpgme_key_unref(key); }
};
using GpgKey = std::unique_ptr<std::remove_pointer_t<gpgme_key_t>, GpgKeyUnref>;

// A context of its own for one call (GPGME contexts must not be shared between threads): OpenPGP,
// binary output, local keys only and offline (gpg fetches no key and starts no dirmngr).
Result<GpgContext> gpg_new_context(const GpgOptions &options) {
    HSDK_TRYV(gpg_initialise());
    if (!options.home.empty()) {
        // gpg would create a missing home (and an agent for it) rather than say it is not there.
        struct stat st {};
        if (::stat(options.home.c_str(), &st) != 0)
            return fail(errno_error(errno, "cannot use the GnuPG home", options.home));
        if (!S_ISDIR(st.st_mode))
            return fail(Errc::invalid_argument, fmt::format("the GnuPG home '{}' is not a folder", options.home));
    }
    gpgme_ctx_t raw = nullptr;
    if (const gpgme_error_t err = gpgme_new(&raw); err != 0) return fail(gpg_failure(err, "cannot create a GPGME context"));
    GpgContext ctx(raw);
    if (const gpgme_error_t err = gpgme_set_protocol(ctx.get(), GPGME_PROTOCOL_OpenPGP); err != 0)
        return fail(gpg_failure(err, "cannot select OpenPGP in GPGME"));
    if (!options.home.empty()) {
        const gpgme_error_t err = gpgme_ctx_set_engine_info(ctx.get(), GPGME_PROTOCOL_OpenPGP, nullptr, options.home.c_str());
        if (err != 0) return fail(gpg_failure(err, fmt::format("cannot use {}", gpg_home_name(options))));
    }
    gpgme_set_armor(ctx.get(), 0);
    gpgme_set_textmode(ctx.get(), 0);
    gpgme_set_offline(ctx.get(), 1);
    if (const gpgme_error_t err = gpgme_set_keylist_mode(ctx.get(), GPGME_KEYLIST_MODE_LOCAL); err != 0)
        return fail(gpg_failure(err, "cannot set GPGME's key listing mode"));
    return ctx;
}

// ---- recipients --------------------------------------------------------------------------------

struct GpgRecipientKey {
    std::string recipient;    // as the caller gave it
    std::string fingerprint;  // of the primary key
    std::string spec;         // what gpg gets as -r: the fingerprint, or the caller's "FPR!" verbatim
};

bool gpg_subkey_can_encrypt(gpgme_subkey_t sub) noexcept {
    return sub->can_encrypt != 0 && sub->revoked == 0 && sub->expired == 0 && sub->disabled == 0 && sub->invalid == 0;
}

// Whether gpg would encrypt to `key` (trust aside: we encrypt with always-trust).
bool gpg_key_can_encrypt(gpgme_key_t key) noexcept {
    if (key->revoked != 0 || key->expired != 0 || key->disabled != 0 || key->invalid != 0 || key->can_encrypt == 0) return false;
    for (gpgme_subkey_t sub = key->subkeys; sub != nullptr; sub = sub->next)
        if (gpg_subkey_can_encrypt(sub)) return true;
    return false;
}

std::string gpg_fingerprint(gpgme_key_t key) {
    if (key->fpr != nullptr) return key->fpr;
    if (key->subkeys != nullptr && key->subkeys->fpr != nullptr) return key->subkeys->fpr;
    return {};
}

std::string gpg_join(const std::vector<std::string> &items) {
    std::string out;
    for (const auto &item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

// Every key of the home that `pattern` matches, as `gpg --list-keys PATTERN` lists them.
Result<std::vector<GpgKey>> gpg_list_keys(gpgme_ctx_t ctx, const std::string &pattern, const GpgOptions &options) {
    if (const gpgme_error_t err = gpgme_op_keylist_start(ctx, pattern.c_str(), 0); err != 0)
        return fail(gpg_failure(err, fmt::format("cannot look up recipient '{}' in {}", pattern, gpg_home_name(options))));
    std::vector<GpgKey> keys;
    for (;;) {
        gpgme_key_t key = nullptr;
        const gpgme_error_t err = gpgme_op_keylist_next(ctx, &key);
        if (gpgme_err_code(err) == GPG_ERR_EOF) break;
        if (err != 0) {
            (void)gpgme_op_keylist_end(ctx);
            return fail(gpg_failure(err, fmt::format("cannot look up recipient '{}' in {}", pattern, gpg_home_name(options))));
        }
        keys.emplace_back(key);
    }
    (void)gpgme_op_keylist_end(ctx);
    return keys;
}

// Resolves every recipient to exactly one key that can encrypt (the rules are in the header).
Result<std::vector<GpgRecipientKey>> gpg_resolve(gpgme_ctx_t ctx, const std::vector<std::string> &recipients,
                                                 const GpgOptions &options) {
    if (recipients.empty())
        return fail(Errc::invalid_argument, "OpenPGP encryption needs at least one recipient (a key ID, fingerprint or user ID)");
    std::vector<GpgRecipientKey> out;
    for (const auto &recipient : recipients) {
        HSDK_TRYV(options.cancel.check());
        const bool blank = recipient.find_first_not_of(" \t") == std::string::npos;
        if (blank || recipient.find_first_of("\r\n") != std::string::npos || recipient.find('\0') != std::string::npos)
            return fail(Errc::invalid_argument, fmt::format("OpenPGP recipient '{}' is not a key specification", recipient));
        HSDK_TRY(auto keys, gpg_list_keys(ctx, recipient, options));
        std::vector<std::string> usable;
        std::vector<std::string> others;
        for (const auto &key : keys) (gpg_key_can_encrypt(key.get()) ? usable : others).push_back(gpg_fingerprint(key.get()));
        if (usable.empty() && others.empty())
            return fail(Errc::invalid_argument, fmt::format("OpenPGP recipient '{}': no key in {} matches it", recipient, gpg_home_name(options)));
        if (usable.empty())
            return fail(Errc::invalid_argument,
                        fmt::format("OpenPGP recipient '{}': no key that matches it can encrypt (revoked, expired, disabled or "
                                    "without an encryption subkey): {}",
                                    recipient, gpg_join(others)));
        if (usable.size() > 1)
            return fail(Errc::invalid_argument,
                        fmt::format("OpenPGP recipient '{}' is ambiguous: it matches {} keys that can encrypt ({}); give a fingerprint",
                                    recipient, usable.size(), gpg_join(usable)));
        const std::string &fpr = usable.front();
        if (fpr.empty()) return fail(Errc::internal, fmt::format("OpenPGP recipient '{}': gpg listed a key without a fingerprint", recipient));
        if (std::any_of(out.begin(), out.end(), [&](const GpgRecipientKey &r) { return r.fingerprint == fpr; })) continue;
        // "FPR!" names one subkey: gpg gets it as given; otherwise the fingerprint, so gpg encrypts
        // to the very key resolved here, whatever the keyring holds besides.
        out.push_back(GpgRecipientKey{recipient, fpr, recipient.back() == '!' ? recipient : fpr});
    }
    return out;
}

// ---- data callbacks ----------------------------------------------------------------------------

// The two ends of an operation, as GPGME data objects over our callbacks. GPGME calls them on the
// thread that runs the operation; they must not throw into C, so a failure (or an exception) is
// kept here, reported to GPGME as -1/errno and returned by the operation instead of GPGME's
// rendering of that errno.
struct GpgStreams {
    GpgPlainReader read;
    GpgSink write;
    const CancelToken *cancel = nullptr;
    std::optional<Error> error;
    gpgme_data_cbs read_cbs{};
    gpgme_data_cbs write_cbs{};

    ssize_t failed(Error e, int err) noexcept {
        if (!error) error = std::move(e);
        errno = err;
        return -1;
    }
    // Errc::cancelled once the token is: the first thing every callback checks.
    bool cancelled() noexcept {
        if (!cancel->is_cancelled()) return false;
        if (!error) error = Error{Errc::cancelled, "operation cancelled"};
        errno = ECANCELED;
        return true;
    }
};

ssize_t gpg_read_cb(void *handle, void *buffer, size_t size) noexcept {
    auto *s = static_cast<GpgStreams *>(handle);
    if (s->cancelled()) return -1;
    try {
        auto got = s->read(std::span<std::byte>(static_cast<std::byte *>(buffer), size));
        if (!got) return s->failed(std::move(got).error(), EIO);
        if (got.value() > size) return s->failed(Error{Errc::internal, "OpenPGP: the plaintext reader returned more than asked"}, EIO);
        return static_cast<ssize_t>(got.value());
    } catch (const std::bad_alloc &) {
        return s->failed(Error{Errc::no_memory, "OpenPGP: out of memory"}, ENOMEM);
    } catch (const std::exception &e) {
        return s->failed(Error{Errc::internal, fmt::format("OpenPGP: reading failed: {}", e.what())}, EIO);
    } catch (...) {
        return s->failed(Error{Errc::internal, "OpenPGP: reading failed"}, EIO);
    }
}

ssize_t gpg_write_cb(void *handle, const void *buffer, size_t size) noexcept {
    auto *s = static_cast<GpgStreams *>(handle);
    if (s->cancelled()) return -1;
    try {
        auto wrote = s->write(std::span<const std::byte>(static_cast<const std::byte *>(buffer), size));
        if (!wrote) return s->failed(std::move(wrote).error(), EIO);
        return static_cast<ssize_t>(size);
    } catch (const std::bad_alloc &) {
        return s->failed(Error{Errc::no_memory, "OpenPGP: out of memory"}, ENOMEM);
    } catch (const std::exception &e) {
        return s->failed(Error{Errc::internal, fmt::format("OpenPGP: writing failed: {}", e.what())}, EIO);
    } catch (...) {
        return s->failed(Error{Errc::internal, "OpenPGP: writing failed"}, EIO);
    }
}

// GPGME keeps the cbs pointer, so `streams` (which holds them) must outlive both data objects.
Result<std::pair<GpgData, GpgData>> gpg_data_pair(GpgStreams &streams) {
    streams.read_cbs = gpgme_data_cbs{gpg_read_cb, nullptr, nullptr, nullptr};
    streams.write_cbs = gpgme_data_cbs{nullptr, gpg_write_cb, nullptr, nullptr};
    gpgme_data_t in = nullptr;
    if (const gpgme_error_t err = gpgme_data_new_from_cbs(&in, &streams.read_cbs, &streams); err != 0)
        return fail(gpg_failure(err, "cannot create a GPGME data object"));
    GpgData input(in);
    gpgme_data_t out = nullptr;
    if (const gpgme_error_t err = gpgme_data_new_from_cbs(&out, &streams.write_cbs, &streams); err != 0)
        return fail(gpg_failure(err, "cannot create a GPGME data object"));
    GpgData output(out);
    return std::make_pair(std::move(input), std::move(output));
}

// ---- encryption --------------------------------------------------------------------------------

// Names the caller's recipient behind a key gpg refused (it reports what it was given as -r).
std::string gpg_recipient_for(const std::vector<GpgRecipientKey> &keys, const char *given) {
    const std::string_view g = given != nullptr ? given : "";
    for (const auto &k : keys)
        if (g == k.spec || g == k.fingerprint || (g.size() >= 16 && k.fingerprint.ends_with(g))) return k.recipient;
    return std::string(g);
}

Result<void> gpg_encrypt(const std::vector<std::string> &recipients, GpgPlainReader read_plain, GpgSink sink, const GpgOptions &options) {
    if (!read_plain || !sink) return fail(Errc::invalid_argument, "OpenPGP encryption needs a plaintext reader and a sink");
    HSDK_TRYV(options.cancel.check());
    HSDK_TRY(auto ctx, gpg_new_context(options));
    HSDK_TRY(auto keys, gpg_resolve(ctx.get(), recipients, options));
    // "--" first: from there on gpg gets every line verbatim as an -r argument.
    std::string recpstring = "--\n";
    for (const auto &k : keys) recpstring += k.spec + "\n";

    GpgStreams streams;
    streams.read = std::move(read_plain);
    streams.write = std::move(sink);
    streams.cancel = &options.cancel;
    HSDK_TRY(auto data, gpg_data_pair(streams));
    const auto flags = static_cast<gpgme_encrypt_flags_t>(GPGME_ENCRYPT_ALWAYS_TRUST | GPGME_ENCRYPT_NO_ENCRYPT_TO);
    const gpgme_error_t err = gpgme_op_encrypt_ext(ctx.get(), nullptr, recpstring.c_str(), flags, data.first.get(), data.second.get());
    if (streams.error) return fail(*streams.error);
    HSDK_TRYV(options.cancel.check());
    if (const gpgme_encrypt_result_t result = gpgme_op_encrypt_result(ctx.get()); result != nullptr && result->invalid_recipients) {
        const gpgme_invalid_key_t bad = result->invalid_recipients;
        return fail(Errc::invalid_argument, fmt::format("OpenPGP recipient '{}' cannot be encrypted to: {}", gpg_recipient_for(keys, bad->fpr),
                                                        gpg_reason(bad->reason)));
    }
    if (err != 0) return fail(gpg_failure(err, "OpenPGP encryption failed"));
    return success();
}

// ---- files -------------------------------------------------------------------------------------

// The input, read sequentially (so a pipe will do).
class GpgInputFile {
public:
    GpgInputFile() = default;
    GpgInputFile(const GpgInputFile &) = delete;
    GpgInputFile &operator=(const GpgInputFile &) = delete;
    ~GpgInputFile() {
        if (fd_ >= 0) ::close(fd_);
    }

    Result<void> open(const std::string &path) {
        path_ = path;
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) return fail(errno_error(errno, "cannot open", path));
        struct stat st {};
        if (::fstat(fd_, &st) != 0) return fail(errno_error(errno, "cannot inspect", path));
        if (S_ISDIR(st.st_mode)) return fail(Errc::invalid_argument, fmt::format("'{}' is a folder", path));
        return success();
    }

    Result<std::size_t> read(std::span<std::byte> out) const {
        for (;;) {
            const ssize_t n = ::read(fd_, out.data(), out.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(errno_error(errno, "cannot read", path_));
            return static_cast<std::size_t>(n);
        }
    }

private:
    std::string path_;
    int fd_ = -1;
};

// An output written under a temporary name beside its destination and renamed onto it by
// commit(); removed unless committed. The temporary is named and locked like io/atomic_output's,
// so remove_stale_temporaries() knows it, but it is created with the mode asked for (0600 for a
// plaintext: never readable by others, not even while it is written).
class GpgOutputFile {
public:
    GpgOutputFile() = default;
    GpgOutputFile(const GpgOutputFile &) = delete;
    GpgOutputFile &operator=(const GpgOutputFile &) = delete;
    ~GpgOutputFile() { abandon(); }

    Result<void> create(const std::string &out_path, unsigned mode, bool overwrite) {
        HSDK_TRY(auto target, inspect_output(out_path));
        switch (target.kind) {
        case TargetKind::new_file: break;
        case TargetKind::regular_file:
            if (!overwrite) return fail(Errc::conflict, fmt::format("output '{}' already exists", out_path));
            break;
        case TargetKind::directory: return fail(Errc::invalid_argument, fmt::format("output '{}' is a folder", out_path));
        case TargetKind::block_device:
        case TargetKind::char_device:
        case TargetKind::fifo_or_socket:
            return fail(Errc::unsupported, fmt::format("output '{}' is not a regular file: an OpenPGP output is written to a file "
                                                       "that replaces the destination whole, once complete",
                                                       out_path));
        }
        overwrite_ = overwrite;
        display_ = out_path;
        final_ = target.resolved;
        const std::string name = base_name(final_);
        if (name.empty() || name == "." || name == "..")
            return fail(Errc::invalid_argument, fmt::format("output '{}' names no file", out_path));
        folder_ = parent_folder(final_);
        remove_stale_temporaries(folder_, name);
        std::random_device rd;
        for (int attempt = 0; attempt < 16; ++attempt) {
            std::string temp = fmt::format("{}/.{}.hsdk-{}-{:08x}.part", folder_, name, ::getpid(), rd());
            auto file = File::create_new(temp, mode);
            if (file) {
                temp_ = std::move(temp);
                file_ = std::move(file).value();
                // Held until closed: while it is, no other run takes the file for a leftover.
                (void)::flock(file_.fd(), LOCK_EX | LOCK_NB);
                file_.set_display_path(out_path);
                return success();
            }
            if (file.error().code != Errc::conflict)
                return fail(file.error().code, fmt::format("cannot create output '{}' in '{}': {}", out_path, folder_, file.error().message));
        }
        return fail(Errc::io_error, fmt::format("cannot create a temporary file next to '{}'", out_path));
    }

    Result<void> write(std::span<const std::byte> data) {
        HSDK_TRYV(file_.write_all(offset_, data));
        offset_ += data.size();
        return success();
    }

    // Flushes, closes and renames onto the destination (without replacing one that appeared
    // meanwhile when overwrite was false), then flushes the folder.
    Result<void> commit() {
        HSDK_TRYV(file_.sync());
        HSDK_TRYV(file_.close());
        bool renamed = false;
        if (!overwrite_) {
            if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, final_.c_str(), RENAME_NOREPLACE) == 0) {
                renamed = true;
            } else if (errno == EEXIST) {
                return fail(Errc::conflict, fmt::format("output '{}' already exists", display_));
            } else if (errno != EINVAL && errno != ENOSYS) {
                return fail(errno_error(errno, "cannot rename into place", display_));
            }
            // Otherwise the file system cannot refuse to replace: a plain rename after the check of create().
        }
        if (!renamed && ::rename(temp_.c_str(), final_.c_str()) != 0) return fail(errno_error(errno, "cannot rename into place", display_));
        temp_.clear();
        if (const int dir = ::open(folder_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
            (void)::fsync(dir);
            ::close(dir);
        }
        return success();
    }

    void abandon() noexcept {
        (void)file_.close();
        if (!temp_.empty()) ::unlink(temp_.c_str());
        temp_.clear();
    }

private:
    File file_;
    std::string display_;
    std::string final_;
    std::string folder_;
    std::string temp_;
    std::uint64_t offset_ = 0;
    bool overwrite_ = true;
};

// ---- decryption --------------------------------------------------------------------------------

// Whether the decrypt result shows an integrity-protected message. GPGME renders the cipher as
// "ALGO.MODE": "ALGO.PGPCFB" is plain CFB without MDC, "?.?" means gpg never said (no
// DECRYPTION_INFO), which we cannot take for protection either.
bool gpg_integrity_protected(gpgme_decrypt_result_t result) noexcept {
    if (result == nullptr || result->legacy_cipher_nomdc != 0 || result->symkey_algo == nullptr) return false;
    const std::string_view algo = result->symkey_algo;
    return !algo.empty() && algo != "?.?" && !algo.ends_with(".PGPCFB");
}

// The key IDs a message is encrypted to, for the message of a missing secret key.
std::string gpg_recipient_ids(gpgme_decrypt_result_t result) {
    std::vector<std::string> ids;
    if (result != nullptr)
        for (gpgme_recipient_t r = result->recipients; r != nullptr; r = r->next)
            ids.push_back(r->keyid != nullptr && std::string_view(r->keyid) != "0000000000000000" ? r->keyid : "hidden");
    return ids.empty() ? std::string("none listed") : gpg_join(ids);
}

// The tag of the packet `head` starts with (old or new format), or -1 when it is no packet.
int gpg_first_tag(std::span<const std::byte> head) noexcept {
    if (head.empty()) return -1;
    const unsigned ctb = std::to_integer<unsigned>(head[0]);
    if ((ctb & 0x80U) == 0) return -1;
    return static_cast<int>((ctb & 0x40U) != 0 ? (ctb & 0x3fU) : ((ctb >> 2) & 0x0fU));
}

}  // namespace

// ---- public --------------------------------------------------------------------------------------

bool looks_like_openpgp(std::span<const std::byte> first_bytes) noexcept {
    const auto at = [&](std::size_t i) { return std::to_integer<unsigned>(first_bytes[i]); };
    std::size_t skip = 0;
    while (skip < first_bytes.size() && (at(skip) == ' ' || at(skip) == '\t' || at(skip) == '\r' || at(skip) == '\n')) ++skip;
    constexpr std::string_view armor = "-----BEGIN PGP MESSAGE-----";
    if (first_bytes.size() - skip >= armor.size() && std::memcmp(first_bytes.data() + skip, armor.data(), armor.size()) == 0)
        return true;

    if (first_bytes.size() < 2) return false;
    const unsigned ctb = at(0);
    if ((ctb & 0x80U) == 0) return false;
    unsigned tag = 0;
    std::size_t body = 0;                // offset of the packet's first body byte
    std::optional<std::uint64_t> length; // the body's length when the header gives it whole
    if ((ctb & 0x40U) != 0) {            // new format: tag in 6 bits, then 1, 2 or 5 length bytes
        tag = ctb & 0x3fU;
        const unsigned l0 = at(1);
        if (l0 < 192) {
            body = 2;
            length = l0;
        } else if (l0 < 224) {
            body = 3;
            if (first_bytes.size() >= 3) length = ((l0 - 192) << 8) + at(2) + 192;
        } else if (l0 < 255) {
            body = 2;  // a partial body length: only data packets may use one
            if (tag == 1 || tag == 3) return false;
        } else {
            body = 6;
            if (first_bytes.size() >= 6)
                length = (std::uint64_t{at(2)} << 24) | (at(3) << 16) | (at(4) << 8) | at(5);
        }
    } else {  // old format: tag in 4 bits, then 1, 2, 4 or no length bytes (indeterminate)
        tag = (ctb >> 2) & 0x0fU;
        switch (ctb & 3U) {
        case 0:
            body = 2;
            length = at(1);
            break;
        case 1:
            body = 3;
            if (first_bytes.size() >= 3) length = (at(1) << 8) | at(2);
            break;
        case 2:
            body = 5;
            if (first_bytes.size() >= 5) length = (std::uint64_t{at(1)} << 24) | (at(2) << 16) | (at(3) << 8) | at(4);
            break;
        default:
            body = 1;  // indeterminate: the packet runs to the end, which a session key never does
            if (tag == 1 || tag == 3) return false;
            break;
        }
    }
    if (first_bytes.size() < body) return false;
    if (tag == 9) return length.value_or(1) != 0;  // symmetrically encrypted data: random bytes from the start
    if (first_bytes.size() <= body || (length && *length == 0)) return false;
    const unsigned v = at(body);
    switch (tag) {
    case 1: return (v == 3 || v == 6) && length.value_or(0) >= 12;             // PKESK: version, key ID, algorithm, key
    case 3: return (v == 4 || v == 5 || v == 6) && length.value_or(0) >= 4;    // SKESK: version, cipher, S2K
    case 8: return v <= 3;                                                     // compressed: algorithm
    case 11: return v == 'b' || v == 't' || v == 'u' || v == 'l' || v == '1' || v == 'm';  // literal: format
    case 18: return v == 1 || v == 2;                                          // SEIPD: version
    case 20: return v == 1;                                                    // AEAD encrypted (GnuPG's OCB): version
    default: return false;
    }
}

Result<std::vector<std::string>> gpg_resolve_recipients(const std::vector<std::string> &recipients, const GpgOptions &options) {
    HSDK_TRYV(options.cancel.check());
    HSDK_TRY(auto ctx, gpg_new_context(options));
    HSDK_TRY(auto keys, gpg_resolve(ctx.get(), recipients, options));
    std::vector<std::string> out;
    out.reserve(keys.size());
    for (auto &k : keys) out.push_back(std::move(k.fingerprint));
    return out;
}

Result<void> gpg_encrypt_stream(const std::vector<std::string> &recipients, GpgPlainReader read_plain, GpgSink sink,
                                const GpgOptions &options) {
    return gpg_encrypt(recipients, std::move(read_plain), std::move(sink), options);
}

Result<void> gpg_encrypt_file(const std::vector<std::string> &recipients, const std::string &in_path, const std::string &out_path,
                              const GpgOptions &options, bool overwrite) {
    HSDK_TRYV(options.cancel.check());
    GpgInputFile in;
    HSDK_TRYV(in.open(in_path));
    GpgOutputFile out;
    HSDK_TRYV(out.create(out_path, 0644, overwrite));
    auto encrypted = gpg_encrypt(
        recipients, [&in](std::span<std::byte> buf) { return in.read(buf); },
        [&out](std::span<const std::byte> bytes) { return out.write(bytes); }, options);
    if (!encrypted) return fail(encrypted.error().with_context(fmt::format("encrypting '{}'", in_path)));
    HSDK_TRYV(options.cancel.check());
    return out.commit();  // `out` removes the temporary on every way out before this
}

Result<void> gpg_decrypt_file(const std::string &in_path, const std::string &out_path, const GpgOptions &options, bool overwrite) {
    HSDK_TRYV(options.cancel.check());
    HSDK_TRY(auto ctx, gpg_new_context(options));
    GpgInputFile in;
    HSDK_TRYV(in.open(in_path));
    GpgOutputFile out;
    HSDK_TRYV(out.create(out_path, 0600, overwrite));

    GpgStreams streams;
    // The message's first bytes, kept to tell a damaged message from something else when gpg
    // finds nothing to decrypt.
    std::array<std::byte, 16> head{};
    std::size_t head_size = 0;
    streams.read = [&in, &head, &head_size](std::span<std::byte> buf) -> Result<std::size_t> {
        HSDK_TRY(const std::size_t n, in.read(buf));
        const std::size_t keep = std::min(head.size() - head_size, n);
        std::copy_n(buf.begin(), keep, head.begin() + static_cast<std::ptrdiff_t>(head_size));
        head_size += keep;
        return n;
    };
    streams.write = [&out](std::span<const std::byte> bytes) { return out.write(bytes); };
    streams.cancel = &options.cancel;
    HSDK_TRY(auto data, gpg_data_pair(streams));
    const gpgme_error_t err = gpgme_op_decrypt(ctx.get(), data.first.get(), data.second.get());
    const std::string context = fmt::format("decrypting '{}'", in_path);
    if (streams.error) return fail(streams.error->with_context(context));
    HSDK_TRYV(options.cancel.check());

    const gpgme_decrypt_result_t result = gpgme_op_decrypt_result(ctx.get());
    if (result != nullptr && result->unsupported_algorithm != nullptr)
        return fail(Errc::unsupported, fmt::format("{}: unsupported: the message uses the algorithm {}", context, result->unsupported_algorithm));
    const gpgme_err_code_t code = gpgme_err_code(err);
    // A message without integrity protection is refused whatever else happened (gpg 2.2 fails it
    // with DECRYPT_FAILED itself; older ones only warned): it may have been changed undetectably.
    // Only when gpg got as far as the encrypted data (the result names its cipher) can this be
    // told; a missing key, say, fails before.
    const bool cipher_known = result != nullptr && result->symkey_algo != nullptr && std::string_view(result->symkey_algo) != "?.?";
    const bool is_protected = gpg_integrity_protected(result);
    const bool unprotected = result != nullptr && (result->legacy_cipher_nomdc != 0 || (cipher_known && !is_protected));
    if (unprotected || (err == 0 && !is_protected))
        return fail_corrupt(fmt::format("'{}' is an OpenPGP message without integrity protection (no MDC): refused, as it "
                                        "could have been changed undetectably",
                                        in_path));
    if (err != 0) {
        if (code == GPG_ERR_NO_SECKEY)
            return fail(Errc::auth_failed, fmt::format("{}: no secret key in {} opens it (it is encrypted to the key IDs {})", context,
                                                       gpg_home_name(options), gpg_recipient_ids(result)));
        // gpg names the cipher (DECRYPTION_INFO) only once it has the session key: a failure after
        // that is in the encrypted data itself. DECRYPT_FAILED then means the MDC did not match
        // (BADMDC); NO_DATA, that gpg gave up in the middle (a broken compression stream, a
        // truncated packet) without saying DECRYPTION_OKAY or DECRYPTION_FAILED.
        if (cipher_known && (code == GPG_ERR_DECRYPT_FAILED || code == GPG_ERR_NO_DATA || code == GPG_ERR_BAD_DATA))
            return fail_corrupt(fmt::format("'{}': the OpenPGP message is damaged or was changed: its integrity check or its "
                                            "decoding failed (gpg: {})",
                                            in_path, gpg_reason(err)));
        if (code == GPG_ERR_DECRYPT_FAILED)
            return fail(Errc::auth_failed,
                        fmt::format("{}: decryption failed: {} (the session key could not be decrypted: a wrong key or "
                                    "passphrase, or a damaged message)",
                                    context, gpg_reason(err)));
        if (code == GPG_ERR_NO_DATA) {
            // Starting with a session key or encrypted data, it was meant to be a message.
            const std::span<const std::byte> first(head.data(), head_size);
            const int tag = gpg_first_tag(first);
            if (looks_like_openpgp(first) && (tag == 1 || tag == 3 || tag == 9 || tag == 18 || tag == 20))
                return fail_corrupt(fmt::format("'{}': an OpenPGP message in which gpg found nothing it could decrypt "
                                                "(damaged?)",
                                                in_path));
            return fail(Errc::invalid_argument, fmt::format("{}: it holds no OpenPGP encrypted data", context));
        }
        return fail(gpg_failure(err, context));
    }
    return out.commit();
}

}  // namespace hypersdk::io
