// libFuzzer harness for the IDX reader, plain and gzip'd (scripts/sanitize.sh builds and runs it
// under ASan and UBSan). Every input must read or throw IdxError; anything else is a failure. The
// reader takes a path, so each input is written to a scratch file (in /dev/shm when there is one).
// The first byte picks the mode, the rest is the file:
//   bit 0      the rest is gzip'd by the harness first (so that mutations reach the IDX header
//              behind a valid gzip stream; without it, a rest that is itself a gzip stream, as in
//              the seed corpus, is a damaged or truncated one once mutated)
//   bits 1-2   read_idx / read_idx with a prefix / read_idx_images / read_idx_labels
//   bits 3-5   the prefix length (bit 6 set: all items), or the labels' class count - 1

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include <flowmatch/io/idx.hpp>

namespace fm = flowmatch;
namespace fs = std::filesystem;

namespace {

struct ScratchFile {
  fs::path path;
  ScratchFile() {
    std::error_code ec;
    const fs::path dir = fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
                             ? fs::path("/dev/shm")
                             : fs::temp_directory_path();
    path = dir / ("flowmatch_idx_fuzz_" + std::to_string(::getpid()));
  }
  ~ScratchFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
  void write(const std::uint8_t* data, std::size_t size, bool gzip) const {
    if (gzip) {
      gzFile gz = gzopen(path.c_str(), "wb1");
      if (gz == nullptr) __builtin_trap();
      if (size > 0 && gzwrite(gz, data, static_cast<unsigned>(size)) != static_cast<int>(size)) __builtin_trap();
      if (gzclose(gz) != Z_OK) __builtin_trap();
      return;
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) __builtin_trap();
    for (std::size_t done = 0; done < size;) {
      const ssize_t w = ::write(fd, data + done, size - done);
      if (w <= 0) __builtin_trap();
      done += static_cast<std::size_t>(w);
    }
    ::close(fd);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const ScratchFile file;
  const unsigned mode = data[0];
  file.write(data + 1, size - 1, (mode & 1) != 0);
  const long long prefix = (mode & 64) ? -1 : static_cast<long long>((mode >> 3) & 7);
  try {
    switch ((mode >> 1) & 3) {
      case 0:
      case 1: {
        const fm::IdxArray a = fm::read_idx(file.path, ((mode >> 1) & 3) == 0 ? -1 : prefix);
        // What it read: 1 to 4 non-zero dimensions, and exactly the bytes of the items it reports.
        if (a.dims.empty() || a.dims.size() > static_cast<std::size_t>(fm::kIdxMaxRank)) __builtin_trap();
        for (const std::uint32_t d : a.dims)
          if (d == 0) __builtin_trap();
        if (a.items_read > static_cast<fm::Index>(a.dims[0])) __builtin_trap();
        if (a.data.size() != static_cast<std::size_t>(a.items_read * a.item_size())) __builtin_trap();
        break;
      }
      case 2: {
        fm::Index rows = 0, cols = 0;
        const fm::Matrix<float> x = fm::read_idx_images(file.path, prefix, &rows, &cols);
        if (x.rows() != rows * cols || (prefix >= 0 && x.cols() > prefix)) __builtin_trap();
        if (x.size() > 0 && (x.minCoeff() < -1.0f || x.maxCoeff() > 1.0f)) __builtin_trap();
        break;
      }
      default: {
        const fm::Index classes = 1 + static_cast<fm::Index>((mode >> 3) & 7);
        const Eigen::VectorXi labels = fm::read_idx_labels(file.path, prefix, classes);
        if (labels.size() > 0 && (labels.minCoeff() < 0 || labels.maxCoeff() >= classes)) __builtin_trap();
        break;
      }
    }
  } catch (const fm::IdxError&) {
  }
  return 0;
}
