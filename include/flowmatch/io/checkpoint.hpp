#pragma once
/// \file
/// Checkpoints: a model (architecture, scalar type, activation, every parameter), its optimizer's
/// state and a trainer's step count and random-generator state in one self-checking binary file,
/// written atomically, so that a resumed run continues bit-identically (at one thread) and a file on
/// disk is always either the previous good checkpoint or the new good one.
///
/// File format, version 1 (every integer and float little-endian):
///
///     offset  size  field
///          0     8  magic "\x89FMCKPT\n"
///          8     4  u32 format version (1)
///         12     4  u32 header size (32)
///         16     8  u64 payload size in bytes
///         24     4  u32 CRC-32 of the payload
///         28     4  u32 CRC-32 of bytes 0..27
///         32     -  payload:
///       model      u32 scalar size (4 float, 8 double); u32 n + n bytes activation name;
///                  u32 L + L x u64 layer widths; u64 P + P scalars (the flat parameters);
///       optimizer  u32 kind (0 none, 1 Adam, 2 SGD); Adam: f64 lr, beta1, beta2, eps, i64 steps,
///                  u64 n (0 or P), n scalars m, n scalars v; SGD: f64 lr, momentum, u32 nesterov,
///                  i64 steps, u64 n (0 or P), n scalars momentum buffer;
///       trainer    u32 present (0 or 1); if 1: i64 steps done, 4 x u64 generator state.
///
/// Loading reads the whole file and checks, in this order, before it touches the caller's objects:
/// the magic, the version, the header's checksum, the payload size against the file size (truncated
/// or trailing bytes), the payload's checksum, every field of the payload (sizes against what is
/// left, so a corrupt size never allocates), finite values, and then that the architecture, scalar
/// type, activation and optimizer match the caller's. Each failure throws its own subclass of
/// CheckpointError, and the caller's model, optimizer and trainer are unchanged.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/io/crc32.hpp"
#include "flowmatch/optim/adam.hpp"
#include "flowmatch/optim/sgd.hpp"

namespace flowmatch {

// CheckpointError and CheckpointMismatchError come from core/state.hpp (stopgap on branch
// i13-cond so that the state protocol and this format-1 header can be included together; the
// rewritten io/checkpoint.hpp replaces this file).
/// The file cannot be opened, read, written, synced or renamed (the message holds the OS's reason).
class CheckpointIOError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};
/// The file does not start with the checkpoint magic: not a flowmatch checkpoint.
class CheckpointMagicError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};
/// The file's format version is not one this build reads.
class CheckpointVersionError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};
/// The file is shorter than its header says.
class CheckpointTruncatedError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};
/// The file has bytes after the end its header declares.
class CheckpointTrailingDataError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};
/// A checksum does not match: some byte of the file changed after it was written.
class CheckpointChecksumError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};
/// The checksums hold but a field is impossible (a size larger than the file, an unknown code,
/// a non-finite parameter): a file written by something else, or crafted.
class CheckpointCorruptError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};

/// The checkpoint format version this build writes (and the only one it reads).
inline constexpr std::uint32_t kCheckpointVersion = 1;

/// A model a checkpoint can hold: a flat parameter vector and an architecture described by its
/// layer widths and activation name (MLPVectorField).
template <class M>
concept CheckpointableModel = requires(M& m, const M& cm) {
  typename M::Scalar;
  requires Real<typename M::Scalar>;
  { M::activation_type::name() } -> std::convertible_to<std::string_view>;
  { cm.layer_widths() } -> std::convertible_to<const std::vector<Index>&>;
  { cm.parameters() } -> std::convertible_to<const Vector<typename M::Scalar>&>;
  { m.parameters() } -> std::convertible_to<Vector<typename M::Scalar>&>;
};

/// A trainer whose whole state a checkpoint can hold (CFMTrainer).
template <class T>
concept CheckpointableTrainer = requires(T& t, const T& ct, long long steps) {
  requires CheckpointableModel<std::remove_cvref_t<decltype(t.model())>>;
  t.optimizer();
  { t.rng() } -> std::convertible_to<Rng&>;
  { ct.steps_done() } -> std::convertible_to<long long>;
  t.set_steps_done(steps);
};

/// What a checkpoint file holds, without loading it into anything (read_checkpoint_info).
struct CheckpointInfo {
  std::uint32_t version = 0;
  std::string scalar;               ///< "float" or "double"
  std::string activation;           ///< the activation's name(), e.g. "silu"
  std::vector<Index> layer_widths;  ///< input width, hidden widths, output width
  Index num_parameters = 0;
  std::string optimizer;            ///< "", "adam" or "sgd"
  long long optimizer_steps = 0;
  bool has_trainer_state = false;
  long long steps_done = 0;         ///< the trainer's step count (0 without trainer state)
};

namespace detail {

inline constexpr std::array<unsigned char, 8> kCheckpointMagic{0x89, 'F', 'M', 'C', 'K', 'P', 'T', '\n'};
inline constexpr std::size_t kCheckpointHeaderSize = 32;
inline constexpr std::uint32_t kOptimizerNone = 0, kOptimizerAdam = 1, kOptimizerSGD = 2;
inline constexpr std::size_t kMaxActivationName = 64;
inline constexpr std::size_t kMaxLayers = 4096;
inline constexpr std::uint64_t kMaxWidth = std::uint64_t{1} << 31;

template <class T>
inline constexpr bool is_adam_v = false;
template <class S>
inline constexpr bool is_adam_v<Adam<S>> = true;
template <class T>
inline constexpr bool is_sgd_v = false;
template <class S>
inline constexpr bool is_sgd_v<SGD<S>> = true;

template <Real S>
constexpr const char* scalar_name() {
  return std::is_same_v<S, float> ? "float" : "double";
}
inline const char* scalar_name_of_size(std::uint32_t size) { return size == 4 ? "float" : "double"; }

// ------------------------------------------------------------------------------------------------
// Encoding.
class ByteWriter {
 public:
  std::vector<unsigned char> bytes;

  void u32(std::uint32_t v) {
    for (int k = 0; k < 4; ++k) bytes.push_back(static_cast<unsigned char>(v >> (8 * k)));
  }
  void u64(std::uint64_t v) {
    for (int k = 0; k < 8; ++k) bytes.push_back(static_cast<unsigned char>(v >> (8 * k)));
  }
  void i64(long long v) { u64(static_cast<std::uint64_t>(v)); }
  void f64(double v) { u64(std::bit_cast<std::uint64_t>(v)); }
  void text(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  template <Real S>
  void scalars(const S* data, std::size_t n) {
    const std::size_t at = bytes.size();
    bytes.resize(at + n * sizeof(S));
    if constexpr (std::endian::native == std::endian::little) {
      if (n > 0) std::memcpy(bytes.data() + at, data, n * sizeof(S));
    } else {
      using U = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
      for (std::size_t i = 0; i < n; ++i) {
        const U u = std::bit_cast<U>(data[i]);
        for (std::size_t k = 0; k < sizeof(S); ++k)
          bytes[at + i * sizeof(S) + k] = static_cast<unsigned char>(u >> (8 * k));
      }
    }
  }
};

inline void put_u32_at(std::vector<unsigned char>& b, std::size_t at, std::uint32_t v) {
  for (int k = 0; k < 4; ++k) b[at + static_cast<std::size_t>(k)] = static_cast<unsigned char>(v >> (8 * k));
}

/// Everything a checkpoint may hold, as plain values; parameter arrays point into the file's bytes.
struct DecodedCheckpoint {
  struct Scalars {
    const unsigned char* data = nullptr;  ///< little-endian scalars of `scalar_size` bytes
    std::size_t count = 0;
  };
  std::uint32_t version = 0;
  std::uint32_t scalar_size = 0;
  std::string activation;
  std::vector<Index> widths;
  Scalars parameters;
  std::uint32_t optimizer = kOptimizerNone;
  double lr = 0.0, beta1 = 0.0, beta2 = 0.0, eps = 0.0, momentum = 0.0;
  bool nesterov = false;
  long long optimizer_steps = 0;
  Scalars m, v, buffer;
  bool has_trainer = false;
  long long steps_done = 0;
  Rng::State rng{};
};

template <Real S>
S scalar_at(const DecodedCheckpoint::Scalars& s, std::size_t i) {
  using U = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
  U u = 0;
  for (std::size_t k = 0; k < sizeof(S); ++k) u |= static_cast<U>(s.data[i * sizeof(S) + k]) << (8 * k);
  return std::bit_cast<S>(u);
}

template <Real S>
void copy_scalars(const DecodedCheckpoint::Scalars& s, S* out) {
  if constexpr (std::endian::native == std::endian::little) {
    if (s.count > 0) std::memcpy(out, s.data, s.count * sizeof(S));
  } else {
    for (std::size_t i = 0; i < s.count; ++i) out[i] = scalar_at<S>(s, i);
  }
}

inline bool all_finite(const DecodedCheckpoint::Scalars& s, std::uint32_t scalar_size, bool non_negative = false) {
  for (std::size_t i = 0; i < s.count; ++i) {
    const double x = scalar_size == 4 ? static_cast<double>(scalar_at<float>(s, i)) : scalar_at<double>(s, i);
    if (!std::isfinite(x) || (non_negative && x < 0.0)) return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------------------
// Decoding: a bounds-checked cursor; every failure is a CheckpointCorruptError naming the field.
class ByteReader {
 public:
  ByteReader(const unsigned char* data, std::size_t size, std::string prefix)
      : data_(data), size_(size), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(std::string_view what) const {
    throw CheckpointCorruptError(prefix_ + std::string(what) + " (payload offset " + std::to_string(pos_) + ")");
  }
  std::size_t remaining() const { return size_ - pos_; }
  std::size_t position() const { return pos_; }

  const unsigned char* take(std::size_t n, std::string_view what) {
    if (n > remaining())
      fail(std::string(what) + ": needs " + std::to_string(n) + " bytes but only " + std::to_string(remaining()) +
           " are left");
    const unsigned char* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  std::uint32_t u32(std::string_view what) {
    const unsigned char* p = take(4, what);
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= static_cast<std::uint32_t>(p[k]) << (8 * k);
    return v;
  }
  std::uint64_t u64(std::string_view what) {
    const unsigned char* p = take(8, what);
    std::uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v |= static_cast<std::uint64_t>(p[k]) << (8 * k);
    return v;
  }
  long long i64(std::string_view what) { return static_cast<long long>(u64(what)); }
  double f64(std::string_view what) { return std::bit_cast<double>(u64(what)); }
  /// `count` scalars of `scalar_size` bytes, checked against what is left before anything is sized.
  DecodedCheckpoint::Scalars scalars(std::uint64_t count, std::uint32_t scalar_size, std::string_view what) {
    if (count > remaining() / scalar_size)
      fail(std::string(what) + ": " + std::to_string(count) + " values do not fit in the " +
           std::to_string(remaining()) + " bytes left");
    const auto n = static_cast<std::size_t>(count);
    return {take(n * scalar_size, what), n};
  }

 private:
  const unsigned char* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::string prefix_;
};

/// Parses and checks a payload (the bytes after the header). `name` labels messages.
inline DecodedCheckpoint decode_checkpoint_payload(const unsigned char* data, std::size_t size, std::string_view name) {
  ByteReader r(data, size, std::string("flowmatch::load_checkpoint: '").append(name).append("': "));
  DecodedCheckpoint d;
  d.version = kCheckpointVersion;
  // ---- model
  d.scalar_size = r.u32("scalar size");
  if (d.scalar_size != 4 && d.scalar_size != 8)
    r.fail("scalar size " + std::to_string(d.scalar_size) + " is neither 4 (float) nor 8 (double)");
  const std::uint32_t name_size = r.u32("activation name size");
  if (name_size == 0 || name_size > kMaxActivationName)
    r.fail("activation name size " + std::to_string(name_size) + " is not in [1, " +
           std::to_string(kMaxActivationName) + "]");
  const unsigned char* name_bytes = r.take(name_size, "activation name");
  for (std::uint32_t i = 0; i < name_size; ++i)
    if (name_bytes[i] < 0x21 || name_bytes[i] > 0x7e) r.fail("activation name holds a non-printable byte");
  d.activation.assign(reinterpret_cast<const char*>(name_bytes), name_size);
  const std::uint32_t layers = r.u32("number of layer widths");
  if (layers < 2 || layers > kMaxLayers)
    r.fail("number of layer widths " + std::to_string(layers) + " is not in [2, " + std::to_string(kMaxLayers) + "]");
  if (layers > r.remaining() / 8) r.fail("the layer widths do not fit in the bytes left");
  d.widths.reserve(layers);
  for (std::uint32_t l = 0; l < layers; ++l) {
    const std::uint64_t w = r.u64("layer width");
    if (w == 0 || w >= kMaxWidth)
      r.fail("layer width " + std::to_string(l) + " = " + std::to_string(w) + " is not in [1, 2^31)");
    d.widths.push_back(static_cast<Index>(w));
  }
  const std::uint64_t num_params = r.u64("number of parameters");
  // The count the widths imply, with every partial sum bounded by the declared count (no overflow:
  // each term is below 2^62 and the sum stops as soon as it passes num_params < 2^64).
  std::uint64_t expected = 0;
  for (std::size_t l = 0; l + 1 < d.widths.size(); ++l) {
    const auto in = static_cast<std::uint64_t>(d.widths[l]), out = static_cast<std::uint64_t>(d.widths[l + 1]);
    const std::uint64_t term = out * (in + 1);
    if (term > num_params || expected > num_params - term) {
      expected = num_params + 1;
      break;
    }
    expected += term;
  }
  if (expected != num_params)
    r.fail("number of parameters " + std::to_string(num_params) + " does not match the layer widths");
  d.parameters = r.scalars(num_params, d.scalar_size, "parameters");
  if (!all_finite(d.parameters, d.scalar_size)) r.fail("the parameters hold a NaN or an infinity");
  // ---- optimizer
  d.optimizer = r.u32("optimizer kind");
  if (d.optimizer == kOptimizerAdam) {
    d.lr = r.f64("Adam learning rate");
    d.beta1 = r.f64("Adam beta1");
    d.beta2 = r.f64("Adam beta2");
    d.eps = r.f64("Adam eps");
    d.optimizer_steps = r.i64("Adam step count");
    if (!(d.lr > 0.0 && std::isfinite(d.lr)) || !(d.beta1 >= 0.0 && d.beta1 < 1.0) ||
        !(d.beta2 >= 0.0 && d.beta2 < 1.0) || !(d.eps > 0.0 && std::isfinite(d.eps)) || d.optimizer_steps < 0)
      r.fail("Adam's hyper-parameters or step count are out of their domains");
    const std::uint64_t n = r.u64("Adam moment size");
    if (n != 0 && n != num_params) r.fail("Adam moment size " + std::to_string(n) + " is neither 0 nor the parameter count");
    if (n == 0 && d.optimizer_steps != 0) r.fail("Adam has taken steps but holds no moments");
    d.m = r.scalars(n, d.scalar_size, "Adam first moment");
    d.v = r.scalars(n, d.scalar_size, "Adam second moment");
    if (!all_finite(d.m, d.scalar_size) || !all_finite(d.v, d.scalar_size, true))
      r.fail("Adam's moments hold a NaN, an infinity or a negative second moment");
  } else if (d.optimizer == kOptimizerSGD) {
    d.lr = r.f64("SGD learning rate");
    d.momentum = r.f64("SGD momentum");
    const std::uint32_t nesterov = r.u32("SGD nesterov flag");
    d.optimizer_steps = r.i64("SGD step count");
    if (!(d.lr > 0.0 && std::isfinite(d.lr)) || !(d.momentum >= 0.0 && d.momentum < 1.0) || nesterov > 1 ||
        (nesterov == 1 && d.momentum == 0.0) || d.optimizer_steps < 0)
      r.fail("SGD's hyper-parameters or step count are out of their domains");
    d.nesterov = nesterov == 1;
    const std::uint64_t n = r.u64("SGD momentum buffer size");
    if (n != 0 && (n != num_params || d.momentum == 0.0))
      r.fail("SGD momentum buffer size " + std::to_string(n) + " does not fit the parameters and momentum");
    if (n == 0 && d.momentum > 0.0 && d.optimizer_steps != 0) r.fail("SGD has taken momentum steps but holds no buffer");
    d.buffer = r.scalars(n, d.scalar_size, "SGD momentum buffer");
    if (!all_finite(d.buffer, d.scalar_size)) r.fail("SGD's momentum buffer holds a NaN or an infinity");
  } else if (d.optimizer != kOptimizerNone) {
    r.fail("optimizer kind " + std::to_string(d.optimizer) + " is unknown");
  }
  // ---- trainer
  const std::uint32_t trainer = r.u32("trainer flag");
  if (trainer > 1) r.fail("trainer flag " + std::to_string(trainer) + " is neither 0 nor 1");
  d.has_trainer = trainer == 1;
  if (d.has_trainer) {
    d.steps_done = r.i64("trainer step count");
    if (d.steps_done < 0) r.fail("trainer step count " + std::to_string(d.steps_done) + " is negative");
    for (auto& word : d.rng) word = r.u64("generator state");
    if (d.rng[0] == 0 && d.rng[1] == 0 && d.rng[2] == 0 && d.rng[3] == 0)
      r.fail("the generator state is all zeros (not a valid xoshiro256++ state)");
  }
  if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " unexpected bytes after the last section");
  return d;
}

inline std::uint32_t read_le32(const unsigned char* p) {
  std::uint32_t v = 0;
  for (int k = 0; k < 4; ++k) v |= static_cast<std::uint32_t>(p[k]) << (8 * k);
  return v;
}
inline std::uint64_t read_le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int k = 0; k < 8; ++k) v |= static_cast<std::uint64_t>(p[k]) << (8 * k);
  return v;
}

/// Checks and parses a whole checkpoint file's bytes. `name` labels messages (the file's path).
inline DecodedCheckpoint decode_checkpoint(const unsigned char* data, std::size_t size, std::string_view name) {
  const std::string where = std::string("flowmatch::load_checkpoint: '").append(name).append("': ");
  const std::size_t magic_bytes = std::min(size, kCheckpointMagic.size());
  if (magic_bytes > 0 && std::memcmp(data, kCheckpointMagic.data(), magic_bytes) != 0)
    throw CheckpointMagicError(where + "not a flowmatch checkpoint (wrong magic number)");
  if (size < kCheckpointMagic.size() + 4) {
    throw CheckpointTruncatedError(where + "truncated: " + std::to_string(size) + " bytes, shorter than the " +
                                   std::to_string(kCheckpointHeaderSize) + "-byte header");
  }
  if (std::memcmp(data, kCheckpointMagic.data(), kCheckpointMagic.size()) != 0)
    throw CheckpointMagicError(where + "not a flowmatch checkpoint (wrong magic number)");
  const std::uint32_t version = read_le32(data + 8);
  if (version != kCheckpointVersion)
    throw CheckpointVersionError(where + "format version " + std::to_string(version) + " is not supported (this build reads version " +
                                 std::to_string(kCheckpointVersion) + ")");
  if (size < kCheckpointHeaderSize)
    throw CheckpointTruncatedError(where + "truncated: " + std::to_string(size) + " bytes, shorter than the " +
                                   std::to_string(kCheckpointHeaderSize) + "-byte header");
  if (read_le32(data + 28) != crc32(0, data, 28))
    throw CheckpointChecksumError(where + "the header's checksum does not match: the header is damaged");
  const std::uint32_t header_size = read_le32(data + 12);
  if (header_size != kCheckpointHeaderSize)
    throw CheckpointCorruptError(where + "header size " + std::to_string(header_size) + " is not " +
                                 std::to_string(kCheckpointHeaderSize));
  const std::uint64_t payload_size = read_le64(data + 16);
  const std::uint64_t have = size - kCheckpointHeaderSize;
  if (payload_size > have)
    throw CheckpointTruncatedError(where + "truncated: the header declares " + std::to_string(payload_size) +
                                   " payload bytes but the file holds " + std::to_string(have));
  if (payload_size < have)
    throw CheckpointTrailingDataError(where + std::to_string(have - payload_size) +
                                      " bytes of trailing data after the declared end of the checkpoint");
  const unsigned char* payload = data + kCheckpointHeaderSize;
  if (read_le32(data + 24) != crc32(0, payload, static_cast<std::size_t>(payload_size)))
    throw CheckpointChecksumError(where + "the payload's checksum does not match: the file is damaged");
  DecodedCheckpoint d = decode_checkpoint_payload(payload, static_cast<std::size_t>(payload_size), name);
  d.version = version;
  return d;
}

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

// ------------------------------------------------------------------------------------------------
// Sections.
template <CheckpointableModel M>
void encode_model(ByteWriter& w, const M& model) {
  using S = typename M::Scalar;
  const Vector<S>& p = model.parameters();
  if (!p.allFinite())
    throw NumericalError("flowmatch::save_checkpoint: the model's parameters hold a NaN or an infinity; not saved");
  w.u32(static_cast<std::uint32_t>(sizeof(S)));
  w.text(M::activation_type::name());
  const std::vector<Index>& widths = model.layer_widths();
  w.u32(static_cast<std::uint32_t>(widths.size()));
  for (Index width : widths) w.u64(static_cast<std::uint64_t>(width));
  w.u64(static_cast<std::uint64_t>(p.size()));
  w.scalars(p.data(), static_cast<std::size_t>(p.size()));
}

template <class Opt>
void encode_optimizer(ByteWriter& w, const Opt& opt) {
  using S = typename Opt::Scalar;
  if constexpr (is_adam_v<Opt>) {
    w.u32(kOptimizerAdam);
    w.f64(opt.learning_rate());
    w.f64(opt.beta1());
    w.f64(opt.beta2());
    w.f64(opt.eps());
    w.i64(opt.steps_taken());
    w.u64(static_cast<std::uint64_t>(opt.first_moment().size()));
    w.scalars(opt.first_moment().data(), static_cast<std::size_t>(opt.first_moment().size()));
    w.scalars(opt.second_moment().data(), static_cast<std::size_t>(opt.second_moment().size()));
  } else if constexpr (is_sgd_v<Opt>) {
    w.u32(kOptimizerSGD);
    w.f64(opt.learning_rate());
    w.f64(opt.momentum());
    w.u32(opt.nesterov() ? 1u : 0u);
    w.i64(opt.steps_taken());
    w.u64(static_cast<std::uint64_t>(opt.momentum_buffer().size()));
    w.scalars(opt.momentum_buffer().data(), static_cast<std::size_t>(opt.momentum_buffer().size()));
  } else {
    static_assert(is_adam_v<Opt> || is_sgd_v<Opt>,
                  "flowmatch::save_checkpoint: checkpoints hold the state of flowmatch::Adam and flowmatch::SGD; "
                  "this optimizer type is not supported (save the model alone, or add it to io/checkpoint.hpp).");
  }
  (void)sizeof(S);
}

inline std::vector<unsigned char> finish_checkpoint(ByteWriter& payload) {
  ByteWriter w;
  w.bytes.reserve(kCheckpointHeaderSize + payload.bytes.size());
  w.bytes.insert(w.bytes.end(), kCheckpointMagic.begin(), kCheckpointMagic.end());
  w.u32(kCheckpointVersion);
  w.u32(static_cast<std::uint32_t>(kCheckpointHeaderSize));
  w.u64(payload.bytes.size());
  w.u32(crc32(0, payload.bytes.data(), payload.bytes.size()));
  w.u32(0);
  put_u32_at(w.bytes, 28, crc32(0, w.bytes.data(), 28));
  w.bytes.insert(w.bytes.end(), payload.bytes.begin(), payload.bytes.end());
  return std::move(w.bytes);
}

[[noreturn]] inline void throw_mismatch(std::string_view name, const std::string& what) {
  throw CheckpointMismatchError(std::string("flowmatch::load_checkpoint: '").append(name).append("': ").append(what));
}

inline std::string widths_string(const std::vector<Index>& w) {
  std::string s;
  for (std::size_t i = 0; i < w.size(); ++i) s.append(i ? "-" : "").append(std::to_string(w[i]));
  return s;
}

template <CheckpointableModel M>
void check_model(const DecodedCheckpoint& d, const M& model, std::string_view name) {
  using S = typename M::Scalar;
  if (d.scalar_size != sizeof(S))
    throw_mismatch(name, std::string("holds a model of scalar type ") + scalar_name_of_size(d.scalar_size) +
                             ", the model passed has " + scalar_name<S>());
  if (d.activation != M::activation_type::name())
    throw_mismatch(name, "holds a model with activation '" + d.activation + "', the model passed has '" +
                             std::string(M::activation_type::name()) + "'");
  if (d.widths != model.layer_widths())
    throw_mismatch(name, "holds a model with layer widths " + widths_string(d.widths) +
                             ", the model passed has " + widths_string(model.layer_widths()));
  if (static_cast<Index>(d.parameters.count) != model.parameters().size())
    throw_mismatch(name, "holds " + std::to_string(d.parameters.count) + " parameters, the model passed has " +
                             std::to_string(model.parameters().size()));
}

template <class Opt>
void check_optimizer(const DecodedCheckpoint& d, const Opt& opt, std::string_view name) {
  const auto differs = [&](const char* what, double saved, double have) {
    if (saved != have)
      throw_mismatch(name, std::string("holds an optimizer with ") + what + " = " + to_string_value(saved) +
                               ", the optimizer passed has " + to_string_value(have));
  };
  if constexpr (is_adam_v<Opt>) {
    if (d.optimizer != kOptimizerAdam)
      throw_mismatch(name, d.optimizer == kOptimizerNone ? "holds no optimizer state" : "holds SGD state, not Adam's");
    differs("beta1", d.beta1, opt.beta1());
    differs("beta2", d.beta2, opt.beta2());
    differs("eps", d.eps, opt.eps());
  } else if constexpr (is_sgd_v<Opt>) {
    if (d.optimizer != kOptimizerSGD)
      throw_mismatch(name, d.optimizer == kOptimizerNone ? "holds no optimizer state" : "holds Adam state, not SGD's");
    differs("momentum", d.momentum, opt.momentum());
    differs("nesterov", d.nesterov ? 1.0 : 0.0, opt.nesterov() ? 1.0 : 0.0);
  } else {
    static_assert(is_adam_v<Opt> || is_sgd_v<Opt>,
                  "flowmatch::load_checkpoint: checkpoints hold the state of flowmatch::Adam and flowmatch::SGD; "
                  "this optimizer type is not supported.");
  }
}

/// The optimizer's new state, built (allocating) before anything is committed.
template <class Opt>
struct PreparedOptimizer {
  using S = typename Opt::Scalar;
  Vector<S> a, b;
};

template <class Opt>
PreparedOptimizer<Opt> prepare_optimizer(const DecodedCheckpoint& d) {
  using S = typename Opt::Scalar;
  PreparedOptimizer<Opt> p;
  if constexpr (is_adam_v<Opt>) {
    p.a.resize(static_cast<Index>(d.m.count));
    p.b.resize(static_cast<Index>(d.v.count));
    copy_scalars<S>(d.m, p.a.data());
    copy_scalars<S>(d.v, p.b.data());
  } else {
    p.a.resize(static_cast<Index>(d.buffer.count));
    copy_scalars<S>(d.buffer, p.a.data());
  }
  return p;
}

template <class Opt>
void commit_optimizer(const DecodedCheckpoint& d, PreparedOptimizer<Opt>&& p, Opt& opt) {
  opt.set_learning_rate(d.lr);
  if constexpr (is_adam_v<Opt>)
    opt.set_state(std::move(p.a), std::move(p.b), d.optimizer_steps);
  else
    opt.set_state(std::move(p.a), d.optimizer_steps);
}

template <CheckpointableModel M>
void commit_model(const DecodedCheckpoint& d, M& model) {
  copy_scalars<typename M::Scalar>(d.parameters, model.parameters().data());
}

/// A decoded checkpoint with the bytes it points into.
struct LoadedCheckpoint {
  std::vector<unsigned char> bytes;
  DecodedCheckpoint decoded;
};

inline LoadedCheckpoint load_checkpoint_file(const std::filesystem::path& file) {
  LoadedCheckpoint c;
  c.bytes = read_file_bytes(file, "flowmatch::load_checkpoint");
  c.decoded = decode_checkpoint(c.bytes.data(), c.bytes.size(), file.string());
  return c;
}

}  // namespace detail

// ------------------------------------------------------------------------------------------------
// Public API.

/// The bytes of a checkpoint of `model` (and, if given, `optimizer`), as save_checkpoint writes them.
template <CheckpointableModel M>
std::vector<unsigned char> encode_checkpoint(const M& model) {
  detail::ByteWriter w;
  detail::encode_model(w, model);
  w.u32(detail::kOptimizerNone);
  w.u32(0);
  return detail::finish_checkpoint(w);
}

template <CheckpointableModel M, class Opt>
std::vector<unsigned char> encode_checkpoint(const M& model, const Opt& optimizer) {
  static_assert(std::same_as<typename M::Scalar, typename Opt::Scalar>,
                "flowmatch::save_checkpoint: the optimizer's scalar type must be the model's scalar type.");
  detail::ByteWriter w;
  detail::encode_model(w, model);
  detail::encode_optimizer(w, optimizer);
  w.u32(0);
  return detail::finish_checkpoint(w);
}

template <CheckpointableTrainer T>
std::vector<unsigned char> encode_checkpoint(const T& trainer) {
  detail::ByteWriter w;
  detail::encode_model(w, trainer.model());
  detail::encode_optimizer(w, trainer.optimizer());
  w.u32(1);
  w.i64(trainer.steps_done());
  for (std::uint64_t word : trainer.rng().state()) w.u64(word);
  return detail::finish_checkpoint(w);
}

/// Saves `model` to `file` atomically (see write_file_atomically): the file is the old checkpoint
/// or the new one, never a mixture, whatever happens during the call. Throws CheckpointIOError if the
/// file cannot be written, NumericalError if the parameters are not finite.
template <CheckpointableModel M>
void save_checkpoint(const std::filesystem::path& file, const M& model) {
  detail::write_file_atomically(file, encode_checkpoint(model), "flowmatch::save_checkpoint");
}

/// Saves `model` and the state of `optimizer` (Adam or SGD).
template <CheckpointableModel M, class Opt>
void save_checkpoint(const std::filesystem::path& file, const M& model, const Opt& optimizer) {
  detail::write_file_atomically(file, encode_checkpoint(model, optimizer), "flowmatch::save_checkpoint");
}

/// Saves everything needed to resume `trainer` (CFMTrainer): its model, its optimizer's state,
/// its step count and its random generator's state.
template <CheckpointableTrainer T>
void save_checkpoint(const std::filesystem::path& file, const T& trainer) {
  detail::write_file_atomically(file, encode_checkpoint(trainer), "flowmatch::save_checkpoint");
}

/// Loads the parameters of `model` from `file`. The file's architecture (layer widths), scalar type
/// and activation must be the model's. Throws a CheckpointError subclass on any problem, and then
/// leaves `model` unchanged. Optimizer and trainer state in the file are ignored.
template <CheckpointableModel M>
void load_checkpoint(const std::filesystem::path& file, M& model) {
  const detail::LoadedCheckpoint c = detail::load_checkpoint_file(file);
  detail::check_model(c.decoded, model, file.string());
  detail::commit_model(c.decoded, model);
}

/// Loads `model` and the state of `optimizer` (which must be of the type saved, with the same
/// betas and eps (Adam) or momentum and Nesterov flag (SGD); its learning rate is set to the
/// saved one). Nothing changes unless everything loads.
template <CheckpointableModel M, class Opt>
void load_checkpoint(const std::filesystem::path& file, M& model, Opt& optimizer) {
  static_assert(std::same_as<typename M::Scalar, typename Opt::Scalar>,
                "flowmatch::load_checkpoint: the optimizer's scalar type must be the model's scalar type.");
  const detail::LoadedCheckpoint c = detail::load_checkpoint_file(file);
  detail::check_model(c.decoded, model, file.string());
  detail::check_optimizer(c.decoded, optimizer, file.string());
  detail::PreparedOptimizer<Opt> prepared = detail::prepare_optimizer<Opt>(c.decoded);
  detail::commit_model(c.decoded, model);
  detail::commit_optimizer(c.decoded, std::move(prepared), optimizer);
}

/// Restores `trainer` (its model, optimizer, step count and random generator) from a checkpoint
/// saved from a trainer, so that training continues exactly where it stopped.
template <CheckpointableTrainer T>
void load_checkpoint(const std::filesystem::path& file, T& trainer) {
  auto& model = trainer.model();
  auto& optimizer = trainer.optimizer();
  using Opt = std::remove_cvref_t<decltype(optimizer)>;
  const detail::LoadedCheckpoint c = detail::load_checkpoint_file(file);
  detail::check_model(c.decoded, model, file.string());
  detail::check_optimizer(c.decoded, optimizer, file.string());
  if (!c.decoded.has_trainer) detail::throw_mismatch(file.string(), "holds no trainer state (saved from a model, not a trainer)");
  detail::PreparedOptimizer<Opt> prepared = detail::prepare_optimizer<Opt>(c.decoded);
  detail::commit_model(c.decoded, model);
  detail::commit_optimizer(c.decoded, std::move(prepared), optimizer);
  trainer.rng().set_state(c.decoded.rng);
  trainer.set_steps_done(c.decoded.steps_done);
}

/// What `file` holds (fully checked as by load_checkpoint), without loading it into anything:
/// for instance to build a model of the saved architecture before loading it.
inline CheckpointInfo read_checkpoint_info(const std::filesystem::path& file) {
  const detail::LoadedCheckpoint c = detail::load_checkpoint_file(file);
  const detail::DecodedCheckpoint& d = c.decoded;
  CheckpointInfo info;
  info.version = d.version;
  info.scalar = detail::scalar_name_of_size(d.scalar_size);
  info.activation = d.activation;
  info.layer_widths = d.widths;
  info.num_parameters = static_cast<Index>(d.parameters.count);
  info.optimizer = d.optimizer == detail::kOptimizerAdam ? "adam" : d.optimizer == detail::kOptimizerSGD ? "sgd" : "";
  info.optimizer_steps = d.optimizer_steps;
  info.has_trainer_state = d.has_trainer;
  info.steps_done = d.steps_done;
  return info;
}

}  // namespace flowmatch
