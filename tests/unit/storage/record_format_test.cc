// Record encoding: round trips, and every damaged input decodes to a
// DataLossError naming the record, never a crash.
#include "storage/record_format.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace replicator::storage::internal {
namespace {

core::ProposalId Proposal(std::string coordinator, uint64_t incarnation, uint64_t sequence) {
  core::ProposalId p;
  p.coordinator = std::move(coordinator);
  p.incarnation = incarnation;
  p.sequence = sequence;
  p.started_ms = 1234567;
  p.epoch = 300;  // two varint bytes
  return p;
}

core::Reservation SampleReservation() {
  core::Reservation r;
  r.key = std::string("key\0with\xffnul", 12);
  r.proposal = Proposal("12D3KooWcoordinator", 7, ~uint64_t{0});
  r.value = std::string(300, 'v');  // length needs a two-byte varint
  r.request_id = 0xfeedfacecafebeefULL;
  r.since = 99;
  return r;
}

core::Configuration SampleConfig() {
  return core::Configuration{"eu-west.1", 300, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}, 7};
}

core::ConfigAcceptorRecord SampleConfigAcceptor(bool accepted) {
  core::ConfigAcceptorRecord r;
  r.cluster = "eu-west.1";
  r.epoch = 4;
  r.promised = core::Ballot{9, "12D3KooWproposer"};
  if (accepted) {
    r.accepted = core::ConfigAccepted{core::Ballot{8, "12D3KooWother"},
                                      {"12D3KooWa", "12D3KooWb", "12D3KooWc", "12D3KooWd"}};
  }
  return r;
}

// The proposal as format 2 wrote it (record version 1): no epoch.
void PutVersion1Proposal(std::string* out, const core::ProposalId& p) {
  PutLengthPrefixed(out, p.coordinator);
  PutVarint64(out, p.incarnation);
  PutVarint64(out, p.sequence);
  PutVarint64(out, p.started_ms);
}

core::AcceptorRecord SampleAcceptor(bool accepted) {
  core::AcceptorRecord a;
  a.proposal = Proposal("12D3KooWcoordinator", 3, 128);
  a.promised = core::Ballot{5, "12D3KooWproposer"};
  if (accepted)
    a.accepted = core::AcceptedValue{core::Ballot{4, "12D3KooWother"}, core::Decision::kCommit};
  return a;
}

TEST(RecordFormatTest, VarintRoundTripsBoundaries) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{16383},
                     uint64_t{16384}, uint64_t{1} << 63, ~uint64_t{0}}) {
    std::string bytes;
    PutVarint64(&bytes, v);
    Reader in(bytes);
    uint64_t out = 0;
    ASSERT_TRUE(in.ReadVarint64("v", &out)) << in.error();
    EXPECT_EQ(out, v);
    EXPECT_TRUE(in.ExpectEnd());
  }
}

TEST(RecordFormatTest, VarintRejectsOverflow) {
  // Ten bytes whose last carries more than the 64th bit.
  std::string bytes(9, '\xff');
  bytes.push_back('\x02');
  Reader in(bytes);
  uint64_t out = 0;
  EXPECT_FALSE(in.ReadVarint64("v", &out));
  EXPECT_NE(in.error().find("overflow"), std::string::npos) << in.error();
}

TEST(RecordFormatTest, ReservationRoundTripsWithoutSince) {
  const core::Reservation r = SampleReservation();
  absl::StatusOr<core::Reservation> out =
      DecodeReservation(ReservationKey(r.key), EncodeReservation(r));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->key, r.key);
  EXPECT_EQ(out->proposal, r.proposal);
  EXPECT_EQ(out->proposal.started_ms, r.proposal.started_ms);
  EXPECT_EQ(out->proposal.epoch, r.proposal.epoch);
  EXPECT_EQ(out->value, r.value);
  EXPECT_EQ(out->request_id, r.request_id);
  EXPECT_EQ(out->since, 0);
}

TEST(RecordFormatTest, AcceptorRoundTrips) {
  for (bool accepted : {false, true}) {
    const core::AcceptorRecord a = SampleAcceptor(accepted);
    absl::StatusOr<core::AcceptorRecord> out =
        DecodeAcceptor(AcceptorKey(a.proposal), EncodeAcceptor(a));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->proposal, a.proposal);
    EXPECT_EQ(out->proposal.started_ms, a.proposal.started_ms);
    EXPECT_EQ(out->proposal.epoch, a.proposal.epoch);
    EXPECT_EQ(out->promised, a.promised);
    ASSERT_EQ(out->accepted.has_value(), accepted);
    if (accepted) {
      EXPECT_EQ(out->accepted->ballot, a.accepted->ballot);
      EXPECT_EQ(out->accepted->decision, a.accepted->decision);
    }
  }
}

// Format 2 wrote reservations and acceptor records at record version 1,
// without the proposal's epoch; they read with epoch 0.
TEST(RecordFormatTest, Version1ReservationsAndAcceptorsReadWithEpochZero) {
  const core::Reservation r = SampleReservation();
  std::string rvalue;
  PutVarint64(&rvalue, 1);
  PutVersion1Proposal(&rvalue, r.proposal);
  PutLengthPrefixed(&rvalue, r.value);
  PutVarint64(&rvalue, r.request_id);
  absl::StatusOr<core::Reservation> rout = DecodeReservation(ReservationKey(r.key), rvalue);
  ASSERT_TRUE(rout.ok()) << rout.status();
  EXPECT_EQ(rout->proposal, r.proposal);
  EXPECT_EQ(rout->proposal.started_ms, r.proposal.started_ms);
  EXPECT_EQ(rout->proposal.epoch, 0u);
  EXPECT_EQ(rout->value, r.value);
  EXPECT_EQ(rout->request_id, r.request_id);

  const core::AcceptorRecord a = SampleAcceptor(false);
  std::string avalue;
  PutVarint64(&avalue, 1);
  PutVersion1Proposal(&avalue, a.proposal);
  PutVarint64(&avalue, a.promised.round);
  PutLengthPrefixed(&avalue, a.promised.proposer);
  avalue.push_back('\0');  // nothing accepted
  absl::StatusOr<core::AcceptorRecord> aout = DecodeAcceptor(AcceptorKey(a.proposal), avalue);
  ASSERT_TRUE(aout.ok()) << aout.status();
  EXPECT_EQ(aout->proposal, a.proposal);
  EXPECT_EQ(aout->proposal.epoch, 0u);
  EXPECT_EQ(aout->promised, a.promised);
  EXPECT_FALSE(aout->accepted.has_value());
}

TEST(RecordFormatTest, ConfigRoundTrips) {
  for (const core::Configuration& config : {SampleConfig(), core::Configuration{"c", 1, {}}}) {
    absl::StatusOr<core::Configuration> out =
        DecodeConfig(ConfigKey(config.cluster, config.epoch), EncodeConfig(config));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(*out, config);
  }
}

TEST(RecordFormatTest, ConfigAcceptorRoundTrips) {
  for (bool accepted : {false, true}) {
    const core::ConfigAcceptorRecord r = SampleConfigAcceptor(accepted);
    absl::StatusOr<core::ConfigAcceptorRecord> out =
        DecodeConfigAcceptor(ConfigAcceptorKey(r.cluster, r.epoch), EncodeConfigAcceptor(r));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->cluster, r.cluster);
    EXPECT_EQ(out->epoch, r.epoch);
    EXPECT_EQ(out->promised, r.promised);
    EXPECT_EQ(out->accepted, r.accepted);
  }
}

// Recovery lists configurations in record key order, which must be
// (cluster, epoch) order with epochs compared as numbers.
TEST(RecordFormatTest, ConfigKeysSortByClusterThenEpoch) {
  const std::vector<std::string> keys = {ConfigKey("a", 9),   ConfigKey("a", 10),
                                         ConfigKey("a", 256), ConfigKey("a-", 1),
                                         ConfigKey("b", 0),   ConfigKey("b", ~uint64_t{0})};
  for (size_t i = 1; i < keys.size(); ++i) EXPECT_LT(keys[i - 1], keys[i]) << i;
  EXPECT_EQ(ConfigKey("a", 1)[0], kConfigPrefix);
  EXPECT_EQ(ConfigAcceptorKey("a", 1)[0], kConfigAcceptorPrefix);
  EXPECT_EQ(ConfigKey("a", 1).substr(1), ConfigAcceptorKey("a", 1).substr(1));
}

TEST(RecordFormatTest, ConfigKeyMustMatchItsValue) {
  const core::Configuration config = SampleConfig();
  absl::StatusOr<core::Configuration> out =
      DecodeConfig(ConfigKey(config.cluster, config.epoch + 1), EncodeConfig(config));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(out.status().message().find("key does not match"), std::string::npos) << out.status();
  EXPECT_EQ(DecodeConfig(ConfigKey("other", config.epoch), EncodeConfig(config)).status().code(),
            absl::StatusCode::kDataLoss);
  // A configuration value under an acceptor key, and the reverse.
  EXPECT_EQ(DecodeConfig(ConfigAcceptorKey(config.cluster, config.epoch), EncodeConfig(config))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  const core::ConfigAcceptorRecord r = SampleConfigAcceptor(true);
  EXPECT_EQ(
      DecodeConfigAcceptor(ConfigKey(r.cluster, r.epoch), EncodeConfigAcceptor(r)).status().code(),
      absl::StatusCode::kDataLoss);
}

TEST(RecordFormatTest, BadConfigAcceptedByteIsDataLoss) {
  const core::ConfigAcceptorRecord r = SampleConfigAcceptor(false);
  std::string value = EncodeConfigAcceptor(r);
  value.back() = 2;  // the accepted.present byte is last when nothing is accepted
  absl::StatusOr<core::ConfigAcceptorRecord> out =
      DecodeConfigAcceptor(ConfigAcceptorKey(r.cluster, r.epoch), value);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(out.status().message().find("bad accepted.present byte 2"), std::string::npos)
      << out.status();
}

TEST(RecordFormatTest, CounterRoundTrips) {
  absl::StatusOr<uint64_t> out = DecodeCounter(kIncarnationKey, EncodeCounter(42));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, 42u);
}

// Every strict prefix and every one-byte extension of a valid value is
// rejected with DataLoss and the record named.
TEST(RecordFormatTest, TruncatedOrExtendedValuesAreDataLoss) {
  const core::Reservation r = SampleReservation();
  const std::string rkey = ReservationKey(r.key);
  const std::string rvalue = EncodeReservation(r);
  const core::AcceptorRecord a = SampleAcceptor(true);
  const std::string akey = AcceptorKey(a.proposal);
  const std::string avalue = EncodeAcceptor(a);
  const std::string cvalue = EncodeCounter(1u << 20);
  const core::Configuration config = SampleConfig();
  const std::string gkey = ConfigKey(config.cluster, config.epoch);
  const std::string gvalue = EncodeConfig(config);
  const core::ConfigAcceptorRecord ca = SampleConfigAcceptor(true);
  const std::string pkey = ConfigAcceptorKey(ca.cluster, ca.epoch);
  const std::string pvalue = EncodeConfigAcceptor(ca);
  for (size_t n = 0; n <= rvalue.size(); ++n) {
    const std::string damaged = n < rvalue.size() ? rvalue.substr(0, n) : rvalue + "x";
    absl::StatusOr<core::Reservation> out = DecodeReservation(rkey, damaged);
    ASSERT_EQ(out.status().code(), absl::StatusCode::kDataLoss) << n;
    EXPECT_NE(out.status().message().find("reservation record 'rkey"), std::string::npos)
        << out.status();
  }
  for (size_t n = 0; n <= avalue.size(); ++n) {
    const std::string damaged = n < avalue.size() ? avalue.substr(0, n) : avalue + "x";
    EXPECT_EQ(DecodeAcceptor(akey, damaged).status().code(), absl::StatusCode::kDataLoss) << n;
  }
  for (size_t n = 0; n <= cvalue.size(); ++n) {
    const std::string damaged = n < cvalue.size() ? cvalue.substr(0, n) : cvalue + "x";
    absl::StatusOr<uint64_t> out = DecodeCounter(kIncarnationKey, damaged);
    ASSERT_EQ(out.status().code(), absl::StatusCode::kDataLoss) << n;
    EXPECT_NE(out.status().message().find("mincarnation"), std::string::npos) << out.status();
  }
  for (size_t n = 0; n <= gvalue.size(); ++n) {
    const std::string damaged = n < gvalue.size() ? gvalue.substr(0, n) : gvalue + "x";
    absl::StatusOr<core::Configuration> out = DecodeConfig(gkey, damaged);
    ASSERT_EQ(out.status().code(), absl::StatusCode::kDataLoss) << n;
    EXPECT_NE(out.status().message().find("corrupt configuration record 'eeu-west.1\\x00"),
              std::string::npos)
        << out.status();
  }
  for (size_t n = 0; n <= pvalue.size(); ++n) {
    const std::string damaged = n < pvalue.size() ? pvalue.substr(0, n) : pvalue + "x";
    absl::StatusOr<core::ConfigAcceptorRecord> out = DecodeConfigAcceptor(pkey, damaged);
    ASSERT_EQ(out.status().code(), absl::StatusCode::kDataLoss) << n;
    EXPECT_NE(out.status().message().find("corrupt configuration acceptor record 'peu-west.1"),
              std::string::npos)
        << out.status();
  }
}

TEST(RecordFormatTest, UnknownRecordVersionIsDataLoss) {
  std::string value = EncodeReservation(SampleReservation());
  ASSERT_EQ(value[0], static_cast<char>(kProposalRecordVersion));
  value[0] = kProposalRecordVersion + 1;
  absl::StatusOr<core::Reservation> out = DecodeReservation(ReservationKey("k"), value);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(out.status().message().find("record version 3, this build reads 1 to 2"),
            std::string::npos)
      << out.status();
  std::string config = EncodeConfig(SampleConfig());
  ASSERT_EQ(config[0], static_cast<char>(kConfigRecordVersion));
  config[0] = kConfigRecordVersion + 1;
  absl::StatusOr<core::Configuration> config_out =
      DecodeConfig(ConfigKey(SampleConfig().cluster, SampleConfig().epoch), config);
  EXPECT_EQ(config_out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(config_out.status().message().find("record version 4, this build reads 1 to 3"),
            std::string::npos)
      << config_out.status();
}

// Record version 2 has a generation and no removal: it reads as not removed;
// version 3 keeps a removal.
TEST(RecordFormatTest, ConfigRecordVersion2ReadsAsNotRemovedAndVersion3KeepsARemoval) {
  core::Configuration c = SampleConfig();
  c.generation = 3;
  std::string v3 = EncodeConfig(c);
  ASSERT_EQ(v3[0], 3);
  ASSERT_EQ(v3.back(), 0) << "removed 0 is the last varint";
  std::string v2 = v3.substr(0, v3.size() - 1);
  v2[0] = 2;
  absl::StatusOr<core::Configuration> out = DecodeConfig(ConfigKey(c.cluster, c.epoch), v2);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, c);
  c.removed = 7;
  out = DecodeConfig(ConfigKey(c.cluster, c.epoch), EncodeConfig(c));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->removed, 7u);
}

// Record version 1 (formats 3 and older) has no generation: it reads as 0.
TEST(RecordFormatTest, ConfigRecordVersion1ReadsWithGenerationZero) {
  const core::Configuration c = SampleConfig();
  std::string v1;
  PutVarint64(&v1, 1);
  PutLengthPrefixed(&v1, c.cluster);
  PutVarint64(&v1, c.epoch);
  PutVarint64(&v1, c.voters.size());
  for (const core::PeerId& p : c.voters) PutLengthPrefixed(&v1, p);
  absl::StatusOr<core::Configuration> out = DecodeConfig(ConfigKey(c.cluster, c.epoch), v1);
  ASSERT_TRUE(out.ok()) << out.status();
  core::Configuration want = c;
  want.generation = 0;
  EXPECT_EQ(*out, want);
  // A version-2 record without its generation is truncated, not misread.
  std::string v2 = v1;
  v2[0] = 2;
  EXPECT_EQ(DecodeConfig(ConfigKey(c.cluster, c.epoch), v2).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(RecordFormatTest, AcceptorKeyMustMatchItsValue) {
  const core::AcceptorRecord a = SampleAcceptor(false);
  core::ProposalId other = a.proposal;
  other.sequence += 1;
  EXPECT_EQ(DecodeAcceptor(AcceptorKey(other), EncodeAcceptor(a)).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(RecordFormatTest, UnknownDecisionIsDataLoss) {
  std::string value = EncodeAcceptor(SampleAcceptor(true));
  value.back() = 7;  // the decision byte is last
  absl::StatusOr<core::AcceptorRecord> out =
      DecodeAcceptor(AcceptorKey(SampleAcceptor(true).proposal), value);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(out.status().message().find("unknown decision 7"), std::string::npos) << out.status();
}

TEST(RecordFormatTest, CommittedKeyLeadsWithItsBucketBigEndian) {
  const core::Key key("key\0with\xffnul", 12);
  const uint32_t bucket = core::BucketOf(key);
  const std::string record_key = CommittedKey(key);
  ASSERT_EQ(record_key.size(), 3 + key.size());
  EXPECT_EQ(record_key[0], kCommittedPrefix);
  EXPECT_EQ(static_cast<uint8_t>(record_key[1]), bucket >> 8);
  EXPECT_EQ(static_cast<uint8_t>(record_key[2]), bucket & 0xff);
  EXPECT_EQ(record_key.substr(0, 3), CommittedBucketPrefix(bucket));
  absl::StatusOr<CommittedRecordKey> parsed = ParseCommittedKey(record_key);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->bucket, bucket);
  EXPECT_EQ(parsed->key, key);
  // Bucket prefixes sort by bucket number, the last one before the end bound.
  EXPECT_LT(CommittedBucketPrefix(255), CommittedBucketPrefix(256));
  EXPECT_LT(CommittedBucketPrefix(core::kDigestBuckets - 1),
            CommittedBucketPrefix(core::kDigestBuckets));
}

TEST(RecordFormatTest, CommittedKeyWithAWrongBucketIsDataLoss) {
  std::string record_key = CommittedKey("k");
  record_key[2] = static_cast<char>(record_key[2] ^ 1);
  absl::StatusOr<CommittedRecordKey> parsed = ParseCommittedKey(record_key);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(parsed.status().message().find("committed record"), std::string::npos)
      << parsed.status();
  EXPECT_EQ(ParseCommittedKey("c\x01").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseCommittedKey(ReservationKey("kkk")).status().code(), absl::StatusCode::kDataLoss);
}

TEST(RecordFormatTest, CommittedValueRoundTripsAndRejectsDamage) {
  const std::string record_key = CommittedKey("k");
  const core::ProposalId proposal{"n1", 7, 300, 123, 4};
  for (uint64_t request_id : {uint64_t{0}, uint64_t{300}, ~uint64_t{0}}) {
    for (const core::ProposalId& p : {core::ProposalId{}, proposal}) {
      const std::string value = EncodeCommitted(request_id, std::string("v\0", 2), p);
      absl::StatusOr<CommittedValueView> out = DecodeCommitted(record_key, value);
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(out->request_id, request_id);
      EXPECT_EQ(out->value, std::string("v\0", 2));
      // The identity only: started_ms and epoch are not kept.
      EXPECT_EQ(out->proposal, p);
      EXPECT_EQ(out->proposal.coordinator, p.coordinator);
      EXPECT_EQ(out->proposal.started_ms, 0u);
      EXPECT_EQ(out->proposal.epoch, 0u);
      for (size_t n = 0; n <= value.size(); ++n) {
        const std::string damaged = n < value.size() ? value.substr(0, n) : value + "x";
        absl::StatusOr<CommittedValueView> bad = DecodeCommitted(record_key, damaged);
        ASSERT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << n;
        EXPECT_NE(bad.status().message().find("committed record"), std::string::npos)
            << bad.status();
      }
    }
  }
}

// Formats 2 to 6 wrote committed values at record version 1: no proposal.
TEST(RecordFormatTest, CommittedValueOfRecordVersion1ReadsWithoutAProposal) {
  // Version, request id 42, value: what version 1 holds.
  auto encoded = [](uint64_t version) {
    std::string out;
    PutVarint64(&out, version);
    PutVarint64(&out, 42);
    PutLengthPrefixed(&out, "value");
    return out;
  };
  absl::StatusOr<CommittedValueView> out = DecodeCommitted(CommittedKey("k"), encoded(1));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->request_id, 42u);
  EXPECT_EQ(out->value, "value");
  EXPECT_TRUE(out->proposal.coordinator.empty());
  absl::StatusOr<CommittedValueView> newer = DecodeCommitted(CommittedKey("k"), encoded(3));
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(newer.status().message().find("this build reads 1 to 2"), std::string::npos)
      << newer.status();
}

TEST(RecordFormatTest, BucketSummaryRoundTripsAndRejectsDamage) {
  for (uint32_t bucket : {0u, 255u, 256u, core::kDigestBuckets - 1}) {
    const BucketSummary summary{bucket * 1000ull + 1, ~uint64_t{0} - bucket};
    const std::string key = SummaryKey(bucket);
    const std::string value = EncodeSummary(summary);
    absl::StatusOr<BucketSummaryRecord> out = DecodeSummary(key, value);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->bucket, bucket);
    EXPECT_EQ(out->summary, summary);
    for (size_t n = 0; n <= value.size(); ++n) {
      const std::string damaged = n < value.size() ? value.substr(0, n) : value + "x";
      absl::StatusOr<BucketSummaryRecord> bad = DecodeSummary(key, damaged);
      ASSERT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << n;
      EXPECT_NE(bad.status().message().find("bucket summary record"), std::string::npos)
          << bad.status();
    }
  }
  // Summary keys sort by bucket; a key outside [0, kDigestBuckets) or of
  // another length is damage.
  EXPECT_LT(SummaryKey(255), SummaryKey(256));
  const std::string value = EncodeSummary({1, 2});
  EXPECT_EQ(DecodeSummary(SummaryKey(core::kDigestBuckets), value).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeSummary("s\x01", value).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeSummary(SummaryKey(1) + "x", value).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeSummary(CommittedBucketPrefix(1), value).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(RecordFormatTest, LongKeysAreShortenedInErrors) {
  const std::string described = DescribeRecordKey(std::string(1000, 'k'));
  EXPECT_LT(described.size(), 120u);
  EXPECT_NE(described.find("(1000 bytes)"), std::string::npos);
}

}  // namespace
}  // namespace replicator::storage::internal
