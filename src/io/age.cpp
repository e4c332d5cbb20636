#include "io/age.hpp"

#include "io/file.hpp"
#include "io/stream_aead.hpp"

#include <fmt/format.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <unistd.h>

namespace hypersdk::io {

// The one place that reads secrets: a passphrase's bytes (a friend of EncryptionKey) and an
// identity's scalar (a friend of AgeIdentity).
struct AgeKeyAccess {
    static std::span<const unsigned char> passphrase(const EncryptionKey &key) noexcept { return key.secret_; }
    static std::span<const unsigned char, age_x25519_key_size> secret(const AgeIdentity &identity) noexcept {
        return identity.secret_;
    }
    static AgeIdentity make() { return AgeIdentity(); }
    static std::array<unsigned char, age_x25519_key_size> &secret_slot(AgeIdentity &identity) noexcept {
        return identity.secret_;
    }
    static AgeRecipient &recipient_slot(AgeIdentity &identity) noexcept { return identity.recipient_; }
};

namespace {

using stream_aead_detail::SecretBytes;
static_assert(age_chunk_size == stream_aead_chunk_size && age_tag_size == stream_aead_tag_size);

constexpr std::string_view age_intro = "age-encryption.org/";
constexpr std::string_view age_x25519_label = "age-encryption.org/v1/X25519";
constexpr std::string_view age_scrypt_label = "age-encryption.org/v1/scrypt";
constexpr std::string_view age_recipient_hrp = "age";
constexpr std::string_view age_identity_hrp = "age-secret-key-";  // written uppercase
constexpr std::size_t age_mac_size = 32;
constexpr std::size_t age_scrypt_salt_size = 16;
constexpr std::size_t age_wrapped_key_size = age_file_key_size + age_tag_size;  // a stanza body
constexpr std::size_t age_body_columns = 64;
constexpr std::size_t age_max_header = std::size_t{16} << 20;
constexpr std::size_t age_max_key_file = std::size_t{1} << 20;
constexpr std::uint64_t age_armor_in_memory = std::uint64_t{88} << 20;  // armored bytes (about 64 MiB decoded)

const unsigned char *age_uc(const std::byte *p) noexcept { return reinterpret_cast<const unsigned char *>(p); }
std::span<const unsigned char> age_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const unsigned char *>(s.data()), s.size()};
}
std::string_view age_text(std::span<const unsigned char> b) noexcept {
    return {reinterpret_cast<const char *>(b.data()), b.size()};
}

bool age_is_space(unsigned char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool age_is_vchar(unsigned char c) noexcept { return c >= 0x21 && c <= 0x7e; }

std::string_view age_trim(std::string_view s) noexcept {
    while (!s.empty() && age_is_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && age_is_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

bool age_istarts_with(std::string_view s, std::string_view prefix) noexcept {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
        if (lower(s[i]) != lower(prefix[i])) return false;
    }
    return true;
}

// A public string (a recipient) made safe to quote in a message: printable ASCII, bounded length.
std::string age_quote(std::string_view s) {
    std::string out;
    for (const char c : s.substr(0, 100)) out += age_is_vchar(static_cast<unsigned char>(c)) || c == ' ' ? c : '?';
    if (s.size() > 100) out += "...";
    return out;
}

// ---- base64 (RFC 4648 standard alphabet) -------------------------------------------------------

constexpr std::string_view age_b64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int age_b64_value(unsigned char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

bool age_is_b64_char(unsigned char c) noexcept { return age_b64_value(c) >= 0; }

// Unpadded.
std::string age_b64_encode(std::span<const unsigned char> in) {
    std::string out;
    out.reserve((in.size() * 4 + 2) / 3);
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const std::uint32_t v = (std::uint32_t{in[i]} << 16) | (std::uint32_t{in[i + 1]} << 8) | in[i + 2];
        out += age_b64_alphabet[(v >> 18) & 63];
        out += age_b64_alphabet[(v >> 12) & 63];
        out += age_b64_alphabet[(v >> 6) & 63];
        out += age_b64_alphabet[v & 63];
    }
    if (const std::size_t rest = in.size() - i; rest > 0) {
        std::uint32_t v = std::uint32_t{in[i]} << 16;
        if (rest == 2) v |= std::uint32_t{in[i + 1]} << 8;
        out += age_b64_alphabet[(v >> 18) & 63];
        out += age_b64_alphabet[(v >> 12) & 63];
        if (rest == 2) out += age_b64_alphabet[(v >> 6) & 63];
    }
    return out;
}

// Decodes unpadded base64 and appends it to `out`; false for a character outside the alphabet
// ("=" included), an impossible length, or a non-canonical encoding (unused bits set in the last
// character), all of which the spec requires decoders to reject.
bool age_b64_decode(std::string_view text, std::vector<unsigned char> &out) {
    if (text.size() % 4 == 1) return false;
    std::size_t i = 0;
    for (; i + 4 <= text.size(); i += 4) {
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const int d = age_b64_value(static_cast<unsigned char>(text[i + k]));
            if (d < 0) return false;
            v = (v << 6) | static_cast<std::uint32_t>(d);
        }
        out.push_back(static_cast<unsigned char>(v >> 16));
        out.push_back(static_cast<unsigned char>(v >> 8));
        out.push_back(static_cast<unsigned char>(v));
    }
    const std::size_t rest = text.size() - i;
    if (rest == 0) return true;
    int d[3] = {0, 0, 0};
    for (std::size_t k = 0; k < rest; ++k)
        if ((d[k] = age_b64_value(static_cast<unsigned char>(text[i + k]))) < 0) return false;
    if (rest == 2) {
        if ((d[1] & 0x0f) != 0) return false;
        out.push_back(static_cast<unsigned char>((d[0] << 2) | (d[1] >> 4)));
    } else {
        if ((d[2] & 0x03) != 0) return false;
        out.push_back(static_cast<unsigned char>((d[0] << 2) | (d[1] >> 4)));
        out.push_back(static_cast<unsigned char>(((d[1] & 0x0f) << 4) | (d[2] >> 2)));
    }
    return true;
}

// Canonical unpadded base64 of exactly `size` bytes.
bool age_b64_decode_exact(std::string_view text, std::size_t size, std::vector<unsigned char> &out) {
    out.clear();
    return age_b64_decode(text, out) && out.size() == size;
}

// ---- Bech32 (BIP 173; the checksum is computed over the lowercase string, no length limit) -----

constexpr std::string_view age_bech32_charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

std::uint32_t age_bech32_polymod(std::span<const unsigned char> values) noexcept {
    constexpr std::uint32_t generator[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
    std::uint32_t chk = 1;
    for (const unsigned char v : values) {
        const std::uint32_t top = chk >> 25;
        chk = ((chk & 0x1ffffff) << 5) ^ v;
        for (int i = 0; i < 5; ++i)
            if ((top >> i) & 1) chk ^= generator[i];
    }
    return chk;
}

// hrp (lowercase) expanded, followed by `data` (5-bit groups).
std::vector<unsigned char> age_bech32_values(std::string_view hrp, std::span<const unsigned char> data) {
    std::vector<unsigned char> v;
    v.reserve(hrp.size() * 2 + 1 + data.size() + 6);
    for (const char c : hrp) v.push_back(static_cast<unsigned char>(static_cast<unsigned char>(c) >> 5));
    v.push_back(0);
    for (const char c : hrp) v.push_back(static_cast<unsigned char>(static_cast<unsigned char>(c) & 31));
    v.insert(v.end(), data.begin(), data.end());
    return v;
}

// `hrp` lowercase; the result is upper case when `upper`.
std::string age_bech32_encode(std::string_view hrp, std::span<const unsigned char> data, bool upper) {
    std::vector<unsigned char> groups;
    std::uint32_t acc = 0;
    int bits = 0;
    for (const unsigned char b : data) {
        acc = (acc << 8) | b;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            groups.push_back(static_cast<unsigned char>((acc >> bits) & 31));
        }
    }
    if (bits > 0) groups.push_back(static_cast<unsigned char>((acc << (5 - bits)) & 31));
    auto values = age_bech32_values(hrp, groups);
    values.insert(values.end(), 6, 0);
    const std::uint32_t mod = age_bech32_polymod(values) ^ 1;
    std::string out(hrp);
    out += '1';
    for (const unsigned char g : groups) out += age_bech32_charset[g];
    for (int i = 0; i < 6; ++i) out += age_bech32_charset[(mod >> (5 * (5 - i))) & 31];
    if (upper)
        for (auto &c : out)
            if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    OPENSSL_cleanse(groups.data(), groups.size());
    OPENSSL_cleanse(values.data(), values.size());
    return out;
}

struct AgeBech32 {
    std::string hrp;  // lowercase
    std::vector<unsigned char> data;
    bool upper = false;
    AgeBech32() = default;
    AgeBech32(const AgeBech32 &) = delete;
    AgeBech32 &operator=(const AgeBech32 &) = delete;
    ~AgeBech32() { OPENSSL_cleanse(data.data(), data.size()); }
};

// Decodes `s` into `out`; on failure returns what is wrong, in words that never repeat `s` (it
// may be a secret key).
std::string age_bech32_decode(std::string_view s, AgeBech32 &out) {
    bool has_lower = false;
    bool has_upper = false;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 33 || c > 126) return "it contains a character that is not printable ASCII (or a space)";
        has_lower |= c >= 'a' && c <= 'z';
        has_upper |= c >= 'A' && c <= 'Z';
    }
    if (has_lower && has_upper) return "it mixes upper and lower case (Bech32 is all one or the other)";
    const auto pos = s.rfind('1');
    if (pos == std::string_view::npos || pos == 0) return "it has no Bech32 separator '1' after a type prefix";
    if (pos + 7 > s.size()) return "it is too short (a Bech32 string ends with a 6-character checksum)";
    out.upper = has_upper;
    out.hrp.assign(s.substr(0, pos));
    for (auto &c : out.hrp)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    std::vector<unsigned char> groups;
    groups.reserve(s.size() - pos - 1);
    std::string problem;
    for (const char ch : s.substr(pos + 1)) {
        const char c = ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch;
        const auto d = age_bech32_charset.find(c);
        if (d == std::string_view::npos) {
            problem = "it contains a character that Bech32 does not use (b, i, o or 1 after the separator)";
            break;
        }
        groups.push_back(static_cast<unsigned char>(d));
    }
    if (problem.empty()) {
        auto values = age_bech32_values(out.hrp, groups);
        if (age_bech32_polymod(values) != 1) problem = "its Bech32 checksum does not match (a typo, or a truncated key?)";
        OPENSSL_cleanse(values.data(), values.size());
    }
    if (problem.empty()) {
        std::uint32_t acc = 0;
        int bits = 0;
        const std::size_t payload = groups.size() - 6;  // the rest is the checksum
        for (std::size_t i = 0; i < payload; ++i) {
            acc = (acc << 5) | groups[i];
            bits += 5;
            if (bits >= 8) {
                bits -= 8;
                out.data.push_back(static_cast<unsigned char>((acc >> bits) & 0xff));
            }
        }
        if (bits >= 5 || (acc & ((1u << bits) - 1)) != 0) problem = "its Bech32 data has invalid padding";
        acc = 0;
    }
    OPENSSL_cleanse(groups.data(), groups.size());
    return problem;
}

// ---- OpenSSL primitives ------------------------------------------------------------------------

// age's words for what the chunk layer finds.
Error age_stream_error(StreamAeadFault fault, std::uint64_t n) {
    switch (fault) {
    case StreamAeadFault::writer_failed: return {Errc::invalid_argument, "age: the writer failed earlier"};
    case StreamAeadFault::writer_finished: return {Errc::invalid_argument, "age: the file is already finished"};
    case StreamAeadFault::ends_early:
        return fail_corrupt(fmt::format("age file is truncated (it ends before byte {} that its size promised)", n)).error();
    case StreamAeadFault::no_chunk:
        if (n == 0) return fail_corrupt("age file is truncated (its payload has no chunk)").error();
        [[fallthrough]];  // a few bytes: too short for a tag
    case StreamAeadFault::partial_tag:
        return fail_corrupt(fmt::format("age file is truncated or has bytes after its final chunk (its last {} bytes are shorter "
                                        "than a chunk tag)",
                                        n))
            .error();
    case StreamAeadFault::empty_last_chunk:
        return fail_corrupt("age payload ends with an empty chunk after full ones (only an empty file has an empty final "
                            "chunk): truncated or malformed")
            .error();
    case StreamAeadFault::last_missing: return fail_corrupt("age file is truncated (its final chunk is missing)").error();
    case StreamAeadFault::data_after_last:
        return fail_corrupt(fmt::format("age file has data after its final chunk (chunk {} is marked final)", n)).error();
    case StreamAeadFault::bad_chunk:
        return fail_corrupt(fmt::format("age payload chunk {} failed authentication (damaged, truncated or reordered)", n))
            .error();
    case StreamAeadFault::too_large:
    case StreamAeadFault::too_many_chunks: break;  // 2^88 chunks: never
    }
    return {Errc::internal, fmt::format("age: unexpected chunk fault {}", static_cast<int>(fault))};
}

// ChaCha20-Poly1305; nonce = counter (11 bytes) || last; no associated data. Only an empty file
// has an empty final chunk (the spec).
constexpr StreamAeadFormat age_stream_format{"age", "ChaCha20-Poly1305", 0, false, age_stream_error};

Result<void> age_random(std::span<unsigned char> out) { return stream_aead_detail::random_bytes("age", out); }

// HKDF-SHA256 (extract with `salt`, expand with `info`) into `out`.
Result<void> age_hkdf(std::span<const unsigned char> ikm, std::span<const unsigned char> salt, std::string_view info,
                      std::span<unsigned char> out) {
    return stream_aead_detail::hkdf_sha256("age", ikm, salt, info, out);
}

Result<void> age_hmac(std::span<const unsigned char> key, std::span<const unsigned char> data,
                      std::array<unsigned char, age_mac_size> &out) {
    std::size_t len = 0;
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), data.data(), data.size(), out.data(),
                  out.size(), &len) == nullptr ||
        len != out.size())
        return fail(Errc::internal, "age: HMAC-SHA256 failed");
    return success();
}

// scrypt(P = passphrase, S = "age-encryption.org/v1/scrypt" || salt, N = 2^work, r = 8, p = 1).
Result<void> age_scrypt(std::span<const unsigned char> passphrase, std::span<const unsigned char> salt, int work,
                        SecretBytes<32> &out) {
    std::vector<unsigned char> full_salt(age_scrypt_label.begin(), age_scrypt_label.end());
    full_salt.insert(full_salt.end(), salt.begin(), salt.end());
    return stream_aead_detail::scrypt("age", passphrase, full_salt, static_cast<unsigned>(work), 8, 1, out.bytes);
}

struct AgePkeyFree {
    void operator()(EVP_PKEY *k) const noexcept { EVP_PKEY_free(k); }
};
struct AgePkeyCtxFree {
    void operator()(EVP_PKEY_CTX *k) const noexcept { EVP_PKEY_CTX_free(k); }
};
using AgePkeyPtr = std::unique_ptr<EVP_PKEY, AgePkeyFree>;

// X25519(secret, basepoint).
Result<void> age_x25519_public(std::span<const unsigned char, age_x25519_key_size> secret,
                               std::array<unsigned char, age_x25519_key_size> &out) {
    AgePkeyPtr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret.data(), secret.size()));
    std::size_t len = out.size();
    if (!key || EVP_PKEY_get_raw_public_key(key.get(), out.data(), &len) != 1 || len != out.size())
        return fail(Errc::internal, "age: OpenSSL X25519 failed");
    return success();
}

// X25519(secret, peer) into `out`. False when the result would be all zeros (the peer is a
// low-order point; OpenSSL refuses to derive it) - the spec's mandatory abort.
Result<bool> age_x25519_shared(std::span<const unsigned char, age_x25519_key_size> secret,
                               std::span<const unsigned char, age_x25519_key_size> peer, SecretBytes<32> &out) {
    AgePkeyPtr own(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret.data(), secret.size()));
    AgePkeyPtr other(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer.data(), peer.size()));
    if (!own || !other) return fail(Errc::internal, "age: OpenSSL X25519 keys could not be made");
    std::unique_ptr<EVP_PKEY_CTX, AgePkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own.get(), nullptr));
    if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) return fail(Errc::internal, "age: OpenSSL X25519 failed");
    if (EVP_PKEY_derive_set_peer(ctx.get(), other.get()) != 1) return false;
    std::size_t len = out.bytes.size();
    if (EVP_PKEY_derive(ctx.get(), out.bytes.data(), &len) != 1 || len != out.bytes.size()) return false;
    unsigned char any = 0;
    for (const unsigned char b : out.bytes) any |= b;
    return any != 0;
}

// Wraps (or unwraps) a 16-byte file key under a 32-byte key with the zero nonce, as stanzas do.
Result<void> age_wrap_file_key(const SecretBytes<32> &wrap_key, std::span<const unsigned char, age_file_key_size> file_key,
                               std::array<unsigned char, age_wrapped_key_size> &body) {
    HSDK_TRY(const auto cipher, stream_aead_detail::fetch_cipher("age", age_stream_format.cipher));
    HSDK_TRY(const auto ctx, stream_aead_detail::new_cipher_ctx("age"));
    const std::array<unsigned char, stream_aead_nonce_size> zero{};
    if (!stream_aead_detail::aead_seal(ctx.get(), cipher.get(), wrap_key.bytes, zero, {}, std::as_bytes(file_key),
                                       std::as_writable_bytes(std::span(body))))
        return fail(Errc::internal, "age: ChaCha20-Poly1305 failed");
    return success();
}

Result<bool> age_unwrap_file_key(const SecretBytes<32> &wrap_key, std::span<const unsigned char> body,
                                 SecretBytes<age_file_key_size> &file_key) {
    HSDK_TRY(const auto cipher, stream_aead_detail::fetch_cipher("age", age_stream_format.cipher));
    HSDK_TRY(const auto ctx, stream_aead_detail::new_cipher_ctx("age"));
    const std::array<unsigned char, stream_aead_nonce_size> zero{};
    const bool ok = stream_aead_detail::aead_open(ctx.get(), cipher.get(), wrap_key.bytes, zero, {}, std::as_bytes(body),
                                                  std::as_writable_bytes(std::span(file_key.bytes)));
    if (!ok) OPENSSL_cleanse(file_key.bytes.data(), file_key.bytes.size());
    return ok;
}

Result<void> age_payload_key(std::span<const unsigned char, age_file_key_size> file_key,
                             std::span<const unsigned char, age_payload_nonce_size> nonce, SecretBytes<32> &out) {
    return age_hkdf(file_key, nonce, "payload", out.bytes);
}

Result<void> age_header_mac(std::span<const unsigned char, age_file_key_size> file_key, std::span<const unsigned char> header,
                            std::array<unsigned char, age_mac_size> &out) {
    SecretBytes<32> mac_key;
    HSDK_TRYV(age_hkdf(file_key, {}, "header", mac_key.bytes));
    return age_hmac(mac_key.bytes, header, out);
}

// ---- files -------------------------------------------------------------------------------------

Error age_errno(int err, std::string_view what, std::string_view path) { return errno_error(err, what, path); }

// Splits `text` into lines (LF, with a CR before it dropped) and calls f(line_number, trimmed line)
// for each that is neither blank nor a "#" comment; stops at the first failure.
template <class F>
Result<void> age_for_each_key_line(std::string_view text, F &&f) {
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const auto lf = text.find('\n');
        std::string_view line = text.substr(0, lf);
        text = lf == std::string_view::npos ? std::string_view{} : text.substr(lf + 1);
        line = age_trim(line);
        if (line.empty() || line.front() == '#') continue;
        HSDK_TRYV(f(line_no, line));
    }
    return success();
}

// ---- header ------------------------------------------------------------------------------------

struct AgeStanza {
    std::vector<std::string> args;
    std::vector<unsigned char> body;
};

struct AgeHeader {
    std::vector<AgeStanza> stanzas;
    std::size_t mac_input = 0;  // bytes the MAC covers: everything up to and including "---"
    std::array<unsigned char, age_mac_size> mac{};
    std::size_t size = 0;  // through the MAC line's LF: the payload nonce starts here
};

Error age_header_error(std::size_t line_no, std::string_view what) {
    return Error{Errc::corrupt_image, fmt::format("corrupt image: age header line {}: {}", line_no, what)};
}

void age_append_stanza(std::string &header, const std::vector<std::string> &args, std::span<const unsigned char> body) {
    header += "->";
    for (const auto &a : args) {
        header += ' ';
        header += a;
    }
    header += '\n';
    const std::string b64 = age_b64_encode(body);
    std::size_t i = 0;
    for (; b64.size() - i >= age_body_columns; i += age_body_columns) {
        header.append(b64, i, age_body_columns);
        header += '\n';
    }
    header.append(b64, i, std::string::npos);  // the short (possibly empty) final line
    header += '\n';
}

// Parses the header at the start of `buf`. nullopt: `buf` ends inside the header and is not the
// whole file (`whole` false): call again with more. The version line is checked first, so another
// kind of file is told apart (invalid_argument) from a damaged age file (corrupt_image).
Result<std::optional<AgeHeader>> age_parse_header(std::span<const unsigned char> buf, bool whole) {
    const std::string_view text = age_text(buf);
    if (!text.starts_with(age_intro)) {
        if (!text.empty() && text.size() < age_intro.size() && age_intro.starts_with(text)) {
            if (!whole) return std::optional<AgeHeader>{};
            return fail_corrupt("age file is truncated (it ends inside its version line)");
        }
        return fail(Errc::invalid_argument, "not an age encrypted file (it does not start with \"age-encryption.org/\")");
    }
    std::size_t pos = 0;
    std::size_t line_no = 0;
    std::size_t line_start = 0;
    std::string_view line;
    // 1: a line; 0: the buffer ends first (need more, or truncated when whole).
    auto next_line = [&]() -> bool {
        const auto lf = text.find('\n', pos);
        if (lf == std::string_view::npos) return false;
        line_start = pos;
        line = text.substr(pos, lf - pos);
        pos = lf + 1;
        ++line_no;
        return true;
    };
    auto incomplete = [&]() -> Result<std::optional<AgeHeader>> {
        if (!whole) return std::optional<AgeHeader>{};
        return fail_corrupt("age header is truncated (the file ends before its \"---\" MAC line)");
    };

    if (!next_line()) return incomplete();
    if (line != age_version_line.substr(0, age_version_line.size() - 1)) {
        const auto version = line.substr(age_intro.size());
        const bool printable = !version.empty() && std::all_of(version.begin(), version.end(), [](char c) {
            return age_is_vchar(static_cast<unsigned char>(c));
        });
        if (printable)
            return fail_unsupported(fmt::format("age format version '{}' (this build reads v1)", age_quote(version)));
        return fail(age_header_error(1, "malformed version line"));
    }

    AgeHeader header;
    std::string body_text;
    for (;;) {
        if (!next_line()) return incomplete();
        if (line.starts_with("---")) {
            if (header.stanzas.empty()) return fail(age_header_error(line_no, "the MAC line comes before any recipient stanza"));
            if (line.size() < 4 || line[3] != ' ') return fail(age_header_error(line_no, "malformed MAC line (\"--- \" expected)"));
            std::vector<unsigned char> mac;
            if (line.size() != 4 + 43 || !age_b64_decode_exact(line.substr(4), age_mac_size, mac))
                return fail(age_header_error(line_no, "the MAC is not canonical unpadded base64 of 32 bytes"));
            std::memcpy(header.mac.data(), mac.data(), age_mac_size);
            header.mac_input = line_start + 3;
            header.size = pos;
            return std::optional<AgeHeader>{std::move(header)};
        }
        if (!line.starts_with("-> "))
            return fail(age_header_error(line_no, "a recipient stanza (\"-> \") or the MAC line (\"---\") was expected"));
        AgeStanza stanza;
        std::string_view rest = line.substr(3);
        for (;;) {
            const auto sp = rest.find(' ');
            const auto arg = rest.substr(0, sp);
            if (arg.empty()) return fail(age_header_error(line_no, "a stanza argument is empty"));
            if (!std::all_of(arg.begin(), arg.end(), [](char c) { return age_is_vchar(static_cast<unsigned char>(c)); }))
                return fail(age_header_error(line_no, "a stanza argument holds a character that is not printable ASCII"));
            stanza.args.emplace_back(arg);
            if (sp == std::string_view::npos) break;
            rest = rest.substr(sp + 1);
        }
        body_text.clear();
        for (;;) {
            if (!next_line()) return incomplete();
            if (line.size() > age_body_columns)
                return fail(age_header_error(line_no, "a stanza body line is longer than 64 columns"));
            if (!std::all_of(line.begin(), line.end(), [](char c) { return age_is_b64_char(static_cast<unsigned char>(c)); }))
                return fail(age_header_error(line_no, "a stanza body line is not unpadded base64 (every stanza ends with a "
                                                      "line shorter than 64 columns, possibly empty)"));
            body_text += line;
            if (line.size() < age_body_columns) break;
        }
        if (!age_b64_decode(body_text, stanza.body))
            return fail(age_header_error(line_no, "a stanza body is not canonical base64"));
        header.stanzas.push_back(std::move(stanza));
    }
}

// ---- ASCII armor -------------------------------------------------------------------------------

// Sequential reading of a read callback, a block at a time.
class AgeSequential {
public:
    AgeSequential(const EnvelopeReadAt &read_at, std::uint64_t size) : read_at_(read_at), size_(size) {}

    // The next byte, or -1 at the end.
    Result<int> get() {
        if (pos_ == buf_.size()) {
            HSDK_TRY(const bool more, fill());
            if (!more) return -1;
        }
        return static_cast<int>(static_cast<unsigned char>(buf_[pos_++]));
    }
    void unget() noexcept { --pos_; }

    // The next line without its LF (and without a CR before it); false at the end of the input.
    // `had_lf` tells whether a LF ended it. Longer than `limit`: corrupt.
    Result<bool> line(std::string &out, bool &had_lf, std::size_t limit) {
        out.clear();
        had_lf = false;
        for (;;) {
            if (pos_ == buf_.size()) {
                HSDK_TRY(const bool more, fill());
                if (!more) break;
            }
            const char *start = reinterpret_cast<const char *>(buf_.data()) + pos_;
            const std::size_t avail = buf_.size() - pos_;
            const auto *lf = static_cast<const char *>(std::memchr(start, '\n', avail));
            const std::size_t take = lf != nullptr ? static_cast<std::size_t>(lf - start) : avail;
            if (out.size() + take > limit) return fail_corrupt(fmt::format("age armor: line {} is too long", line_no_ + 1));
            out.append(start, take);
            pos_ += take;
            if (lf != nullptr) {
                ++pos_;
                had_lf = true;
                break;
            }
        }
        if (!had_lf && out.empty()) return false;
        ++line_no_;
        if (!out.empty() && out.back() == '\r') out.pop_back();
        return true;
    }
    [[nodiscard]] std::size_t line_no() const noexcept { return line_no_; }

private:
    // The next block into buf_; false at the end of the input.
    Result<bool> fill() {
        if (offset_ >= size_) return false;
        buf_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(size_ - offset_, 1 << 20)));
        std::size_t got = 0;
        while (got < buf_.size()) {
            HSDK_TRY(const std::size_t n, read_at_(offset_ + got, std::span(buf_).subspan(got)));
            if (n == 0) return fail_corrupt("age file is shorter than its size says");
            got += n;
        }
        offset_ += got;
        pos_ = 0;
        return true;
    }

    const EnvelopeReadAt &read_at_;
    std::uint64_t size_;
    std::uint64_t offset_ = 0;
    std::vector<std::byte> buf_;
    std::size_t pos_ = 0;
    std::size_t line_no_ = 0;
};

// Where decoded armor goes: memory, or an unlinked temporary file for large inputs (written a
// megabyte at a time).
struct AgeDecoded {
    std::vector<std::byte> memory;  // everything, or (with a file) what is not written yet
    int fd = -1;
    std::uint64_t size = 0;  // bytes decoded
    std::uint64_t flushed = 0;  // bytes in the file
    AgeDecoded() = default;
    AgeDecoded(const AgeDecoded &) = delete;
    AgeDecoded &operator=(const AgeDecoded &) = delete;
    ~AgeDecoded() {
        if (fd >= 0) ::close(fd);
    }

    Result<void> open_file() {
        std::error_code ec;
        auto dir = std::filesystem::temp_directory_path(ec);
        const std::string folder = ec ? std::string("/tmp") : dir.string();
        fd = ::open(folder.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0) return success();
        std::string name = folder + "/.hsdk-age-armor-XXXXXX";
        fd = ::mkostemp(name.data(), O_CLOEXEC);
        if (fd < 0) return fail(age_errno(errno, "cannot create a temporary file in", folder));
        ::unlink(name.c_str());
        return success();
    }

    Result<void> append(std::span<const unsigned char> bytes) {
        const auto *p = reinterpret_cast<const std::byte *>(bytes.data());
        memory.insert(memory.end(), p, p + bytes.size());
        size += bytes.size();
        if (fd >= 0 && memory.size() >= (std::size_t{1} << 20)) return flush();
        return success();
    }

    // With a file: writes what is still in memory.
    Result<void> flush() {
        if (fd < 0) return success();
        std::span<const std::byte> rest(memory);
        while (!rest.empty()) {
            const ssize_t n = ::pwrite(fd, rest.data(), rest.size(), static_cast<off_t>(flushed));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(age_errno(errno, "cannot write", "the temporary file of the decoded armor"));
            flushed += static_cast<std::uint64_t>(n);
            rest = rest.subspan(static_cast<std::size_t>(n));
        }
        memory.clear();
        return success();
    }
};

// A binary age file to read: the input itself, or what its armor decodes to.
struct AgeSource {
    EnvelopeReadAt read_at;
    std::uint64_t size = 0;
    bool armored = false;
};

// Decodes the strict PEM armor (RFC 7468, label "AGE ENCRYPTED FILE") of the input, which starts
// with optional whitespace and the BEGIN line. Lines of exactly 64 characters of padded base64 but
// the last (1..64 characters, a multiple of 4), LF or CRLF, canonical encoding, nothing but
// whitespace after the END line.
Result<AgeSource> age_dearmor(const EnvelopeReadAt &read_at, std::uint64_t size) {
    AgeSequential in(read_at, size);
    for (;;) {
        HSDK_TRY(const int c, in.get());
        if (c < 0) return fail_corrupt("age armor: the file holds only whitespace");
        if (!age_is_space(static_cast<unsigned char>(c))) {
            in.unget();
            break;
        }
    }
    auto decoded = std::make_shared<AgeDecoded>();
    if (size > age_armor_in_memory) {
        HSDK_TRYV(decoded->open_file());
        decoded->memory.reserve((std::size_t{1} << 20) + age_body_columns);
    } else {
        decoded->memory.reserve(static_cast<std::size_t>(size / 4 * 3 + 3));
    }

    std::string line;
    bool had_lf = false;
    HSDK_TRY(bool more, in.line(line, had_lf, 128));
    if (!more || !had_lf || line != age_armor_begin)
        return fail_corrupt(fmt::format("age armor: the first line is not \"{}\"", age_armor_begin));
    bool final_seen = false;
    std::vector<unsigned char> bytes;
    for (;;) {
        HSDK_TRY(more, in.line(line, had_lf, 128));
        if (!more) return fail_corrupt(fmt::format("age armor: the \"{}\" line is missing", age_armor_end));
        if (line == age_armor_end) break;
        const auto n = in.line_no();
        if (final_seen) return fail_corrupt(fmt::format("age armor: line {}: data after the last (short or padded) line", n));
        if (line.empty()) return fail_corrupt(fmt::format("age armor: line {} is empty", n));
        if (line.size() > age_body_columns) return fail_corrupt(fmt::format("age armor: line {} is longer than 64 columns", n));
        if (line.size() % 4 != 0)
            return fail_corrupt(fmt::format("age armor: line {} is not padded base64 (its length is not a multiple of 4)", n));
        std::string_view data = line;
        std::size_t pad = 0;
        while (pad < 2 && !data.empty() && data.back() == '=') {
            data.remove_suffix(1);
            ++pad;
        }
        final_seen = pad > 0 || line.size() < age_body_columns;
        bytes.clear();
        if (data.empty() || (pad > 0 && data.size() % 4 != 4 - pad) || !age_b64_decode(data, bytes))
            return fail_corrupt(fmt::format("age armor: line {} is not canonical base64", n));
        HSDK_TRYV(decoded->append(bytes));
    }
    for (;;) {
        HSDK_TRY(const int c, in.get());
        if (c < 0) break;
        if (!age_is_space(static_cast<unsigned char>(c)))
            return fail_corrupt(fmt::format("age armor: data after the \"{}\" line", age_armor_end));
    }
    HSDK_TRYV(decoded->flush());

    AgeSource src;
    src.size = decoded->size;
    src.armored = true;
    src.read_at = [decoded](std::uint64_t offset, std::span<std::byte> out) -> Result<std::size_t> {
        if (offset >= decoded->size || out.empty()) return std::size_t{0};
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), decoded->size - offset));
        if (decoded->fd < 0) {
            std::memcpy(out.data(), decoded->memory.data() + offset, n);
            return n;
        }
        for (;;) {
            const ssize_t got = ::pread(decoded->fd, out.data(), n, static_cast<off_t>(offset));
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) return fail(age_errno(errno, "cannot read", "the temporary file of the decoded armor"));
            return static_cast<std::size_t>(got);
        }
    };
    return src;
}

// The binary age file behind the input: the input itself, or its decoded armor.
Result<AgeSource> age_source(EnvelopeReadAt read_at, std::uint64_t size) {
    if (!read_at) return fail(Errc::invalid_argument, "age: no read callback for the file");
    std::vector<std::byte> head(static_cast<std::size_t>(std::min<std::uint64_t>(size, 4096)));
    HSDK_TRYV(stream_aead_read_exact(age_stream_format, read_at, 0, head));
    const std::string_view text(reinterpret_cast<const char *>(head.data()), head.size());
    if (!text.starts_with(age_intro)) {
        // Armor, or something trying to be (a PEM line naming AGE in another case or spacing):
        // the strict decoder then says what is wrong with it rather than "not an age file".
        const auto start = std::min(text.size(), text.find_first_not_of(" \t\r\n"));
        const auto first = text.substr(start, text.find('\n', start) - start);
        bool pem_age = false;
        for (std::size_t i = 0; i < first.size() && !pem_age; ++i) pem_age = age_istarts_with(first.substr(i), "age encrypted");
        if (first.starts_with("-----") && pem_age) return age_dearmor(read_at, size);
    }
    AgeSource src;
    src.read_at = std::move(read_at);
    src.size = size;
    return src;
}

// Reads and parses the header of the binary file `src`; `raw` gets the header's bytes.
Result<AgeHeader> age_read_header(const AgeSource &src, std::vector<unsigned char> &raw) {
    std::uint64_t want = std::min<std::uint64_t>(src.size, 16384);
    raw.clear();
    for (;;) {
        const std::size_t have = raw.size();
        raw.resize(static_cast<std::size_t>(want));
        const auto rest = std::as_writable_bytes(std::span(raw)).subspan(have);
        HSDK_TRYV(stream_aead_read_exact(age_stream_format, src.read_at, have, rest));
        HSDK_TRY(auto parsed, age_parse_header(raw, want == src.size));
        if (parsed) {
            raw.resize(parsed->size);
            return std::move(*parsed);
        }
        if (want >= age_max_header)
            return fail_unsupported(fmt::format("age header larger than {} MiB", age_max_header >> 20));
        want = std::min<std::uint64_t>({src.size, want * 4, age_max_header});
    }
}

AgeHeaderInfo age_info(const AgeHeader &header, bool armored) {
    AgeHeaderInfo info;
    info.armored = armored;
    info.header_size = header.size;
    for (const auto &s : header.stanzas) info.stanza_types.push_back(s.args.front());
    if (header.stanzas.size() == 1 && header.stanzas[0].args.size() == 3 && header.stanzas[0].args[0] == "scrypt") {
        const auto &w = header.stanzas[0].args[2];
        if (!w.empty() && w.size() <= 3 && w[0] != '0' && std::all_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; }))
            info.scrypt_log2_work = std::stoi(w);
    }
    return info;
}

std::string age_describe_stanzas(const AgeHeader &header) {
    std::string out;
    for (const auto &s : header.stanzas) {
        if (!out.empty()) out += ", ";
        out += age_quote(s.args.front());
    }
    return out;
}

// Finds the file key in `header` with the given keys (identities, a passphrase or both), and checks
// the header's MAC with it.
Result<void> age_unwrap(const AgeHeader &header, std::span<const unsigned char> raw, std::span<const AgeIdentity> identities,
                        const EncryptionKey *passphrase, SecretBytes<age_file_key_size> &file_key) {
    const auto is_scrypt = [](const AgeStanza &s) { return s.args.front() == "scrypt"; };
    const bool has_scrypt = std::any_of(header.stanzas.begin(), header.stanzas.end(), is_scrypt);
    if (has_scrypt && header.stanzas.size() != 1)
        return fail_corrupt(fmt::format("age header: an scrypt (passphrase) stanza must be the only stanza, and this header has "
                                        "{} ({})",
                                        header.stanzas.size(), age_describe_stanzas(header)));
    bool found = false;
    if (has_scrypt) {
        if (passphrase == nullptr)
            return fail(Errc::auth_failed, "the age file is encrypted with a passphrase, not to a recipient: give the passphrase "
                                           "(--passphrase-file or --passphrase-env)");
        if (passphrase->kind() != EncryptionKey::Kind::passphrase)
            return fail(Errc::auth_failed, "the age file is encrypted with a passphrase, and a key file was given");
        const auto &s = header.stanzas.front();
        if (s.args.size() != 3) return fail_corrupt(fmt::format("age header: the scrypt stanza has {} arguments (3 expected)", s.args.size()));
        std::vector<unsigned char> salt;
        if (!age_b64_decode_exact(s.args[1], age_scrypt_salt_size, salt))
            return fail_corrupt("age header: the scrypt salt is not canonical base64 of 16 bytes");
        const auto &w = s.args[2];
        if (w[0] == '0' || !std::all_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return fail_corrupt(fmt::format("age header: the scrypt work factor '{}' is not a decimal number without leading "
                                            "zeros",
                                            age_quote(w)));
        if (w.size() > 2 || std::stoi(w) > age_max_scrypt_work)
            return fail_unsupported(fmt::format("age scrypt work factor {} (2^{} iterations): the limit is {}", age_quote(w),
                                                age_quote(w), age_max_scrypt_work));
        if (s.body.size() != age_wrapped_key_size)
            return fail_corrupt(fmt::format("age header: the scrypt stanza body holds {} bytes ({} expected)", s.body.size(),
                                            age_wrapped_key_size));
        SecretBytes<32> wrap_key;
        HSDK_TRYV(age_scrypt(AgeKeyAccess::passphrase(*passphrase), salt, std::stoi(w), wrap_key));
        HSDK_TRY(found, age_unwrap_file_key(wrap_key, s.body, file_key));
        if (!found) return fail(Errc::auth_failed, "wrong passphrase for the age file");
    } else {
        if (identities.empty()) {
            if (passphrase != nullptr)
                return fail(Errc::auth_failed, fmt::format("the age file is encrypted to recipients ({}), not with a passphrase: "
                                                           "give an identity file",
                                                           age_describe_stanzas(header)));
            return fail(Errc::invalid_argument, "age: no identity or passphrase to decrypt with");
        }
        for (const auto &s : header.stanzas) {
            if (s.args.front() != "X25519") continue;  // another type (or grease): not ours to judge
            if (s.args.size() != 2)
                return fail_corrupt(fmt::format("age header: an X25519 stanza has {} arguments (2 expected)", s.args.size()));
            std::vector<unsigned char> share_bytes;
            if (!age_b64_decode_exact(s.args[1], age_x25519_key_size, share_bytes))
                return fail_corrupt("age header: an X25519 share is not canonical base64 of 32 bytes");
            if (s.body.size() != age_wrapped_key_size)
                return fail_corrupt(fmt::format("age header: an X25519 stanza body holds {} bytes ({} expected)", s.body.size(),
                                                age_wrapped_key_size));
            std::array<unsigned char, age_x25519_key_size> share{};
            std::memcpy(share.data(), share_bytes.data(), share.size());
            for (const auto &id : identities) {
                SecretBytes<32> shared;
                HSDK_TRY(const bool ok, age_x25519_shared(AgeKeyAccess::secret(id), share, shared));
                if (!ok) return fail_corrupt("age header: an X25519 share is a low-order point (the shared secret would be zero)");
                std::array<unsigned char, 2 * age_x25519_key_size> salt{};
                std::memcpy(salt.data(), share.data(), share.size());
                std::memcpy(salt.data() + share.size(), id.recipient().public_key.data(), age_x25519_key_size);
                SecretBytes<32> wrap_key;
                HSDK_TRYV(age_hkdf(shared.bytes, salt, age_x25519_label, wrap_key.bytes));
                HSDK_TRY(found, age_unwrap_file_key(wrap_key, s.body, file_key));
                if (found) break;
            }
            if (found) break;
        }
        if (!found) {
            std::string mine;
            for (std::size_t i = 0; i < identities.size() && i < 3; ++i)
                mine += (i ? ", " : "") + identities[i].recipient().to_string();
            if (identities.size() > 3) mine += ", ...";
            return fail(Errc::auth_failed,
                        fmt::format("no identity matches a recipient of the age file (it has {} stanza{}: {}; the identit{} "
                                    "given: {})",
                                    header.stanzas.size(), header.stanzas.size() == 1 ? "" : "s", age_describe_stanzas(header),
                                    identities.size() == 1 ? "y" : "ies", mine));
        }
    }
    std::array<unsigned char, age_mac_size> mac{};
    HSDK_TRYV(age_header_mac(file_key.bytes, raw.first(header.mac_input), mac));
    if (CRYPTO_memcmp(mac.data(), header.mac.data(), mac.size()) != 0) {
        OPENSSL_cleanse(file_key.bytes.data(), file_key.bytes.size());
        return fail(Errc::auth_failed, "the age header failed authentication (its MAC does not match: the header was changed or "
                                       "damaged)");
    }
    return success();
}

}  // namespace

// ---- recognising -------------------------------------------------------------------------------

bool looks_like_age(std::span<const std::byte> first_bytes) noexcept {
    const std::string_view text(reinterpret_cast<const char *>(first_bytes.data()), first_bytes.size());
    if (text.starts_with(age_intro)) return true;
    const auto start = text.find_first_not_of(" \t\r\n");
    return start != std::string_view::npos && text.substr(start).starts_with(age_armor_begin);
}

std::uint64_t age_encrypted_size(std::uint64_t header_size, std::uint64_t plaintext_size) noexcept {
    const std::uint64_t chunks = plaintext_size == 0 ? 1 : (plaintext_size + age_chunk_size - 1) / age_chunk_size;
    return header_size + age_payload_nonce_size + plaintext_size + chunks * age_tag_size;
}

// ---- recipients and identities -----------------------------------------------------------------

std::string AgeRecipient::to_string() const { return age_bech32_encode(age_recipient_hrp, public_key, false); }

Result<AgeRecipient> parse_age_recipient(std::string_view text) {
    text = age_trim(text);
    if (text.empty()) return fail(Errc::invalid_argument, "age recipient is empty");
    // Anything that may hold a secret key is refused without being quoted.
    bool secret_like = age_istarts_with(text, "AGE-PLUGIN-");
    for (std::size_t i = 0; i < text.size() && !secret_like; ++i) secret_like = age_istarts_with(text.substr(i), "SECRET-KEY");
    if (secret_like)
        return fail(Errc::invalid_argument, "a secret key (identity) was given where an age recipient belongs: give its public "
                                            "key, age1... (age-keygen -y prints it)");
    if (text.starts_with("ssh-") || text.starts_with("ecdsa-sha2-") || text.starts_with("sk-"))
        return fail_unsupported(fmt::format("age recipient '{}': SSH public keys are not supported (use an age1... X25519 "
                                            "recipient)",
                                            age_quote(text.substr(0, text.find(' ')))));
    AgeBech32 decoded;
    if (auto problem = age_bech32_decode(text, decoded); !problem.empty())
        return fail(Errc::invalid_argument, fmt::format("age recipient '{}' is malformed: {}", age_quote(text), problem));
    if (decoded.hrp != age_recipient_hrp) {
        if (decoded.hrp == "age1pq")
            return fail_unsupported(fmt::format("age recipient '{}': post-quantum (age1pq1...) recipients are not supported",
                                                age_quote(text)));
        if (decoded.hrp.starts_with("age1"))
            return fail_unsupported(fmt::format("age recipient '{}': recipient type '{}' (a plugin or hardware key) is not "
                                                "supported",
                                                age_quote(text), age_quote(decoded.hrp.substr(4))));
        return fail(Errc::invalid_argument, fmt::format("age recipient '{}' is not an age1... X25519 recipient (its type prefix "
                                                        "is '{}')",
                                                        age_quote(text), age_quote(decoded.hrp)));
    }
    if (decoded.upper)
        return fail(Errc::invalid_argument, fmt::format("age recipient '{}' must be lowercase", age_quote(text)));
    if (decoded.data.size() != age_x25519_key_size)
        return fail(Errc::invalid_argument, fmt::format("age recipient '{}' holds {} bytes (an X25519 key has 32)", age_quote(text),
                                                        decoded.data.size()));
    AgeRecipient r;
    std::memcpy(r.public_key.data(), decoded.data.data(), age_x25519_key_size);
    return r;
}

Result<std::vector<AgeRecipient>> read_age_recipients_file(const std::string &path) {
    HSDK_TRY(auto data, stream_aead_detail::read_small_file(path, age_max_key_file, "age recipients file"));
    std::vector<AgeRecipient> out;
    HSDK_TRYV(age_for_each_key_line(age_text(data), [&](std::size_t line_no, std::string_view line) -> Result<void> {
        auto r = parse_age_recipient(line);
        if (!r) return fail(r.error().with_context(fmt::format("age recipients file '{}' line {}", path, line_no)));
        out.push_back(r.value());
        return success();
    }));
    if (out.empty()) return fail(Errc::invalid_argument, fmt::format("age recipients file '{}' holds no recipient", path));
    return out;
}

AgeIdentity::~AgeIdentity() { OPENSSL_cleanse(secret_.data(), secret_.size()); }

Result<AgeIdentity> AgeIdentity::parse(std::string_view text) {
    text = age_trim(text);
    if (age_istarts_with(text, "AGE-PLUGIN-"))
        return fail_unsupported("age plugin identities (AGE-PLUGIN-...) are not supported");
    AgeBech32 decoded;
    if (auto problem = age_bech32_decode(text, decoded); !problem.empty())
        return fail(Errc::invalid_argument, "not a valid age identity (AGE-SECRET-KEY-1...): " + problem);
    if (decoded.hrp == "age-secret-key-pq-")
        return fail_unsupported("post-quantum age identities (AGE-SECRET-KEY-PQ-1...) are not supported");
    if (decoded.hrp != age_identity_hrp)
        return fail(Errc::invalid_argument, "not an age identity (it does not start with AGE-SECRET-KEY-1)");
    if (!decoded.upper) return fail(Errc::invalid_argument, "an age identity must be uppercase (AGE-SECRET-KEY-1...)");
    if (decoded.data.size() != age_x25519_key_size)
        return fail(Errc::invalid_argument, fmt::format("an age identity must hold 32 bytes (this one holds {})", decoded.data.size()));
    auto id = AgeKeyAccess::make();
    std::memcpy(AgeKeyAccess::secret_slot(id).data(), decoded.data.data(), age_x25519_key_size);
    HSDK_TRYV(age_x25519_public(AgeKeyAccess::secret(id), AgeKeyAccess::recipient_slot(id).public_key));
    return id;
}

Result<AgeIdentity> AgeIdentity::generate() {
    auto id = AgeKeyAccess::make();
    HSDK_TRYV(age_random(AgeKeyAccess::secret_slot(id)));
    HSDK_TRYV(age_x25519_public(AgeKeyAccess::secret(id), AgeKeyAccess::recipient_slot(id).public_key));
    return id;
}

Result<std::vector<AgeIdentity>> read_age_identity_file(const std::string &path) {
    HSDK_TRY(auto data, stream_aead_detail::read_small_file(path, age_max_key_file, "age identity file"));
    std::vector<AgeIdentity> out;
    Result<void> result = success();
    if (looks_like_age(std::as_bytes(std::span(data)))) {
        result = fail_unsupported(fmt::format("age identity file '{}' is itself age-encrypted (a passphrase-protected identity "
                                              "file): decrypt it first with age -d",
                                              path));
    } else {
        result = age_for_each_key_line(age_text(data), [&](std::size_t line_no, std::string_view line) -> Result<void> {
            if (line.starts_with("-----BEGIN"))
                return fail_unsupported(fmt::format("age identity file '{}' line {}: SSH (or PEM) private keys are not supported",
                                                    path, line_no));
            auto id = AgeIdentity::parse(line);
            if (!id) return fail(id.error().with_context(fmt::format("age identity file '{}' line {}", path, line_no)));
            out.push_back(std::move(id).value());
            return success();
        });
    }
    OPENSSL_cleanse(data.data(), data.size());
    HSDK_TRYV(result);
    if (out.empty()) return fail(Errc::invalid_argument, fmt::format("age identity file '{}' holds no identity", path));
    return out;
}

// ---- writer ------------------------------------------------------------------------------------

struct AgeWriter::State {
    StreamAeadWriter stream;
};

AgeWriter::AgeWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
AgeWriter::AgeWriter(AgeWriter &&) noexcept = default;
AgeWriter &AgeWriter::operator=(AgeWriter &&) noexcept = default;
AgeWriter::~AgeWriter() = default;

Result<AgeWriter> AgeWriter::create_for_recipients(const std::vector<AgeRecipient> &recipients, EnvelopeSink sink) {
    AgeEncryptKeys keys;
    keys.recipients = recipients;
    return create_with_extra_stanzas_for_tests(keys, std::move(sink), {});
}

Result<AgeWriter> AgeWriter::create_for_passphrase(const EncryptionKey &passphrase, EnvelopeSink sink, int scrypt_log2_work) {
    AgeEncryptKeys keys;
    keys.passphrase = passphrase;
    keys.scrypt_log2_work = scrypt_log2_work;
    return create_with_extra_stanzas_for_tests(keys, std::move(sink), {});
}

Result<AgeWriter> AgeWriter::create(const AgeEncryptKeys &keys, EnvelopeSink sink) {
    return create_with_extra_stanzas_for_tests(keys, std::move(sink), {});
}

// (Every create_* comes here; `extra` is empty outside tests.)
Result<AgeWriter> AgeWriter::create_with_extra_stanzas_for_tests(const AgeEncryptKeys &keys, EnvelopeSink sink,
                                                                 const std::vector<AgeExtraStanza> &extra) {
    if (!sink) return fail(Errc::invalid_argument, "age: no sink for the encrypted file");
    if (keys.passphrase && !keys.recipients.empty())
        return fail(Errc::invalid_argument, "age: give recipients or a passphrase, not both (age does not mix them in a file)");
    if (!keys.passphrase && keys.recipients.empty())
        return fail(Errc::invalid_argument, "age: no recipient or passphrase to encrypt to");
    if (keys.passphrase) {
        if (keys.passphrase->kind() != EncryptionKey::Kind::passphrase)
            return fail(Errc::invalid_argument, "age encrypts with a passphrase or to recipients, not with a key file");
        if (keys.scrypt_log2_work < 1 || keys.scrypt_log2_work > age_max_scrypt_work)
            return fail(Errc::invalid_argument, fmt::format("age scrypt work factor {} is outside 1..{}", keys.scrypt_log2_work,
                                                            age_max_scrypt_work));
    }

    SecretBytes<age_file_key_size> file_key;
    HSDK_TRYV(age_random(file_key.bytes));
    std::string header(age_version_line);
    for (const auto &e : extra) {
        if (e.args.empty()) return fail(Errc::invalid_argument, "age: a stanza needs at least one argument");
        for (const auto &a : e.args)
            if (a.empty() || !std::all_of(a.begin(), a.end(), [](char c) { return age_is_vchar(static_cast<unsigned char>(c)); }))
                return fail(Errc::invalid_argument, "age: stanza arguments are non-empty printable ASCII without spaces");
        age_append_stanza(header, e.args, std::span(age_uc(e.body.data()), e.body.size()));
    }
    std::array<unsigned char, age_wrapped_key_size> body{};
    if (keys.passphrase) {
        std::array<unsigned char, age_scrypt_salt_size> salt{};
        HSDK_TRYV(age_random(salt));
        SecretBytes<32> wrap_key;
        HSDK_TRYV(age_scrypt(AgeKeyAccess::passphrase(*keys.passphrase), salt, keys.scrypt_log2_work, wrap_key));
        HSDK_TRYV(age_wrap_file_key(wrap_key, file_key.bytes, body));
        age_append_stanza(header, {"scrypt", age_b64_encode(salt), std::to_string(keys.scrypt_log2_work)}, body);
    } else {
        for (const auto &r : keys.recipients) {
            SecretBytes<32> ephemeral;
            HSDK_TRYV(age_random(ephemeral.bytes));
            std::array<unsigned char, age_x25519_key_size> share{};
            HSDK_TRYV(age_x25519_public(ephemeral.bytes, share));
            SecretBytes<32> shared;
            HSDK_TRY(const bool ok, age_x25519_shared(ephemeral.bytes, r.public_key, shared));
            if (!ok)
                return fail(Errc::invalid_argument,
                            fmt::format("age recipient {} is not a usable X25519 key (a low-order point)", r.to_string()));
            std::array<unsigned char, 2 * age_x25519_key_size> salt{};
            std::memcpy(salt.data(), share.data(), share.size());
            std::memcpy(salt.data() + share.size(), r.public_key.data(), r.public_key.size());
            SecretBytes<32> wrap_key;
            HSDK_TRYV(age_hkdf(shared.bytes, salt, age_x25519_label, wrap_key.bytes));
            HSDK_TRYV(age_wrap_file_key(wrap_key, file_key.bytes, body));
            age_append_stanza(header, {"X25519", age_b64_encode(share)}, body);
        }
    }
    header += "---";
    std::array<unsigned char, age_mac_size> mac{};
    HSDK_TRYV(age_header_mac(file_key.bytes, age_bytes(header), mac));
    header += ' ';
    header += age_b64_encode(mac);
    header += '\n';

    std::array<unsigned char, age_payload_nonce_size> nonce{};
    HSDK_TRYV(age_random(nonce));
    SecretBytes<32> payload_key;
    HSDK_TRYV(age_payload_key(file_key.bytes, nonce, payload_key));
    auto state = std::make_unique<State>();
    HSDK_TRYV(state->stream.start(age_stream_format, {payload_key.bytes, {}, {}}, std::move(sink)));
    HSDK_TRYV(state->stream.emit(std::as_bytes(std::span(header))));
    HSDK_TRYV(state->stream.emit(std::as_bytes(std::span(nonce))));
    return AgeWriter(std::move(state));
}

Result<void> AgeWriter::write(std::span<const std::byte> data) {
    if (!state_) return fail(Errc::invalid_argument, "age: the writer was moved from");
    return state_->stream.write(data);
}

Result<void> AgeWriter::finish() {
    if (!state_) return fail(Errc::invalid_argument, "age: the writer was moved from");
    return state_->stream.finish();
}

bool AgeWriter::finished() const noexcept { return state_ && state_->stream.finished(); }
std::uint64_t AgeWriter::plaintext_bytes() const noexcept { return state_ ? state_->stream.plaintext_bytes() : 0; }
std::uint64_t AgeWriter::encrypted_bytes() const noexcept { return state_ ? state_->stream.emitted_bytes() : 0; }

// ---- reader ------------------------------------------------------------------------------------

struct AgeReader::State {
    AgeHeaderInfo info;
    StreamAeadReader stream;  // over the binary file (the decoded armor for an armored one)
};

AgeReader::AgeReader(std::unique_ptr<State> state) : state_(std::move(state)) {}
AgeReader::AgeReader(AgeReader &&) noexcept = default;
AgeReader &AgeReader::operator=(AgeReader &&) noexcept = default;
AgeReader::~AgeReader() = default;

Result<AgeReader> AgeReader::open_keys(std::span<const AgeIdentity> identities, const EncryptionKey *passphrase,
                                       EnvelopeReadAt read_at, std::uint64_t size) {
    HSDK_TRY(auto src, age_source(std::move(read_at), size));
    std::vector<unsigned char> raw;
    HSDK_TRY(auto header, age_read_header(src, raw));
    SecretBytes<age_file_key_size> file_key;
    HSDK_TRYV(age_unwrap(header, raw, identities, passphrase, file_key));

    auto state = std::make_unique<State>();
    state->info = age_info(header, src.armored);
    if (src.size < header.size + age_payload_nonce_size)
        return fail_corrupt("age file is truncated (it ends inside its payload nonce)");
    std::array<unsigned char, age_payload_nonce_size> nonce{};
    HSDK_TRYV(stream_aead_read_exact(age_stream_format, src.read_at, header.size, std::as_writable_bytes(std::span(nonce))));
    SecretBytes<32> payload_key;
    HSDK_TRYV(age_payload_key(file_key.bytes, nonce, payload_key));
    HSDK_TRYV(state->stream.open(age_stream_format, std::move(src.read_at), header.size + age_payload_nonce_size, src.size));
    // The final chunk now: the size is only trustworthy once it is authenticated as final.
    HSDK_TRYV(state->stream.unlock({payload_key.bytes, {}, {}}, state->stream.chunk_count() - 1));
    return AgeReader(std::move(state));
}

Result<AgeReader> AgeReader::open(const AgeDecryptKeys &keys, EnvelopeReadAt read_at, std::uint64_t size) {
    return open_keys(keys.identities, keys.passphrase ? &*keys.passphrase : nullptr, std::move(read_at), size);
}

Result<AgeReader> AgeReader::open_with_identities(const std::vector<AgeIdentity> &identities, EnvelopeReadAt read_at,
                                                  std::uint64_t size) {
    return open_keys(identities, nullptr, std::move(read_at), size);
}

Result<AgeReader> AgeReader::open_with_passphrase(const EncryptionKey &passphrase, EnvelopeReadAt read_at, std::uint64_t size) {
    return open_keys({}, &passphrase, std::move(read_at), size);
}

Result<AgeHeaderInfo> inspect_age_header(const EnvelopeReadAt &read_at, std::uint64_t size) {
    HSDK_TRY(auto src, age_source(read_at, size));
    std::vector<unsigned char> raw;
    HSDK_TRY(auto header, age_read_header(src, raw));
    return age_info(header, src.armored);
}

std::uint64_t AgeReader::plaintext_size() const noexcept { return state_ ? state_->stream.plaintext_size() : 0; }
std::uint64_t AgeReader::chunk_count() const noexcept { return state_ ? state_->stream.chunk_count() : 0; }
const AgeHeaderInfo &AgeReader::header() const noexcept { return state_->info; }

Result<std::size_t> AgeReader::read_at(std::uint64_t offset, std::span<std::byte> out) const {
    if (!state_) return fail(Errc::invalid_argument, "age: the reader was moved from");
    return state_->stream.read_at(offset, out);
}

Result<std::size_t> AgeReader::read_chunk(std::uint64_t index, std::span<std::byte> out) const {
    if (!state_) return fail(Errc::invalid_argument, "age: the reader was moved from");
    return state_->stream.read_chunk(index, out);
}

Result<void> AgeReader::verify_all() const {
    if (!state_) return fail(Errc::invalid_argument, "age: the reader was moved from");
    return state_->stream.verify_all();
}

// ---- whole files -------------------------------------------------------------------------------

Result<void> age_encrypt_file(const AgeEncryptKeys &keys, const std::string &in_path, const std::string &out_path,
                              bool overwrite) {
    return stream_aead_encrypt_file(in_path, out_path, overwrite,
                                    [&keys](EnvelopeSink sink) { return AgeWriter::create(keys, std::move(sink)); });
}

Result<void> age_decrypt_file(const AgeDecryptKeys &keys, const std::string &in_path, const std::string &out_path,
                              bool overwrite) {
    return stream_aead_decrypt_file(in_path, out_path, overwrite, [&keys](EnvelopeReadAt read_at, std::uint64_t size) {
        return AgeReader::open(keys, std::move(read_at), size);
    });
}

}  // namespace hypersdk::io
