#pragma once
/// \file
/// Checkpoints: the state of any parts (models, optimizers, schedules, the EMA, trainers: anything
/// with the state protocol of core/state.hpp) in one self-checking file, written atomically, so that
/// a resumed run continues bit-identically and a file on disk is always either the previous good
/// checkpoint or the new good one. This header names no model or optimizer type: a new part that
/// implements save_state/load_state is saved and loaded with no change here.
///
///     save_checkpoint("run.safetensors", trainer);                  // its state_parts()
///     save_checkpoint("run.safetensors", model, optimizer, state_part("ema", ema));
///     load_checkpoint("run.safetensors", model, optimizer, state_part("ema", ema));
///     CheckpointInfo info = read_checkpoint_info("run.safetensors");   // rebuild, then load
///
/// The file (format 2) is a safetensors file (io/safetensors.hpp, docs/checkpoint_format.md): numpy
/// and PyTorch read it without flowmatch. Format-1 files (`.fmck`, written before) still load,
/// read-only (io/checkpoint_v1.hpp): the reader tells them apart by their magic.
///
/// Loading reads the whole file and checks all of it (sizes, JSON, layout, checksums, finite
/// values) before any part is touched; then each part checks what it reads (types, shapes,
/// hyper-parameters) and, if any part refuses, every part is restored (load_state_parts). Every
/// failure throws a subclass of CheckpointError naming the file (io/checkpoint_errors.hpp).

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowmatch/core/state.hpp"
#include "flowmatch/io/atomic_file.hpp"
#include "flowmatch/io/checkpoint_errors.hpp"
#include "flowmatch/io/checkpoint_v1.hpp"
#include "flowmatch/io/safetensors.hpp"

namespace flowmatch {

/// The checkpoint format version save_checkpoint writes (read_checkpoint reads 1 and 2).
inline constexpr int kCheckpointVersion = 2;

/// A tensor's description in a CheckpointInfo.
struct CheckpointTensorInfo {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
};

/// What a checkpoint file holds, without its tensors' values: its format version, every attribute
/// (the architecture a model needs to be rebuilt: "model.type", "model.widths", ...) and every
/// tensor's dtype and shape.
struct CheckpointInfo {
  int format_version = 0;
  std::map<std::string, std::string> attributes;
  std::map<std::string, CheckpointTensorInfo> tensors;

  /// The attribute `name` ("model.activation"), or null.
  const std::string* attribute(const std::string& name) const {
    const auto it = attributes.find(name);
    return it == attributes.end() ? nullptr : &it->second;
  }
  /// Whether the file holds state under `scope` ("optimizer", "trainer", "model.inner").
  bool has_scope(std::string_view scope) const {
    const std::string prefix = std::string(scope) + ".";
    const auto under = [&](const auto& map) {
      const auto it = map.lower_bound(prefix);
      return it != map.end() && it->first.starts_with(prefix);
    };
    return under(attributes) || under(tensors);
  }
};

// ------------------------------------------------------------------------------------------------
// Bytes.

/// The format version of checkpoint bytes: 1 (format-1 magic) or 2 (anything else, checked by decoding).
inline int checkpoint_format_of(const unsigned char* data, std::size_t size) {
  return is_checkpoint_v1(data, size) ? 1 : kCheckpointVersion;
}

/// The StateDict checkpoint bytes of either format hold, fully checked; `name` labels messages.
inline StateDict decode_checkpoint(const unsigned char* data, std::size_t size, std::string_view name) {
  if (is_checkpoint_v1(data, size)) return decode_checkpoint_v1(data, size, name);
  return decode_safetensors(data, size, name);
}
inline StateDict decode_checkpoint(const std::vector<unsigned char>& bytes, std::string_view name) {
  return decode_checkpoint(bytes.data(), bytes.size(), name);
}

/// The bytes save_checkpoint writes for `parts` (each bare, with its state_scope; as
/// state_part("name", part); or a composite with state_parts()).
template <class... Parts>
std::vector<unsigned char> encode_checkpoint(const Parts&... parts) {
  static_assert(sizeof...(Parts) > 0, "flowmatch::save_checkpoint: pass at least one part");
  StateDict dict;
  save_state_parts(dict, parts...);
  return encode_safetensors(dict);
}

/// Loads `parts` from checkpoint bytes (as load_checkpoint does from a file).
template <class... Parts>
void load_checkpoint_bytes(const std::vector<unsigned char>& bytes, std::string_view name, Parts&&... parts) {
  static_assert(sizeof...(Parts) > 0, "flowmatch::load_checkpoint: pass at least one part");
  const StateDict dict = decode_checkpoint(bytes, name);
  load_state_parts(dict, std::string(name), std::forward<Parts>(parts)...);
}

// ------------------------------------------------------------------------------------------------
// Files.

/// Writes `dict` to `file` as a checkpoint (format 2), atomically: the file is the old one or the
/// new one, never a mixture, whatever happens during the call. Throws CheckpointIOError if the
/// file cannot be written, NumericalError if a float tensor holds a NaN or an infinity.
inline void save_state_dict(const std::filesystem::path& file, const StateDict& dict) {
  detail::write_file_atomically(file, encode_safetensors(dict), "flowmatch::save_checkpoint");
}

/// Saves the state of every part to `file`, atomically (see save_state_dict).
template <class... Parts>
void save_checkpoint(const std::filesystem::path& file, const Parts&... parts) {
  detail::write_file_atomically(file, encode_checkpoint(parts...), "flowmatch::save_checkpoint");
}

/// The whole state `file` holds (format 1 or 2), fully checked.
inline StateDict read_checkpoint(const std::filesystem::path& file) {
  const std::vector<unsigned char> bytes = detail::read_file_bytes(file, "flowmatch::read_checkpoint");
  return decode_checkpoint(bytes, file.string());
}

/// Restores every part from `file`. Each part must find all of its state, and nothing else, under
/// its scope (state the file holds for other scopes is ignored: a model loads from a trainer's
/// checkpoint). Throws a CheckpointError subclass on any problem and then leaves every part as it
/// was.
template <class... Parts>
void load_checkpoint(const std::filesystem::path& file, Parts&&... parts) {
  static_assert(sizeof...(Parts) > 0, "flowmatch::load_checkpoint: pass at least one part");
  const StateDict dict = read_checkpoint(file);
  load_state_parts(dict, file.string(), std::forward<Parts>(parts)...);
}

/// What `file` holds (fully checked, as by load_checkpoint), without loading it into anything:
/// for instance to build a model of the saved architecture before loading it.
inline CheckpointInfo read_checkpoint_info(const std::filesystem::path& file) {
  const std::vector<unsigned char> bytes = detail::read_file_bytes(file, "flowmatch::read_checkpoint");
  const StateDict dict = decode_checkpoint(bytes, file.string());
  CheckpointInfo info;
  info.format_version = checkpoint_format_of(bytes.data(), bytes.size());
  info.attributes = dict.attributes();
  for (const auto& [name, t] : dict.tensors()) info.tensors.emplace(name, CheckpointTensorInfo{t.dtype, t.shape});
  return info;
}

}  // namespace flowmatch
