#include "storage/record_format.h"

#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace replicator::storage::internal {
namespace {

// Debian's Abseil is built with its own string_view type, which StrCat and
// CHexEscape take; std::string_view does not convert implicitly.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Longest key rendering in an error; record keys may be up to 1 KiB of bytes.
constexpr size_t kMaxDescribedKeyBytes = 80;
constexpr uint8_t kNoAccepted = 0;
constexpr uint8_t kHasAccepted = 1;

std::string WithPrefix(char prefix, std::string_view rest) {
  std::string out;
  out.reserve(1 + rest.size());
  out.push_back(prefix);
  out.append(rest);
  return out;
}

void PutProposalIdentity(std::string* out, const core::ProposalId& p) {
  PutLengthPrefixed(out, p.coordinator);
  PutVarint64(out, p.incarnation);
  PutVarint64(out, p.sequence);
}

// As of kProposalRecordVersion.
void PutProposal(std::string* out, const core::ProposalId& p) {
  PutProposalIdentity(out, p);
  PutVarint64(out, p.started_ms);
  PutVarint64(out, p.epoch);
}

// `record_version` 1 has no epoch: it reads as 0.
bool ReadProposal(Reader* in, uint64_t record_version, core::ProposalId* p) {
  std::string_view coordinator;
  if (!in->ReadLengthPrefixed("proposal.coordinator", &coordinator)) return false;
  p->coordinator = std::string(coordinator);
  p->epoch = 0;
  return in->ReadVarint64("proposal.incarnation", &p->incarnation) &&
         in->ReadVarint64("proposal.sequence", &p->sequence) &&
         in->ReadVarint64("proposal.started_ms", &p->started_ms) &&
         (record_version < 2 || in->ReadVarint64("proposal.epoch", &p->epoch));
}

void PutBallot(std::string* out, const core::Ballot& b) {
  PutVarint64(out, b.round);
  PutLengthPrefixed(out, b.proposer);
}

bool ReadBallot(Reader* in, std::string_view field, core::Ballot* b) {
  std::string_view proposer;
  if (!in->ReadVarint64(absl::StrCat(Av(field), ".round"), &b->round) ||
      !in->ReadLengthPrefixed(absl::StrCat(Av(field), ".proposer"), &proposer)) {
    return false;
  }
  b->proposer = std::string(proposer);
  return true;
}

void PutVoters(std::string* out, const std::vector<core::PeerId>& voters) {
  PutVarint64(out, voters.size());
  for (const core::PeerId& voter : voters) PutLengthPrefixed(out, voter);
}

// Nothing is reserved from the count: a damaged count runs out of input.
bool ReadVoters(Reader* in, std::string_view field, std::vector<core::PeerId>* voters) {
  uint64_t count = 0;
  if (!in->ReadVarint64(absl::StrCat(Av(field), ".count"), &count)) return false;
  voters->clear();
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view voter;
    if (!in->ReadLengthPrefixed(field, &voter)) return false;
    voters->emplace_back(voter);
  }
  return true;
}

std::string ConfigRecordKey(char prefix, const core::ClusterId& cluster, uint64_t epoch) {
  std::string out;
  out.reserve(1 + cluster.size() + 1 + 8);
  out.push_back(prefix);
  out.append(cluster);
  out.push_back('\0');
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((epoch >> shift) & 0xff));
  }
  return out;
}

// The (cluster, epoch) leading a configuration or configuration acceptor
// value.
void PutConfigId(std::string* out, const core::ClusterId& cluster, uint64_t epoch) {
  PutLengthPrefixed(out, cluster);
  PutVarint64(out, epoch);
}

bool ReadConfigId(Reader* in, core::ClusterId* cluster, uint64_t* epoch) {
  std::string_view c;
  if (!in->ReadLengthPrefixed("cluster", &c) || !in->ReadVarint64("epoch", epoch)) return false;
  *cluster = std::string(c);
  return true;
}

absl::Status Corrupt(std::string_view kind, std::string_view record_key, std::string_view why) {
  return absl::DataLossError(
      absl::StrCat("corrupt ", Av(kind), " record ", DescribeRecordKey(record_key), ": ", Av(why)));
}

// Reads and checks the leading record version.
bool ReadVersion(Reader* in, uint64_t* version) { return in->ReadVarint64("version", version); }

// OK for a record version in [oldest, newest].
absl::Status CheckVersion(std::string_view kind, std::string_view record_key, uint64_t version,
                          uint64_t oldest = kRecordVersion, uint64_t newest = kRecordVersion) {
  if (version >= oldest && version <= newest) return absl::OkStatus();
  return Corrupt(kind, record_key,
                 oldest == newest
                     ? absl::StrCat("record version ", version, ", this build reads ", newest)
                     : absl::StrCat("record version ", version, ", this build reads ", oldest,
                                    " to ", newest));
}

absl::Status CheckProposalVersion(std::string_view kind, std::string_view record_key,
                                  uint64_t version) {
  return CheckVersion(kind, record_key, version, 1, kProposalRecordVersion);
}

// A configuration or configuration acceptor value names its (cluster,
// epoch); a mismatch with its key means one of them was damaged.
absl::Status CheckConfigKey(std::string_view kind, std::string_view record_key,
                            std::string_view expected_key, const core::ClusterId& cluster,
                            uint64_t epoch) {
  if (expected_key == record_key) return absl::OkStatus();
  return Corrupt(kind, record_key,
                 absl::StrCat("key does not match the value's cluster '",
                              absl::CHexEscape(Av(cluster)), "' epoch ", epoch));
}

}  // namespace

std::string CommittedBucketPrefix(uint32_t bucket) {
  std::string out(1, kCommittedPrefix);
  out.push_back(static_cast<char>((bucket >> 8) & 0xff));
  out.push_back(static_cast<char>(bucket & 0xff));
  return out;
}

std::string IngestKey(std::string_view file) {
  std::string out(1, kIngestPrefix);
  out.append(file);
  return out;
}

std::string SummaryKey(uint32_t bucket) {
  std::string out(1, kSummaryPrefix);
  out.push_back(static_cast<char>((bucket >> 8) & 0xff));
  out.push_back(static_cast<char>(bucket & 0xff));
  return out;
}

std::string EncodeSummary(const BucketSummary& summary) {
  std::string out;
  PutVarint64(&out, kRecordVersion);
  PutVarint64(&out, summary.count);
  PutVarint64(&out, summary.digest);
  return out;
}

absl::StatusOr<BucketSummaryRecord> DecodeSummary(std::string_view record_key,
                                                  std::string_view value) {
  constexpr std::string_view kKind = "bucket summary";
  if (record_key.size() != 3 || record_key[0] != kSummaryPrefix) {
    return Corrupt(kKind, record_key, "key is not the summary prefix and a 2-byte bucket");
  }
  BucketSummaryRecord out;
  out.bucket = (static_cast<uint32_t>(static_cast<uint8_t>(record_key[1])) << 8) |
               static_cast<uint8_t>(record_key[2]);
  if (out.bucket >= core::kDigestBuckets) {
    return Corrupt(kKind, record_key,
                   absl::StrCat("bucket ", out.bucket, " is not below ", core::kDigestBuckets));
  }
  Reader in(value);
  uint64_t version = 0;
  if (!ReadVersion(&in, &version)) return Corrupt(kKind, record_key, in.error());
  if (absl::Status s = CheckVersion(kKind, record_key, version); !s.ok()) return s;
  if (!in.ReadVarint64("count", &out.summary.count) ||
      !in.ReadVarint64("digest", &out.summary.digest) || !in.ExpectEnd()) {
    return Corrupt(kKind, record_key, in.error());
  }
  return out;
}

std::string CommittedKey(const core::Key& key) {
  std::string out = CommittedBucketPrefix(core::BucketOf(key));
  out.append(key);
  return out;
}

absl::StatusOr<CommittedRecordKey> ParseCommittedKey(std::string_view record_key) {
  constexpr std::string_view kKind = "committed";
  if (record_key.size() < 3 || record_key[0] != kCommittedPrefix) {
    return Corrupt(kKind, record_key, "key lacks the committed prefix and bucket");
  }
  CommittedRecordKey out;
  out.bucket = (static_cast<uint32_t>(static_cast<uint8_t>(record_key[1])) << 8) |
               static_cast<uint8_t>(record_key[2]);
  out.key = record_key.substr(3);
  // TODO(perf): a string_view BucketOf would spare this copy per scanned record.
  const uint32_t expected = core::BucketOf(core::Key(out.key));
  if (out.bucket != expected) {
    return Corrupt(kKind, record_key,
                   absl::StrCat("bucket field ", out.bucket, " but the key hashes to ", expected));
  }
  return out;
}

std::string EncodeCommitted(uint64_t request_id, std::string_view value,
                            const core::ProposalId& proposal) {
  std::string out;
  out.reserve(value.size() + 16 + proposal.coordinator.size());
  PutVarint64(&out, kCommittedRecordVersion);
  PutVarint64(&out, request_id);
  PutLengthPrefixed(&out, value);
  PutProposalIdentity(&out, proposal);
  return out;
}

absl::StatusOr<CommittedValueView> DecodeCommitted(std::string_view record_key,
                                                   std::string_view value) {
  constexpr std::string_view kKind = "committed";
  Reader in(value);
  uint64_t version = 0;
  if (!ReadVersion(&in, &version)) return Corrupt(kKind, record_key, in.error());
  if (absl::Status s = CheckVersion(kKind, record_key, version, 1, kCommittedRecordVersion);
      !s.ok()) {
    return s;
  }
  CommittedValueView out;
  if (!in.ReadVarint64("request_id", &out.request_id) ||
      !in.ReadLengthPrefixed("value", &out.value)) {
    return Corrupt(kKind, record_key, in.error());
  }
  if (version >= 2) {
    std::string_view coordinator;
    if (!in.ReadLengthPrefixed("proposal.coordinator", &coordinator) ||
        !in.ReadVarint64("proposal.incarnation", &out.proposal.incarnation) ||
        !in.ReadVarint64("proposal.sequence", &out.proposal.sequence)) {
      return Corrupt(kKind, record_key, in.error());
    }
    out.proposal.coordinator = std::string(coordinator);
  }
  if (!in.ExpectEnd()) return Corrupt(kKind, record_key, in.error());
  return out;
}

std::string ReservationKey(std::string_view key) { return WithPrefix(kReservationPrefix, key); }

std::string AcceptorKey(const core::ProposalId& proposal) {
  std::string out(1, kAcceptorPrefix);
  PutProposalIdentity(&out, proposal);
  return out;
}

std::string EncodeReservation(const core::Reservation& reservation) {
  std::string out;
  PutVarint64(&out, kProposalRecordVersion);
  PutProposal(&out, reservation.proposal);
  PutLengthPrefixed(&out, reservation.value);
  PutVarint64(&out, reservation.request_id);
  return out;
}

absl::StatusOr<core::Reservation> DecodeReservation(std::string_view record_key,
                                                    std::string_view value) {
  constexpr std::string_view kKind = "reservation";
  if (record_key.empty() || record_key[0] != kReservationPrefix) {
    return Corrupt(kKind, record_key, "key lacks the reservation prefix");
  }
  Reader in(value);
  uint64_t version = 0;
  if (!ReadVersion(&in, &version)) return Corrupt(kKind, record_key, in.error());
  if (absl::Status s = CheckProposalVersion(kKind, record_key, version); !s.ok()) return s;
  core::Reservation r;
  r.key = std::string(record_key.substr(1));
  std::string_view reserved_value;
  if (!ReadProposal(&in, version, &r.proposal) ||
      !in.ReadLengthPrefixed("value", &reserved_value) ||
      !in.ReadVarint64("request_id", &r.request_id) || !in.ExpectEnd()) {
    return Corrupt(kKind, record_key, in.error());
  }
  r.value = std::string(reserved_value);
  r.since = 0;
  return r;
}

std::string EncodeAcceptor(const core::AcceptorRecord& record) {
  std::string out;
  PutVarint64(&out, kProposalRecordVersion);
  PutProposal(&out, record.proposal);
  PutBallot(&out, record.promised);
  if (record.accepted.has_value()) {
    out.push_back(static_cast<char>(kHasAccepted));
    PutBallot(&out, record.accepted->ballot);
    out.push_back(static_cast<char>(record.accepted->decision));
  } else {
    out.push_back(static_cast<char>(kNoAccepted));
  }
  return out;
}

absl::StatusOr<core::AcceptorRecord> DecodeAcceptor(std::string_view record_key,
                                                    std::string_view value) {
  constexpr std::string_view kKind = "acceptor";
  Reader in(value);
  uint64_t version = 0;
  if (!ReadVersion(&in, &version)) return Corrupt(kKind, record_key, in.error());
  if (absl::Status s = CheckProposalVersion(kKind, record_key, version); !s.ok()) return s;
  core::AcceptorRecord record;
  uint8_t has_accepted = 0;
  if (!ReadProposal(&in, version, &record.proposal) ||
      !ReadBallot(&in, "promised", &record.promised) ||
      !in.ReadByte("accepted.present", &has_accepted)) {
    return Corrupt(kKind, record_key, in.error());
  }
  if (has_accepted == kHasAccepted) {
    core::AcceptedValue accepted;
    uint8_t decision = 0;
    if (!ReadBallot(&in, "accepted.ballot", &accepted.ballot) ||
        !in.ReadByte("accepted.decision", &decision)) {
      return Corrupt(kKind, record_key, in.error());
    }
    if (decision != static_cast<uint8_t>(core::Decision::kCommit) &&
        decision != static_cast<uint8_t>(core::Decision::kAbort)) {
      return Corrupt(kKind, record_key, absl::StrCat("unknown decision ", decision));
    }
    accepted.decision = static_cast<core::Decision>(decision);
    record.accepted = std::move(accepted);
  } else if (has_accepted != kNoAccepted) {
    return Corrupt(kKind, record_key, absl::StrCat("bad accepted.present byte ", has_accepted));
  }
  if (!in.ExpectEnd()) return Corrupt(kKind, record_key, in.error());
  // The key is derived from the value's proposal; a mismatch means one of
  // them was damaged, and DeleteAcceptor would miss the record.
  if (AcceptorKey(record.proposal) != record_key) {
    return Corrupt(
        kKind, record_key,
        absl::StrCat("key does not match the value's proposal ", record.proposal.ToString()));
  }
  return record;
}

std::string ConfigKey(const core::ClusterId& cluster, uint64_t epoch) {
  return ConfigRecordKey(kConfigPrefix, cluster, epoch);
}

std::string ConfigAcceptorKey(const core::ClusterId& cluster, uint64_t epoch) {
  return ConfigRecordKey(kConfigAcceptorPrefix, cluster, epoch);
}

std::string EncodeConfig(const core::Configuration& config) {
  std::string out;
  PutVarint64(&out, kConfigRecordVersion);
  PutConfigId(&out, config.cluster, config.epoch);
  PutVoters(&out, config.voters);
  PutVarint64(&out, config.generation);
  PutVarint64(&out, config.removed);
  return out;
}

absl::StatusOr<core::Configuration> DecodeConfig(std::string_view record_key,
                                                 std::string_view value) {
  constexpr std::string_view kKind = "configuration";
  Reader in(value);
  uint64_t version = 0;
  if (!ReadVersion(&in, &version)) return Corrupt(kKind, record_key, in.error());
  if (absl::Status s = CheckVersion(kKind, record_key, version, 1, kConfigRecordVersion); !s.ok()) {
    return s;
  }
  core::Configuration config;
  // Record version 1 has no generation: it reads as 0 (unknown); versions
  // 1 and 2 have no removal: not removed.
  if (!ReadConfigId(&in, &config.cluster, &config.epoch) ||
      !ReadVoters(&in, "voters", &config.voters) ||
      (version >= 2 && !in.ReadVarint64("generation", &config.generation)) ||
      (version >= 3 && !in.ReadVarint64("removed", &config.removed)) || !in.ExpectEnd()) {
    return Corrupt(kKind, record_key, in.error());
  }
  if (absl::Status s = CheckConfigKey(kKind, record_key, ConfigKey(config.cluster, config.epoch),
                                      config.cluster, config.epoch);
      !s.ok()) {
    return s;
  }
  return config;
}

std::string EncodeConfigAcceptor(const core::ConfigAcceptorRecord& record) {
  std::string out;
  PutVarint64(&out, kRecordVersion);
  PutConfigId(&out, record.cluster, record.epoch);
  PutBallot(&out, record.promised);
  if (record.accepted.has_value()) {
    out.push_back(static_cast<char>(kHasAccepted));
    PutBallot(&out, record.accepted->ballot);
    PutVoters(&out, record.accepted->voters);
  } else {
    out.push_back(static_cast<char>(kNoAccepted));
  }
  return out;
}

absl::StatusOr<core::ConfigAcceptorRecord> DecodeConfigAcceptor(std::string_view record_key,
                                                                std::string_view value) {
  constexpr std::string_view kKind = "configuration acceptor";
  Reader in(value);
  uint64_t version = 0;
  if (!ReadVersion(&in, &version)) return Corrupt(kKind, record_key, in.error());
  if (absl::Status s = CheckVersion(kKind, record_key, version); !s.ok()) return s;
  core::ConfigAcceptorRecord record;
  uint8_t has_accepted = 0;
  if (!ReadConfigId(&in, &record.cluster, &record.epoch) ||
      !ReadBallot(&in, "promised", &record.promised) ||
      !in.ReadByte("accepted.present", &has_accepted)) {
    return Corrupt(kKind, record_key, in.error());
  }
  if (has_accepted == kHasAccepted) {
    core::ConfigAccepted accepted;
    if (!ReadBallot(&in, "accepted.ballot", &accepted.ballot) ||
        !ReadVoters(&in, "accepted.voters", &accepted.voters)) {
      return Corrupt(kKind, record_key, in.error());
    }
    record.accepted = std::move(accepted);
  } else if (has_accepted != kNoAccepted) {
    return Corrupt(kKind, record_key, absl::StrCat("bad accepted.present byte ", has_accepted));
  }
  if (!in.ExpectEnd()) return Corrupt(kKind, record_key, in.error());
  if (absl::Status s =
          CheckConfigKey(kKind, record_key, ConfigAcceptorKey(record.cluster, record.epoch),
                         record.cluster, record.epoch);
      !s.ok()) {
    return s;
  }
  return record;
}

std::string EncodeCounter(uint64_t value) {
  std::string out;
  PutVarint64(&out, kRecordVersion);
  PutVarint64(&out, value);
  return out;
}

absl::StatusOr<uint64_t> DecodeCounter(std::string_view record_key, std::string_view value) {
  constexpr std::string_view kKind = "meta";
  Reader in(value);
  uint64_t version = 0;
  if (!ReadVersion(&in, &version)) return Corrupt(kKind, record_key, in.error());
  if (absl::Status s = CheckVersion(kKind, record_key, version); !s.ok()) return s;
  uint64_t counter = 0;
  if (!in.ReadVarint64("counter", &counter) || !in.ExpectEnd()) {
    return Corrupt(kKind, record_key, in.error());
  }
  return counter;
}

std::string DescribeRecordKey(std::string_view record_key) {
  if (record_key.size() <= kMaxDescribedKeyBytes) {
    return absl::StrCat("'", absl::CHexEscape(Av(record_key)), "'");
  }
  return absl::StrCat("'", absl::CHexEscape(Av(record_key.substr(0, kMaxDescribedKeyBytes))),
                      "...' (", record_key.size(), " bytes)");
}

void PutVarint64(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

void PutLengthPrefixed(std::string* out, std::string_view bytes) {
  PutVarint64(out, bytes.size());
  out->append(bytes);
}

bool Reader::Fail(std::string_view field, std::string_view what) {
  if (error_.empty()) {
    error_ = absl::StrCat(Av(what), " in field ", Av(field), " at byte ", size_ - input_.size(),
                          " of ", size_);
  }
  return false;
}

bool Reader::ReadVarint64(std::string_view field, uint64_t* out) {
  uint64_t result = 0;
  // A uint64 takes at most 10 groups of 7 bits; the 10th may carry 1 bit.
  for (int shift = 0, i = 0; i < 10; ++i, shift += 7) {
    if (i >= static_cast<int>(input_.size())) return Fail(field, "truncated varint");
    const uint8_t byte = static_cast<uint8_t>(input_[i]);
    if (i == 9 && byte > 1) return Fail(field, "varint overflows 64 bits");
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      input_.remove_prefix(i + 1);
      *out = result;
      return true;
    }
  }
  return Fail(field, "varint longer than 10 bytes");
}

bool Reader::ReadLengthPrefixed(std::string_view field, std::string_view* out) {
  uint64_t length = 0;
  if (!ReadVarint64(field, &length)) return false;
  if (length > input_.size()) {
    return Fail(field,
                absl::StrCat("length ", length, " exceeds the ", input_.size(), " bytes left"));
  }
  *out = input_.substr(0, length);
  input_.remove_prefix(length);
  return true;
}

bool Reader::ReadByte(std::string_view field, uint8_t* out) {
  if (input_.empty()) return Fail(field, "truncated");
  *out = static_cast<uint8_t>(input_[0]);
  input_.remove_prefix(1);
  return true;
}

bool Reader::ExpectEnd() {
  if (input_.empty()) return true;
  return Fail("(end)", absl::StrCat(input_.size(), " unexpected trailing bytes"));
}

}  // namespace replicator::storage::internal
