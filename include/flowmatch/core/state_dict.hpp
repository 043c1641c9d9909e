#pragma once
/// \file
/// The data of saved state: tensors (element type, shape, little-endian bytes in C order) and
/// string attributes by full name, in a StateDict; the checkpoint errors every reader of state
/// throws. core/state.hpp builds the state protocol on it; io/checkpoint.hpp writes it to a file.

#include <bit>
#include <charconv>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"

namespace flowmatch {

/// Base of every checkpoint and state failure.
class CheckpointError : public Error {
 public:
  using Error::Error;
};
/// The saved state is valid but does not fit the parts passed in (another architecture, scalar
/// type, activation, optimizer type or hyper-parameter, a missing or left-over tensor).
class CheckpointMismatchError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};

/// Element types of tensors, named as safetensors names them.
enum class DType : std::uint8_t { BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64 };

inline constexpr std::string_view dtype_name(DType d) {
  constexpr std::string_view names[] = {"BOOL", "U8", "I8", "U16", "I16", "F16", "BF16",
                                        "U32",  "I32", "F32", "U64", "I64", "F64"};
  return names[static_cast<int>(d)];
}
inline constexpr std::size_t dtype_size(DType d) {
  constexpr std::size_t sizes[] = {1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};
  return sizes[static_cast<int>(d)];
}
/// The DType named `name`, or false.
inline bool parse_dtype(std::string_view name, DType& out) {
  for (int k = 0; k <= static_cast<int>(DType::F64); ++k)
    if (dtype_name(static_cast<DType>(k)) == name) {
      out = static_cast<DType>(k);
      return true;
    }
  return false;
}

template <class T>
inline constexpr bool has_dtype_v = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                    std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint64_t> ||
                                    std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::uint8_t>;
template <class T>
constexpr DType dtype_of() {
  static_assert(has_dtype_v<T>, "flowmatch: tensors hold float, double, int64, uint64, int32 or uint8 elements");
  if constexpr (std::is_same_v<T, float>) return DType::F32;
  else if constexpr (std::is_same_v<T, double>) return DType::F64;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::I64;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return DType::U64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::I32;
  else return DType::U8;
}

/// One named array: element type, shape (C order) and its bytes, little-endian.
struct Tensor {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;

  /// The number of elements (the product of the shape; 1 for a scalar of shape []).
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t s : shape) n *= s;
    return n;
  }
};

inline std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s.append(i ? ", " : "").append(std::to_string(shape[i]));
  return s + "]";
}

/// Tensors and attributes by full name ("optimizer.m", "model.activation"), sorted by name.
/// What a checkpoint file holds, in memory.
class StateDict {
 public:
  /// Adds a tensor; throws CheckpointError if the name is taken or the bytes do not fit the shape.
  void put_tensor(std::string name, Tensor t) {
    if (t.bytes.size() != static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype))
      throw CheckpointError("flowmatch::StateDict::put_tensor: tensor '" + name + "' of shape " +
                            shape_string(t.shape) + " holds " + std::to_string(t.bytes.size()) + " bytes");
    if (!tensors_.emplace(name, std::move(t)).second)
      throw CheckpointError("flowmatch::StateDict::put_tensor: two tensors are named '" + name + "'");
  }
  /// Adds an attribute (a string); throws CheckpointError if the name is taken.
  void put_attribute(std::string name, std::string value) {
    if (!attributes_.emplace(name, std::move(value)).second)
      throw CheckpointError("flowmatch::StateDict::put_attribute: two attributes are named '" + name + "'");
  }
  const Tensor* find_tensor(const std::string& name) const {
    const auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
  }
  const std::string* find_attribute(const std::string& name) const {
    const auto it = attributes_.find(name);
    return it == attributes_.end() ? nullptr : &it->second;
  }
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& attributes() const { return attributes_; }
  bool empty() const { return tensors_.empty() && attributes_.empty(); }

 private:
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> attributes_;
};

namespace detail {

inline std::string format_real(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest form that reads back exactly
  return std::string(buf, r.ptr);
}

template <class T>
void append_le(std::vector<unsigned char>& out, T v) {
  using U = std::conditional_t<sizeof(T) == 1, std::uint8_t,
                               std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;
  const U u = std::bit_cast<U>(v);
  for (std::size_t k = 0; k < sizeof(T); ++k) out.push_back(static_cast<unsigned char>(u >> (8 * k)));
}
template <class T>
T read_le(const unsigned char* p) {
  using U = std::conditional_t<sizeof(T) == 1, std::uint8_t,
                               std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;
  U u = 0;
  for (std::size_t k = 0; k < sizeof(T); ++k) u = static_cast<U>(u | (static_cast<U>(p[k]) << (8 * k)));
  return std::bit_cast<T>(u);
}

}  // namespace detail

}  // namespace flowmatch
