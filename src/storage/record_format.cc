#include "storage/record_format.h"

#include <utility>

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

void PutProposal(std::string* out, const core::ProposalId& p) {
  PutProposalIdentity(out, p);
  PutVarint64(out, p.started_ms);
}

bool ReadProposal(Reader* in, core::ProposalId* p) {
  std::string_view coordinator;
  if (!in->ReadLengthPrefixed("proposal.coordinator", &coordinator)) return false;
  p->coordinator = std::string(coordinator);
  return in->ReadVarint64("proposal.incarnation", &p->incarnation) &&
         in->ReadVarint64("proposal.sequence", &p->sequence) &&
         in->ReadVarint64("proposal.started_ms", &p->started_ms);
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

absl::Status Corrupt(std::string_view kind, std::string_view record_key, std::string_view why) {
  return absl::DataLossError(
      absl::StrCat("corrupt ", Av(kind), " record ", DescribeRecordKey(record_key), ": ", Av(why)));
}

// Reads and checks the leading record version.
bool ReadVersion(Reader* in, uint64_t* version) { return in->ReadVarint64("version", version); }

absl::Status CheckVersion(std::string_view kind, std::string_view record_key, uint64_t version) {
  if (version == kRecordVersion) return absl::OkStatus();
  return Corrupt(kind, record_key,
                 absl::StrCat("record version ", version, ", this build reads ", kRecordVersion));
}

}  // namespace

std::string CommittedBucketPrefix(uint32_t bucket) {
  std::string out(1, kCommittedPrefix);
  out.push_back(static_cast<char>((bucket >> 8) & 0xff));
  out.push_back(static_cast<char>(bucket & 0xff));
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

std::string EncodeCommitted(uint64_t request_id, std::string_view value) {
  std::string out;
  out.reserve(value.size() + 12);
  PutVarint64(&out, kRecordVersion);
  PutVarint64(&out, request_id);
  PutLengthPrefixed(&out, value);
  return out;
}

absl::StatusOr<CommittedValueView> DecodeCommitted(std::string_view record_key,
                                                   std::string_view value) {
  constexpr std::string_view kKind = "committed";
  Reader in(value);
  uint64_t version = 0;
  if (!ReadVersion(&in, &version)) return Corrupt(kKind, record_key, in.error());
  if (absl::Status s = CheckVersion(kKind, record_key, version); !s.ok()) return s;
  CommittedValueView out;
  if (!in.ReadVarint64("request_id", &out.request_id) ||
      !in.ReadLengthPrefixed("value", &out.value) || !in.ExpectEnd()) {
    return Corrupt(kKind, record_key, in.error());
  }
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
  PutVarint64(&out, kRecordVersion);
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
  if (absl::Status s = CheckVersion(kKind, record_key, version); !s.ok()) return s;
  core::Reservation r;
  r.key = std::string(record_key.substr(1));
  std::string_view reserved_value;
  if (!ReadProposal(&in, &r.proposal) || !in.ReadLengthPrefixed("value", &reserved_value) ||
      !in.ReadVarint64("request_id", &r.request_id) || !in.ExpectEnd()) {
    return Corrupt(kKind, record_key, in.error());
  }
  r.value = std::string(reserved_value);
  r.since = 0;
  return r;
}

std::string EncodeAcceptor(const core::AcceptorRecord& record) {
  std::string out;
  PutVarint64(&out, kRecordVersion);
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
  if (absl::Status s = CheckVersion(kKind, record_key, version); !s.ok()) return s;
  core::AcceptorRecord record;
  uint8_t has_accepted = 0;
  if (!ReadProposal(&in, &record.proposal) || !ReadBallot(&in, "promised", &record.promised) ||
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
