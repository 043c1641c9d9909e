#pragma once
// A fresh, empty folder under the system's temporary folder, removed at the end of the test.

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace flowmatch::test {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name = "test") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("flowmatch_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

}  // namespace flowmatch::test
