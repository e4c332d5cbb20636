// Byte sources: what every format driver reads. A local file, a byte range of a file (a disk inside
// an OVA), an HTTP(S) object read with Range requests, or any source a provider or plugin supplies
// (a cloud block API) - the drivers cannot tell them apart.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk {

// A run of a source: `data` false means the source knows these bytes read as zeros (a hole of a
// sparse file, an unwritten page of a page blob), so nobody needs to fetch them.
struct ByteRun {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    bool data = true;
    friend bool operator==(const ByteRun &, const ByteRun &) = default;
};

class ByteSource {
public:
    virtual ~ByteSource() = default;
    // A name for messages: a path, or a URL without credentials, query or fragment.
    [[nodiscard]] virtual const std::string &name() const noexcept = 0;
    [[nodiscard]] virtual std::uint64_t size() const noexcept = 0;
    // Reads up to buf.size() bytes at `offset`; fewer only where the source ends (0 at or past its
    // end). Safe to call from several threads at once.
    virtual Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const = 0;
    // Runs covering exactly [offset, offset + length) (clipped to size()). The default knows
    // nothing: one data run.
    virtual Result<std::vector<ByteRun>> allocation(std::uint64_t offset, std::uint64_t length) const;
    // Bytes the source occupies where it is stored, when that is known.
    [[nodiscard]] virtual std::optional<std::uint64_t> allocated_size() const { return std::nullopt; }
    // What identifies the underlying object, to detect backing chains that loop: a canonical path,
    // a URL. Defaults to name().
    [[nodiscard]] virtual std::string identity() const { return name(); }
    // The format of the bytes when the platform says what they are (an EBS snapshot is a raw
    // volume); empty when the drivers must recognise it.
    [[nodiscard]] virtual std::string native_format() const { return {}; }
    // Where this source differs from `older`, when the platform can say without reading both (EBS
    // ListChangedBlocks between two snapshots of one volume): the changed byte runs, ascending.
    // An empty optional when it cannot (the caller compares contents instead).
    virtual Result<std::optional<std::vector<ByteRun>>> changes_since(const ByteSource &older) const;
    // Opens a file the image in this source names (backing file, VMDK extent, external data file).
    // Names resolve relative to this source's folder (a directory, or the URL's path) and, unless
    // `allow_external`, must stay inside it: no absolute name, no "..", no symlink out, no other
    // URL (OSSA-2024-001). `what` names the reference in messages ("backing file"). The default
    // refuses: a source that is not a file in a folder has no neighbours.
    virtual Result<std::shared_ptr<ByteSource>> open_reference(const std::string &reference, bool allow_external,
                                                               std::string_view what) const;

    // Reads exactly buf.size() bytes; a range crossing the end fails with corrupt_image naming the
    // offset (an image that points past its end is corrupt, not zero).
    Result<void> read_exact(std::uint64_t offset, std::span<std::byte> buf) const;
};

// How sources behind URLs are reached.
struct HttpSourceOptions {
    std::vector<std::string> headers;  // "Name: value", sent with every request (tokens, API keys)
    bool insecure = false;  // no TLS certificate check; also allows headers and URL credentials over http://
    std::string ca_file;    // PEM bundle trusted instead of the system store
    std::string thumbprint; // pin the server certificate's SHA-256 (hex, colons optional) instead
    unsigned max_attempts = 5;  // per request, counting the first; transient failures are retried
    unsigned timeout_seconds = 60;  // a request moving no byte this long (or not connected) is retried
    std::size_t cache_bytes = 32u << 20;  // bound of the read-ahead cache of small reads
    CancelToken cancel;
    // Called when the server answers 401 (an expired session or token): new headers to send
    // instead of `headers`, after which the request is tried again. Once per 401; not set: a
    // 401 is auth_failed.
    std::function<Result<std::vector<std::string>>()> refresh_headers;
    // Signs each request of an object store that wants every request signed (S3's SigV4, Azure
    // Storage's SharedKey): the headers to add, given the method, URL and the headers about to be
    // sent (the Range among them). Not a credential itself: allowed over http://.
    std::function<std::vector<std::string>(const std::string &method, const std::string &url, const std::vector<std::string> &headers)>
        sign;

    // ebs://SNAPSHOT_ID and s3://BUCKET/KEY: the AWS profile, region and endpoint. Empty: what
    // the AWS SDKs read (AWS_PROFILE, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL,
    // AWS_ENDPOINT_URL_EBS / _S3, ~/.aws/credentials and ~/.aws/config).
    std::string aws_profile, aws_region, aws_endpoint_url;
    unsigned block_requests = 64;  // ebs:// blocks fetched at once
    unsigned aws_max_attempts = 0;  // tries per AWS call; 0: twice max_attempts (throttling is normal at AWS)

    // gs://BUCKET/OBJECT: Cloud Storage at this URL (empty: $STORAGE_EMULATOR_HOST, else Google's),
    // the credentials file (empty: $GOOGLE_APPLICATION_CREDENTIALS, else the metadata server; none
    // needed by an emulator) and its token endpoint override.
    std::string gcp_storage_endpoint, gcp_credentials_file, gcp_token_uri;

    // Encrypted files (hypersdk's aes-256-gcm envelope, age, OpenPGP; docs/encryption.md; the
    // method recognised from the header) are read as their plaintext: aes-256-gcm with the key from
    // one of the first three, age with identity files (age-keygen's) or a passphrase, OpenPGP
    // through gpg's agent (gpg_home: its GNUPGHOME). An encrypted local file without its key fails
    // naming the flags. Remote sources are looked at only when a key is given; ebs:// never. Plain
    // files ignore them.
    std::string passphrase_file, passphrase_env, key_file;
    std::vector<std::string> identity_files;
    std::string gpg_home;
    // Compressed files (gzip, zstd, lz4 frames; recognised from their first bytes, after any
    // decryption; remote ones by the name's .gz, .zst or .lz4) are read as what they hold. Off:
    // read as they are.
    bool decompress = true;
};

// True for http:// and https:// locations (not ebs:// or s3://: see is_remote_location).
bool is_url(std::string_view location);
// True for every location that is not a local file: http(s)://, ebs://, s3://, gs://.
bool is_remote_location(std::string_view location);
// A location safe to print: URLs lose user:password@, query (signatures) and fragment.
std::string display_location(std::string_view location);

// Opens a local file, an http(s) URL (its size from the server; Range requests must be honoured),
// an EBS snapshot (ebs://snap-...) through the EBS direct APIs, an S3 object (s3://bucket/key) or a
// Cloud Storage object (gs://bucket/object). A *.tar.gz, *.tgz or *.tar location is read as a
// stream of the disk.raw it holds (a Compute Engine image export): forward, nothing stored.
Result<std::shared_ptr<ByteSource>> open_byte_source(const std::string &location, const HttpSourceOptions &http = {});

// Bytes [offset, offset + length) of another source, at offsets starting from 0; `name` names it.
// A window has no neighbours: references from an image inside it are refused.
Result<std::shared_ptr<ByteSource>> byte_source_window(std::shared_ptr<const ByteSource> base, std::uint64_t offset,
                                                       std::uint64_t length, std::string name);

}  // namespace hypersdk
