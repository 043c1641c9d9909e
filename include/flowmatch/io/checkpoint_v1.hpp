#pragma once
/// \file
/// Read-only support for format-1 checkpoints (`.fmck`, written by flowmatch before format 2, the
/// safetensors file of io/safetensors.hpp): decode_checkpoint_v1 checks such a file exactly as the
/// format-1 loader did and converts it into the StateDict that the same objects save today, with
/// the names of the state protocol (core/state.hpp):
///   model.*      type "mlp_vector_field", scalar, activation, widths, time "last"; tensors
///                "<2l>.weight" [fan_out, fan_in] and "<2l>.bias" [fan_out] (nn.Sequential numbering)
///   optimizer.*  Adam: type "adam", lr, beta1, beta2, eps, steps; tensors exp_avg, exp_avg_sq;
///                SGD: type "sgd", lr, momentum, nesterov, steps; tensor momentum_buffer
///   trainer.*    steps_done; tensor rng (U64 [4])
/// Format 1 recorded a model's widths and activation, not its type: every format-1 model is read
/// as an MLPVectorField (the only model CheckpointableModel-era users saved besides the classifier,
/// whose files look the same). This header names optimizers only as the strings above; it knows
/// no C++ type.
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

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowmatch/core/state.hpp"
#include "flowmatch/io/checkpoint_errors.hpp"
#include "flowmatch/io/crc32.hpp"

namespace flowmatch::detail::v1 {

inline constexpr std::uint32_t kFormat1 = 1;
inline constexpr std::array<unsigned char, 8> kCheckpointMagic{0x89, 'F', 'M', 'C', 'K', 'P', 'T', '\n'};
inline constexpr std::size_t kCheckpointHeaderSize = 32;
inline constexpr std::uint32_t kOptimizerNone = 0, kOptimizerAdam = 1, kOptimizerSGD = 2;
inline constexpr std::size_t kMaxActivationName = 64;
inline constexpr std::size_t kMaxLayers = 4096;
inline constexpr std::uint64_t kMaxWidth = std::uint64_t{1} << 31;

/// Everything a checkpoint may hold, as plain values; parameter arrays point into the file's bytes.
struct DecodedCheckpoint {
  struct Scalars {
    const unsigned char* data = nullptr;  ///< little-endian scalars of `scalar_size` bytes
    std::size_t count = 0;
  };
  std::uint32_t version = 0;
  std::uint32_t scalar_size = 0;
  std::string activation;
  std::vector<std::int64_t> widths;
  Scalars parameters;
  std::uint32_t optimizer = kOptimizerNone;
  double lr = 0.0, beta1 = 0.0, beta2 = 0.0, eps = 0.0, momentum = 0.0;
  bool nesterov = false;
  long long optimizer_steps = 0;
  Scalars m, v, buffer;
  bool has_trainer = false;
  long long steps_done = 0;
  std::array<std::uint64_t, 4> rng{};
};

template <class S>
S scalar_at(const DecodedCheckpoint::Scalars& s, std::size_t i) {
  using U = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
  U u = 0;
  for (std::size_t k = 0; k < sizeof(S); ++k) u |= static_cast<U>(s.data[i * sizeof(S) + k]) << (8 * k);
  return std::bit_cast<S>(u);
}

template <class S>
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
  ByteReader r(data, size, std::string("flowmatch::read_checkpoint: '").append(name).append("': "));
  DecodedCheckpoint d;
  d.version = kFormat1;
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
    d.widths.push_back(static_cast<std::int64_t>(w));
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
  const std::string where = std::string("flowmatch::read_checkpoint: '").append(name).append("': ");
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
  if (version != kFormat1)
    throw CheckpointVersionError(where + "format version " + std::to_string(version) + " is not supported (this build reads version " +
                                 std::to_string(kFormat1) + ")");
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


/// `count` little-endian scalars as a 1-D or 2-D tensor (the bytes are copied as they are).
inline void put_scalars(StateDict& dict, const std::string& name, std::uint32_t scalar_size, const unsigned char* p,
                        std::vector<std::int64_t> shape) {
  Tensor t;
  t.dtype = scalar_size == 4 ? DType::F32 : DType::F64;
  t.shape = std::move(shape);
  t.bytes.assign(p, p + static_cast<std::size_t>(t.numel()) * scalar_size);
  dict.put_tensor(name, std::move(t));
}

/// The StateDict of a decoded format-1 file, under today's names (see the file comment).
inline StateDict to_state_dict(const DecodedCheckpoint& d) {
  StateDict dict;
  StateWriter model(dict, "model.");
  model.text("type", "mlp_vector_field");
  model.text("scalar", d.scalar_size == 4 ? "float" : "double");
  model.text("activation", d.activation);
  model.integers("widths", std::vector<long long>(d.widths.begin(), d.widths.end()));
  model.text("time", "last");
  const unsigned char* p = d.parameters.data;
  for (std::size_t l = 0; l + 1 < d.widths.size(); ++l) {
    const std::int64_t in = d.widths[l], out = d.widths[l + 1];
    const std::string layer = "model." + std::to_string(2 * l) + ".";
    put_scalars(dict, layer + "weight", d.scalar_size, p, {out, in});
    p += static_cast<std::size_t>(out * in) * d.scalar_size;
    put_scalars(dict, layer + "bias", d.scalar_size, p, {out});
    p += static_cast<std::size_t>(out) * d.scalar_size;
  }
  if (d.optimizer != kOptimizerNone) {
    StateWriter opt(dict, "optimizer.");
    opt.text("type", d.optimizer == kOptimizerAdam ? "adam" : "sgd");
    opt.real("lr", d.lr);
    if (d.optimizer == kOptimizerAdam) {
      opt.real("beta1", d.beta1);
      opt.real("beta2", d.beta2);
      opt.real("eps", d.eps);
      opt.integer("steps", d.optimizer_steps);
      const auto n = static_cast<std::int64_t>(d.m.count);
      put_scalars(dict, "optimizer.exp_avg", d.scalar_size, d.m.data, {n});
      put_scalars(dict, "optimizer.exp_avg_sq", d.scalar_size, d.v.data, {n});
    } else {
      opt.real("momentum", d.momentum);
      opt.flag("nesterov", d.nesterov);
      opt.integer("steps", d.optimizer_steps);
      put_scalars(dict, "optimizer.momentum_buffer", d.scalar_size, d.buffer.data,
                  {static_cast<std::int64_t>(d.buffer.count)});
    }
  }
  if (d.has_trainer) {
    StateWriter trainer(dict, "trainer.");
    trainer.integer("steps_done", d.steps_done);
    trainer.tensor("rng", d.rng.data(), {4});
  }
  return dict;
}

}  // namespace flowmatch::detail::v1

namespace flowmatch {

/// Whether `data` starts like a format-1 file (its magic, or a prefix of it for a shorter file).
inline bool is_checkpoint_v1(const unsigned char* data, std::size_t size) {
  const std::size_t k = std::min(size, detail::v1::kCheckpointMagic.size());
  return k > 0 && std::memcmp(data, detail::v1::kCheckpointMagic.data(), k) == 0;
}

/// The StateDict a format-1 file's bytes hold, under today's names; every check of the format-1
/// loader applies (each failure its own CheckpointError subclass). `name` labels messages.
inline StateDict decode_checkpoint_v1(const unsigned char* data, std::size_t size, std::string_view name) {
  return detail::v1::to_state_dict(detail::v1::decode_checkpoint(data, size, name));
}

}  // namespace flowmatch
