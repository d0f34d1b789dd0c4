// The on-disk record format of RocksDB storage (docs/storage.md is the
// reference): record keys by prefix, and a versioned, length-prefixed binary
// encoding of committed entries, reservations, acceptor records,
// configurations, configuration acceptor records and counters built from
// LEB128 varints. Decoding never trusts its input: every failure is a DataLossError
// naming the record. Pure functions; thread-safe. Internal to src/storage
// (exposed for its tests).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::storage::internal {

// Version of the whole layout, kept in kFormatKey. A build reads exactly the
// versions it knows; bump on any incompatible change of keys or values, or
// when records appear that an older build would ignore.
// Version 1 (committed key = 'c' + key, raw value) is not read: nothing
// running it was ever deployed. Version 3 adds configuration and
// configuration acceptor records, which a version-2 build would silently
// skip (forgetting Paxos promises), so it must refuse them.
// Version 4 writes configuration records of record version 2 (with the
// cluster's founding generation), which a version-3 build would reject as
// corrupt; the bump makes it refuse the dir by name instead.
// Version 5 adds the bucket summaries ('s' records: each digest bucket's
// key count and digest, written with every group that commits into the
// bucket), which open reads instead of scanning every committed record. A
// version-4 build would commit without updating them, so it must refuse.
// Version 6 moves the reservations out of RocksDB into the storage's own
// write log (storage/write_log.h), which is also the only write-ahead log
// of every other record: RocksDB is written without its WAL. A version-5
// build would open such a dir without its reservations or any write not
// yet flushed, so it must refuse.
// Version 7 writes committed records of record version 2 (with the
// proposal that committed them, which lets acceptors drop their records:
// core/acceptor.h), which a version-6 build would reject as corrupt; the
// bump makes it refuse the dir by name instead. A version-6 dir opens as
// it is and is marked 7.
inline constexpr uint64_t kFormatVersion = 7;
// The oldest layout this build opens. Every record of a version-2 to -4
// data dir reads as it is under version 5; open scans its committed range
// once, writes the bucket summaries and the format record 5 in one synced
// write (after which the older build refuses it).
inline constexpr uint64_t kOldestFormatVersion = 2;
// Version (varint) leading every encoded value, so one record kind can
// evolve without a layout bump. Counter and configuration acceptor values
// are at version 1.
inline constexpr uint64_t kRecordVersion = 1;
// Committed values: version 2 stores the committing proposal's identity;
// version 1 (formats 2 to 6) is still read, with an empty proposal.
inline constexpr uint64_t kCommittedRecordVersion = 2;
// Configuration values: version 2 stores Configuration::generation;
// version 1 (written by formats 3) is still read, with generation 0.
inline constexpr uint64_t kConfigRecordVersion = 3;
// Reservation and acceptor values: version 2 stores ProposalId::epoch;
// version 1 (written by format 2) is still read, with epoch 0.
inline constexpr uint64_t kProposalRecordVersion = 2;

// Record keys: one byte of prefix, then the rest. Prefixes sort c < m < r so
// committed entries form one contiguous range, and within it each digest
// bucket (core::BucketOf) forms one contiguous range.
inline constexpr char kAcceptorPrefix = 'a';
inline constexpr char kCommittedPrefix = 'c';
inline constexpr char kConfigPrefix = 'e';
// Write log only: a catch-up page staged as a table file, to be ingested
// (IngestKey); never a RocksDB record.
inline constexpr char kIngestPrefix = 'i';
inline constexpr char kMetaPrefix = 'm';
inline constexpr char kConfigAcceptorPrefix = 'p';
inline constexpr char kReservationPrefix = 'r';
inline constexpr char kSummaryPrefix = 's';
inline constexpr std::string_view kFormatKey = "mformat";
inline constexpr std::string_view kIncarnationKey = "mincarnation";

// 'c' + big-endian 16-bit core::BucketOf(key) + key, so that a bucket's
// entries are one range scan in key order.
std::string CommittedKey(const core::Key& key);
// The first three bytes of every committed key of `bucket` ('c' + bucket);
// for bucket == core::kDigestBuckets it is the end of the committed range.
std::string CommittedBucketPrefix(uint32_t bucket);
static_assert(core::kDigestBuckets < 0xffff, "bucket + 1 must fit the 16-bit key field");

// The user key and bucket of a committed record key; DataLossError if it
// lacks the prefix or its bucket field is not BucketOf(key).
struct CommittedRecordKey {
  uint32_t bucket = 0;
  std::string_view key;  // points into the record key
};
absl::StatusOr<CommittedRecordKey> ParseCommittedKey(std::string_view record_key);

// 's' + big-endian 16-bit bucket: the summary of one digest bucket.
std::string SummaryKey(uint32_t bucket);
// The write log record naming `file`, a staged table file's name in the
// storage's ingest dir: its frame carries the page's bucket summaries, and
// an open that finds the file still staged ingests it.
std::string IngestKey(std::string_view file);

// What a bucket holds: its number of committed keys and its digest (XOR of
// core::EntryHash over them). A bucket without a summary record is empty.
struct BucketSummary {
  uint64_t count = 0;
  uint64_t digest = 0;
  bool operator==(const BucketSummary&) const = default;
};
// Summary value: version, varint count, varint digest.
std::string EncodeSummary(const BucketSummary& summary);
// The bucket of a summary record key and its summary; DataLossError for a
// malformed key (wrong prefix, length, or a bucket >= kDigestBuckets) or value.
struct BucketSummaryRecord {
  uint32_t bucket = 0;
  BucketSummary summary;
};
absl::StatusOr<BucketSummaryRecord> DecodeSummary(std::string_view record_key,
                                                  std::string_view value);

// Committed value: version, varint request_id, value (length-prefixed),
// and (version 2) the identity of the proposal that committed it: its
// coordinator (length-prefixed), incarnation and sequence. Version 1 reads
// with an empty proposal.
std::string EncodeCommitted(uint64_t request_id, std::string_view value,
                            const core::ProposalId& proposal = {});
struct CommittedValueView {
  uint64_t request_id = 0;
  std::string_view value;     // points into the decoded bytes
  core::ProposalId proposal;  // identity only; empty from version 1
};
absl::StatusOr<CommittedValueView> DecodeCommitted(std::string_view record_key,
                                                   std::string_view value);
std::string ReservationKey(std::string_view key);
// 'a' + the proposal's identity (coordinator, incarnation, sequence);
// started_ms is not part of the identity and lives in the value.
std::string AcceptorKey(const core::ProposalId& proposal);

// Reservation value: version, proposal (with its epoch), value, request id.
// The key is the record key's suffix; `since` is not stored.
std::string EncodeReservation(const core::Reservation& reservation);
// `record_key` is the full record key ('r' + key), used for the key and in
// errors.
absl::StatusOr<core::Reservation> DecodeReservation(std::string_view record_key,
                                                    std::string_view value);

// Acceptor value: version, proposal (with its epoch), promised ballot,
// optional accepted (ballot, decision). Decoding checks that the value's
// proposal matches the record key.
std::string EncodeAcceptor(const core::AcceptorRecord& record);
absl::StatusOr<core::AcceptorRecord> DecodeAcceptor(std::string_view record_key,
                                                    std::string_view value);

// 'e' (configuration) or 'p' (its acceptor record) + cluster + '\0' +
// big-endian 64-bit epoch. Cluster ids hold no NUL (core::ValidateClusterId),
// so records sort by (cluster, epoch), epochs numerically.
std::string ConfigKey(const core::ClusterId& cluster, uint64_t epoch);
std::string ConfigAcceptorKey(const core::ClusterId& cluster, uint64_t epoch);

// Configuration value: version, cluster, epoch, voters (count, then each),
// generation (record version 2). Decoding checks that the value's (cluster,
// epoch) matches the record key.
std::string EncodeConfig(const core::Configuration& config);
absl::StatusOr<core::Configuration> DecodeConfig(std::string_view record_key,
                                                 std::string_view value);

// Configuration acceptor value: version, cluster, epoch, promised ballot,
// optional accepted (ballot, voters). Decoding checks that the value's
// (cluster, epoch) matches the record key.
std::string EncodeConfigAcceptor(const core::ConfigAcceptorRecord& record);
absl::StatusOr<core::ConfigAcceptorRecord> DecodeConfigAcceptor(std::string_view record_key,
                                                                std::string_view value);

// Counter value (format version, incarnation): version, varint.
std::string EncodeCounter(uint64_t value);
absl::StatusOr<uint64_t> DecodeCounter(std::string_view record_key, std::string_view value);

// A printable, bounded rendering of a record key for error messages.
std::string DescribeRecordKey(std::string_view record_key);

// --- Primitives ---------------------------------------------------------------

void PutVarint64(std::string* out, uint64_t value);
void PutLengthPrefixed(std::string* out, std::string_view bytes);

// Reads primitives from a byte string; each Read* returns false once the
// input is exhausted or malformed, and error() then says what and where.
class Reader {
 public:
  explicit Reader(std::string_view input) : input_(input), size_(input.size()) {}

  bool ReadVarint64(std::string_view field, uint64_t* out);
  bool ReadLengthPrefixed(std::string_view field, std::string_view* out);
  bool ReadByte(std::string_view field, uint8_t* out);
  // False (with an error) if bytes remain.
  bool ExpectEnd();

  const std::string& error() const { return error_; }

 private:
  bool Fail(std::string_view field, std::string_view what);

  std::string_view input_;  // the unread rest
  size_t size_;             // of the whole input, for offsets in errors
  std::string error_;
};

}  // namespace replicator::storage::internal
