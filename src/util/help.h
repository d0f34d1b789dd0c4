// `--help` that lists a program's own flags, grouped, with their defaults,
// as etcd and cockroach do: Abseil's --help filters by the main file's name
// and prints "No flags matched" for ours. Every flag defined in the
// program's main file is listed: those named in no group under "Other".
// --helpfull still lists Abseil's too. Header-only; call before
// absl::ParseCommandLine.
//
//   util::PrintHelpIfAsked(argc, argv, "replicatord: ...usage...", __FILE__,
//                          {{"Node", {"cluster", "listen"}}, ...});
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/reflection.h"
#include "absl/strings/str_replace.h"

namespace replicator::util {

struct FlagGroup {
  const char* title;
  std::vector<const char*> flags;  // declared names (underscores)
};

// One flag: "  --data-dir=STRING  (default ...)" then its help, indented.
inline void PrintFlag(const absl::CommandLineFlag& flag) {
  std::string name = absl::StrReplaceAll(flag.Name(), {{"_", "-"}});
  std::string value = flag.DefaultValue();
  std::string line = "  --" + name;
  if (value == "false" || value == "true") {
    line += value == "true" ? " (default: on)" : "";
  } else {
    line += value.empty() ? "=..." : "=" + value;
  }
  std::printf("%s\n", line.c_str());
  // Wrap the help at 76 columns, indented 6.
  const std::string help_text = flag.Help();
  std::string_view help = help_text;
  std::string out;
  size_t column = 0;
  while (!help.empty()) {
    size_t space = help.find(' ');
    std::string_view word = help.substr(0, space);
    if (column > 0 && column + 1 + word.size() > 70) {
      out += "\n";
      column = 0;
    }
    out += column == 0 ? "      " : " ";
    out += word;
    column += word.size() + 1;
    if (space == std::string_view::npos) break;
    help.remove_prefix(space + 1);
  }
  std::printf("%s\n", out.c_str());
}

// Prints `usage` and every flag of `main_file` by group, then exits 0, when
// argv has --help or -h. Returns otherwise.
inline void PrintHelpIfAsked(int argc, char** argv, std::string_view usage,
                             std::string_view main_file, const std::vector<FlagGroup>& groups) {
  bool asked = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (a == "--help" || a == "-h" || a == "-help") asked = true;
  }
  if (!asked) return;
  std::printf("%.*s\n", static_cast<int>(usage.size()), usage.data());
  auto all = absl::GetAllFlags();
  std::set<std::string> listed;
  for (const FlagGroup& g : groups) {
    std::printf("\n%s:\n", g.title);
    for (const char* name : g.flags) {
      auto it = all.find(name);
      if (it == all.end()) continue;
      PrintFlag(*it->second);
      listed.insert(name);
    }
  }
  std::vector<const absl::CommandLineFlag*> other;
  for (const auto& [name, flag] : all) {
    if (listed.count(std::string(name)) == 0 && flag->Filename() == main_file) {
      other.push_back(flag);
    }
  }
  std::sort(other.begin(), other.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  if (!other.empty()) std::printf("\nOther:\n");
  for (const auto* flag : other) PrintFlag(*flag);
  std::printf("\n  --help  this text; --helpfull also lists the libraries' flags\n");
  std::exit(0);
}

}  // namespace replicator::util
