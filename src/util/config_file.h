// Config files for replicatord and replicator: `--config=FILE` names a file of
// `flag = value` lines that are turned into `--flag=value` arguments placed
// before the command line's own, so Abseil parses and validates them and a
// flag given on the command line overrides the file. Not thread-safe; use at
// the start of main, before absl::ParseCommandLine.
//
// The format, one setting per line:
//   # a comment (only at the start of a line, after optional spaces)
//   cluster = eu-1
//   data-dir=/var/lib/replicator      # names as the flags, dashes or underscores
//   bootstrap =                        # an empty value is allowed
//
//   util::ConfigFileArgs args(argc, argv);
//   if (!args.ok()) { print args.status().message(); return 2; }
//   util::DashedFlags dashed(args.argc(), args.argv());
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace replicator::util {

// One `name = value` line of a config file; `name` has underscores for dashes.
struct ConfigEntry {
  int line = 0;
  std::string name;
  std::string value;
};

// Parses a config file's text. Pure: no flag registry, no file system. Fails with
// InvalidArgument "FILE:LINE: reason" on a line without '=', an empty or malformed name, a
// name given twice, or `config` (files do not nest). `file` only names the file in errors.
absl::StatusOr<std::vector<ConfigEntry>> ParseConfigText(std::string_view file,
                                                         std::string_view text);

// The value of the last --config=FILE or --config FILE (dashes or underscores) before "--"
// in argv, if any.
std::optional<std::string> FindConfigFlag(int argc, char** argv);

// argv with the entries of its --config file, if any, inserted after argv[0] as
// "--name=value". Reads the file, and checks each entry against the program's registered
// Abseil flags: an unreadable file, an unknown name or a value the flag does not accept is an
// error naming the file and line (status() is then not ok and argv() is argv unchanged).
class ConfigFileArgs {
 public:
  ConfigFileArgs(int argc, char** argv);
  ConfigFileArgs(const ConfigFileArgs&) = delete;
  ConfigFileArgs& operator=(const ConfigFileArgs&) = delete;

  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  int argc() const { return static_cast<int>(args_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  absl::Status status_;
  std::vector<std::string> args_;
  std::vector<char*> pointers_;
};

}  // namespace replicator::util
