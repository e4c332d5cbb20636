#include "cloud/aws/sigv4.hpp"

#include "io/http.hpp"

#include <hypersdk/hash.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace hypersdk::cloud::aws {
namespace {

std::string hmac(std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char *>(data.data()),
         data.size(), out, &len);
    return std::string(reinterpret_cast<const char *>(out), len);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Header values: leading and trailing spaces removed, inner runs of spaces made one.
std::string trim_value(std::string_view v) {
    std::string out;
    bool space = false;
    for (char c : v) {
        if (c == ' ' || c == '\t') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    }
    return out;
}


struct UrlParts {
    std::string host;  // with :port when one is given
    std::string path;  // as given, "/" when empty
    std::string query;
};

UrlParts split_url(std::string_view url) {
    UrlParts p;
    const auto scheme = url.find("://");
    const auto host_start = scheme == std::string_view::npos ? 0 : scheme + 3;
    const auto path_start = url.find_first_of("/?", host_start);
    p.host = std::string(url.substr(host_start, path_start == std::string_view::npos ? std::string_view::npos : path_start - host_start));
    if (path_start == std::string_view::npos) {
        p.path = "/";
        return p;
    }
    const auto q = url.find('?', path_start);
    p.path = std::string(url.substr(path_start, q == std::string_view::npos ? std::string_view::npos : q - path_start));
    if (p.path.empty()) p.path = "/";
    if (q != std::string_view::npos) p.query = std::string(url.substr(q + 1));
    return p;
}

// Each path segment encoded (S3: once, as sent; other services: the encoded path encoded again).
std::string canonical_path(const std::string &path, bool s3) {
    std::string out;
    std::size_t i = 0;
    while (i < path.size()) {
        const auto slash = path.find('/', i);
        const auto seg = path.substr(i, slash == std::string::npos ? std::string::npos : slash - i);
        const std::string once = uri_encode(io::http::percent_decode(seg), false);
        out += s3 ? once : uri_encode(once, false);
        if (slash == std::string::npos) break;
        out += '/';
        i = slash + 1;
    }
    return out.empty() || out.front() != '/' ? "/" + out : out;
}

std::string canonical_query(const std::string &query) {
    std::vector<std::pair<std::string, std::string>> params;
    std::size_t i = 0;
    while (i <= query.size() && !query.empty()) {
        const auto amp = query.find('&', i);
        const std::string pair = query.substr(i, amp == std::string::npos ? std::string::npos : amp - i);
        if (!pair.empty()) {
            const auto eq = pair.find('=');
            const std::string k = io::http::percent_decode(pair.substr(0, eq), true);
            const std::string v = eq == std::string::npos ? "" : io::http::percent_decode(pair.substr(eq + 1), true);
            params.emplace_back(uri_encode(k, false), uri_encode(v, false));
        }
        if (amp == std::string::npos) break;
        i = amp + 1;
    }
    std::sort(params.begin(), params.end());
    std::string out;
    for (const auto &[k, v] : params) out += (out.empty() ? "" : "&") + k + "=" + v;
    return out;
}

}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) { return io::http::percent_encode(s, keep_slash); }

std::string hex_sha256(std::string_view data) { return sha256_hex(data); }

std::string amz_date(std::chrono::system_clock::time_point time) {
    const std::time_t t = std::chrono::system_clock::to_time_t(time);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

std::string canonical_request(const SignRequest &request, std::string &signed_headers) {
    const UrlParts url = split_url(request.url);
    std::vector<std::pair<std::string, std::string>> headers;
    bool has_host = false;
    for (const auto &[name, value] : request.headers) {
        headers.emplace_back(lower(name), trim_value(value));
        if (headers.back().first == "host") has_host = true;
    }
    if (!has_host) headers.emplace_back("host", url.host);
    std::sort(headers.begin(), headers.end());
    std::string canonical_headers;
    signed_headers.clear();
    for (const auto &[name, value] : headers) {
        canonical_headers += name + ":" + value + "\n";
        signed_headers += (signed_headers.empty() ? "" : ";") + name;
    }
    return fmt::format("{}\n{}\n{}\n{}\n{}\n{}", request.method, canonical_path(url.path, request.service == "s3"),
                       canonical_query(url.query), canonical_headers, signed_headers, request.payload_sha256);
}

std::vector<std::string> sign_v4(const SignRequest &request, const Credentials &credentials) {
    SignRequest r = request;
    const std::string date_time = amz_date(r.time);
    const std::string date = date_time.substr(0, 8);
    r.headers.emplace_back("x-amz-date", date_time);
    if (r.service == "s3") r.headers.emplace_back("x-amz-content-sha256", r.payload_sha256);
    if (!credentials.session_token.empty()) r.headers.emplace_back("x-amz-security-token", credentials.session_token);
    std::string signed_headers;
    const std::string creq = canonical_request(r, signed_headers);
    const std::string scope = fmt::format("{}/{}/{}/aws4_request", date, r.region, r.service);
    const std::string to_sign = fmt::format("AWS4-HMAC-SHA256\n{}\n{}\n{}", date_time, scope, hex_sha256(creq));
    std::string key = hmac("AWS4" + credentials.secret_access_key, date);
    key = hmac(key, r.region);
    key = hmac(key, r.service);
    key = hmac(key, "aws4_request");
    const std::string sig = hmac(key, to_sign);
    std::vector<std::string> out;
    out.push_back(fmt::format("Authorization: AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}",
                              credentials.access_key_id, scope, signed_headers,
                              to_hex({reinterpret_cast<const std::uint8_t *>(sig.data()), sig.size()})));
    out.push_back("X-Amz-Date: " + date_time);
    if (r.service == "s3") out.push_back("X-Amz-Content-Sha256: " + r.payload_sha256);
    if (!credentials.session_token.empty()) out.push_back("X-Amz-Security-Token: " + credentials.session_token);
    return out;
}

}  // namespace hypersdk::cloud::aws
