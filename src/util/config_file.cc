#include "util/config_file.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace replicator::util {
namespace {

absl::Status LineError(std::string_view file, int line, std::string_view reason) {
  return absl::InvalidArgumentError(fmt::format("{}:{}: {}", file, line, reason));
}

bool NameChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-';
}

std::string Underscored(absl::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c == '-') c = '_';
  }
  return out;
}

std::string Dashed(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c == '_') c = '-';
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<ConfigEntry>> ParseConfigText(std::string_view file,
                                                         std::string_view text) {
  std::vector<ConfigEntry> entries;
  std::map<std::string, int> seen;  // name -> line it was set on
  int line_number = 0;
  // Debian's Abseil has its own string_view.
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);  // also a Windows '\r'
    if (line.empty() || line.front() == '#') continue;
    size_t equals = line.find('=');
    if (equals == std::string_view::npos) {
      return LineError(file, line_number,
                       fmt::format("expected 'flag = value', got '{}'", std::string(line)));
    }
    absl::string_view name = absl::StripAsciiWhitespace(line.substr(0, equals));
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(equals + 1));
    if (name.empty()) return LineError(file, line_number, "missing flag name before '='");
    for (char c : name) {
      if (!NameChar(c) || name.front() == '-' || name.front() == '_') {
        return LineError(file, line_number,
                         fmt::format("'{}' is not a flag name (lower-case letters, digits, "
                                     "'-' and '_'; no leading '--')",
                                     std::string(name)));
      }
    }
    std::string key = Underscored(name);
    if (key == "config") {
      return LineError(file, line_number, "'config' cannot be set in a config file");
    }
    auto [it, inserted] = seen.emplace(key, line_number);
    if (!inserted) {
      return LineError(
          file, line_number,
          fmt::format("'{}' is already set on line {}", std::string(name), it->second));
    }
    entries.push_back(ConfigEntry{line_number, std::move(key), std::string(value)});
  }
  return entries;
}

std::optional<std::string> FindConfigFlag(int argc, char** argv) {
  std::optional<std::string> found;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") break;
    for (std::string_view prefix : {"--config", "-config"}) {
      if (arg.substr(0, prefix.size()) != prefix) continue;
      std::string_view rest = arg.substr(prefix.size());
      if (rest.empty() && i + 1 < argc) {
        found = argv[++i];
      } else if (!rest.empty() && rest.front() == '=') {
        found = std::string(rest.substr(1));
      }
      break;
    }
  }
  return found;
}

ConfigFileArgs::ConfigFileArgs(int argc, char** argv) {
  args_.emplace_back(argc > 0 ? argv[0] : "");
  std::optional<std::string> path = FindConfigFlag(argc, argv);
  if (path) {
    std::error_code ec;
    std::ifstream in;
    if (!path->empty() && !std::filesystem::is_directory(*path, ec)) {
      in.open(*path, std::ios::binary);
    }
    std::stringstream text;
    if (in.is_open()) text << in.rdbuf();
    if (path->empty()) {
      status_ = absl::InvalidArgumentError("--config needs a file name");
    } else if (!in.is_open() || in.bad()) {
      status_ = absl::InvalidArgumentError(fmt::format(
          "cannot read config file {}: {}", *path,
          std::filesystem::is_directory(*path, ec) ? "is a directory" : std::strerror(errno)));
    } else {
      absl::StatusOr<std::vector<ConfigEntry>> entries = ParseConfigText(*path, text.str());
      if (!entries.ok()) status_ = entries.status();
      for (const ConfigEntry& e : entries.ok() ? *entries : std::vector<ConfigEntry>{}) {
        absl::CommandLineFlag* flag = absl::FindCommandLineFlag(e.name);
        // Abseil's own flags (--flagfile, --helpfull...) are not settings of the program.
        if (flag == nullptr || flag->Filename().find("absl/") != std::string::npos) {
          status_ = LineError(*path, e.line,
                              fmt::format("unknown flag '{}' (see --help)", Dashed(e.name)));
          break;
        }
        // Parsing sets the flag; the command line parses it again, in order, so the value
        // that counts is still the last one given.
        std::string error;
        if (!flag->ParseFrom(e.value, &error)) {
          status_ = LineError(*path, e.line, fmt::format("{}: {}", e.name, error));
          break;
        }
        args_.push_back(fmt::format("--{}={}", e.name, e.value));
      }
    }
  }
  if (!status_.ok()) args_.resize(1);
  for (int i = 1; i < argc; ++i) args_.emplace_back(argv[i]);
  for (std::string& s : args_) pointers_.push_back(s.data());
  pointers_.push_back(nullptr);
}

}  // namespace replicator::util
