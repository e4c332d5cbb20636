// OpenPGP encryption through GPGME and the installed GnuPG ("gpg" as an encryption method, next to
// our own "aes-256-gcm" envelope of io/encryption.hpp).
//
// Keys live in a GnuPG home (GNUPGHOME, ~/.gnupg or GpgOptions::home) and secret keys are used
// through gpg-agent: this module never sees a passphrase or a secret key, and prints none. Every
// call makes its own GPGME context (contexts are not thread-safe), so the functions may be called
// from several threads at once. Messages are binary OpenPGP (no armor) and integrity-protected
// (gpg always writes an MDC or AEAD message when it encrypts; decryption refuses messages without).
//
// Process-wide side effect: GPGME's initialisation (gpgme_check_version, made once on first use)
// sets SIGPIPE to be ignored, so that a gpg that exits early cannot kill the process through a
// pipe GPGME still writes into.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace hypersdk::io {

// Whether `first_bytes` (the start of a file) look like an OpenPGP message, so that the method can
// be recognised from a file's header without a key: either ASCII armor ("-----BEGIN PGP
// MESSAGE-----", after optional white space) or a binary message whose first packet, in the old or
// the new packet format, is one a message starts with: a public-key or symmetric-key encrypted
// session key (tags 1, 3), compressed data (8), literal data (11) or encrypted data (9, 18, 20).
// The packet's first body byte (its version, algorithm or format) is checked too, so it needs the
// first 7 bytes (the header with the longest length, plus that byte); it answers false when
// `first_bytes` end before that check could be made. A bare encrypted-data packet (tag 9) has no
// such byte: any non-empty one passes, so about one random file in fifty looks like OpenPGP, and
// literal or compressed data are plausible starts of other files too. Whoever recognises inputs
// by their first bytes should also want a session-key packet (tag 1 or 3) or armor first, as
// every encrypted message gpg writes has.
[[nodiscard]] bool looks_like_openpgp(std::span<const std::byte> first_bytes) noexcept;

struct GpgOptions {
    // The GnuPG home (GNUPGHOME) to use; empty: GPGME's default ($GNUPGHOME, else ~/.gnupg). The
    // gpg-agent of that home is started by gpg when a secret key is needed.
    std::string home;
    // Checked whenever data flows to or from gpg: a cancelled call ends with Errc::cancelled and
    // leaves no output. A gpg that waits on a pinentry dialog moves no data and is not interrupted.
    CancelToken cancel;
};

// Encrypts `in_path` to every recipient into `out_path`, as a binary OpenPGP message.
//
// A recipient is anything `gpg -r` accepts (key ID, fingerprint, "fingerprint!" for one subkey,
// user ID or a part of one) and must match exactly one key of the home that can encrypt (not
// revoked, expired, disabled or invalid, with such a subkey): an ambiguous or unknown recipient,
// or one without a usable key, fails with invalid_argument naming it, before gpg is asked to
// encrypt (gpg itself would pick one of several matches on its own). The keys need not be trusted:
// like `gpg --trust-model always` (GPGME_ENCRYPT_ALWAYS_TRUST), because who the recipients are is
// the caller's explicit choice, not something the web of trust is asked to vouch for. encrypt-to
// and default-recipient of gpg.conf are not applied (GPGME_ENCRYPT_NO_ENCRYPT_TO): the message is
// for exactly the keys gpg_resolve_recipients reports. gpg's preferences choose cipher and
// compression. No network is used (GPGME offline: no key is fetched).
//
// `in_path` is read sequentially (a pipe will do). `out_path` is written under a temporary name
// beside it (".NAME.hsdk-PID-RANDOM.part", flock'ed, like io/atomic_output's) that is flushed and
// renamed only on success, so on any failure nothing is left at `out_path` (nor a temporary).
// With overwrite false, an existing `out_path` fails with conflict. A symbolic link is followed
// (the file it names is replaced, the link stays); a folder, device, FIFO or socket is refused.
Result<void> gpg_encrypt_file(const std::vector<std::string> &recipients, const std::string &in_path,
                              const std::string &out_path, const GpgOptions &options, bool overwrite = true);

// Decrypts the OpenPGP message `in_path` (binary or armored) into `out_path` with whichever secret
// key of the home's gpg-agent opens it; a passphrase, if the key has one, is the agent's and its
// pinentry's business (a symmetric, passphrase-only message likewise).
//
// gpg checks a message's integrity only at its end, after it has handed out the plaintext: so the
// plaintext goes to a temporary created with mode 0600 beside `out_path` (same naming and rules
// as gpg_encrypt_file's; never readable by others, not even in passing) and is renamed into place
// only when GPGME reports success and the message was integrity protected (an MDC or AEAD,
// checked in the decrypt result). A message without is refused with corrupt_image even where gpg
// would decrypt it; so is one that fails its integrity check or is damaged after its session key
// (and one that starts like an encrypted message but yields nothing). A message for keys of which
// the home has no secret key fails with auth_failed (the error lists the message's key IDs), as
// do a session key that does not decrypt and a refused or wrong passphrase (a pinentry cancelled:
// cancelled); a file that holds no encrypted OpenPGP data, with invalid_argument. On failure
// nothing is left at `out_path`, and a file that was there is untouched.
Result<void> gpg_decrypt_file(const std::string &in_path, const std::string &out_path, const GpgOptions &options,
                              bool overwrite = true);

// Receives the encrypted message's bytes in order, as gpg produces them.
using GpgSink = std::function<Result<void>(std::span<const std::byte>)>;
// Fills the front of the span with the next plaintext bytes and returns how many; 0 at the end.
using GpgPlainReader = std::function<Result<std::size_t>(std::span<std::byte>)>;

// Encrypts the stream `read_plain` gives into `sink` (GPGME data callbacks), so an export can be
// encrypted while it is being written, without a plaintext or ciphertext file. Recipients and
// message as for gpg_encrypt_file. Both callbacks run on the calling thread, from inside GPGME;
// the first failure of either (or a cancellation) ends the call with that error. On failure the
// sink has received part of a message, which the caller must discard: only a successful return
// means the sink holds a whole one.
Result<void> gpg_encrypt_stream(const std::vector<std::string> &recipients, GpgPlainReader read_plain, GpgSink sink,
                                const GpgOptions &options);

// The fingerprints (of the primary keys, upper-case hex) of the keys the recipients resolve to,
// under the rules of gpg_encrypt_file, in the order given and without duplicates: what an export
// records to say which keys can open it. Fails like gpg_encrypt_file for a recipient that does not
// resolve to exactly one usable key; an empty list is invalid_argument.
Result<std::vector<std::string>> gpg_resolve_recipients(const std::vector<std::string> &recipients, const GpgOptions &options);

}  // namespace hypersdk::io
