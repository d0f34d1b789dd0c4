// Config files: the format (comments, blank lines, dashes or underscores, spaces around '='),
// errors naming the file and line, and flags from the file placed before the command line's
// so that the command line wins.
#include "util/config_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "util/duration_flag.h"

ABSL_FLAG(std::string, test_cluster, "", "test flag");
ABSL_FLAG(int64_t, test_limit, 7, "test flag");
ABSL_FLAG(replicator::util::Millis, test_deadline_ms,
          replicator::util::Millis{std::chrono::milliseconds(1000)}, "test flag");

namespace replicator::util {
namespace {

TEST(ParseConfigTextTest, ReadsSettingsSkippingCommentsAndBlankLines) {
  auto entries = ParseConfigText("a.conf",
                                 "# a comment\n"
                                 "\n"
                                 "cluster = eu-1\n"
                                 "  data-dir=/var/lib/replicator  \n"
                                 "\t# indented comment\n"
                                 "call_deadline_ms =2s\r\n"
                                 "bootstrap =\n"
                                 "failpoint = a=b # kept\n"
                                 "last=1");  // no final newline
  ASSERT_TRUE(entries.ok()) << entries.status();
  const struct {
    int line;
    const char* name;
    const char* value;
  } want[] = {{3, "cluster", "eu-1"},         {4, "data_dir", "/var/lib/replicator"},
              {6, "call_deadline_ms", "2s"},  {7, "bootstrap", ""},
              {8, "failpoint", "a=b # kept"}, {9, "last", "1"}};
  ASSERT_EQ(entries->size(), std::size(want));
  for (size_t i = 0; i < std::size(want); ++i) {
    EXPECT_EQ((*entries)[i].line, want[i].line) << i;
    EXPECT_EQ((*entries)[i].name, want[i].name) << i;
    EXPECT_EQ((*entries)[i].value, want[i].value) << i;
  }
}

TEST(ParseConfigTextTest, EmptyFileHasNoSettings) {
  for (const char* text : {"", "\n\n", "# only\n# comments\n"}) {
    auto entries = ParseConfigText("e.conf", text);
    ASSERT_TRUE(entries.ok()) << text;
    EXPECT_TRUE(entries->empty()) << text;
  }
}

TEST(ParseConfigTextTest, MalformedLinesAreErrorsNamingFileAndLine) {
  const struct {
    const char* text;
    const char* want;
  } cases[] = {
      {"cluster eu-1\n", "my.conf:1: expected 'flag = value', got 'cluster eu-1'"},
      {"# ok\n= x\n", "my.conf:2: missing flag name before '='"},
      {"\n\n--cluster=eu-1\n", "my.conf:3: '--cluster' is not a flag name"},
      {"Cluster=eu-1\n", "my.conf:1: 'Cluster' is not a flag name"},
      {"data dir = x\n", "my.conf:1: 'data dir' is not a flag name"},
      {"cluster=a\ncluster = b\n", "my.conf:2: 'cluster' is already set on line 1"},
      {"data-dir=a\ndata_dir=b\n", "my.conf:2: 'data_dir' is already set on line 1"},
      {"config = other.conf\n", "my.conf:1: 'config' cannot be set in a config file"},
  };
  for (const auto& c : cases) {
    auto entries = ParseConfigText("my.conf", c.text);
    ASSERT_FALSE(entries.ok()) << c.text;
    EXPECT_EQ(entries.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(entries.status().message().find(c.want), std::string::npos)
        << entries.status().message() << " lacks " << c.want;
  }
}

TEST(FindConfigFlagTest, FindsEitherSpellingBeforeDoubleDash) {
  const struct {
    std::vector<const char*> args;
    std::optional<std::string> want;
  } cases[] = {
      {{"prog"}, std::nullopt},
      {{"prog", "--config=a.conf"}, "a.conf"},
      {{"prog", "--config", "b.conf", "--x=1"}, "b.conf"},
      {{"prog", "-config=c.conf"}, "c.conf"},
      {{"prog", "--config=a", "--config=d"}, "d"},
      {{"prog", "--", "--config=a"}, std::nullopt},
      {{"prog", "--configx=a"}, std::nullopt},
  };
  for (const auto& c : cases) {
    std::vector<char*> argv;
    for (const char* a : c.args) argv.push_back(const_cast<char*>(a));
    EXPECT_EQ(FindConfigFlag(static_cast<int>(argv.size()), argv.data()), c.want);
  }
}

class ConfigFileArgsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::string path_ = (std::filesystem::temp_directory_path() /
                       ("config_file_test_" + std::to_string(::getpid()) + ".conf"))
                          .string();
};

std::vector<std::string> Args(ConfigFileArgs& args) {
  return std::vector<std::string>(args.argv(), args.argv() + args.argc());
}

TEST_F(ConfigFileArgsTest, InsertsFileFlagsBeforeTheCommandLineWhichWins) {
  std::string config = "--config=" + Write("test-cluster = from-file\ntest_limit = 3\n");
  std::vector<char*> argv = {const_cast<char*>("prog"), config.data(),
                             const_cast<char*>("--test_cluster=from-flag")};
  ConfigFileArgs args(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(Args(args),
            (std::vector<std::string>{"prog", "--test_cluster=from-file", "--test_limit=3", config,
                                      "--test_cluster=from-flag"}));
  EXPECT_EQ(args.argv()[args.argc()], nullptr);
  // Abseil needs --config defined to accept it; the test parses only the rest.
  std::vector<char*> without_config = {args.argv()[0], args.argv()[1], args.argv()[2],
                                       args.argv()[4]};
  absl::ParseCommandLine(static_cast<int>(without_config.size()), without_config.data());
  EXPECT_EQ(absl::GetFlag(FLAGS_test_cluster), "from-flag");
  EXPECT_EQ(absl::GetFlag(FLAGS_test_limit), 3);
}

TEST_F(ConfigFileArgsTest, WithoutConfigArgvIsUnchanged) {
  std::vector<char*> argv = {const_cast<char*>("prog"), const_cast<char*>("--test_limit=1")};
  ConfigFileArgs args(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(Args(args), (std::vector<std::string>{"prog", "--test_limit=1"}));
}

TEST_F(ConfigFileArgsTest, ErrorsNameTheFileAndLine) {
  const struct {
    const char* text;
    const char* want;
  } cases[] = {
      {"test_limit = 1\nno_such_flag = 2\n", ":2: unknown flag 'no-such-flag' (see --help)"},
      {"flagfile = x\n", ":1: unknown flag 'flagfile'"},  // Abseil's own flags are not settings
      {"\ntest_limit = many\n", ":2: test_limit: "},
      {"test-deadline-ms = 10 parsecs\n", ":1: test_deadline_ms: "},
      {"test_limit\n", ":1: expected 'flag = value'"},
  };
  for (const auto& c : cases) {
    std::string config = "--config=" + Write(c.text);
    std::vector<char*> argv = {const_cast<char*>("prog"), config.data()};
    ConfigFileArgs args(static_cast<int>(argv.size()), argv.data());
    ASSERT_FALSE(args.ok()) << c.text;
    std::string want = path_ + c.want;
    EXPECT_NE(args.status().message().find(want), std::string::npos)
        << args.status().message() << " lacks " << want;
  }
}

TEST_F(ConfigFileArgsTest, UnreadableFileIsAnErrorNamingIt) {
  for (std::string path : {std::string("/nonexistent/replicator.conf"),
                           std::filesystem::temp_directory_path().string()}) {
    std::string config = "--config=" + path;
    std::vector<char*> argv = {const_cast<char*>("prog"), config.data()};
    ConfigFileArgs args(static_cast<int>(argv.size()), argv.data());
    ASSERT_FALSE(args.ok()) << path;
    EXPECT_NE(args.status().message().find("cannot read config file " + path), std::string::npos)
        << args.status().message();
  }
}

}  // namespace
}  // namespace replicator::util
