// Duration flags: units as etcd and Go write them, bare numbers in the
// flag's own unit, and clear refusals.
#include "util/duration_flag.h"

#include <gtest/gtest.h>

namespace replicator::util {
namespace {

using std::chrono::milliseconds;

TEST(DurationFlagTest, MillisTakeUnitsAndBareMilliseconds) {
  const struct {
    const char* text;
    milliseconds want;
  } cases[] = {{"1500", milliseconds(1500)}, {"500ms", milliseconds(500)},
               {"2s", milliseconds(2000)},   {"1.5s", milliseconds(1500)},
               {"1m", milliseconds(60000)},  {" 3s ", milliseconds(3000)},
               {"0", milliseconds(0)}};
  for (const auto& c : cases) {
    Millis m;
    std::string error;
    ASSERT_TRUE(AbslParseFlag(c.text, &m, &error)) << c.text << ": " << error;
    EXPECT_EQ(m.value, c.want) << c.text;
  }
  EXPECT_EQ(AbslUnparseFlag(Millis{milliseconds(2000)}), "2000ms");
}

TEST(DurationFlagTest, SecondsTakeUnitsAndBareSeconds) {
  Seconds s;
  std::string error;
  ASSERT_TRUE(AbslParseFlag("10", &s, &error)) << error;
  EXPECT_EQ(s.value, absl::Seconds(10));
  ASSERT_TRUE(AbslParseFlag("250ms", &s, &error)) << error;
  EXPECT_EQ(s.value, absl::Milliseconds(250));
}

TEST(DurationFlagTest, NonsenseAndNegativeDurationsAreRefusedClearly) {
  for (const char* text : {"abc", "10 s", "s", "", "-1s", "-5"}) {
    Millis m;
    std::string error;
    EXPECT_FALSE(AbslParseFlag(text, &m, &error)) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
  Millis m;
  std::string error;
  ASSERT_FALSE(AbslParseFlag("abc", &m, &error));
  EXPECT_NE(error.find("500ms, 10s"), std::string::npos) << error;
}

}  // namespace
}  // namespace replicator::util
