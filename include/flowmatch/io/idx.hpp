#pragma once
/// \file
/// Reading IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or plain, into matrices
/// with one image per column, and finding the Fashion-MNIST data set on disk.
///
/// This header needs zlib (Debian: zlib1g-dev): link the CMake target flowmatch::idx (flowmatch
/// plus ZLIB::ZLIB), which exists when CMake finds zlib. It is deliberately NOT part of the
/// umbrella header <flowmatch.hpp>, so that the rest of the library needs no zlib: include
/// <flowmatch/io/idx.hpp> yourself.
///
/// IDX format (big-endian): bytes 0-1 zero, byte 2 the element type code (0x08 unsigned byte,
/// the only one read here), byte 3 the rank r, then r u32 dimensions, then the elements in
/// row-major order. Every problem is an IdxError (a subclass per kind) whose message names the
/// file, what was expected and what was found.

#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Base of every IDX reading failure. what() reads "flowmatch::<function>: '<file>': <problem>".
class IdxError : public Error {
 public:
  IdxError(const std::string& where, const std::filesystem::path& file, const std::string& problem)
      : Error(where + ": '" + file.string() + "': " + problem), file_(file) {}
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
};

/// The file cannot be opened or read, or its gzip stream is corrupt (the message holds zlib's or
/// the OS's reason).
class IdxIOError : public IdxError {
 public:
  using IdxError::IdxError;
};

/// The header is not an IDX header this reader accepts: wrong magic, unsupported element type,
/// rank 0 or too large, a zero or absurd dimension, or the wrong rank for what was asked.
class IdxFormatError : public IdxError {
 public:
  using IdxError::IdxError;
};

/// The file ends before the header or the elements it declares.
class IdxTruncatedError : public IdxError {
 public:
  using IdxError::IdxError;
};

/// The file has bytes after the elements its header declares.
class IdxTrailingDataError : public IdxError {
 public:
  using IdxError::IdxError;
};

/// The contents do not fit together: image and label counts differ, a label is out of range, or
/// the image size is not the one expected.
class IdxMismatchError : public IdxError {
 public:
  using IdxError::IdxError;
};

/// An IDX array of unsigned bytes: the file's dimensions (dims[0] = number of items) and the first
/// `items_read` items' bytes, row-major.
struct IdxArray {
  std::vector<std::uint32_t> dims;
  Index items_read = 0;
  std::vector<std::uint8_t> data;

  /// Bytes per item: the product of dims[1..].
  Index item_size() const {
    Index s = 1;
    for (std::size_t k = 1; k < dims.size(); ++k) s *= static_cast<Index>(dims[k]);
    return s;
  }
};

/// Images as a (rows * cols) x n matrix, one image per column, pixels row-major within a column,
/// scaled from {0, ..., 255} to [-1, 1] (p / 127.5 - 1); labels in [0, num_classes).
struct LabeledImages {
  Matrix<float> images;
  Eigen::VectorXi labels;
  Index rows = 0;  ///< image height
  Index cols = 0;  ///< image width
  Index size() const { return images.cols(); }
};

/// The limits a header must respect: rank 1..4, every dimension >= 1, at most 2^31 bytes in all.
inline constexpr int kIdxMaxRank = 4;
inline constexpr std::uint64_t kIdxMaxBytes = std::uint64_t{1} << 31;

namespace detail {

/// gzFile with RAII; gzread reads gzip'd and plain files alike (a plain file is passed through).
class GzReader {
 public:
  GzReader(const std::filesystem::path& file, const char* where) : file_(file), where_(where) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
      throw IdxIOError(where_, file_, std::filesystem::exists(file, ec) ? "not a regular file" : "no such file");
    gz_ = gzopen(file.c_str(), "rb");
    if (gz_ == nullptr) throw IdxIOError(where_, file_, "cannot open it for reading");
    gzbuffer(gz_, 1 << 17);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  ~GzReader() {
    if (gz_ != nullptr) gzclose(gz_);
  }

  /// Reads up to n bytes into out; returns how many were read (fewer only at the end of the data).
  /// Throws IdxIOError on a read error or a corrupt gzip stream, IdxTruncatedError (naming
  /// `what`) if the gzip stream itself ends early.
  std::size_t read(std::uint8_t* out, std::size_t n, const std::string& what) {
    std::size_t total = 0;
    while (total < n) {
      const std::size_t chunk = std::min<std::size_t>(n - total, std::size_t{1} << 30);
      const int got = gzread(gz_, out + total, static_cast<unsigned>(chunk));
      if (got < 0) fail(what);
      if (got == 0) {
        check_clean_end(what, total, n);
        break;
      }
      total += static_cast<std::size_t>(got);
    }
    return total;
  }

  /// Counts the bytes left (for the trailing-data message), reading them.
  std::uint64_t count_rest() {
    std::array<std::uint8_t, 65536> buf{};
    std::uint64_t n = 0;
    for (;;) {
      const int got = gzread(gz_, buf.data(), static_cast<unsigned>(buf.size()));
      if (got < 0) fail("the bytes after the declared data");
      if (got == 0) {
        check_clean_end("the end of the file", 0, 0);
        return n;
      }
      n += static_cast<std::uint64_t>(got);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    int code = 0;
    const char* msg = gzerror(gz_, &code);
    const std::string reason = msg != nullptr && *msg != '\0' ? msg : "unknown zlib error";
    if (code == Z_BUF_ERROR)
      throw IdxTruncatedError(where_, file_, "the gzip stream ends early while reading " + what + " (" + reason + ")");
    throw IdxIOError(where_, file_, "read error while reading " + what + ": " + reason + " (zlib code " +
                                        std::to_string(code) + ")");
  }

  // gzread returned 0: a truncated gzip stream reports Z_BUF_ERROR here.
  void check_clean_end(const std::string& what, std::size_t got, std::size_t wanted) {
    int code = 0;
    const char* msg = gzerror(gz_, &code);
    if (code != Z_OK && code != Z_STREAM_END) {
      const std::string reason = msg != nullptr && *msg != '\0' ? msg : "unknown zlib error";
      if (code == Z_BUF_ERROR)
        throw IdxTruncatedError(where_, file_,
                                "the gzip stream ends early while reading " + what +
                                    (wanted > 0 ? ": expected " + std::to_string(wanted) + " bytes, found " +
                                                      std::to_string(got)
                                                : std::string()) +
                                    " (" + reason + ")");
      throw IdxIOError(where_, file_, "read error while reading " + what + ": " + reason);
    }
  }

  std::filesystem::path file_;
  std::string where_;
  gzFile gz_ = nullptr;
};

inline const char* idx_type_name(unsigned code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "not an IDX type";
  }
}

inline std::string hex_byte(unsigned v) {
  static constexpr char digits[] = "0123456789ABCDEF";
  return std::string("0x") + digits[(v >> 4) & 0xF] + digits[v & 0xF];
}

inline std::string dims_string(const std::vector<std::uint32_t>& dims) {
  std::string s;
  for (std::size_t k = 0; k < dims.size(); ++k) s += (k ? " x " : "") + std::to_string(dims[k]);
  return s;
}

inline IdxArray read_idx_impl(const std::filesystem::path& file, long long max_items, const char* where) {
  GzReader in(file, where);
  std::array<std::uint8_t, 4> magic{};
  const std::size_t got = in.read(magic.data(), 4, "the 4-byte magic");
  if (got < 4)
    throw IdxTruncatedError(where, file, "expected a 4-byte IDX magic, found a file of " + std::to_string(got) +
                                             " byte(s)");
  if (magic[0] != 0 || magic[1] != 0)
    throw IdxFormatError(where, file,
                         "expected an IDX magic starting with two zero bytes, found " + hex_byte(magic[0]) + " " +
                             hex_byte(magic[1]) + (magic[0] == 0x1f && magic[1] == 0x8b ? " (a damaged gzip file?)" : ""));
  if (magic[2] != 0x08)
    throw IdxFormatError(where, file,
                         "unsupported element type code " + hex_byte(magic[2]) + " (" + idx_type_name(magic[2]) +
                             "); expected 0x08 (unsigned byte)");
  const int rank = magic[3];
  if (rank < 1 || rank > kIdxMaxRank)
    throw IdxFormatError(where, file,
                         "expected a rank between 1 and " + std::to_string(kIdxMaxRank) + ", found " +
                             std::to_string(rank));
  IdxArray a;
  a.dims.resize(static_cast<std::size_t>(rank));
  std::vector<std::uint8_t> raw(static_cast<std::size_t>(4 * rank));
  const std::size_t got_dims = in.read(raw.data(), raw.size(), "the dimensions");
  if (got_dims < raw.size())
    throw IdxTruncatedError(where, file,
                            "expected " + std::to_string(rank) + " dimensions (" + std::to_string(raw.size()) +
                                " bytes) after the magic, found only " + std::to_string(got_dims) + " byte(s)");
  std::uint64_t total = 1;
  for (int k = 0; k < rank; ++k) {
    const std::uint8_t* p = raw.data() + 4 * k;
    a.dims[static_cast<std::size_t>(k)] = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                          (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    const std::uint32_t d = a.dims[static_cast<std::size_t>(k)];
    if (d == 0)
      throw IdxFormatError(where, file, "dimension " + std::to_string(k) + " is 0 (dimensions " +
                                            dims_string(a.dims) + "); expected every dimension >= 1");
    total *= d;
    if (total > kIdxMaxBytes)
      throw IdxFormatError(where, file,
                           "the dimensions (" + dims_string(a.dims) + "...) declare more than " +
                               std::to_string(kIdxMaxBytes) + " bytes: an absurd size, not reading it");
  }
  const auto count = static_cast<Index>(a.dims[0]);
  const Index item = a.item_size();
  a.items_read = max_items >= 0 && max_items < count ? static_cast<Index>(max_items) : count;
  const auto wanted = static_cast<std::size_t>(a.items_read) * static_cast<std::size_t>(item);
  // The declared size is a claim, not a size to allocate: the buffer grows with the bytes that
  // actually arrive (1 MiB, then doubling), so a short file declaring gigabytes costs at most
  // about three times what it holds (old and new buffer during a growth) plus 1 MiB.
  std::size_t got_data = 0;
  for (std::size_t next = std::min<std::size_t>(wanted, std::size_t{1} << 20);; next = std::min(wanted, 2 * next)) {
    a.data.resize(next);
    const std::size_t got = in.read(a.data.data() + got_data, next - got_data, "the elements");
    got_data += got;
    if (got_data < next || next == wanted) break;
  }
  a.data.resize(got_data);
  if (got_data < wanted)
    throw IdxTruncatedError(where, file,
                            "the header declares " + dims_string(a.dims) + " = " +
                                std::to_string(static_cast<std::uint64_t>(count) * static_cast<std::uint64_t>(item)) +
                                " bytes of data; expected " + std::to_string(wanted) + " bytes, found only " +
                                std::to_string(got_data));
  if (a.items_read == count) {
    const std::uint64_t rest = in.count_rest();
    if (rest != 0)
      throw IdxTrailingDataError(where, file,
                                 "expected the file to end after the " + std::to_string(wanted) +
                                     " data bytes its header declares (" + dims_string(a.dims) + "), found " +
                                     std::to_string(rest) + " more byte(s)");
  }
  return a;
}

inline Index checked_max_count(const char* where, long long max_count) {
  if (max_count < -1) throw_invalid(where, "max_count", max_count, "must be -1 (all) or >= 0");
  return static_cast<Index>(max_count);
}

}  // namespace detail

/// Reads a whole IDX file of unsigned bytes (gzip'd or plain), or its first `max_items` items
/// (max_items = -1: all; a prefix is not checked for trailing data). Throws an IdxError subclass
/// on any problem (see the class comments).
inline IdxArray read_idx(const std::filesystem::path& file, long long max_items = -1) {
  constexpr const char* where = "flowmatch::read_idx";
  return detail::read_idx_impl(file, detail::checked_max_count(where, max_items), where);
}

/// Reads a rank-3 IDX file of n images of rows x cols bytes into a (rows * cols) x n float
/// matrix, one image per column (row-major pixels), scaled to [-1, 1]. max_count as read_idx.
/// Throws IdxFormatError if the rank is not 3.
inline Matrix<float> read_idx_images(const std::filesystem::path& file, long long max_count = -1,
                                     Index* rows = nullptr, Index* cols = nullptr) {
  constexpr const char* where = "flowmatch::read_idx_images";
  const IdxArray a = detail::read_idx_impl(file, detail::checked_max_count(where, max_count), where);
  if (a.dims.size() != 3)
    throw IdxFormatError(where, file,
                         "expected images: rank 3 (count x rows x cols), found rank " + std::to_string(a.dims.size()) +
                             " (" + detail::dims_string(a.dims) + ")");
  const Index d = a.item_size();
  Matrix<float> x(d, a.items_read);
  const std::uint8_t* p = a.data.data();
  float* out = x.data();
  for (std::size_t k = 0; k < a.data.size(); ++k) out[k] = static_cast<float>(p[k]) / 127.5f - 1.0f;
  if (rows != nullptr) *rows = static_cast<Index>(a.dims[1]);
  if (cols != nullptr) *cols = static_cast<Index>(a.dims[2]);
  return x;
}

/// Reads a rank-1 IDX file of labels (max_count as read_idx), each of which must lie in
/// [0, num_classes) (num_classes >= 1, at most 256). Throws IdxFormatError if the rank is not 1,
/// IdxMismatchError naming the first label out of range.
inline Eigen::VectorXi read_idx_labels(const std::filesystem::path& file, long long max_count = -1,
                                       Index num_classes = 10) {
  constexpr const char* where = "flowmatch::read_idx_labels";
  if (num_classes < 1 || num_classes > 256)
    detail::throw_invalid(where, "num_classes", num_classes, "must lie in [1, 256]");
  const IdxArray a = detail::read_idx_impl(file, detail::checked_max_count(where, max_count), where);
  if (a.dims.size() != 1)
    throw IdxFormatError(where, file,
                         "expected labels: rank 1 (count), found rank " + std::to_string(a.dims.size()) + " (" +
                             detail::dims_string(a.dims) + ")");
  Eigen::VectorXi labels(a.items_read);
  for (Index k = 0; k < a.items_read; ++k) {
    const int v = a.data[static_cast<std::size_t>(k)];
    if (v >= num_classes)
      throw IdxMismatchError(where, file,
                             "label " + std::to_string(k) + " is " + std::to_string(v) + "; expected a class in [0, " +
                                 std::to_string(num_classes) + ")");
    labels(k) = v;
  }
  return labels;
}

/// Reads images and their labels (the first max_count of each, -1: all). The two files must hold
/// the same number of items (compared on the headers: IdxMismatchError naming both files), and,
/// if expected_rows / expected_cols are > 0, images of that size (IdxMismatchError otherwise).
inline LabeledImages read_idx_dataset(const std::filesystem::path& images_file, const std::filesystem::path& labels_file,
                                      long long max_count = -1, Index num_classes = 10, Index expected_rows = 0,
                                      Index expected_cols = 0) {
  constexpr const char* where = "flowmatch::read_idx_dataset";
  detail::checked_max_count(where, max_count);
  LabeledImages out;
  // The labels' count first (a small file): a mismatch is reported before reading the images.
  const IdxArray label_header = detail::read_idx_impl(labels_file, 0, where);
  if (label_header.dims.size() != 1)
    throw IdxFormatError(where, labels_file,
                         "expected labels: rank 1 (count), found rank " + std::to_string(label_header.dims.size()) +
                             " (" + detail::dims_string(label_header.dims) + ")");
  const IdxArray image_header = detail::read_idx_impl(images_file, 0, where);
  if (image_header.dims.size() == 3 && image_header.dims[0] != label_header.dims[0])
    throw IdxMismatchError(where, images_file,
                           "holds " + std::to_string(image_header.dims[0]) + " images but the labels file '" +
                               labels_file.string() + "' holds " + std::to_string(label_header.dims[0]) +
                               " labels; expected the same count");
  out.images = read_idx_images(images_file, max_count, &out.rows, &out.cols);
  if ((expected_rows > 0 && out.rows != expected_rows) || (expected_cols > 0 && out.cols != expected_cols))
    throw IdxMismatchError(where, images_file,
                           "expected images of " + std::to_string(expected_rows) + " x " +
                               std::to_string(expected_cols) + " pixels, found " + std::to_string(out.rows) + " x " +
                               std::to_string(out.cols));
  out.labels = read_idx_labels(labels_file, max_count, num_classes);
  return out;
}

/// The ten Fashion-MNIST classes, by label.
inline constexpr std::array<const char*, 10> kFashionMnistClassNames{
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/// The folder holding Fashion-MNIST's four files (train-images-idx3-ubyte[.gz], ...): the
/// environment variable FLOWMATCH_FASHION_MNIST_DIR if set (then it must hold them), else
/// /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist), else nothing.
inline std::optional<std::filesystem::path> find_fashion_mnist() {
  namespace fs = std::filesystem;
  const auto holds = [](const fs::path& dir) {
    std::error_code ec;
    for (const char* stem : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte"})
      if (!fs::is_regular_file(dir / (std::string(stem) + ".gz"), ec) && !fs::is_regular_file(dir / stem, ec))
        return false;
    return true;
  };
  if (const char* env = std::getenv("FLOWMATCH_FASHION_MNIST_DIR"); env != nullptr && *env != '\0')
    return holds(env) ? std::optional<fs::path>(fs::path(env)) : std::nullopt;
  const fs::path debian = "/usr/share/datasets/fashion-mnist";
  if (holds(debian)) return debian;
  return std::nullopt;
}

/// Reads Fashion-MNIST's training (train = true, 60000 images) or test (10000) split from `dir`
/// (the .gz files, or plain ones), the first max_count items (-1: all): 784 x n pixels in
/// [-1, 1] and labels in [0, 10).
inline LabeledImages read_fashion_mnist(const std::filesystem::path& dir, bool train, long long max_count = -1) {
  const std::string split = train ? "train" : "t10k";
  const auto pick = [&](const std::string& stem) {
    std::error_code ec;
    const std::filesystem::path gz = dir / (stem + ".gz");
    return std::filesystem::is_regular_file(gz, ec) ? gz : dir / stem;
  };
  return read_idx_dataset(pick(split + "-images-idx3-ubyte"), pick(split + "-labels-idx1-ubyte"), max_count, 10, 28,
                          28);
}

}  // namespace flowmatch
