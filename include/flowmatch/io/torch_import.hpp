#pragma once
/// \file
/// Importing a PyTorch MLP vector field: the state_dict of an nn.Sequential of nn.Linear layers with
/// one activation between them, saved as safetensors (what
/// `safetensors.torch.save_file(model.state_dict(), path)` writes), becomes an MLPVectorField.
///
///     TorchImportOptions opt{.activation = "silu"};             // required: the file does not say
///     TorchMLPInfo info = inspect_torch_mlp("vf.safetensors");   // prefix, keys, widths, dtype
///     auto model = import_torch_mlp<float, SiLU>("vf.safetensors", opt);
///     visit_torch_mlp<float>("vf.safetensors", opt, [&](auto model) { sample_with(model); });
///
/// What is accepted (docs/torch_interop.md):
/// - keys `<prefix><i>.weight` and `<prefix><i>.bias`, one prefix shared by all (`""`, `net.`,
///   `main.`, `model.net.`, ...), i a decimal index as nn.Sequential writes it (no sign, no leading
///   zero); layers in increasing index order (gaps allowed: an activation or a Dropout has no
///   parameters); no other key;
/// - each layer a weight of shape [out, in] and a bias of shape [out] (a Linear with bias=False is
///   refused: a missing bias is far more often a truncated or foreign file than a bias-free net);
/// - widths that chain (layer l's out = layer l+1's in), at least one layer, the first layer's in
///   = d + 1 and the last layer's out = d (a vector field on x in R^d, with the time as one more
///   input), widths at least 1 and below 2^31;
/// - every tensor of one dtype, F32, F64, F16 or BF16, converted to the model's scalar (F16/BF16 to
///   float and double exactly; F64 to float rounded), finite before and after the conversion.
/// The input is [x, t] (time last, as torchcfm's MLP, Meta's flow_matching 2-D example and
/// flowmatch itself); with time_first the file's network takes [t, x] and the first layer's
/// columns are permuted so that the model takes [x, t] and computes the same function.
///
/// Every failure throws TorchImportError, its message naming the file and the first offending key
/// (structural problems of the file itself carry the reader's message, e.g. a NaN "tensor
/// 'net.0.weight' holds a NaN or an infinity (element 3)").

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/io/atomic_file.hpp"
#include "flowmatch/io/checkpoint_errors.hpp"
#include "flowmatch/io/float16.hpp"
#include "flowmatch/io/safetensors.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/mlp_from_state.hpp"
#include "flowmatch/nn/mlp_vector_field.hpp"

namespace flowmatch {

/// A safetensors file that is not an importable PyTorch MLP vector field (or cannot be read); the
/// message names the file and the first offending key.
class TorchImportError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};

/// How to read a PyTorch MLP state_dict.
struct TorchImportOptions {
  /// The activation between the Linear layers, as visit_mlp_activation names it ("silu", "relu",
  /// "tanh", ...): required, the file does not record it (nn.SiLU, Meta's Swish and torchcfm's
  /// default torch.nn.SELU are not told apart by their parameters).
  std::string activation;
  /// The network's input is [t, x] instead of [x, t].
  bool time_first = false;
};

/// The structure of a PyTorch MLP state_dict (inspect_torch_mlp).
struct TorchMLPInfo {
  std::string source;                    ///< the file
  std::string prefix;                    ///< shared by every key: "", "net.", "main.", ...
  std::vector<std::int64_t> indices;     ///< nn.Sequential index of each Linear (0, 2, 4, ...)
  std::vector<std::string> weight_keys;  ///< "<prefix><i>.weight", layer by layer
  std::vector<std::string> bias_keys;    ///< "<prefix><i>.bias"
  std::vector<Index> widths;             ///< input (d + 1), hidden widths, output (d)
  DType dtype = DType::F32;              ///< the tensors' dtype in the file

  Index num_layers() const { return static_cast<Index>(widths.size()) - 1; }
  /// Data dimension d (the output width).
  Index dim() const { return widths.back(); }
  /// One line: "'f.safetensors': 3 Linear layers 3-64-64-2 (keys net.0, net.2, net.4), F32".
  std::string describe() const {
    std::string s = "'" + source + "': " + std::to_string(num_layers()) + " Linear layer" +
                    (num_layers() == 1 ? "" : "s") + " ";
    for (std::size_t i = 0; i < widths.size(); ++i) s.append(i ? "-" : "").append(std::to_string(widths[i]));
    s += " (keys ";
    for (std::size_t l = 0; l < indices.size(); ++l)
      s.append(l ? ", " : "").append(prefix).append(std::to_string(indices[l]));
    return s + "), " + std::string(dtype_name(dtype));
  }
};

namespace detail {

inline std::string torch_at(std::string_view source) {
  return std::string("flowmatch::import_torch_mlp: '").append(source).append("': ");
}

/// Splits "<prefix><i>.weight" / "<prefix><i>.bias"; false if `key` is not of that form.
inline bool split_torch_key(const std::string& key, std::string& prefix, std::int64_t& index, bool& is_weight) {
  std::string_view k = key;
  if (k.ends_with(".weight")) {
    is_weight = true;
    k.remove_suffix(7);
  } else if (k.ends_with(".bias")) {
    is_weight = false;
    k.remove_suffix(5);
  } else {
    return false;
  }
  const std::size_t dot = k.rfind('.');
  const std::string_view digits = dot == std::string_view::npos ? k : k.substr(dot + 1);
  if (digits.empty() || digits.size() > 9 || (digits.size() > 1 && digits[0] == '0') ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  index = 0;
  for (const char c : digits) index = index * 10 + (c - '0');
  prefix = std::string(k.substr(0, k.size() - digits.size()));
  return true;
}

/// The structure of the MLP that `dict` holds (every check but the values'); throws TorchImportError.
inline TorchMLPInfo torch_mlp_info(const StateDict& dict, const std::string& source) {
  const std::string at = torch_at(source);
  TorchMLPInfo info;
  info.source = source;
  if (dict.tensors().empty()) throw TorchImportError(at + "holds no tensor: a network needs at least one Linear layer");
  // Every key's form and the shared prefix (keys in name order: the first offending one is named).
  struct Layer {
    const Tensor* weight = nullptr;
    const Tensor* bias = nullptr;
  };
  std::map<std::int64_t, Layer> layers;  // by nn.Sequential index
  bool first = true;
  for (const auto& [key, t] : dict.tensors()) {
    std::string prefix;
    std::int64_t index = 0;
    bool is_weight = false;
    if (!split_torch_key(key, prefix, index, is_weight))
      throw TorchImportError(at + "key '" + key +
                             "' is not '<prefix><index>.weight' or '<prefix><index>.bias' of an nn.Sequential of "
                             "nn.Linear layers");
    if (first) {
      info.prefix = prefix;
      info.dtype = t.dtype;
      first = false;
    } else if (prefix != info.prefix) {
      throw TorchImportError(at + "key '" + key + "' has prefix '" + prefix + "', other keys have '" + info.prefix +
                             "': not one network");
    }
    if (t.dtype != DType::F32 && t.dtype != DType::F64 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      throw TorchImportError(at + "tensor '" + key + "' has dtype " + std::string(dtype_name(t.dtype)) +
                             " (F32, F64, F16 or BF16 expected)");
    if (t.dtype != info.dtype)
      throw TorchImportError(at + "tensor '" + key + "' has dtype " + std::string(dtype_name(t.dtype)) +
                             ", other tensors have " + std::string(dtype_name(info.dtype)));
    Layer& layer = layers[index];
    (is_weight ? layer.weight : layer.bias) = &t;
  }
  // Layer by layer: both tensors, their ranks and shapes, the chain of widths.
  constexpr std::int64_t kMaxWidth = std::int64_t{1} << 31;
  for (const auto& [index, layer] : layers) {
    const std::string wkey = info.prefix + std::to_string(index) + ".weight";
    const std::string bkey = info.prefix + std::to_string(index) + ".bias";
    if (layer.weight == nullptr)
      throw TorchImportError(at + "'" + bkey + "' has no '" + wkey + "' beside it: not an nn.Linear");
    if (layer.bias == nullptr)
      throw TorchImportError(at + "'" + bkey + "' is missing beside '" + wkey +
                             "' (an nn.Linear with bias=False is not imported)");
    const auto& ws = layer.weight->shape;
    const auto& bs = layer.bias->shape;
    if (ws.size() != 2)
      throw TorchImportError(at + "tensor '" + wkey + "' has shape " + shape_string(ws) +
                             ": an nn.Linear weight is 2-D [out, in]");
    if (bs.size() != 1)
      throw TorchImportError(at + "tensor '" + bkey + "' has shape " + shape_string(bs) +
                             ": an nn.Linear bias is 1-D [out]");
    for (const std::int64_t s : ws)
      if (s < 1 || s >= kMaxWidth)
        throw TorchImportError(at + "tensor '" + wkey + "' has shape " + shape_string(ws) +
                               ": widths must lie in [1, 2^31)");
    if (bs[0] != ws[0])
      throw TorchImportError(at + "tensor '" + bkey + "' has shape " + shape_string(bs) + ", its weight '" + wkey +
                             "' has " + std::to_string(ws[0]) + " outputs");
    if (info.widths.empty()) {
      if (ws[1] < 2)
        throw TorchImportError(at + "tensor '" + wkey + "' has shape " + shape_string(ws) +
                               ": the first layer takes [x, t], at least 2 inputs");
      info.widths.push_back(static_cast<Index>(ws[1]));
    } else if (ws[1] != info.widths.back()) {
      throw TorchImportError(at + "tensor '" + wkey + "' has shape " + shape_string(ws) + ": it takes " +
                             std::to_string(ws[1]) + " inputs but the layer before it ('" + info.weight_keys.back() +
                             "') has " + std::to_string(info.widths.back()) + " outputs");
    }
    info.widths.push_back(static_cast<Index>(ws[0]));
    info.indices.push_back(index);
    info.weight_keys.push_back(wkey);
    info.bias_keys.push_back(bkey);
  }
  if (info.widths.back() != info.widths.front() - 1)
    throw TorchImportError(at + "tensor '" + info.weight_keys.back() + "' has " + std::to_string(info.widths.back()) +
                           " outputs but the network takes " + std::to_string(info.widths.front()) +
                           " inputs: a vector field on x in R^d takes [x, t] (d + 1) and returns d");
  return info;
}

/// Element i of an F16/BF16/F32/F64 tensor as a double (exact).
inline double torch_element(const Tensor& t, std::size_t i) {
  const unsigned char* p = t.bytes.data();
  switch (t.dtype) {
    case DType::F16: return f16_to_double(static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)));
    case DType::BF16: return bf16_to_double(static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)));
    case DType::F32: return static_cast<double>(read_le<float>(p + 4 * i));
    default: return read_le<double>(p + 8 * i);
  }
}

/// Reads the file (or bytes) into a StateDict, any reader failure as TorchImportError.
inline StateDict torch_decode(const unsigned char* data, std::size_t size, const std::string& source) {
  try {
    return decode_foreign_safetensors(data, size, source);
  } catch (const TorchImportError&) {
    throw;
  } catch (const CheckpointError& e) {
    throw TorchImportError(torch_at(source) + "not a readable safetensors file: " + e.what());
  }
}
inline std::vector<unsigned char> torch_file_bytes(const std::filesystem::path& file) {
  try {
    return read_file_bytes(file, "flowmatch::import_torch_mlp");
  } catch (const CheckpointError& e) {
    throw TorchImportError(e.what());
  }
}

/// The model `dict` holds, activation Act; checks options.activation == Act::name().
template <Real S, Activation Act>
MLPVectorField<S, Act> torch_build(const StateDict& dict, const std::string& source, const TorchImportOptions& options) {
  const std::string at = torch_at(source);
  if (options.activation.empty())
    throw TorchImportError(at + "TorchImportOptions::activation is empty: name the activation between the Linear "
                                "layers (the file does not record it)");
  if (options.activation != Act::name())
    throw TorchImportError(at + "TorchImportOptions::activation is '" + options.activation +
                           "' but the model type's activation is '" + std::string(Act::name()) + "'");
  const TorchMLPInfo info = torch_mlp_info(dict, source);
  MLPVectorField<S, Act> model(info.widths.front() - 1, info.widths.back(),
                               std::vector<Index>(info.widths.begin() + 1, info.widths.end() - 1), std::uint64_t{0});
  for (Index l = 0; l < info.num_layers(); ++l) {
    const auto lu = static_cast<std::size_t>(l);
    const Tensor& w = *dict.find_tensor(info.weight_keys[lu]);
    const Tensor& b = *dict.find_tensor(info.bias_keys[lu]);
    const auto put = [&](const Tensor& t, const std::string& key, std::size_t i) {
      const auto v = static_cast<S>(torch_element(t, i));
      if (!std::isfinite(v))  // finite in the file (checked by the reader) but beyond S's range
        throw TorchImportError(at + "tensor '" + key + "' element " + std::to_string(i) + " = " +
                               detail::format_real(torch_element(t, i)) + " overflows the model's scalar type");
      return v;
    };
    auto W = model.weight(l);
    const Index in = W.cols();
    for (Index r = 0; r < W.rows(); ++r)
      for (Index c = 0; c < in; ++c) {
        // time_first: the file's column 0 is t, columns 1.. are x; ours are x, then t.
        const Index src = (l == 0 && options.time_first) ? (c == in - 1 ? 0 : c + 1) : c;
        W(r, c) = put(w, info.weight_keys[lu], static_cast<std::size_t>(r * in + src));
      }
    auto B = model.bias(l);
    for (Index r = 0; r < B.size(); ++r) B(r) = put(b, info.bias_keys[lu], static_cast<std::size_t>(r));
  }
  return model;
}

}  // namespace detail

/// The structure of the PyTorch MLP state_dict in safetensors bytes; throws TorchImportError.
inline TorchMLPInfo inspect_torch_mlp_bytes(const unsigned char* data, std::size_t size, const std::string& source) {
  return detail::torch_mlp_info(detail::torch_decode(data, size, source), source);
}
/// The structure of the PyTorch MLP state_dict in `file` (all checks but the activation's).
inline TorchMLPInfo inspect_torch_mlp(const std::filesystem::path& file) {
  const std::vector<unsigned char> bytes = detail::torch_file_bytes(file);
  return inspect_torch_mlp_bytes(bytes.data(), bytes.size(), file.string());
}

/// The MLPVectorField<S, Act> that safetensors bytes hold; options.activation must be Act::name().
template <Real S = float, Activation Act = SiLU>
MLPVectorField<S, Act> import_torch_mlp_bytes(const unsigned char* data, std::size_t size, const std::string& source,
                                              const TorchImportOptions& options) {
  return detail::torch_build<S, Act>(detail::torch_decode(data, size, source), source, options);
}
/// The MLPVectorField<S, Act> that `file` holds; options.activation must be Act::name().
template <Real S = float, Activation Act = SiLU>
MLPVectorField<S, Act> import_torch_mlp(const std::filesystem::path& file, const TorchImportOptions& options) {
  const std::vector<unsigned char> bytes = detail::torch_file_bytes(file);
  return import_torch_mlp_bytes<S, Act>(bytes.data(), bytes.size(), file.string(), options);
}

/// Imports the network in safetensors bytes with the activation picked by options.activation
/// (visit_mlp_activation: every built-in activation) and returns f(std::move(model)).
template <Real S = float, class F>
decltype(auto) visit_torch_mlp_bytes(const unsigned char* data, std::size_t size, const std::string& source,
                                     const TorchImportOptions& options, F&& f) {
  if (options.activation.empty())
    throw TorchImportError(detail::torch_at(source) +
                           "TorchImportOptions::activation is empty: name the activation between the Linear layers "
                           "(the file does not record it)");
  const StateDict dict = detail::torch_decode(data, size, source);
  const auto body = [&](auto act) -> decltype(auto) {
    return f(detail::torch_build<S, decltype(act)>(dict, source, options));
  };
  try {
    return visit_mlp_activation(options.activation, body, source);
  } catch (const TorchImportError&) {
    throw;
  } catch (const CheckpointMismatchError& e) {  // only visit_mlp_activation's unknown name reaches here
    throw TorchImportError(detail::torch_at(source) + "unknown activation '" + options.activation + "' (" + e.what() +
                           ")");
  }
}
/// visit_torch_mlp_bytes on the bytes of `file`.
template <Real S = float, class F>
decltype(auto) visit_torch_mlp(const std::filesystem::path& file, const TorchImportOptions& options, F&& f) {
  const std::vector<unsigned char> bytes = detail::torch_file_bytes(file);
  return visit_torch_mlp_bytes<S>(bytes.data(), bytes.size(), file.string(), options, std::forward<F>(f));
}

}  // namespace flowmatch
