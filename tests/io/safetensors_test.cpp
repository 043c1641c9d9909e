// The safetensors layer of checkpoints (io/safetensors.hpp): round trips of every dtype and odd
// shape, every malformed header refused with its own exception type (files crafted with correct
// checksums, so that each check is reached), every flipped byte and every truncation refused.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <typeinfo>
#include <vector>

#include <flowmatch/io/checkpoint.hpp>
#include <nlohmann/json.hpp>

#include "support/memory_limit.hpp"
#include "support/temp_dir.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using nlohmann::json;

namespace {

// A file from a header text (not padded) and a data section.
std::vector<unsigned char> file_of(const std::string& text, const std::vector<unsigned char>& data) {
  std::vector<unsigned char> out;
  detail::append_le<std::uint64_t>(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// A file with header `h` around `data`, the format keys and both checksums filled in (unless `h`
// gives them), then the keys in `drop` removed from the metadata before the header's checksum.
std::vector<unsigned char> craft(json h, const std::vector<unsigned char>& data, const std::vector<std::string>& drop = {}) {
  if (!h.contains("__metadata__")) h["__metadata__"] = json::object();
  json& m = h["__metadata__"];
  if (m.is_object()) {
    if (!m.contains("format")) m["format"] = "flowmatch";
    if (!m.contains("flowmatch.format_version")) m["flowmatch.format_version"] = "2";
    if (!m.contains("flowmatch.data_crc32")) m["flowmatch.data_crc32"] = detail::hex32(detail::crc32(0, data.data(), data.size()));
    for (const auto& k : drop) m.erase(k);
    if (!m.contains("flowmatch.header_crc32")) m["flowmatch.header_crc32"] = detail::hex32(detail::header_crc(h));
  }
  return file_of(h.dump(), data);
}

std::vector<unsigned char> floats(std::initializer_list<float> v) {
  std::vector<unsigned char> out;
  for (float x : v) detail::append_le(out, x);
  return out;
}

// Tensors "a" (F32 [2], bytes 0-8) and "b" (I64 [1], bytes 8-16): the valid base of the cases.
json base_header() {
  return json{{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}},
              {"b", {{"dtype", "I64"}, {"shape", {1}}, {"data_offsets", {8, 16}}}}};
}
std::vector<unsigned char> base_data() {
  std::vector<unsigned char> d = floats({1.5f, -2.0f});
  detail::append_le<std::int64_t>(d, -7);
  return d;
}

StateDict decode(const std::vector<unsigned char>& file) { return decode_safetensors(file.data(), file.size(), "crafted.safetensors"); }

// Throws exactly E (not a subclass, not a sibling), with the file's name in the message.
template <class E>
void check_throws_exactly(const std::vector<unsigned char>& file, const char* what) {
  INFO(what);
  try {
    (void)decode(file);
    FAIL_CHECK("no exception");
  } catch (const CheckpointError& e) {
    INFO(e.what());
    CHECK(typeid(e) == typeid(E));
    CHECK(std::string(e.what()).find("crafted.safetensors") != std::string::npos);
  }
}

StateDict sample_dict() {
  StateDict d;
  StateWriter w(d, "part.");
  const float f[] = {1.0f, -0.0f, 3.25f, std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(), 6.0f};
  w.tensor("f32", f, {2, 3});
  const double g[] = {0.1, -1e300};
  w.tensor("f64", g, {2});
  const std::int64_t i[] = {-1, std::numeric_limits<std::int64_t>::min()};
  w.tensor("i64", i, {2, 1});
  const std::uint64_t u[] = {~std::uint64_t{0}, 1, 2, 3};
  w.tensor("rng", u, {4});
  const std::int32_t k[] = {-5};
  w.tensor("scalar", k, {});  // shape []: one element
  const std::uint8_t b[] = {0};
  w.tensor("empty", b, {0, 3});
  w.text("type", "unit \"test\" \\ \n\t\x01 é ✓");
  w.real("lr", 1e-3);
  w.integers("widths", {3, 8, 2});
  return d;
}

}  // namespace

TEST_CASE("safetensors: round trip of every dtype, scalar and empty shapes, any attribute text", "[io][safetensors]") {
  const StateDict d = sample_dict();
  const std::vector<unsigned char> file = encode_safetensors(d, {{"note", "extra"}});
  // The layout: u64 header length, a multiple of 8; the header starts with '{'; data in name order.
  const auto n = detail::read_le<std::uint64_t>(file.data());
  CHECK(n % 8 == 0);
  CHECK(file[8] == '{');
  const json h = json::parse(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  CHECK(h["__metadata__"]["format"] == "flowmatch");
  CHECK(h["__metadata__"]["flowmatch.format_version"] == "2");
  CHECK(h["__metadata__"]["part.widths"] == "[3,8,2]");
  CHECK(h["part.empty"]["data_offsets"] == json{0, 0});
  CHECK(h["part.f32"]["data_offsets"] == json{0, 24});  // "empty" first (name order), 0 bytes
  CHECK(h["part.scalar"]["shape"] == json::array());
  CHECK(h["part.scalar"]["dtype"] == "I32");
  CHECK(file.size() == 8 + n + 24 + 16 + 16 + 32 + 4);

  const StateDict back = decode(file);
  CHECK(back.tensors().size() == d.tensors().size());
  for (const auto& [name, t] : d.tensors()) {
    INFO(name);
    const Tensor* u = back.find_tensor(name);
    REQUIRE(u != nullptr);
    CHECK(u->dtype == t.dtype);
    CHECK(u->shape == t.shape);
    CHECK(u->bytes == t.bytes);
  }
  std::map<std::string, std::string> expected = d.attributes();
  expected["note"] = "extra";
  CHECK(back.attributes() == expected);  // the format's own keys are not attributes
  CHECK(encode_safetensors(back) == encode_safetensors(decode(encode_safetensors(back))));  // deterministic
  // An empty dict is a valid file too.
  CHECK(decode(encode_safetensors(StateDict{})).empty());
}

TEST_CASE("safetensors: saving refuses non-finite floats, reserved names and invalid UTF-8", "[io][safetensors][errors]") {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    StateDict d;
    const float v[] = {1.0f, bad};
    StateWriter(d, "model.").tensor("0.weight", v, {2});
    CHECK_THROWS_AS(encode_safetensors(d), NumericalError);
    CHECK_THROWS_WITH(encode_safetensors(d), Catch::Contains("model.0.weight") && Catch::Contains("element 1"));
  }
  StateDict d;
  const double nan = -std::numeric_limits<double>::infinity();
  StateWriter(d, "").tensor("x", &nan, {1});
  CHECK_THROWS_AS(encode_safetensors(d), NumericalError);
  for (const char* reserved : {"format", "flowmatch.format_version", "flowmatch.anything"}) {
    StateDict r;
    r.put_attribute(reserved, "x");
    CHECK_THROWS_AS(encode_safetensors(r), CheckpointError);
  }
  StateDict twice;
  twice.put_attribute("a", "1");
  CHECK_THROWS_AS(encode_safetensors(twice, {{"a", "2"}}), CheckpointError);
  StateDict meta_named;
  const float one = 1.0f;
  StateWriter(meta_named, "").tensor("__metadata__", &one, {1});
  CHECK_THROWS_AS(encode_safetensors(meta_named), CheckpointError);
  StateDict utf8;
  utf8.put_attribute("a", "\xff\xfe");
  CHECK_THROWS_AS(encode_safetensors(utf8), CheckpointError);
}

TEST_CASE("safetensors: each malformed header throws its own exception naming the file", "[io][safetensors][errors]") {
  const std::vector<unsigned char> data = base_data();
  REQUIRE_NOTHROW(decode(craft(base_header(), data)));  // the control: the base is valid
  const auto with = [&](const char* name, const char* key, json value) {
    json h = base_header();
    h[name][key] = std::move(value);
    return h;
  };

  SECTION("header length") {
    std::vector<unsigned char> f;
    detail::append_le<std::uint64_t>(f, kSafetensorsMaxHeader + 1);
    f.resize(200, ' ');
    check_throws_exactly<CheckpointHeaderSizeError>(f, "above the cap");
    std::vector<unsigned char> g = craft(base_header(), data);
    detail::append_le<std::uint64_t>(g, 0);  // (extends the file: overwrite the length below)
    const std::uint64_t longer = g.size();
    for (int k = 0; k < 8; ++k) g[static_cast<std::size_t>(k)] = static_cast<unsigned char>(longer >> (8 * k));
    check_throws_exactly<CheckpointTruncatedError>(g, "beyond the file");
    check_throws_exactly<CheckpointTruncatedError>(std::vector<unsigned char>{1, 0, 0}, "shorter than the length");
  }
  SECTION("JSON syntax") {
    check_throws_exactly<CheckpointJsonError>(file_of("{\"a\": ", data), "cut JSON");
    check_throws_exactly<CheckpointJsonError>(file_of("{\"a\":{}}x", data), "garbage after the object");
    check_throws_exactly<CheckpointJsonError>(file_of("{\"a\":{}}\n  ", data), "a newline in the padding");
    check_throws_exactly<CheckpointJsonError>(file_of("{\"\xff\":1}", data), "invalid UTF-8");
    check_throws_exactly<CheckpointJsonError>(file_of("", data), "empty header");
    check_throws_exactly<CheckpointJsonError>(file_of("{/*c*/}", data), "comments");
  }
  SECTION("not an object, and nesting deeper than a header") {
    check_throws_exactly<CheckpointHeaderTypeError>(file_of("[1,2]", {}), "an array");
    check_throws_exactly<CheckpointHeaderTypeError>(
        file_of("{\"a\":{\"dtype\":\"F32\",\"shape\":[[[[1]]]],\"data_offsets\":[0,4]}}", data), "deep");
    check_throws_exactly<CheckpointHeaderTypeError>(craft(with("a", "extra", 1), data), "an extra key");
    json h = base_header();
    h["a"].erase("shape");
    check_throws_exactly<CheckpointHeaderTypeError>(craft(h, data), "no shape");
    h = base_header();
    h["a"] = json::array({1, 2, 3});
    check_throws_exactly<CheckpointHeaderTypeError>(craft(h, data), "entry not an object");
  }
  SECTION("duplicate names, which nlohmann would otherwise keep the last of silently") {
    const std::string entry = "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    check_throws_exactly<CheckpointDuplicateError>(file_of("{\"a\":" + entry + ",\"a\":" + entry + "}", data), "tensor");
    check_throws_exactly<CheckpointDuplicateError>(
        file_of("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", data), "key");
    check_throws_exactly<CheckpointDuplicateError>(
        file_of("{\"__metadata__\":{\"format\":\"flowmatch\",\"format\":\"x\"}}", {}), "metadata");
  }
  SECTION("__metadata__ not a map of strings, bad checksum fields, unknown format keys") {
    json h = base_header();
    h["__metadata__"] = json::array();
    check_throws_exactly<CheckpointMetadataError>(craft(h, data), "an array");
    h = base_header();
    h["__metadata__"] = {{"model.widths", json::array({3, 8})}};
    check_throws_exactly<CheckpointMetadataError>(craft(h, data), "a list value");
    h = base_header();
    h["__metadata__"] = {{"flowmatch.data_crc32", "XYZ"}};
    check_throws_exactly<CheckpointMetadataError>(craft(h, data), "bad crc text");
    check_throws_exactly<CheckpointMetadataError>(craft(base_header(), data, {"flowmatch.data_crc32"}), "no data crc");
    h = base_header();
    h["__metadata__"] = {{"flowmatch.future", "1"}};
    check_throws_exactly<CheckpointMetadataError>(craft(h, data), "unknown format key");
  }
  SECTION("not a flowmatch file; missing or unknown format version") {
    check_throws_exactly<CheckpointMagicError>(file_of(base_header().dump(), data), "no __metadata__");
    json h = base_header();
    h["__metadata__"] = {{"format", "pt"}};
    check_throws_exactly<CheckpointMagicError>(craft(h, data), "format pt");
    check_throws_exactly<CheckpointMagicError>(craft(base_header(), data, {"format"}), "no format");
    check_throws_exactly<CheckpointVersionError>(craft(base_header(), data, {"flowmatch.format_version"}), "no version");
    h = base_header();
    h["__metadata__"] = {{"flowmatch.format_version", "3"}};
    check_throws_exactly<CheckpointVersionError>(craft(h, data), "version 3");
  }
  SECTION("checksums") {
    json h = base_header();
    h["__metadata__"] = {{"flowmatch.header_crc32", "00000000"}};
    check_throws_exactly<CheckpointChecksumError>(craft(h, data), "header");
    h = base_header();
    h["__metadata__"] = {{"flowmatch.data_crc32", "00000000"}};
    check_throws_exactly<CheckpointChecksumError>(craft(h, data), "data");
  }
  SECTION("dtypes") {
    check_throws_exactly<CheckpointDTypeError>(craft(with("a", "dtype", "F31"), data), "F31");
    check_throws_exactly<CheckpointDTypeError>(craft(with("a", "dtype", "f32"), data), "lower case");
    check_throws_exactly<CheckpointDTypeError>(craft(with("a", "dtype", 4), data), "a number");
  }
  SECTION("shapes and sizes") {
    check_throws_exactly<CheckpointShapeError>(craft(with("a", "shape", 2), data), "not a list");
    check_throws_exactly<CheckpointShapeError>(craft(with("a", "shape", {-2}), data), "negative");
    check_throws_exactly<CheckpointShapeError>(craft(with("a", "shape", {2.0}), data), "a float");
    check_throws_exactly<CheckpointShapeError>(craft(with("a", "shape", {true}), data), "a boolean");
    check_throws_exactly<CheckpointShapeError>(craft(with("a", "shape", {"2"}), data), "a string");
    const std::uint64_t big = std::uint64_t{1} << 62;
    check_throws_exactly<CheckpointSizeOverflowError>(craft(with("a", "shape", {big, 4}), data), "2^62 x 4 x 4 bytes");
    check_throws_exactly<CheckpointSizeOverflowError>(craft(with("a", "shape", {0, big, big}), data), "with a zero");
    check_throws_exactly<CheckpointSizeOverflowError>(craft(with("a", "shape", {~std::uint64_t{0}}), data), "2^64 - 1");
  }
  SECTION("data_offsets") {
    check_throws_exactly<CheckpointOffsetsError>(craft(with("a", "data_offsets", {0}), data), "one number");
    check_throws_exactly<CheckpointOffsetsError>(craft(with("a", "data_offsets", {0, 8, 8}), data), "three");
    check_throws_exactly<CheckpointOffsetsError>(craft(with("a", "data_offsets", {-1, 8}), data), "negative");
    check_throws_exactly<CheckpointOffsetsError>(craft(with("a", "data_offsets", {"0", 8}), data), "a string");
    check_throws_exactly<CheckpointOffsetsError>(craft(with("a", "data_offsets", {0, 12}), data), "wrong size");
    check_throws_exactly<CheckpointOffsetsError>(craft(with("a", "data_offsets", {8, 0}), data), "end before begin");
    check_throws_exactly<CheckpointOffsetsError>(craft(with("a", "data_offsets", 0), data), "not a list");
  }
  SECTION("layout: overlap, gap, out of range, trailing bytes") {
    json h = base_header();
    h["b"]["data_offsets"] = {4, 12};
    check_throws_exactly<CheckpointOverlapError>(craft(h, data), "overlap");
    h["b"]["data_offsets"] = {0, 8};
    check_throws_exactly<CheckpointOverlapError>(craft(h, data), "same bytes");
    h["b"]["data_offsets"] = {12, 20};
    std::vector<unsigned char> longer = data;
    longer.resize(20, 0);
    check_throws_exactly<CheckpointGapError>(craft(h, longer), "a hole");
    h["a"]["data_offsets"] = {8, 16};
    h["b"]["data_offsets"] = {16, 24};
    check_throws_exactly<CheckpointGapError>(craft(h, data), "a hole at the start");
    h = base_header();
    std::vector<unsigned char> shorter(data.begin(), data.end() - 4);
    check_throws_exactly<CheckpointTruncatedError>(craft(h, shorter), "out of range");
    longer = data;
    longer.push_back(0);
    check_throws_exactly<CheckpointTrailingDataError>(craft(h, longer), "one byte after the last tensor");
  }
  SECTION("non-finite values, with correct checksums") {
    const std::vector<unsigned char> nan_data = [] {
      std::vector<unsigned char> d = floats({1.0f, std::numeric_limits<float>::quiet_NaN()});
      detail::append_le<std::int64_t>(d, 1);
      return d;
    }();
    check_throws_exactly<CheckpointCorruptError>(craft(base_header(), nan_data), "NaN");
    json h = base_header();
    h["b"]["dtype"] = "F64";
    std::vector<unsigned char> inf_data = floats({1.0f, 2.0f});
    detail::append_le(inf_data, std::numeric_limits<double>::infinity());
    check_throws_exactly<CheckpointCorruptError>(craft(h, inf_data), "infinity");
  }
}

TEST_CASE("safetensors: every flipped byte and every truncation is refused", "[io][safetensors][errors]") {
  StateDict d;
  StateWriter w(d, "model.");
  w.text("type", "tiny");
  w.integers("widths", {2, 3});
  const float weights[] = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -4.0f};
  w.tensor("0.weight", weights, {3, 2});
  const std::uint64_t rng[] = {1, 2, 3, 4};
  StateWriter(d, "trainer.").tensor("rng", rng, {4});
  const std::vector<unsigned char> bytes = encode_safetensors(d);
  INFO("file of " << bytes.size() << " bytes");
  long long refused = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i)
    for (const unsigned mask : {0x01u, 0x80u, 0xffu}) {
      std::vector<unsigned char> damaged = bytes;
      damaged[i] = static_cast<unsigned char>(damaged[i] ^ mask);
      try {
        (void)decode_checkpoint(damaged, "flipped");
        FAIL_CHECK("flipping byte " << i << " with mask " << mask << " was not detected");
      } catch (const CheckpointError&) {
        ++refused;
      }
    }
  CHECK(refused == static_cast<long long>(3 * bytes.size()));
  for (std::size_t length = 0; length < bytes.size(); ++length) {
    const std::vector<unsigned char> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(length));
    try {
      (void)decode_checkpoint(cut, "cut");
      FAIL_CHECK("a file cut to " << length << " bytes loaded");
    } catch (const CheckpointTruncatedError&) {
    } catch (const CheckpointError& e) {
      FAIL_CHECK("a file cut to " << length << " bytes: " << e.what());
    }
  }
  CHECK(decode_checkpoint(bytes, "whole").tensors().size() == 2);  // the control
}

TEST_CASE("Checkpoint loader: short files declaring huge sizes fail within 256 MB of address space",
          "[io][safetensors][checkpoint][memory]") {
#ifdef FLOWMATCH_TEST_UNDER_SANITIZER
  WARN("skipped under a sanitizer: its shadow memory needs more address space than the limit this test sets");
#else
  // Issue 19: the loader reads the file whole (its own size, never a number read from it) and
  // checks every declared size against the bytes it holds before sizing anything. Each crafted file
  // is loaded in a child whose address space is capped at the parent's current size + 256 MB.
  test::TempDir dir("st_memory");
  const auto write = [&](const std::string& name, const std::vector<unsigned char>& bytes) {
    const std::filesystem::path f = dir / name;
    std::ofstream os(f, std::ios::binary);
    os.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(os.good());
    return f;
  };
  std::vector<unsigned char> length_2_62;  // a header length of 2^62 bytes, 8 bytes behind it
  detail::append_le<std::uint64_t>(length_2_62, std::uint64_t{1} << 62);
  length_2_62.resize(16, ' ');
  std::vector<unsigned char> length_at_cap;  // a header length just under the cap, 64 bytes behind it
  detail::append_le<std::uint64_t>(length_at_cap, kSafetensorsMaxHeader - 8);
  length_at_cap.push_back('{');
  length_at_cap.resize(72, ' ');
  // A whole, checksummed header declaring an F64 [2^20, 2^10] tensor (8 GiB) over 16 bytes of data.
  const json huge{{"model.w", {{"dtype", "F64"}, {"shape", {1 << 20, 1 << 10}}, {"data_offsets", {0ull, 8ull << 30}}}}};
  // Format 1, both checksums right: a model section declaring 2^20 x 2^20 widths, so about 2^40
  // float64 parameters, over 16 bytes.
  std::vector<unsigned char> payload;
  detail::append_le<std::uint32_t>(payload, 8);
  detail::append_le<std::uint32_t>(payload, 4);
  for (const char c : std::string("silu")) payload.push_back(static_cast<unsigned char>(c));
  detail::append_le<std::uint32_t>(payload, 2);
  detail::append_le<std::uint64_t>(payload, 1u << 20);
  detail::append_le<std::uint64_t>(payload, 1u << 20);
  detail::append_le<std::uint64_t>(payload, (std::uint64_t{1} << 20) * ((std::uint64_t{1} << 20) + 1));
  payload.resize(payload.size() + 16, 0);
  std::vector<unsigned char> v1{0x89, 'F', 'M', 'C', 'K', 'P', 'T', '\n'};
  detail::append_le<std::uint32_t>(v1, 1);
  detail::append_le<std::uint32_t>(v1, 32);
  detail::append_le<std::uint64_t>(v1, payload.size());
  detail::append_le<std::uint32_t>(v1, detail::crc32(0, payload.data(), payload.size()));
  detail::append_le<std::uint32_t>(v1, detail::crc32(0, v1.data(), v1.size()));
  v1.insert(v1.end(), payload.begin(), payload.end());

  const struct {
    std::filesystem::path file;
    const char* message;  // what the size check says
  } cases[] = {
      {write("length_2_62.safetensors", length_2_62), "above the cap"},
      {write("length_at_cap.safetensors", length_at_cap), "only 64 follow"},
      {write("huge_tensor.safetensors", craft(huge, std::vector<unsigned char>(16, 0))),
       "the tensors need 8589934592 bytes of data but the file holds 16"},
      {write("huge_model.fmck", v1), "values do not fit in the 16 bytes left"},
  };
  for (const auto& c : cases) {
    const test::ChildOutcome r =
        test::run_with_address_space_budget<CheckpointError>(256, [&] { (void)read_checkpoint(c.file); });
    INFO(c.file.filename().string() << ": " << r.describe());
    CHECK((r.exited && r.code == 0));
    // And it is the size check that refused it (safe here once the child has shown it allocates little).
    if (r.exited && r.code == 0) CHECK_THROWS_WITH(read_checkpoint(c.file), Catch::Contains(c.message));
  }
#endif
}

}  // namespace FLOWMATCH_TEST_FILE_ID
