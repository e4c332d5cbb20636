#include "service/secret_box.hpp"

#include "core/base64.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace hypersdk::service {
namespace {

constexpr std::size_t box_nonce_bytes = 12, box_tag_bytes = 16;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

Result<SecretBox> SecretBox::open(const std::string &key_file) {
    SecretBox box;
    if (key_file.empty()) {
        if (RAND_bytes(box.key_.data(), static_cast<int>(box.key_.size())) != 1) return fail(Errc::internal, "no random bytes for the credential key");
        return box;
    }
    int fd = ::open(key_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (RAND_bytes(box.key_.data(), static_cast<int>(box.key_.size())) != 1) return fail(Errc::internal, "no random bytes for the credential key");
        // O_EXCL: two daemons starting at once must not each write a different key.
        const std::string tmp = key_file + ".tmp";
        int w = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (w < 0) return fail(Errc::io_error, "cannot create credential key file " + tmp + ": " + std::strerror(errno));
        const bool ok = ::write(w, box.key_.data(), box.key_.size()) == static_cast<ssize_t>(box.key_.size()) && ::fsync(w) == 0;
        ::close(w);
        if (!ok || ::link(tmp.c_str(), key_file.c_str()) != 0) {
            ::unlink(tmp.c_str());
            if (errno != EEXIST) return fail(Errc::io_error, "cannot write credential key file " + key_file + ": " + std::strerror(errno));
        } else {
            ::unlink(tmp.c_str());
            return box;
        }
        fd = ::open(key_file.c_str(), O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) return fail(Errc::io_error, "cannot read credential key file " + key_file + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
        ::close(fd);
        return fail(Errc::permission_denied, "credential key file " + key_file + " is readable by others (chmod 600 it)");
    }
    const auto n = ::read(fd, box.key_.data(), box.key_.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(box.key_.size())) return fail(Errc::corrupt_image, "credential key file " + key_file + " is not 32 bytes");
    return box;
}

Result<std::string> SecretBox::seal(const nlohmann::json &secret) const {
    if (secret.is_null()) return std::string();
    const std::string plain = secret.dump();
    std::string out(box_nonce_bytes + box_tag_bytes + plain.size(), '\0');
    auto *nonce = reinterpret_cast<unsigned char *>(out.data());
    auto *tag = nonce + box_nonce_bytes;
    auto *ct = tag + box_tag_bytes;
    if (RAND_bytes(nonce, box_nonce_bytes) != 1) return fail(Errc::internal, "no random bytes for a nonce");
    CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    int len = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) != 1 ||
        EVP_EncryptUpdate(ctx.get(), ct, &len, reinterpret_cast<const unsigned char *>(plain.data()), static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, box_tag_bytes, tag) != 1)
        return fail(Errc::internal, "cannot seal a credential");
    return "v1." + core::base64_encode(out);
}

Result<nlohmann::json> SecretBox::unseal(const std::string &sealed) const {
    if (sealed.empty()) return nlohmann::json();
    if (!sealed.starts_with("v1.")) return fail(Errc::corrupt_image, "sealed credential of an unknown version");
    const auto raw = core::base64_decode(std::string_view(sealed).substr(3));
    if (!raw || raw->size() < box_nonce_bytes + box_tag_bytes) return fail(Errc::corrupt_image, "sealed credential is damaged");
    const auto *nonce = reinterpret_cast<const unsigned char *>(raw->data());
    const auto *tag = nonce + box_nonce_bytes;
    const auto *ct = tag + box_tag_bytes;
    const auto ct_len = raw->size() - box_nonce_bytes - box_tag_bytes;
    std::string plain(ct_len, '\0');
    CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    int len = 0;
    if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), nonce) != 1 ||
        EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char *>(plain.data()), &len, ct, static_cast<int>(ct_len)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, box_tag_bytes, const_cast<unsigned char *>(tag)) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char *>(plain.data()) + len, &len) != 1)
        return fail(Errc::auth_failed, "sealed credential does not open with this key file (was the key file replaced?)");
    auto value = nlohmann::json::parse(plain, nullptr, false);
    if (value.is_discarded()) return fail(Errc::corrupt_image, "sealed credential is damaged");
    return value;
}

}  // namespace hypersdk::service
