// Edge validation of what peers send: keys and values over this node's
// limits are refused in every call and answer that carries one, and
// everything within them passes.
#include "core/validate.h"

#include <gtest/gtest.h>

#include <string>

namespace replicator::core {
namespace {

const Limits kLimits{8, 16};  // keys 1..8 bytes, values 0..16
const ProposalId kP{"12D3KooWc", 1, 1, 0, 1};

TEST(ValidateTest, PeerCallsCarryingKeysOrValuesOverTheLimitsAreRefused) {
  const std::string big_key(9, 'k');
  const std::string big_value(17, 'v');
  const struct {
    Request request;
    const char* names;  // in the reason; empty: accepted
  } cases[] = {
      {HandleRequest{ReserveOp{"key", "value", kP, 1, 1}}, ""},
      {HandleRequest{ReserveOp{big_key, "value", kP, 1, 1}}, "key is 9 bytes"},
      {HandleRequest{ReserveOp{"key", big_value, kP, 1, 1}}, "value is 17 bytes"},
      {HandleRequest{ReserveOp{"", "value", kP, 1, 1}}, "key is empty"},
      {HandleRequest{CommitOp{"key", big_value, kP, 1}}, "value is 17 bytes"},
      {HandleRequest{AbortOp{big_key, kP}}, "key is 9 bytes"},
      {ForwardRequest{ReserveOp{big_key, "v", kP, 1, 1}, 500}, "key is 9 bytes"},
      {HandleRequest{ReserveOp{"key", "v", ProposalId{}, 1, 1}}, "no coordinator"},
      {ReadRequest{big_key, 1}, "key is 9 bytes"},
      {ReadRequest{"key", 1}, ""},
      {PullRequest{3, big_key, 1 << 20}, "key is 9 bytes"},
      {PullRequest{3, "", 1 << 20}, ""},
      {AcceptRequest{ProposalId{}, Ballot{}, Decision::kAbort, ""}, "no coordinator"},
      {ResolveRequest{kP, ""}, ""},
      {ResolveRequest{kP, "key"}, ""},
      {ResolveRequest{kP, big_key}, "key is 9 bytes"},
      {PrepareRequest{kP, Ballot{1, "a"}, big_key}, "key is 9 bytes"},
      {AcceptRequest{kP, Ballot{1, "a"}, Decision::kAbort, big_key}, "key is 9 bytes"},
      {AcceptRequest{kP, Ballot{1, "a"}, Decision::kAbort, "key"}, ""},
  };
  for (const auto& c : cases) {
    std::optional<std::string> why = ValidateRequest(kLimits, c.request);
    if (std::string(c.names).empty()) {
      EXPECT_FALSE(why.has_value()) << *why;
    } else {
      ASSERT_TRUE(why.has_value()) << c.names;
      EXPECT_NE(why->find(c.names), std::string::npos) << *why;
    }
  }
}

TEST(ValidateTest, PeerAnswersCarryingKeysOrValuesOverTheLimitsAreRefused) {
  Vote stored;
  stored.kind = Vote::Kind::kStored;
  stored.stored = std::string(17, 'v');
  EXPECT_TRUE(ValidateResponse(kLimits, HandleResponse{stored}).has_value());
  EXPECT_TRUE(ValidateResponse(kLimits, ForwardResponse{{Vote{}, stored}, {}}).has_value());
  stored.stored = "ok";
  EXPECT_FALSE(ValidateResponse(kLimits, HandleResponse{stored}).has_value());

  PullResponse pulled;
  pulled.entries = {{"k", "v", 1, {}}, {std::string(9, 'k'), "v", 2, {}}};
  ASSERT_TRUE(ValidateResponse(kLimits, pulled).has_value());
  pulled.entries.pop_back();
  EXPECT_FALSE(ValidateResponse(kLimits, pulled).has_value());
  pulled.entries.push_back({"", "v", 3, {}});
  EXPECT_TRUE(ValidateResponse(kLimits, pulled).has_value()) << "an empty key";

  DigestResponse digest;
  digest.buckets.assign(kDigestBuckets, 0);
  EXPECT_FALSE(ValidateResponse(kLimits, digest).has_value());
  Reservation r;
  r.key = "k";
  r.value = std::string(17, 'v');
  digest.reservations.push_back(r);
  EXPECT_TRUE(ValidateResponse(kLimits, digest).has_value());
  digest.reservations.clear();
  digest.buckets.pop_back();
  ASSERT_TRUE(ValidateResponse(kLimits, digest).has_value());
  EXPECT_NE(ValidateResponse(kLimits, digest)->find("4095 buckets"), std::string::npos);

  ReadResponse read;
  read.kind = ReadResponse::Kind::kCommitted;
  read.value = std::string(17, 'v');
  EXPECT_TRUE(ValidateResponse(kLimits, read).has_value());
  EXPECT_FALSE(ValidateResponse(kLimits, Unreachable{"x"}).has_value());
}

}  // namespace
}  // namespace replicator::core
