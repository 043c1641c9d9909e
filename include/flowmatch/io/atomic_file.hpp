#pragma once
/// \file
/// Files as checkpoints need them: read whole (the size is the file's own, never a number read
/// from it), and written atomically (temporary file, fsync, rename, fsync of the folder), so that a
/// checkpoint on disk is always the old one or the new one, never a mixture.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "flowmatch/io/checkpoint_errors.hpp"

namespace flowmatch::detail {

/// The whole file, read into memory (the size is the file's own, never a number read from it).
inline std::vector<unsigned char> read_file_bytes(const std::filesystem::path& file, const char* where) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw CheckpointIOError(std::string(where) + ": '" + file.string() + "' is a folder, not a checkpoint file");
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in)
    throw CheckpointIOError(std::string(where) + ": cannot open '" + file.string() + "' for reading: " +
                            std::strerror(errno));
  const std::streamoff end = in.tellg();
  if (end < 0) throw CheckpointIOError(std::string(where) + ": cannot determine the size of '" + file.string() + "'");
  std::vector<unsigned char> bytes(static_cast<std::size_t>(end));
  in.seekg(0);
  if (!bytes.empty()) in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!in || in.gcount() != static_cast<std::streamsize>(bytes.size()))
    throw CheckpointIOError(std::string(where) + ": error while reading '" + file.string() + "'");
  return bytes;
}

// ------------------------------------------------------------------------------------------------
// Atomic write.

/// Test hooks (null in normal use): called after each chunk written to the temporary file, and
/// between the synced temporary file and the rename. A hook may throw or end the process, to
/// prove that neither leaves a damaged checkpoint behind.
struct AtomicWriteHooks {
  void (*after_chunk)(std::size_t bytes_written) = nullptr;
  void (*before_rename)(const char* temporary_path) = nullptr;
};
inline AtomicWriteHooks& atomic_write_hooks() {
  static AtomicWriteHooks hooks;
  return hooks;
}

[[noreturn]] inline void throw_io(const char* where, const std::string& what, int err) {
  throw CheckpointIOError(std::string(where) + ": " + what + ": " + std::strerror(err));
}

/// Writes `bytes` to `file` so that `file` is always either its old content or the new one: a
/// temporary file in the same folder is written, flushed and fsynced, then renamed over `file`,
/// and the folder is synced. On failure the temporary file is removed and `file` is untouched.
inline void write_file_atomically(const std::filesystem::path& file, const std::vector<unsigned char>& bytes,
                                  const char* where) {
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path folder = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    std::string name(1, '.');  // built by appends: GCC 12 warns falsely (-Wrestrict) on "." + string
    name.append(file.filename().string()).append(".tmp-").append(std::to_string(::getpid()));
    name.append("-").append(std::to_string(counter.fetch_add(1)));
    tmp = (folder / name).string();
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) throw_io(where, "cannot create a temporary file next to '" + file.string() + "'", errno);
  }
  if (fd < 0) throw_io(where, "cannot create a temporary file next to '" + file.string() + "'", EEXIST);
  struct Cleanup {  // removes the temporary file unless it was renamed
    int& fd;
    const std::string& path;
    bool armed = true;
    ~Cleanup() {
      if (fd >= 0) ::close(fd);
      if (armed) ::unlink(path.c_str());
    }
  } cleanup{fd, tmp};
  constexpr std::size_t kChunk = std::size_t{1} << 16;
  std::size_t written = 0;
  while (written < bytes.size()) {
    const std::size_t n = std::min(kChunk, bytes.size() - written);
    const ssize_t w = ::write(fd, bytes.data() + written, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_io(where, "cannot write '" + tmp + "'", errno);
    }
    written += static_cast<std::size_t>(w);
    if (atomic_write_hooks().after_chunk != nullptr) atomic_write_hooks().after_chunk(written);
  }
  if (::fsync(fd) != 0) throw_io(where, "cannot sync '" + tmp + "' to disk", errno);
  const int fd_to_close = fd;
  fd = -1;
  if (::close(fd_to_close) != 0) throw_io(where, "cannot close '" + tmp + "'", errno);
  if (atomic_write_hooks().before_rename != nullptr) atomic_write_hooks().before_rename(tmp.c_str());
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    throw_io(where, "cannot rename '" + tmp + "' to '" + file.string() + "'", errno);
  cleanup.armed = false;
  // Make the rename itself durable. Some file systems refuse fsync on a folder (EINVAL): the
  // rename is then as durable as they make it.
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    const int rc = ::fsync(dir);
    const int err = errno;
    ::close(dir);
    if (rc != 0 && err != EINVAL && err != EROFS)
      throw_io(where, "renamed '" + file.string() + "' but cannot sync its folder", err);
  }
}

}  // namespace flowmatch::detail
