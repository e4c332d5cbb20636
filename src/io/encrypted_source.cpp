#include "io/encrypted_source.hpp"

#include <fmt/format.h>

#include <array>

namespace hypersdk::io {
namespace {

class DecryptedSource final : public ByteSource {
public:
    DecryptedSource(std::shared_ptr<const ByteSource> base, EnvelopeReader reader)
        : base_(std::move(base)), reader_(std::move(reader)), name_(base_->name()) {}

    const std::string &name() const noexcept override { return name_; }
    std::uint64_t size() const noexcept override { return reader_.plaintext_size(); }
    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        auto r = reader_.read_at(offset, buf);
        if (!r) return fail(r.error().with_context(name_));
        return r;
    }
    // The ciphertext says nothing about holes in the plaintext: all of it is data.
    std::optional<std::uint64_t> allocated_size() const override { return base_->allocated_size(); }
    std::string identity() const override { return base_->identity() + "#decrypted"; }

private:
    std::shared_ptr<const ByteSource> base_;
    EnvelopeReader reader_;
    std::string name_;
};

}  // namespace

Result<EncryptionKey> key_from_spec(const KeySpec &spec) {
    const int given = !spec.passphrase_file.empty() + !spec.passphrase_env.empty() + !spec.key_file.empty();
    if (given != 1)
        return fail(Errc::invalid_argument, given == 0 ? "no key given: give one of passphrase_file, passphrase_env or key_file"
                                                       : "give one of passphrase_file, passphrase_env or key_file, not several");
    if (!spec.passphrase_file.empty()) return key_from_passphrase_file(spec.passphrase_file);
    if (!spec.passphrase_env.empty()) return key_from_passphrase_env(spec.passphrase_env);
    return key_from_key_file(spec.key_file);
}

Result<std::shared_ptr<ByteSource>> open_decrypted_source(std::shared_ptr<const ByteSource> encrypted, const EncryptionKey &key) {
    const ByteSource *raw = encrypted.get();
    EnvelopeReadAt read_at = [raw](std::uint64_t offset, std::span<std::byte> buf) { return raw->read_some(offset, buf); };
    auto reader = EnvelopeReader::open(key, std::move(read_at), encrypted->size());
    if (!reader) return fail(reader.error().with_context(encrypted->name()));
    return std::shared_ptr<ByteSource>(std::make_shared<DecryptedSource>(std::move(encrypted), std::move(reader).value()));
}

Result<std::shared_ptr<ByteSource>> decrypt_if_encrypted(std::shared_ptr<ByteSource> source, const KeySpec &spec) {
    if (source->size() < envelope_header_size) return source;
    std::array<std::byte, envelope_magic_size> magic{};
    HSDK_TRYV(source->read_exact(0, magic));
    // A key may be given for an encrypted output while the source is plain: then it is not used here.
    if (!looks_encrypted(magic)) return source;
    if (spec.empty())
        return fail(Errc::invalid_argument,
                    fmt::format("'{}' is encrypted (hypersdk aes-256-gcm): give its key with --passphrase-file, --passphrase-env or --key-file",
                                source->name()));
    HSDK_TRY(auto key, key_from_spec(spec));
    return open_decrypted_source(std::move(source), key);
}

}  // namespace hypersdk::io
