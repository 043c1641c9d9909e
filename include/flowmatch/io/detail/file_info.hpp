#pragma once
/// \file
/// What the readers of io/ need to know about a file before they open it (whether it is a folder,
/// its size), through POSIX stat() rather than <filesystem>: <filesystem> alone cost 0.25 s of
/// compile time (g++ 12, -fsyntax-only) in every file that included <flowmatch.hpp>. The readers
/// take paths as std::string (a std::filesystem::path converts to one).

#include <cstdint>
#include <string>

#include <sys/stat.h>

namespace flowmatch::detail {

/// stat() of a path: whether it exists, whether it is a folder, and its size in bytes.
struct FileInfo {
  bool exists = false;
  bool is_directory = false;
  std::uint64_t size = 0;
};

inline FileInfo file_info(const std::string& path) {
  struct stat st {};
  FileInfo info;
  if (::stat(path.c_str(), &st) != 0) return info;
  info.exists = true;
  info.is_directory = S_ISDIR(st.st_mode);
  info.size = st.st_size > 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  return info;
}

/// `a/b`: the two joined by one '/' (a alone when b is empty, b alone when a is empty).
inline std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a.back() == '/' ? a + b : a + "/" + b;
}

}  // namespace flowmatch::detail
