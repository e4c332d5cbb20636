#include "io/artifact_crypto.hpp"

#include "io/age.hpp"
#include "io/gpg.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk::io {
namespace {

// What the first packet of a binary OpenPGP message is, when it is one that opens an encrypted
// message (a public-key or a symmetric-key encrypted session key). Image sources are recognised
// only by these (or armor): looks_like_openpgp also accepts literal and compressed data, which a
// raw disk's first bytes match too often to be taken for encryption.
bool crypt_opens_encrypted_message(std::span<const std::byte> b) noexcept {
    if (b.empty()) return false;
    const auto first = static_cast<unsigned char>(b[0]);
    if ((first & 0x80) == 0) return false;
    const unsigned tag = (first & 0x40) != 0 ? (first & 0x3Fu) : ((first >> 2) & 0x0Fu);
    return tag == 1 || tag == 3;
}

bool crypt_armored_pgp(std::span<const std::byte> b) noexcept {
    constexpr std::string_view begin = "-----BEGIN PGP MESSAGE-----";
    std::size_t i = 0;
    while (i < b.size() && std::isspace(static_cast<unsigned char>(b[i]))) ++i;
    if (b.size() - i < begin.size()) return false;
    return std::memcmp(b.data() + i, begin.data(), begin.size()) == 0;
}

Result<EncryptionKey> crypt_passphrase_of(const std::string &file, const std::string &env) {
    if (!file.empty() && !env.empty()) return fail(Errc::invalid_argument, "give passphrase_file or passphrase_env, not both");
    if (!file.empty()) return key_from_passphrase_file(file);
    return key_from_passphrase_env(env);
}

// The age keys a DecryptionKeys names: identity files and/or a passphrase.
Result<AgeDecryptKeys> crypt_age_decrypt_keys(const DecryptionKeys &keys) {
    AgeDecryptKeys out;
    for (const auto &path : keys.identities) {
        HSDK_TRY(auto ids, read_age_identity_file(path));
        out.identities.insert(out.identities.end(), ids.begin(), ids.end());
    }
    if (!keys.passphrase_file.empty() || !keys.passphrase_env.empty()) {
        HSDK_TRY(auto p, crypt_passphrase_of(keys.passphrase_file, keys.passphrase_env));
        out.passphrase = std::move(p);
    }
    if (out.identities.empty() && !out.passphrase)
        return fail(Errc::invalid_argument, "the file is encrypted with age: give its identity file (--identity) or passphrase "
                                            "(--passphrase-file or --passphrase-env)");
    return out;
}

Result<AgeEncryptKeys> crypt_age_encrypt_keys(const EncryptionOptions &o) {
    AgeEncryptKeys keys;
    for (const auto &r : o.recipients) {
        HSDK_TRY(auto parsed, parse_age_recipient(r));
        keys.recipients.push_back(parsed);
    }
    if (!o.passphrase_file.empty() || !o.passphrase_env.empty()) {
        HSDK_TRY(auto p, crypt_passphrase_of(o.passphrase_file, o.passphrase_env));
        keys.passphrase = std::move(p);
    }
    return keys;
}

KeySpec crypt_key_spec(const DecryptionKeys &keys) { return KeySpec{keys.passphrase_file, keys.passphrase_env, keys.key_file}; }

// An encrypted source read as its plaintext: chunk by chunk for aes-256-gcm and age (both have
// random access), from a decrypted temporary copy for OpenPGP. References (a qcow2's backing file)
// are decrypted with the same keys.
class CryptDecryptedSource final : public ByteSource {
public:
    using ReadAt = std::function<Result<std::size_t>(std::uint64_t, std::span<std::byte>)>;
    CryptDecryptedSource(std::shared_ptr<const ByteSource> base, std::shared_ptr<void> reader, ReadAt read, std::uint64_t size,
                         DecryptionKeys keys, CancelToken cancel)
        : base_(std::move(base)), reader_(std::move(reader)), read_(std::move(read)), size_(size), keys_(std::move(keys)),
          cancel_(std::move(cancel)), name_(base_->name()) {}

    const std::string &name() const noexcept override { return name_; }
    std::uint64_t size() const noexcept override { return size_; }
    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        auto r = read_(offset, buf);
        if (!r) return fail(r.error().with_context(name_));
        return r;
    }
    // The ciphertext says nothing about holes in the plaintext: all of it is data.
    std::optional<std::uint64_t> allocated_size() const override { return base_->allocated_size(); }
    std::string identity() const override { return base_->identity() + "#decrypted"; }
    Result<std::shared_ptr<ByteSource>> open_reference(const std::string &reference, bool allow_external,
                                                       std::string_view what) const override {
        HSDK_TRY(auto stored, base_->open_reference(reference, allow_external, what));
        return decrypt_source_if_encrypted(std::move(stored), keys_, cancel_);
    }

private:
    std::shared_ptr<const ByteSource> base_;
    std::shared_ptr<void> reader_;  // keeps the reader that read_ calls alive
    ReadAt read_;
    std::uint64_t size_;
    DecryptionKeys keys_;
    CancelToken cancel_;
    std::string name_;
};

Result<void> crypt_write_all(int fd, std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(Errc::io_error, fmt::format("cannot write the decrypted copy in $TMPDIR: {}", std::strerror(errno)));
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return success();
}

// gpg decrypts files, not byte sources: the message is copied to an unnamed temporary file (it is
// ciphertext), gpg decrypts it into a named 0600 temporary, which is opened and unlinked at once.
Result<std::shared_ptr<ByteSource>> crypt_spill_gpg(std::shared_ptr<ByteSource> source, const DecryptionKeys &keys,
                                                    const CancelToken &cancel) {
    const char *tmpdir_env = std::getenv("TMPDIR");
    const std::string tmpdir = tmpdir_env != nullptr && *tmpdir_env != '\0' ? tmpdir_env : "/tmp";
    std::string cipher = tmpdir + "/.hsdk-gpg-in-XXXXXX";
    const int cfd = ::mkstemp(cipher.data());
    if (cfd < 0) return fail(Errc::io_error, fmt::format("cannot create a temporary file in '{}': {}", tmpdir, std::strerror(errno)));
    struct Cleanup {
        std::string path;
        int fd;
        ~Cleanup() {
            ::close(fd);
            ::unlink(path.c_str());
        }
    } cleanup{cipher, cfd};
    std::vector<std::byte> buf(4u << 20);
    for (std::uint64_t off = 0; off < source->size();) {
        HSDK_TRYV(cancel.check());
        HSDK_TRY(auto n, source->read_some(off, std::span(buf).first(std::min<std::uint64_t>(buf.size(), source->size() - off))));
        if (n == 0) return fail_corrupt(fmt::format("{}: ends before its size", source->name()));
        HSDK_TRYV(crypt_write_all(cfd, std::span(buf).first(n)));
        off += n;
    }
    std::string plain = tmpdir + "/.hsdk-gpg-out-XXXXXX";
    const int pfd = ::mkstemp(plain.data());
    if (pfd < 0) return fail(Errc::io_error, fmt::format("cannot create a temporary file in '{}': {}", tmpdir, std::strerror(errno)));
    ::close(pfd);
    log(LogLevel::info, fmt::format("{}: OpenPGP has no random access; decrypting it once into $TMPDIR", source->name()));
    auto done = gpg_decrypt_file(cipher, plain, GpgOptions{keys.gpg_home, cancel}, true);
    if (!done) {
        ::unlink(plain.c_str());
        return fail(done.error().with_context(source->name()));
    }
    const int fd = ::open(plain.c_str(), O_RDONLY | O_CLOEXEC);
    const int err = errno;
    ::unlink(plain.c_str());  // gone from the folder now; the descriptor keeps it until the source goes
    if (fd < 0) return fail(Errc::io_error, fmt::format("cannot open the decrypted copy of '{}': {}", source->name(), std::strerror(err)));
    struct stat st {};
    ::fstat(fd, &st);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    auto holder = std::shared_ptr<int>(new int(fd), [](int *p) {
        ::close(*p);
        delete p;
    });
    auto read = [fd, size, name = source->name()](std::uint64_t offset, std::span<std::byte> out) -> Result<std::size_t> {
        if (offset >= size) return std::size_t{0};
        for (;;) {
            const ssize_t n = ::pread(fd, out.data(), std::min<std::uint64_t>(out.size(), size - offset), static_cast<off_t>(offset));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(Errc::io_error, fmt::format("{}: cannot read its decrypted copy: {}", name, std::strerror(errno)));
            return static_cast<std::size_t>(n);
        }
    };
    return std::shared_ptr<ByteSource>(std::make_shared<CryptDecryptedSource>(std::move(source), holder, read, size, keys, cancel));
}

}  // namespace

std::string_view crypt_method_name(CryptMethod method) noexcept {
    switch (method) {
    case CryptMethod::aes_256_gcm: return "aes-256-gcm";
    case CryptMethod::age: return "age";
    case CryptMethod::gpg: return "gpg";
    case CryptMethod::none: break;
    }
    return "none";
}

Result<CryptMethod> parse_crypt_method(std::string_view name) {
    if (name == "aes-256-gcm" || name.empty()) return CryptMethod::aes_256_gcm;
    if (name == "age") return CryptMethod::age;
    if (name == "gpg") return CryptMethod::gpg;
    return fail(Errc::invalid_argument, fmt::format("unknown encryption method '{}' (aes-256-gcm, age, gpg)", name));
}

CryptMethod detect_crypt_method(std::span<const std::byte> first_bytes) noexcept {
    if (looks_encrypted(first_bytes)) return CryptMethod::aes_256_gcm;
    if (looks_like_age(first_bytes)) return CryptMethod::age;
    if (crypt_armored_pgp(first_bytes) || (crypt_opens_encrypted_message(first_bytes) && looks_like_openpgp(first_bytes)))
        return CryptMethod::gpg;
    return CryptMethod::none;
}

Result<void> check_encryption(const EncryptionOptions &o) {
    HSDK_TRY(auto method, parse_crypt_method(o.method));
    const bool passphrase = !o.passphrase_file.empty() || !o.passphrase_env.empty();
    switch (method) {
    case CryptMethod::aes_256_gcm:
        if (!o.recipients.empty() || !o.gpg_recipients.empty())
            return fail(Errc::invalid_argument, "aes-256-gcm takes a passphrase or key file, not recipients (recipients are for age, "
                                                "gpg recipients for gpg)");
        HSDK_TRYV(key_from_spec(KeySpec{o.passphrase_file, o.passphrase_env, o.key_file}));
        return success();
    case CryptMethod::age:
        if (!o.key_file.empty() || !o.gpg_recipients.empty())
            return fail(Errc::invalid_argument, "age encrypts to recipients (age1...) or with a passphrase, not with a key file or gpg recipients");
        if (o.recipients.empty() == !passphrase)
            return fail(Errc::invalid_argument, "age encrypts to recipients (--recipient age1...) or with a passphrase "
                                                "(--passphrase-file, --passphrase-env): give one of the two");
        HSDK_TRYV(crypt_age_encrypt_keys(o));
        return success();
    case CryptMethod::gpg:
        if (passphrase || !o.key_file.empty() || !o.recipients.empty())
            return fail(Errc::invalid_argument, "gpg encrypts to gpg recipients (--gpg-recipient), not with a passphrase, key file or age recipients");
        if (o.gpg_recipients.empty()) return fail(Errc::invalid_argument, "gpg needs at least one recipient (--gpg-recipient ID)");
        HSDK_TRYV(gpg_resolve_recipients(o.gpg_recipients, GpgOptions{o.gpg_home, {}}));
        return success();
    case CryptMethod::none: break;
    }
    return fail(Errc::internal, "no encryption method");
}

Result<EncryptionRecord> encrypt_file_with(const EncryptionOptions &o, const std::string &in_path, const std::string &out_path,
                                           bool overwrite) {
    HSDK_TRY(auto method, parse_crypt_method(o.method));
    EncryptionRecord record;
    record.method = std::string(crypt_method_name(method));
    switch (method) {
    case CryptMethod::aes_256_gcm: {
        HSDK_TRY(auto key, key_from_spec(KeySpec{o.passphrase_file, o.passphrase_env, o.key_file}));
        HSDK_TRYV(encrypt_file(key, in_path, out_path, {}, overwrite));
        record.key = std::string(key.describe());
        return record;
    }
    case CryptMethod::age: {
        HSDK_TRYV(check_encryption(o));
        HSDK_TRY(auto keys, crypt_age_encrypt_keys(o));
        HSDK_TRYV(age_encrypt_file(keys, in_path, out_path, overwrite));
        record.key = keys.passphrase ? "passphrase" : "recipients";
        for (const auto &r : keys.recipients) record.recipients.push_back(r.to_string());
        return record;
    }
    case CryptMethod::gpg: {
        HSDK_TRYV(check_encryption(o));
        const GpgOptions g{o.gpg_home, {}};
        HSDK_TRY(record.recipients, gpg_resolve_recipients(o.gpg_recipients, g));
        // The fingerprints just resolved, not the names given: the message is for exactly these keys.
        HSDK_TRYV(gpg_encrypt_file(record.recipients, in_path, out_path, g, overwrite));
        record.key = "recipients";
        return record;
    }
    case CryptMethod::none: break;
    }
    return fail(Errc::internal, "no encryption method");
}

Result<CryptMethod> decrypt_file_with(const DecryptionKeys &keys, const std::string &in_path, const std::string &out_path,
                                      bool overwrite) {
    std::array<std::byte, 64> head{};
    std::size_t got = 0;
    {
        const int fd = ::open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return fail(errno == ENOENT ? Errc::not_found : Errc::io_error, fmt::format("cannot open '{}': {}", in_path, std::strerror(errno)));
        for (;;) {
            const ssize_t n = ::pread(fd, head.data() + got, head.size() - got, static_cast<off_t>(got));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
            if (got == head.size()) break;
        }
        ::close(fd);
    }
    const CryptMethod method = detect_crypt_method(std::span(head).first(got));
    switch (method) {
    case CryptMethod::aes_256_gcm: {
        HSDK_TRY(auto key, key_from_spec(crypt_key_spec(keys)));
        HSDK_TRYV(decrypt_file(key, in_path, out_path, overwrite));
        return method;
    }
    case CryptMethod::age: {
        HSDK_TRY(auto k, crypt_age_decrypt_keys(keys));
        HSDK_TRYV(age_decrypt_file(k, in_path, out_path, overwrite));
        return method;
    }
    case CryptMethod::gpg:
        HSDK_TRYV(gpg_decrypt_file(in_path, out_path, GpgOptions{keys.gpg_home, {}}, overwrite));
        return method;
    case CryptMethod::none: break;
    }
    return fail(Errc::invalid_argument,
                fmt::format("'{}' is not encrypted (no aes-256-gcm envelope, age or OpenPGP header)", in_path));
}

Result<std::shared_ptr<ByteSource>> decrypt_source_if_encrypted(std::shared_ptr<ByteSource> source, const DecryptionKeys &keys,
                                                                const CancelToken &cancel) {
    std::array<std::byte, 64> head{};
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(head.size(), source->size()));
    if (want < 8) return source;
    HSDK_TRYV(source->read_exact(0, std::span(head).first(want)));
    const CryptMethod method = detect_crypt_method(std::span(head).first(want));
    if (method == CryptMethod::none) return source;
    const ByteSource *raw = source.get();
    EnvelopeReadAt read_at = [raw](std::uint64_t offset, std::span<std::byte> buf) { return raw->read_some(offset, buf); };
    if (method == CryptMethod::aes_256_gcm) {
        if (keys.passphrase_file.empty() && keys.passphrase_env.empty() && keys.key_file.empty())
            return fail(Errc::invalid_argument,
                        fmt::format("'{}' is encrypted (hypersdk aes-256-gcm): give its key with --passphrase-file, --passphrase-env or --key-file",
                                    source->name()));
        HSDK_TRY(auto key, key_from_spec(crypt_key_spec(keys)));
        auto reader = EnvelopeReader::open(key, std::move(read_at), source->size());
        if (!reader) return fail(reader.error().with_context(source->name()));
        auto shared = std::make_shared<EnvelopeReader>(std::move(reader).value());
        const std::uint64_t size = shared->plaintext_size();
        auto read = [r = shared.get()](std::uint64_t off, std::span<std::byte> buf) { return r->read_at(off, buf); };
        return std::shared_ptr<ByteSource>(std::make_shared<CryptDecryptedSource>(std::move(source), shared, read, size, keys, cancel));
    }
    if (method == CryptMethod::age) {
        auto k = crypt_age_decrypt_keys(keys);
        if (!k) return fail(k.error().with_context(source->name()));
        auto reader = AgeReader::open(k.value(), std::move(read_at), source->size());
        if (!reader) return fail(reader.error().with_context(source->name()));
        auto shared = std::make_shared<AgeReader>(std::move(reader).value());
        const std::uint64_t size = shared->plaintext_size();
        auto read = [r = shared.get()](std::uint64_t off, std::span<std::byte> buf) { return r->read_at(off, buf); };
        return std::shared_ptr<ByteSource>(std::make_shared<CryptDecryptedSource>(std::move(source), shared, read, size, keys, cancel));
    }
    return crypt_spill_gpg(std::move(source), keys, cancel);
}

DecryptionKeys decryption_keys_of(const HttpSourceOptions &http) {
    DecryptionKeys k;
    k.passphrase_file = http.passphrase_file;
    k.passphrase_env = http.passphrase_env;
    k.key_file = http.key_file;
    k.identities = http.identity_files;
    k.gpg_home = http.gpg_home;
    return k;
}

void apply_decryption_keys(HttpSourceOptions &http, const DecryptionKeys &keys) {
    http.passphrase_file = keys.passphrase_file;
    http.passphrase_env = keys.passphrase_env;
    http.key_file = keys.key_file;
    http.identity_files = keys.identities;
    http.gpg_home = keys.gpg_home;
}

}  // namespace hypersdk::io
