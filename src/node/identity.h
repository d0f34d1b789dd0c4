// Peer identity: the node's Ed25519 key pair, kept in its data dir, and the
// libp2p-style peer id derived from the public key. Plain functions with no
// shared state; thread-safe (each call does its own file I/O).
//
//   absl::StatusOr<Identity> id = LoadOrCreateIdentity("/var/lib/replicatord");
//   // id->peer_id == "12D3KooW...", stable across restarts of this data dir.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace replicator::node {

struct Identity {
  std::string peer_id;     // base58btc text, "12D3KooW..." (see PeerIdFromPublicKey)
  std::string public_key;  // 32 raw Ed25519 public key bytes
};

// File name of the key inside the data dir.
inline constexpr std::string_view kIdentityKeyFile = "identity.key";

// Loads the Ed25519 private key from `data_dir`/identity.key (PKCS#8 PEM) or,
// when the file does not exist, creates it (mode 0600, and the dir if
// needed). Creation is atomic: a fully written temp file is linked into
// place, so a crash never leaves a partial key and two racing starts agree on
// one key. An existing file is never replaced. Errors name the file:
// PermissionDeniedError when it cannot be read, DataLossError when it is not
// a PEM private key, FailedPreconditionError when it holds a key other than
// Ed25519.
absl::StatusOr<Identity> LoadOrCreateIdentity(const std::string& data_dir);

// The peer id of a 32-byte Ed25519 public key, as libp2p prints it:
// base58btc(multihash identity(protobuf PublicKey{Type=Ed25519, Data=key})),
// i.e. of the bytes 00 24 08 01 12 20 <key>. InvalidArgumentError if
// `public_key` is not 32 bytes.
absl::StatusOr<std::string> PeerIdFromPublicKey(std::string_view public_key);

// The inverse: the 32-byte public key inside an Ed25519 peer id.
// InvalidArgumentError if `peer_id` is not base58 or not that shape.
absl::StatusOr<std::string> PublicKeyFromPeerId(std::string_view peer_id);

// Bitcoin-alphabet base58 (base58btc); each leading zero byte is one '1'.
std::string Base58Encode(std::string_view bytes);
// InvalidArgumentError naming the first character outside the alphabet.
absl::StatusOr<std::string> Base58Decode(std::string_view text);

}  // namespace replicator::node
