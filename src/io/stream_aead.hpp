// The STREAM construction (Hoang, Reyhanitabar, Rogaway and Vizár, 2015) that both encryption
// formats seal their payload with: hypersdk's "aes-256-gcm" envelope (io/encryption) and age v1
// (io/age). One implementation of it, so a fix to either format's chunk handling reaches both.
//
//   payload = chunk 0 || chunk 1 || ... || chunk n-1      (after the format's own header)
//   chunk i = AEAD(key, nonce = prefix || i (big-endian) || last (1 byte), aad) as ciphertext || tag
//             (16 bytes); every chunk but the last holds exactly 64 KiB of plaintext
//
// The nonce binds each chunk to its position and to whether it is the last, so chunks cannot be
// reordered, dropped or appended unnoticed, and any chunk can still be authenticated and decrypted
// on its own (random access). The formats differ in the cipher, the nonce prefix, the associated
// data, where the payload starts and how their errors read (StreamAeadFormat, StreamAeadKey); their
// headers and key derivation stay with them. Also here, because both formats need them alike: the
// OpenSSL helpers (wiped secrets, scrypt, HKDF, random bytes, one AEAD operation), reading a small
// secret file, and whole-file encrypt/decrypt through io/atomic_output.
#pragma once

#include "io/atomic_output.hpp"

#include <hypersdk/error.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

namespace hypersdk::io {

inline constexpr std::size_t stream_aead_chunk_size = 65536;  // plaintext bytes of every chunk but the last
inline constexpr std::size_t stream_aead_tag_size = 16;
inline constexpr std::size_t stream_aead_sealed_chunk_size = stream_aead_chunk_size + stream_aead_tag_size;
inline constexpr std::size_t stream_aead_key_size = 32;
inline constexpr std::size_t stream_aead_nonce_size = 12;  // prefix || counter || last flag

// The same types as EnvelopeSink and EnvelopeReadAt (io/encryption.hpp), which both formats take.
using StreamAeadSink = std::function<Result<void>(std::span<const std::byte>)>;
using StreamAeadReadAt = std::function<Result<std::size_t>(std::uint64_t offset, std::span<std::byte> out)>;

// What the formats detect alike but word in their own terms (StreamAeadFormat::error). `n` is the
// number the message names, where there is one.
enum class StreamAeadFault {
    writer_failed,     // a writer call after a failure
    writer_finished,   // a writer call after finish()
    too_large,         // the counter cannot number another chunk (n: its index)
    ends_early,        // the file ends before byte n that its size promised
    no_chunk,          // the payload is shorter than a tag (n: its size)
    partial_tag,       // the payload's last n bytes are shorter than a tag
    empty_last_chunk,  // an empty last chunk after full ones, where the format forbids it
    too_many_chunks,   // n chunks are more than the counter numbers
    last_missing,      // the last chunk verifies as not last: the file was cut at a chunk boundary
    data_after_last,   // chunk n verifies as last but more follows: chunks were appended
    bad_chunk,         // chunk n verifies in neither role: damaged, reordered or a wrong key
};

// What tells one format's STREAM from another's (a constant of each format).
struct StreamAeadFormat {
    std::string_view context;  // "encryption": starts the messages of misuse and of OpenSSL failures
    const char *cipher;        // OpenSSL's name of the AEAD; 32-byte key, 12-byte nonce, 16-byte tag
    std::size_t nonce_prefix_size;  // the counter takes the 11 - nonce_prefix_size bytes after it
    bool empty_last_chunk_after_full;  // whether readers accept one (no writer makes one)
    // The format's words for a fault: its messages stay its own (docs and tests quote them).
    Error (*error)(StreamAeadFault fault, std::uint64_t n);

    // How many chunks the counter numbers (2^32 for a 4-byte counter; "unlimited" from 8 bytes on).
    [[nodiscard]] constexpr std::uint64_t max_chunks() const noexcept {
        const std::size_t counter_bits = 8 * (stream_aead_nonce_size - 1 - nonce_prefix_size);
        return counter_bits >= 64 ? std::numeric_limits<std::uint64_t>::max() : std::uint64_t{1} << counter_bits;
    }
};

// One file's keys; the spans are copied, so they need to live only through the call taking them.
struct StreamAeadKey {
    std::span<const unsigned char, stream_aead_key_size> key;
    std::span<const unsigned char> nonce_prefix;  // format.nonce_prefix_size bytes
    std::span<const unsigned char> aad;           // associated data of every chunk; may be empty
};

namespace stream_aead_detail {

// N secret bytes that are wiped when they go out of scope.
template <std::size_t N>
struct SecretBytes {
    std::array<unsigned char, N> bytes{};
    SecretBytes() = default;
    SecretBytes(const SecretBytes &) = delete;
    SecretBytes &operator=(const SecretBytes &) = delete;
    ~SecretBytes() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

struct CipherFree {
    void operator()(EVP_CIPHER *c) const noexcept { EVP_CIPHER_free(c); }
};
struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX *c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherPtr = std::unique_ptr<EVP_CIPHER, CipherFree>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// OpenSSL's `name` AEAD; `context` starts the error when it has none.
Result<CipherPtr> fetch_cipher(std::string_view context, const char *name);
// A new cipher context, or no_memory.
Result<CipherCtxPtr> new_cipher_ctx(std::string_view context);
Result<void> random_bytes(std::string_view context, std::span<unsigned char> out);
// HKDF-SHA256 (extract with `salt`, empty for HKDF's default; expand with `info`) into `out`.
Result<void> hkdf_sha256(std::string_view context, std::span<const unsigned char> ikm, std::span<const unsigned char> salt,
                         std::string_view info, std::span<unsigned char> out);
// scrypt with N = 2^log2_n; the costs must have been checked (memory grows as r * N).
Result<void> scrypt(std::string_view context, std::span<const unsigned char> passphrase, std::span<const unsigned char> salt,
                    unsigned log2_n, std::uint32_t r, std::uint32_t p, std::span<unsigned char> out);

// One AEAD operation (no associated data when `aad` is empty). seal: `out` (plain.size() + 16
// bytes) gets ciphertext || tag. open: `sealed` is ciphertext || tag (at least 16 bytes), `out` at
// least sealed.size() - 16 bytes; false when authentication fails, and `out` then holds garbage
// that the caller must wipe and never release.
bool aead_seal(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, std::span<const unsigned char, stream_aead_key_size> key,
               std::span<const unsigned char, stream_aead_nonce_size> nonce, std::span<const unsigned char> aad,
               std::span<const std::byte> plain, std::span<std::byte> out);
bool aead_open(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, std::span<const unsigned char, stream_aead_key_size> key,
               std::span<const unsigned char, stream_aead_nonce_size> nonce, std::span<const unsigned char> aad,
               std::span<const std::byte> sealed, std::span<std::byte> out);

// The whole (small) file at `path` (a passphrase, a key, identities): more than `limit` bytes is
// invalid_argument, errors name it as `what`. No copy of its bytes is left unwiped; `st` (if
// given) gets its fstat.
Result<std::vector<unsigned char>> read_small_file(const std::string &path, std::size_t limit, std::string_view what,
                                                   struct stat *st = nullptr);

// A file's chunk AEAD: the cipher, the key, the nonce prefix and the associated data.
class ChunkAead {
public:
    Result<void> init(const StreamAeadFormat &format, const StreamAeadKey &key);
    bool seal(EVP_CIPHER_CTX *ctx, std::uint64_t index, bool last, std::span<const std::byte> plain,
              std::span<std::byte> out) const;
    bool open(EVP_CIPHER_CTX *ctx, std::uint64_t index, bool last, std::span<const std::byte> sealed,
              std::span<std::byte> out) const;

private:
    [[nodiscard]] std::array<unsigned char, stream_aead_nonce_size> nonce(std::uint64_t index, bool last) const noexcept;
    CipherPtr cipher_;
    SecretBytes<stream_aead_key_size> key_;
    std::array<unsigned char, stream_aead_nonce_size> prefix_{};  // the prefix, then zeros
    std::size_t prefix_size_ = 0;
    std::vector<unsigned char> aad_;
};

inline constexpr std::size_t cache_entries = 4;  // decrypted chunks a reader keeps
struct CacheEntry {
    std::uint64_t index = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t last_used = 0;
    std::vector<std::byte> data;  // the chunk's plaintext
};

}  // namespace stream_aead_detail

// Seals a plaintext stream into chunks. Not thread-safe (one producer). After a failure (a sink
// error included) every further call fails.
class StreamAeadWriter {
public:
    StreamAeadWriter() = default;
    StreamAeadWriter(const StreamAeadWriter &) = delete;
    StreamAeadWriter &operator=(const StreamAeadWriter &) = delete;
    ~StreamAeadWriter();

    // Before any other call: chunks will be sealed with `key`; every byte goes to `sink`.
    Result<void> start(const StreamAeadFormat &format, const StreamAeadKey &key, StreamAeadSink sink);
    // Hands bytes of the format's own (its header) to the sink, before the first chunk.
    Result<void> emit(std::span<const std::byte> bytes);
    Result<void> write(std::span<const std::byte> data);
    // Seals the last chunk (flagged as last): a file whose writer never finished lacks it, and
    // every reader reports it as truncated.
    Result<void> finish();

    [[nodiscard]] bool finished() const noexcept { return finished_; }
    [[nodiscard]] std::uint64_t plaintext_bytes() const noexcept { return plaintext_; }
    [[nodiscard]] std::uint64_t emitted_bytes() const noexcept { return emitted_; }

private:
    Result<void> seal_chunk(std::span<const std::byte> plain, bool last);
    Result<void> usable() const;
    const StreamAeadFormat *format_ = nullptr;
    StreamAeadSink sink_;
    stream_aead_detail::ChunkAead aead_;
    stream_aead_detail::CipherCtxPtr ctx_;
    std::vector<std::byte> pending_;  // plaintext not sealed yet (at most one chunk)
    std::vector<std::byte> sealed_;   // one sealed chunk
    std::uint64_t counter_ = 0;       // index of the next chunk
    std::uint64_t plaintext_ = 0;
    std::uint64_t emitted_ = 0;
    bool finished_ = false;
    bool failed_ = false;
};

// Random access to the plaintext of a payload. Every chunk is authenticated (its tag, its position
// and whether it is the last) before any of its bytes reach the caller. Thread-safe once unlocked:
// a small cache of decrypted chunks sits behind a mutex.
class StreamAeadReader {
public:
    StreamAeadReader() = default;
    StreamAeadReader(const StreamAeadReader &) = delete;
    StreamAeadReader &operator=(const StreamAeadReader &) = delete;
    ~StreamAeadReader();

    // Works out the chunks from the size of the file behind `read_at` (its payload runs from
    // `payload_offset` to `size`). Needs no key: a cut or extended file fails before a slow key
    // derivation would run.
    Result<void> open(const StreamAeadFormat &format, StreamAeadReadAt read_at, std::uint64_t payload_offset,
                      std::uint64_t size);
    // Keys the reader and authenticates chunk `check` now (keeping it cached), so that open fails
    // on a wrong key (chunk 0) or can trust the size (the last chunk).
    Result<void> unlock(const StreamAeadKey &key, std::uint64_t check);

    [[nodiscard]] std::uint64_t plaintext_size() const noexcept { return plaintext_; }
    [[nodiscard]] std::uint64_t chunk_count() const noexcept { return chunks_; }

    // As EnvelopeReader's and AgeReader's (io/encryption.hpp, io/age.hpp).
    Result<std::size_t> read_at(std::uint64_t offset, std::span<std::byte> out) const;
    Result<std::size_t> read_chunk(std::uint64_t index, std::span<std::byte> out) const;
    Result<void> verify_all() const;

private:
    [[nodiscard]] std::size_t chunk_length(std::uint64_t index) const noexcept {
        return index + 1 == chunks_ ? last_length_ : stream_aead_chunk_size;
    }
    // The length of chunk `index`, if it exists and `out_size` bytes hold it.
    Result<std::size_t> fitting_length(std::uint64_t index, std::size_t out_size) const;
    Result<std::size_t> decrypt(std::uint64_t index, std::span<std::byte> out) const;
    bool from_cache(std::uint64_t index, std::size_t from, std::span<std::byte> out) const;
    void to_cache(std::uint64_t index, std::span<const std::byte> plain) const;

    const StreamAeadFormat *format_ = nullptr;
    StreamAeadReadAt read_at_;
    stream_aead_detail::ChunkAead aead_;
    std::uint64_t payload_offset_ = 0;  // first byte of chunk 0
    std::uint64_t chunks_ = 0;
    std::size_t last_length_ = 0;  // plaintext bytes of the last chunk
    std::uint64_t plaintext_ = 0;

    mutable std::mutex cache_mutex_;
    mutable std::array<stream_aead_detail::CacheEntry, stream_aead_detail::cache_entries> cache_;
    mutable std::uint64_t cache_clock_ = 0;
};

// Reads exactly out.size() bytes at `offset` (retrying short reads); the end of the file before
// that is the format's ends_early.
Result<void> stream_aead_read_exact(const StreamAeadFormat &format, const StreamAeadReadAt &read_at, std::uint64_t offset,
                                    std::span<std::byte> out);

// ---- whole files -----------------------------------------------------------------------------

// The input and the output of a whole-file encryption or decryption (see the two functions below).
class StreamAeadFiles {
public:
    StreamAeadFiles() = default;
    StreamAeadFiles(const StreamAeadFiles &) = delete;
    StreamAeadFiles &operator=(const StreamAeadFiles &) = delete;
    ~StreamAeadFiles();

    // Anything readable; with `need_size` a regular file (a reader needs the size of its input).
    Result<void> open_input(const std::string &path, bool need_size);
    [[nodiscard]] std::uint64_t input_size() const noexcept { return in_size_; }
    [[nodiscard]] StreamAeadReadAt input_reader() const;
    // `error` as met while decrypting the input (the message names it).
    [[nodiscard]] Error decrypting(const Error &error) const;

    // Through io/atomic_output (see encrypt_file); `plaintext` makes it readable by its owner only.
    Result<void> create_output(const std::string &path, bool overwrite, bool plaintext);
    // Appends to the output.
    [[nodiscard]] StreamAeadSink output_sink();
    // The whole input to `write`, in 1 MiB pieces (wiped afterwards).
    Result<void> copy_input(const StreamAeadSink &write);
    // Chunks 0..count-1, as read_chunk gives them (authenticated), to the output.
    using StreamAeadReadChunk = std::function<Result<std::size_t>(std::uint64_t index, std::span<std::byte> out)>;
    Result<void> write_chunks(std::uint64_t count, const StreamAeadReadChunk &read_chunk);
    // Flushes the output and renames it into place.
    Result<void> commit();

private:
    Result<void> append(std::span<const std::byte> bytes);
    int in_fd_ = -1;
    std::string in_path_;
    std::uint64_t in_size_ = 0;
    AtomicOutputSet outputs_;
    File *out_ = nullptr;
    std::uint64_t written_ = 0;
};

// encrypt_file and age_encrypt_file: `create(sink)` makes the format's writer (EnvelopeWriter,
// AgeWriter), which the whole of `in_path` is written to.
template <class CreateWriter>
Result<void> stream_aead_encrypt_file(const std::string &in_path, const std::string &out_path, bool overwrite,
                                      CreateWriter &&create) {
    StreamAeadFiles files;
    HSDK_TRYV(files.open_input(in_path, false));
    HSDK_TRYV(files.create_output(out_path, overwrite, false));
    HSDK_TRY(auto writer, create(files.output_sink()));
    HSDK_TRYV(files.copy_input([&writer](std::span<const std::byte> bytes) { return writer.write(bytes); }));
    HSDK_TRYV(writer.finish());
    return files.commit();
}

// decrypt_file and age_decrypt_file: `open(read_at, size)` opens the format's reader (EnvelopeReader,
// AgeReader) on `in_path`, before the output is created; each chunk is authenticated before a
// byte of it is written.
template <class OpenReader>
Result<void> stream_aead_decrypt_file(const std::string &in_path, const std::string &out_path, bool overwrite,
                                      OpenReader &&open) {
    StreamAeadFiles files;
    HSDK_TRYV(files.open_input(in_path, true));
    auto reader = open(files.input_reader(), files.input_size());
    if (!reader) return fail(files.decrypting(reader.error()));
    HSDK_TRYV(files.create_output(out_path, overwrite, true));
    const auto &r = reader.value();
    HSDK_TRYV(files.write_chunks(r.chunk_count(),
                                 [&r](std::uint64_t index, std::span<std::byte> out) { return r.read_chunk(index, out); }));
    return files.commit();  // on a failure `files` removes the temporary
}

}  // namespace hypersdk::io
