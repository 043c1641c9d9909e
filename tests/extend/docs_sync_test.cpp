// docs/extending.md quotes the example code of tests/extend/*_test.cpp, which flowmatch_tests
// compiles and runs. This test keeps the quotes true: every ```cpp block of the page must follow a
// line `<!-- quoted from tests/extend/NAME.cpp -->` and appear, line for line, in that file (up to
// a common indentation), and every tests/extend/*_test.cpp but this one must be quoted. Editing an
// example's quoted lines without the page (or the page without the file) fails here.
//
// The sources are found from __FILE__: as given to the compiler (absolute, or relative to the
// build folder when ccache's base_dir rewrites it), resolved against the working directory and
// against the test executable's folder (where the build compiled it). If neither finds them the
// test warns and checks nothing, as tests/io/checkpoint_test.cpp does for its corpus.

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

std::size_t indent_of(const std::string& s) {
  const std::size_t k = s.find_first_not_of(' ');
  return k == std::string::npos ? s.size() : k;
}

// The lines without their common indentation (blank lines ignored when finding it).
std::vector<std::string> dedent(std::vector<std::string> lines) {
  std::size_t common = std::string::npos;
  for (const auto& l : lines)
    if (l.find_first_not_of(' ') != std::string::npos) common = std::min(common, indent_of(l));
  if (common == std::string::npos) common = 0;
  for (auto& l : lines) l = l.size() >= common ? l.substr(common) : std::string();
  return lines;
}

// Whether `block` appears in `file` as consecutive lines, up to a common indentation.
bool contains_block(const std::vector<std::string>& file, const std::vector<std::string>& block) {
  if (block.empty() || block.size() > file.size()) return false;
  for (std::size_t i = 0; i + block.size() <= file.size(); ++i) {
    const std::vector<std::string> window(file.begin() + static_cast<std::ptrdiff_t>(i),
                                          file.begin() + static_cast<std::ptrdiff_t>(i + block.size()));
    if (dedent(window) == block) return true;
  }
  return false;
}

// The source root (the folder holding docs/ and tests/), or empty.
fs::path source_root() {
  const fs::path self = __FILE__;  // .../tests/extend/docs_sync_test.cpp
  std::error_code ec;
  std::vector<fs::path> candidates = {fs::absolute(self, ec)};
  if (self.is_relative()) {
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) candidates.push_back(exe.parent_path() / self);
  }
  for (const fs::path& c : candidates) {
    const fs::path root = c.parent_path().parent_path().parent_path();
    if (fs::exists(root / "docs" / "extending.md", ec) && fs::exists(root / "tests" / "extend", ec)) return root;
  }
  return {};
}

}  // namespace

TEST_CASE("extend/docs: every code block of docs/extending.md is quoted from a compiled test", "[extend][docs]") {
  const fs::path root = source_root();
  if (root.empty()) {
    WARN("sources not found from __FILE__ = " << __FILE__ << ": docs/extending.md not checked");
    return;
  }
  const std::vector<std::string> doc = read_lines(root / "docs" / "extending.md");
  const std::string marker = "<!-- quoted from ";
  std::map<std::string, int> quotes;  // file -> blocks quoted from it
  int blocks = 0;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    if (doc[i].rfind("```cpp", 0) != 0) continue;
    ++blocks;
    std::vector<std::string> block;
    std::size_t j = i + 1;
    for (; j < doc.size() && doc[j].rfind("```", 0) != 0; ++j) block.push_back(doc[j]);
    INFO("docs/extending.md, code block at line " << i + 1);
    REQUIRE(j < doc.size());  // closed
    REQUIRE(i > 0);
    const std::string& m = doc[i - 1];
    REQUIRE(m.rfind(marker, 0) == 0);  // says where it is quoted from
    const std::string file = m.substr(marker.size(), m.find(" -->") - marker.size());
    INFO("quoted from " << file);
    const fs::path path = root / file;
    if (!fs::exists(path)) {
      // A test that another branch adds (the coordinator merges it); the coverage check below
      // still fails if an existing test is not quoted.
      WARN(file << " does not exist: its quote is not checked");
      i = j;
      continue;
    }
    ++quotes[file];
    CHECK(contains_block(read_lines(path), dedent(block)));
    i = j;
  }
  CHECK(blocks >= 8);

  // Every example test is quoted by the page.
  std::set<std::string> examples;
  for (const auto& e : fs::directory_iterator(root / "tests" / "extend")) {
    const std::string name = e.path().filename().string();
    if (name.size() > 9 && name.ends_with("_test.cpp") && name != "docs_sync_test.cpp")
      examples.insert("tests/extend/" + name);
  }
  CHECK(examples.size() >= 4);
  for (const std::string& f : examples) {
    INFO(f << " is not quoted by docs/extending.md");
    CHECK(quotes.count(f) == 1);
  }
}

}  // namespace FLOWMATCH_TEST_FILE_ID
