// Ledger: which sequences of answers are violations of write-once, and which
// are ordinary outcomes (lagging local gets, contention, failed calls).
#include "ledger.h"

#include <string>

#include "gtest/gtest.h"

namespace replicator::bench {
namespace {

class LedgerTest : public ::testing::Test {
 protected:
  Keyspace keyspace_{42, 16, 100};
  Ledger ledger_{&keyspace_};
};

TEST_F(LedgerTest, KeysAndValuesAreDistinctAndSized) {
  EXPECT_EQ(keyspace_.Key(1).size(), 16u);
  EXPECT_NE(keyspace_.Key(1), keyspace_.Key(2));
  EXPECT_EQ(keyspace_.Value(1).size(), 100u);
  EXPECT_NE(keyspace_.Value(1), keyspace_.Value(2));
  Keyspace other(43, 16, 100);
  EXPECT_NE(other.Key(1), keyspace_.Key(1));
  Keyspace longer(42, 40, 3);
  EXPECT_EQ(longer.Key(5).size(), 40u);
  EXPECT_EQ(longer.Value(5).size(), 3u);
}

TEST_F(LedgerTest, OneOkAndTheRestKeyExistsIsClean) {
  uint64_t k = ledger_.NewKey();
  ledger_.OnPut(k, 1, Outcome::kKeyExists, keyspace_.Value(2));
  ledger_.OnPut(k, 2, Outcome::kOk);
  ledger_.OnPut(k, 3, Outcome::kKeyExists, keyspace_.Value(2));
  ledger_.OnPut(k, 4, Outcome::kConflict);
  ledger_.OnPut(k, 5, Outcome::kError);
  ledger_.OnGet(k, true, keyspace_.Value(2), true);
  ledger_.OnGet(k, false, "", /*authoritative=*/false);  // a lagging local get
  ledger_.Finish();
  EXPECT_EQ(ledger_.violations(), 0u) << ledger_.examples().front();
  EXPECT_EQ(ledger_.OkPut(k), 2u);
}

TEST_F(LedgerTest, TwoOksForOneKeyIsAViolation) {
  uint64_t k = ledger_.NewKey();
  ledger_.OnPut(k, 1, Outcome::kOk);
  ledger_.OnPut(k, 2, Outcome::kOk);
  EXPECT_EQ(ledger_.violations(), 1u);
  EXPECT_NE(ledger_.examples().at(0).find("both answered ok"), std::string::npos);
}

TEST_F(LedgerTest, KeyExistsNamingAnotherValueThanTheOkdOneIsAViolation) {
  uint64_t k = ledger_.NewKey();
  ledger_.OnPut(k, 1, Outcome::kKeyExists, keyspace_.Value(3));
  ledger_.OnPut(k, 2, Outcome::kOk);
  EXPECT_EQ(ledger_.violations(), 0u);
  ledger_.Finish();  // only now is every answer in
  EXPECT_EQ(ledger_.violations(), 1u);
}

TEST_F(LedgerTest, KeyExistsAnswersNamingDifferentValuesAreAViolation) {
  uint64_t k = ledger_.NewKey();
  ledger_.OnPut(k, 1, Outcome::kKeyExists, keyspace_.Value(3));
  ledger_.OnPut(k, 2, Outcome::kKeyExists, keyspace_.Value(4));
  EXPECT_EQ(ledger_.violations(), 1u);
}

TEST_F(LedgerTest, KeyExistsNamingThePutsOwnValueIsAViolation) {
  uint64_t k = ledger_.NewKey();
  ledger_.OnPut(k, 1, Outcome::kKeyExists, keyspace_.Value(1));
  EXPECT_EQ(ledger_.violations(), 1u);
}

TEST_F(LedgerTest, WrongValueFromAnyGetIsAViolation) {
  uint64_t k = ledger_.NewKey();
  ledger_.OnPut(k, 1, Outcome::kOk);
  ledger_.OnGet(k, true, keyspace_.Value(2), /*authoritative=*/false);
  EXPECT_EQ(ledger_.violations(), 1u);
}

TEST_F(LedgerTest, AuthoritativeNotFoundOfAnOkdKeyIsAViolation) {
  uint64_t k = ledger_.NewKey();
  ledger_.OnPut(k, 1, Outcome::kOk);
  ledger_.OnGet(k, false, "", /*authoritative=*/true);
  EXPECT_EQ(ledger_.violations(), 1u);
}

TEST_F(LedgerTest, KeysWithoutAnOkAreNotChecked) {
  uint64_t k = ledger_.NewKey();
  ledger_.OnPut(k, 1, Outcome::kError);  // outcome unknown: may or may not be stored
  ledger_.OnGet(k, true, keyspace_.Value(1), true);
  ledger_.OnGet(k, false, "", true);
  ledger_.Finish();
  EXPECT_EQ(ledger_.violations(), 0u);
}

}  // namespace
}  // namespace replicator::bench
