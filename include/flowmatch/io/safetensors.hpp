#pragma once
/// \file
/// A StateDict as a safetensors file (https://github.com/huggingface/safetensors), the format of
/// flowmatch checkpoints from format version 2 on: numpy, PyTorch and the safetensors libraries read
/// it (docs/checkpoint_format.md shows the few lines it takes).
///
///     offset   size  field
///          0      8  N, u64 little-endian: the header's length in bytes
///          8      N  the header: a JSON object, padded with spaces to a multiple of 8 bytes
///      8 + N      -  the data section: every tensor's bytes, little-endian, C order, contiguous
///
/// The header maps each tensor's name to {"dtype": "F32", "shape": [..], "data_offsets": [begin,
/// end]} (offsets relative to the data section; here the tensors follow each other in name order,
/// without gaps) and "__metadata__" to a map of strings: the StateDict's attributes as they are, and
/// the format's own keys
///     "format": "flowmatch", "flowmatch.format_version": "2",
///     "flowmatch.data_crc32":   CRC-32 of the data section (8 lowercase hex digits),
///     "flowmatch.header_crc32": CRC-32 of the header object without this one key, as nlohmann's
///                               dump() writes it (sorted keys, no spaces: Python's
///                               json.dumps(h, sort_keys=True, separators=(",", ":"),
///                               ensure_ascii=False)),
/// so that any changed byte is detected. The JSON is parsed by nlohmann::json, never by hand.
///
/// decode_safetensors checks, in this order, before it allocates anything from a size read in the
/// file: the header length (cap kSafetensorsMaxHeader, and within the file), the JSON (duplicate
/// names refused: nlohmann would keep the last one silently; nothing but spaces after the object),
/// its shape (an object, __metadata__ a
/// map of strings), the format and its version, the header's checksum, each entry (dtype, shape,
/// offsets, size overflow), the layout (no overlap, no gap, no byte after the last tensor, none
/// missing), the data's checksum, and finite F32/F64 values. Each failure has its own exception
/// (io/checkpoint_errors.hpp) whose message names the file.
///
/// decode_foreign_safetensors reads a safetensors file written by anything else (PyTorch's
/// safetensors.torch.save_file: no metadata, or {"format": "pt"}): the same checks without the
/// format, version and checksums, F16/BF16 values checked for NaN and infinity as well
/// (io/torch_import.hpp builds on it).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/io/checkpoint_errors.hpp"
#include "flowmatch/io/crc32.hpp"
#include "flowmatch/io/float16.hpp"

namespace flowmatch {

/// The largest header decode_safetensors accepts (the safetensors libraries' own cap).
inline constexpr std::uint64_t kSafetensorsMaxHeader = 100'000'000;
/// The format version written into "flowmatch.format_version" (format 1: io/checkpoint_v1.hpp).
inline constexpr std::string_view kCheckpointFormatVersion = "2";

namespace detail {

inline std::string hex32(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}
/// Metadata keys the format itself owns: a StateDict attribute may not use them.
inline bool is_format_metadata_key(std::string_view key) { return key == "format" || key.starts_with("flowmatch."); }

/// The index of the first NaN or infinity in an F16/BF16/F32/F64 tensor, or -1.
inline std::int64_t first_non_finite(DType dtype, const unsigned char* bytes, std::size_t size) {
  if (dtype == DType::F16 || dtype == DType::BF16) {
    for (std::size_t i = 0; i < size / 2; ++i) {
      const auto h = static_cast<std::uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
      if (!(dtype == DType::F16 ? f16_is_finite(h) : bf16_is_finite(h))) return static_cast<std::int64_t>(i);
    }
  } else if (dtype == DType::F32) {
    for (std::size_t i = 0; i < size / 4; ++i)
      if (!std::isfinite(read_le<float>(bytes + 4 * i))) return static_cast<std::int64_t>(i);
  } else if (dtype == DType::F64) {
    for (std::size_t i = 0; i < size / 8; ++i)
      if (!std::isfinite(read_le<double>(bytes + 8 * i))) return static_cast<std::int64_t>(i);
  }
  return -1;
}

/// The header object minus "flowmatch.header_crc32", dumped as nlohmann's dump() does.
inline std::uint32_t header_crc(nlohmann::json header) {
  header["__metadata__"].erase("flowmatch.header_crc32");
  const std::string text = header.dump();
  return crc32(0, reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

}  // namespace detail

/// The bytes of a safetensors file holding `dict`: its tensors, and its attributes plus
/// `extra_metadata` in __metadata__ (decode_safetensors returns both as attributes). Throws
/// NumericalError naming the tensor if an F32/F64 tensor holds a NaN or an infinity, and
/// CheckpointError for a name the format reserves ("__metadata__", "format", "flowmatch.*"), a
/// key given twice or a string that is not UTF-8.
inline std::vector<unsigned char> encode_safetensors(const StateDict& dict,
                                                     const std::map<std::string, std::string>& extra_metadata = {}) {
  constexpr std::string_view where = "flowmatch::save_checkpoint: ";
  using nlohmann::json;
  json meta = json::object();
  const auto add = [&](const std::string& key, const std::string& value) {
    if (detail::is_format_metadata_key(key))
      throw CheckpointError(std::string(where) + "attribute '" + key + "' uses a name the file format reserves");
    if (meta.contains(key)) throw CheckpointError(std::string(where) + "metadata key '" + key + "' is given twice");
    meta[key] = value;
  };
  for (const auto& [key, value] : dict.attributes()) add(key, value);
  for (const auto& [key, value] : extra_metadata) add(key, value);
  meta["format"] = "flowmatch";
  meta["flowmatch.format_version"] = std::string(kCheckpointFormatVersion);

  json header = json::object();
  std::uint64_t total = 0;
  for (const auto& [name, t] : dict.tensors()) {
    if (name == "__metadata__") throw CheckpointError(std::string(where) + "a tensor may not be named '__metadata__'");
    for (const std::int64_t s : t.shape)
      if (s < 0) throw CheckpointError(std::string(where) + "tensor '" + name + "' has shape " + shape_string(t.shape));
    if (const std::int64_t i = detail::first_non_finite(t.dtype, t.bytes.data(), t.bytes.size()); i >= 0)
      throw NumericalError(std::string(where) + "tensor '" + name + "' holds a NaN or an infinity (element " +
                           std::to_string(i) + "); not saved");
    header[name] = {{"dtype", std::string(dtype_name(t.dtype))},
                    {"shape", t.shape},
                    {"data_offsets", {total, total + t.bytes.size()}}};
    total += t.bytes.size();
  }
  std::vector<unsigned char> data;
  data.reserve(static_cast<std::size_t>(total));
  for (const auto& [name, t] : dict.tensors()) data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  meta["flowmatch.data_crc32"] = detail::hex32(detail::crc32(0, data.data(), data.size()));
  header["__metadata__"] = std::move(meta);

  std::string text;
  try {
    header["__metadata__"]["flowmatch.header_crc32"] = detail::hex32(detail::header_crc(header));
    text = header.dump();
  } catch (const json::exception& e) {  // a name or attribute that is not valid UTF-8
    throw CheckpointError(std::string(where) + "a tensor name or attribute is not valid UTF-8: " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<unsigned char> out;
  out.reserve(8 + text.size() + data.size());
  detail::append_le<std::uint64_t>(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

namespace detail {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;
};

/// decode_safetensors; `verify_checksums = false` only for the fuzzer, to reach the checks behind them.
/// `foreign`: decode_foreign_safetensors (no flowmatch metadata required, none interpreted, no
/// checksum; every structural check and the finite-value check kept).
inline StateDict decode_safetensors_impl(const unsigned char* data, std::size_t size, std::string_view name,
                                         bool verify_checksums, bool foreign = false) {
  using nlohmann::json;
  const std::string at = std::string(foreign ? "flowmatch::read_safetensors: '" : "flowmatch::read_checkpoint: '")
                             .append(name)
                             .append("': ");
  if (size < 8)
    throw CheckpointTruncatedError(at + "truncated: " + std::to_string(size) +
                                   " bytes, shorter than the 8-byte header length");
  const auto n = read_le<std::uint64_t>(data);
  if (n > kSafetensorsMaxHeader)
    throw CheckpointHeaderSizeError(at + "header length " + std::to_string(n) + " is above the cap of " +
                                    std::to_string(kSafetensorsMaxHeader) +
                                    " bytes: not a safetensors file, or a damaged one");
  if (n > size - 8)
    throw CheckpointTruncatedError(at + "truncated: the header length is " + std::to_string(n) + " bytes but only " +
                                   std::to_string(size - 8) + " follow");
  const char* text = reinterpret_cast<const char*>(data + 8);
  std::size_t text_size = static_cast<std::size_t>(n);  // the padding: spaces only, after the closing brace
  while (text_size > 0 && text[text_size - 1] == ' ') --text_size;
  if (text_size > 0 && text[text_size - 1] != '}' && text[text_size - 1] != ']')
    throw CheckpointJsonError(at + "the header does not end with its JSON value and spaces");

  // ---- JSON, with duplicate names and nesting refused during the parse
  std::vector<std::vector<std::string>> keys;  // the keys of each open object
  int depth = 0;
  std::string duplicate;
  const json::parser_callback_t callback = [&](int, json::parse_event_t event, json& parsed) {
    using E = json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      if (++depth > 3)
        throw CheckpointHeaderTypeError(at + "the header nests deeper than a safetensors header does");
      if (event == E::object_start) keys.emplace_back();
    } else if (event == E::object_end || event == E::array_end) {
      --depth;
      if (event == E::object_end) keys.pop_back();
    } else if (event == E::key && duplicate.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (std::find(keys.back().begin(), keys.back().end(), k) != keys.back().end()) duplicate = k;
      keys.back().push_back(k);
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + text_size, callback);
  } catch (const json::exception& e) {
    throw CheckpointJsonError(at + "the header is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) throw CheckpointDuplicateError(at + "the header names '" + duplicate + "' twice");
  if (!header.is_object()) throw CheckpointHeaderTypeError(at + "the header is not a JSON object");

  // ---- metadata: the format, its version, the header's checksum
  const auto meta = header.find("__metadata__");
  if (foreign) {
    if (meta != header.end()) {
      if (!meta->is_object()) throw CheckpointMetadataError(at + "__metadata__ is not a JSON object");
      for (const auto& [key, value] : meta->items())
        if (!value.is_string())
          throw CheckpointMetadataError(at + "__metadata__ entry '" + key + "' is not a string");
    }
  }
  std::uint32_t saved_header_crc = 0, saved_data_crc = 0;
  if (!foreign) {
    if (meta == header.end())
      throw CheckpointMagicError(at + "a safetensors file without metadata, not a flowmatch checkpoint");
    if (!meta->is_object()) throw CheckpointMetadataError(at + "__metadata__ is not a JSON object");
    for (const auto& [key, value] : meta->items())
      if (!value.is_string()) throw CheckpointMetadataError(at + "__metadata__ entry '" + key + "' is not a string");
    const auto text_of = [&](const char* key) -> const std::string* {
      const auto it = meta->find(key);
      return it == meta->end() ? nullptr : &it->get_ref<const std::string&>();
    };
    if (const std::string* f = text_of("format"); f == nullptr || *f != "flowmatch")
      throw CheckpointMagicError(at + "a safetensors file but not a flowmatch checkpoint (its metadata has " +
                                 (f == nullptr ? std::string("no 'format'") : "format '" + *f + "'") + ")");
    const std::string* version = text_of("flowmatch.format_version");
    if (version == nullptr) throw CheckpointVersionError(at + "the metadata has no flowmatch.format_version");
    if (*version != kCheckpointFormatVersion)
      throw CheckpointVersionError(at + "format version '" + *version + "' is not supported (this build reads 1 and " +
                                   std::string(kCheckpointFormatVersion) + ")");
    const auto crc_field = [&](const char* key) {
      const std::string* s = text_of(key);
      if (s == nullptr || s->size() != 8 ||
          !std::all_of(s->begin(), s->end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
        throw CheckpointMetadataError(at + "the metadata's " + key + " is missing or not 8 lowercase hex digits");
      return static_cast<std::uint32_t>(std::stoul(*s, nullptr, 16));
    };
    saved_header_crc = crc_field("flowmatch.header_crc32");
    saved_data_crc = crc_field("flowmatch.data_crc32");
    for (const auto& [key, value] : meta->items())
      if (detail::is_format_metadata_key(key) && key != "format" && key != "flowmatch.format_version" &&
          key != "flowmatch.header_crc32" && key != "flowmatch.data_crc32")
        throw CheckpointMetadataError(at + "unknown format metadata key '" + key + "'");
    if (verify_checksums && header_crc(header) != saved_header_crc)
      throw CheckpointChecksumError(at + "the header's checksum does not match: the header is damaged");
  }  // !foreign

  // ---- entries
  std::vector<SafetensorsEntry> entries;
  entries.reserve(header.size());
  for (const auto& [key, v] : header.items()) {
    if (key == "__metadata__") continue;
    const std::string what = at + "tensor '" + key + "': ";
    if (!v.is_object() || v.size() != 3 || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw CheckpointHeaderTypeError(what + "not an object of exactly dtype, shape and data_offsets");
    SafetensorsEntry e{key, DType::F32, {}, 0, 0};
    if (!v["dtype"].is_string() || !parse_dtype(v["dtype"].get_ref<const std::string&>(), e.dtype))
      throw CheckpointDTypeError(what + "unknown dtype " + v["dtype"].dump());
    const json& shape = v["shape"];
    if (!shape.is_array()) throw CheckpointShapeError(what + "shape " + shape.dump() + " is not a list");
    // The byte count, checked for overflow (a zero dimension counts as 1 here, so that no order of
    // the dimensions overflows Tensor::numel()).
    std::uint64_t bytes = dtype_size(e.dtype);
    bool zero = false;
    for (const json& d : shape) {
      if (!d.is_number_integer() || (d.is_number_integer() && !d.is_number_unsigned() && d.get<std::int64_t>() < 0))
        throw CheckpointShapeError(what + "shape " + shape.dump() + " is not a list of non-negative integers");
      const auto dim = d.get<std::uint64_t>();
      if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
          (dim > 1 && bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / dim))
        throw CheckpointSizeOverflowError(what + "shape " + shape.dump() + " holds more bytes than a file can");
      zero = zero || dim == 0;
      bytes *= std::max<std::uint64_t>(dim, 1);
      e.shape.push_back(static_cast<std::int64_t>(dim));
    }
    if (zero) bytes = 0;
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw CheckpointOffsetsError(what + "data_offsets " + off.dump() + " is not [begin, end]");
    e.begin = off[0].get<std::uint64_t>();
    e.end = off[1].get<std::uint64_t>();
    if (e.end < e.begin || e.end - e.begin != bytes)
      throw CheckpointOffsetsError(what + "data_offsets " + off.dump() + " do not span its " + std::to_string(bytes) +
                                   " bytes (" + std::string(dtype_name(e.dtype)) + " " + shape_string(e.shape) + ")");
    entries.push_back(std::move(e));
  }

  // ---- layout: the tensors tile the data section exactly
  std::vector<const SafetensorsEntry*> order;
  for (const auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(),
            [](const auto* a, const auto* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  std::uint64_t pos = 0;
  for (const SafetensorsEntry* e : order) {
    if (e->begin < pos) throw CheckpointOverlapError(at + "tensor '" + e->name + "' overlaps the tensor before it");
    if (e->begin > pos)
      throw CheckpointGapError(at + "bytes " + std::to_string(pos) + " to " + std::to_string(e->begin) +
                               " of the data section belong to no tensor");
    pos = e->end;
  }
  const std::uint64_t data_size = size - 8 - n;
  if (pos > data_size)
    throw CheckpointTruncatedError(at + "truncated: the tensors need " + std::to_string(pos) +
                                   " bytes of data but the file holds " + std::to_string(data_size));
  if (pos < data_size)
    throw CheckpointTrailingDataError(at + std::to_string(data_size - pos) + " bytes of trailing data after the last tensor");
  const unsigned char* section = data + 8 + n;
  if (!foreign && verify_checksums && crc32(0, section, static_cast<std::size_t>(data_size)) != saved_data_crc)
    throw CheckpointChecksumError(at + "the data's checksum does not match: the file is damaged");

  // ---- the StateDict
  StateDict dict;
  for (const auto& e : entries) {
    const unsigned char* p = section + e.begin;
    const auto bytes = static_cast<std::size_t>(e.end - e.begin);
    if (const std::int64_t i = first_non_finite(e.dtype, p, bytes); i >= 0)
      throw CheckpointCorruptError(at + "tensor '" + e.name + "' holds a NaN or an infinity (element " +
                                   std::to_string(i) + ")");
    Tensor t;
    t.dtype = e.dtype;
    t.shape = e.shape;
    t.bytes.assign(p, p + bytes);
    dict.put_tensor(e.name, std::move(t));
  }
  if (meta != header.end())
    for (const auto& [key, value] : meta->items())
      if (foreign || !is_format_metadata_key(key)) dict.put_attribute(key, value.get<std::string>());
  return dict;
}

}  // namespace detail

/// The StateDict a safetensors file's bytes hold (fully checked, see the file comment); `name`
/// (the file's path) labels messages. Format-version and "flowmatch" keys are not attributes.
inline StateDict decode_safetensors(const unsigned char* data, std::size_t size, std::string_view name) {
  return detail::decode_safetensors_impl(data, size, name, true);
}

/// The StateDict of a safetensors file written by anything (safetensors.torch.save_file, numpy,
/// flowmatch): every structural check of decode_safetensors (header length and cap, JSON without
/// duplicate names, entries, dtypes, shapes, size overflow, offsets, no overlap, no gap, no
/// trailing byte) and the finite-value check (F16, BF16, F32, F64: CheckpointCorruptError naming
/// the tensor and the element), but no "format" or checksum required: __metadata__ may be absent
/// or any map of strings (e.g. PyTorch's {"format": "pt"}); its entries become attributes as they
/// are. Tensors keep their file dtype. Messages begin "flowmatch::read_safetensors: '<name>': ".
inline StateDict decode_foreign_safetensors(const unsigned char* data, std::size_t size, std::string_view name) {
  return detail::decode_safetensors_impl(data, size, name, false, true);
}

}  // namespace flowmatch
