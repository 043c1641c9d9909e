// Importing PyTorch MLP vector fields (io/torch_import.hpp) against the committed fixtures of
// tests/io/make_torch_fixtures.py (tests/io/data/torch, listed in manifest.json): every good network
// (each activation, prefix, dtype F32/F64/F16/BF16, time first, index gaps) imports with the
// structure inspect_torch_mlp reports and reproduces PyTorch's float64 outputs (float: to float
// rounding; double: to 1e-10); every bad file is refused with TorchImportError naming the file and
// the offending key. Also: the F16/BF16 conversions, the foreign safetensors decoder, the
// time-first permutation, the activation option, and that flowmatch's own model file imports.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/io/float16.hpp>
#include <flowmatch/io/torch_import.hpp>
#include <flowmatch/nn/mlp_from_state.hpp>
#include <nlohmann/json.hpp>

#include "support/files.hpp"
#include "support/memory_limit.hpp"
#include "support/temp_dir.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kTests = test::tests_dir();
const fs::path kData = kTests / "io" / "data" / "torch";

json manifest() {
  std::ifstream in(kData / "manifest.json");
  REQUIRE(in);
  return json::parse(in);
}

using test::read_bytes;

// Whether this build's visit_mlp_activation knows `name` (gelu, elu, ... arrive with the extra
// activations); the tests of an unknown one are skipped with a warning.
bool known_activation(const std::string& name) {
  try {
    visit_mlp_activation(name, [](auto) { return 0; });
    return true;
  } catch (const CheckpointMismatchError&) {
    WARN("activation '" << name << "' is not built into this flowmatch: its PyTorch fixture is SKIPPED");
    return false;
  }
}

// A tensor of a foreign safetensors file as doubles (rows x cols, row-major as stored).
Matrix<double> tensor_rows(const StateDict& d, const std::string& key) {
  const Tensor* t = d.find_tensor(key);
  REQUIRE(t != nullptr);
  REQUIRE(t->dtype == DType::F64);
  const Index rows = t->shape.empty() ? 1 : t->shape[0];
  const Index cols = t->shape.size() < 2 ? 1 : t->shape[1];
  Matrix<double> m(rows, cols);
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < cols; ++c) m(r, c) = detail::read_le<double>(t->bytes.data() + 8 * (r * cols + c));
  return m;
}

struct IO {
  Matrix<double> x;    // d x n (columns are samples)
  Vector<double> t;    // n
  Matrix<double> out;  // d x n, PyTorch's float64 forward
};

IO load_io(const std::string& name) {
  const fs::path file = kData / (name + ".io.safetensors");
  const std::vector<unsigned char> bytes = read_bytes(file);
  const StateDict d = decode_foreign_safetensors(bytes.data(), bytes.size(), file.string());
  IO io;
  io.x = tensor_rows(d, "x").transpose();
  io.t = tensor_rows(d, "t").col(0);
  io.out = tensor_rows(d, "out").transpose();
  return io;
}

// Max over entries of |ours - theirs| / (1 + |theirs|).
template <class M>
double scaled_error(const M& ours, const Matrix<double>& theirs) {
  REQUIRE(ours.rows() == theirs.rows());
  REQUIRE(ours.cols() == theirs.cols());
  double e = 0;
  for (Index j = 0; j < theirs.cols(); ++j)
    for (Index i = 0; i < theirs.rows(); ++i)
      e = std::max(e, std::abs(static_cast<double>(ours(i, j)) - theirs(i, j)) / (1.0 + std::abs(theirs(i, j))));
  return e;
}

template <class S>
double import_error(const json& c, const IO& io) {
  const TorchImportOptions opt{c["activation"].get<std::string>(), c["time_first"].get<bool>()};
  return visit_torch_mlp<S>(kData / (c["name"].get<std::string>() + ".safetensors"), opt, [&](auto model) {
    const Matrix<S> x = io.x.cast<S>();
    const Vector<S> t = io.t.cast<S>();
    return scaled_error(model(x, t), io.out);
  });
}

}  // namespace

TEST_CASE("F16 and BF16 convert exactly, both ways", "[io][torch]") {
  CHECK(f16_to_float(0x3c00) == 1.0f);
  CHECK(f16_to_float(0xc000) == -2.0f);
  CHECK(f16_to_float(0x7bff) == 65504.0f);
  CHECK(f16_to_float(0x0001) == std::ldexp(1.0f, -24));  // the smallest subnormal
  CHECK(f16_to_float(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(f16_to_float(0x0400) == std::ldexp(1.0f, -14));  // the smallest normal
  CHECK(std::signbit(f16_to_float(0x8000)));
  CHECK(std::isinf(f16_to_float(0x7c00)));
  CHECK(std::isnan(f16_to_float(0x7e00)));
  CHECK(!f16_is_finite(0x7c00));
  CHECK(!f16_is_finite(0xfe01));
  CHECK(f16_is_finite(0x7bff));
  CHECK(bf16_to_float(0x3f80) == 1.0f);
  CHECK(bf16_to_float(0x0001) == std::ldexp(1.0f, -133));  // subnormal
  CHECK(!bf16_is_finite(0x7f80));
  CHECK(!bf16_is_finite(0xffc0));
  CHECK(bf16_is_finite(0x7f7f));
  // Every finite pattern survives the round trip; midpoints round to the even neighbour.
  int bad = 0;
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const auto b = static_cast<std::uint16_t>(h);
    if (f16_is_finite(b) && float_to_f16(f16_to_float(b)) != b) ++bad;
    if (bf16_is_finite(b) && float_to_bf16(bf16_to_float(b)) != b) ++bad;
  }
  for (std::uint16_t h = 0; h < 0x7bff; ++h) {
    const auto mid = static_cast<float>((f16_to_double(h) + f16_to_double(static_cast<std::uint16_t>(h + 1))) / 2);
    if (float_to_f16(mid) != (h % 2 == 0 ? h : h + 1)) ++bad;
  }
  CHECK(bad == 0);
  CHECK(float_to_f16(65520.0f) == 0x7c00);  // rounds to infinity
  CHECK(float_to_f16(65519.0f) == 0x7bff);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);  // a tie: to even
  CHECK(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
}

TEST_CASE("foreign safetensors files decode with every structural check but no flowmatch metadata", "[io][torch]") {
  const fs::path file = kData / "act_silu.safetensors";
  const std::vector<unsigned char> bytes = read_bytes(file);
  // flowmatch's checkpoint reader refuses it: not a flowmatch checkpoint.
  CHECK_THROWS_AS(decode_safetensors(bytes.data(), bytes.size(), "f"), CheckpointMagicError);
  const StateDict d = decode_foreign_safetensors(bytes.data(), bytes.size(), "f");
  CHECK(d.tensors().size() == 4);  // 4-9-3: two Linear layers
  REQUIRE(d.find_attribute("format") != nullptr);
  CHECK(*d.find_attribute("format") == "pt");
  // No metadata at all, and structural damage.
  const auto file_of = [](const std::string& text, std::size_t data) {
    std::vector<unsigned char> out;
    detail::append_le<std::uint64_t>(out, text.size());
    out.insert(out.end(), text.begin(), text.end());
    out.resize(out.size() + data, 0);
    return out;
  };
  const auto ok = file_of(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4);
  CHECK(decode_foreign_safetensors(ok.data(), ok.size(), "f").find_tensor("a")->dtype == DType::F16);
  const auto overlap = file_of(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                               R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[2,6]}})", 6);
  CHECK_THROWS_AS(decode_foreign_safetensors(overlap.data(), overlap.size(), "f"), CheckpointOverlapError);
  const auto gap = file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8);
  CHECK_THROWS_AS(decode_foreign_safetensors(gap.data(), gap.size(), "f"), CheckpointGapError);
  const auto size = file_of(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", 8);
  CHECK_THROWS_AS(decode_foreign_safetensors(size.data(), size.size(), "f"), CheckpointOffsetsError);
  const auto dtype = file_of(R"({"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2);
  CHECK_THROWS_AS(decode_foreign_safetensors(dtype.data(), dtype.size(), "f"), CheckpointDTypeError);
  const auto meta = file_of(R"({"__metadata__":{"format":1}})", 0);
  CHECK_THROWS_AS(decode_foreign_safetensors(meta.data(), meta.size(), "f"), CheckpointMetadataError);
  auto big = ok;
  big[6] = 0x10;  // header length far above the cap
  CHECK_THROWS_AS(decode_foreign_safetensors(big.data(), big.size(), "f"), CheckpointHeaderSizeError);
  auto nan = ok;
  nan[nan.size() - 1] = 0x7e;  // element 1 of a: an F16 NaN
  CHECK_THROWS_WITH(decode_foreign_safetensors(nan.data(), nan.size(), "f"),
                    Catch::Contains("tensor 'a'") && Catch::Contains("(element 1)"));
}

TEST_CASE("every PyTorch fixture imports with its structure and PyTorch's outputs", "[io][torch]") {
  const json m = manifest();
  REQUIRE(m["good"].size() >= 17);
  int checked = 0;
  for (const json& c : m["good"]) {
    const std::string name = c["name"];
    INFO("fixture " << name << " (" << c["activation"] << ", " << c["dtype"] << ", prefix '" << c["prefix"] << "')");
    const TorchMLPInfo info = inspect_torch_mlp(kData / (name + ".safetensors"));
    CHECK(info.prefix == c["prefix"].get<std::string>());
    CHECK(std::vector<long long>(info.widths.begin(), info.widths.end()) == c["widths"].get<std::vector<long long>>());
    CHECK(std::string(dtype_name(info.dtype)) == c["dtype"].get<std::string>());
    CHECK(info.indices == c["indices"].get<std::vector<std::int64_t>>());
    CHECK(info.weight_keys.front() == info.prefix + std::to_string(info.indices.front()) + ".weight");
    CHECK(info.describe().find(name + ".safetensors") != std::string::npos);
    if (!known_activation(c["activation"])) continue;
    const IO io = load_io(name);
    // F16/BF16/F32 weights are exact in float; only the forward pass rounds.
    const double ef = import_error<float>(c, io);
    CHECK(ef < 2e-5);
    // In double every dtype's weights are exact: the two float64 forwards agree to rounding.
    const double ed = import_error<double>(c, io);
    CHECK(ed < 1e-10);
    ++checked;
  }
  CHECK(checked >= 6);  // silu, relu, tanh x the dtype, time-first and layout cases at least
}

TEST_CASE("every bad file is refused with TorchImportError naming the file and the key", "[io][torch]") {
  const json m = manifest();
  REQUIRE(m["bad"].size() >= 20);
  for (const json& c : m["bad"]) {
    const std::string name = c["name"], key = c["key"];
    INFO("bad fixture " << name << ": " << c["note"]);
    const fs::path file = kData / (name + ".safetensors");
    const TorchImportOptions opt{"silu"};
    const auto check = [&](auto&& call) {
      try {
        call();
        FAIL("not refused");
      } catch (const TorchImportError& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK(what.find(file.string()) != std::string::npos);
        if (!key.empty()) CHECK(what.find("'" + key + "'") != std::string::npos);
      }
    };
    check([&] { visit_torch_mlp<float>(file, opt, [](auto) {}); });
    check([&] { (void)import_torch_mlp<float, SiLU>(file, opt); });
    if (name == "bad_f64_overflow") {  // fine in double, beyond float's range
      CHECK_NOTHROW(inspect_torch_mlp(file));
      CHECK_NOTHROW(import_torch_mlp<double, SiLU>(file, opt));
    } else {
      check([&] { (void)inspect_torch_mlp(file); });
      check([&] { (void)import_torch_mlp<double, SiLU>(file, opt); });
    }
  }
  // A missing file, and the library's base type.
  CHECK_THROWS_AS(inspect_torch_mlp(kData / "no_such_file.safetensors"), TorchImportError);
  CHECK_THROWS_AS(inspect_torch_mlp(kData / "bad_nan.safetensors"), Error);
}

TEST_CASE("time first: the first layer's columns are permuted so that the model takes [x, t]", "[io][torch]") {
  const fs::path file = kData / "time_first.safetensors";
  const std::vector<unsigned char> bytes = read_bytes(file);
  const StateDict d = decode_foreign_safetensors(bytes.data(), bytes.size(), "f");
  const Tensor& w = *d.find_tensor("net.0.weight");  // [12, 3] F32: columns t, x0, x1
  const auto first = import_torch_mlp<double, SiLU>(file, {"silu", true});
  const auto plain = import_torch_mlp<double, SiLU>(file, {"silu", false});
  for (Index r = 0; r < 12; ++r) {
    const auto at = [&](Index c) { return static_cast<double>(detail::read_le<float>(w.bytes.data() + 4 * (r * 3 + c))); };
    CHECK(first.weight(0)(r, 2) == at(0));  // t: the file's first column, our last
    CHECK(first.weight(0)(r, 0) == at(1));
    CHECK(first.weight(0)(r, 1) == at(2));
    CHECK(plain.weight(0)(r, 0) == at(0));
  }
  CHECK(first.parameters().tail(first.num_parameters() - 36) == plain.parameters().tail(plain.num_parameters() - 36));
  // Only the right option reproduces PyTorch.
  const IO io = load_io("time_first");
  CHECK(scaled_error(first(io.x, io.t), io.out) < 1e-10);
  CHECK(scaled_error(plain(io.x, io.t), io.out) > 1e-3);
}

TEST_CASE("the activation must be named, known, and match the model type", "[io][torch]") {
  const fs::path file = kData / "act_silu.safetensors";
  CHECK_THROWS_WITH(visit_torch_mlp<float>(file, {}, [](auto) {}),
                    Catch::Contains("TorchImportOptions::activation is empty"));
  CHECK_THROWS_AS((import_torch_mlp<float, SiLU>(file, {})), TorchImportError);
  CHECK_THROWS_WITH(visit_torch_mlp<float>(file, {"swish"}, [](auto) {}),
                    Catch::Contains("unknown activation 'swish'") && Catch::Contains("act_silu.safetensors"));
  CHECK_THROWS_AS(visit_torch_mlp<float>(file, {"swish"}, [](auto) {}), TorchImportError);
  CHECK_THROWS_WITH((import_torch_mlp<float, Tanh>(file, {"silu"})),
                    Catch::Contains("'silu'") && Catch::Contains("'tanh'"));
  // visit picks the policy by name.
  CHECK(visit_torch_mlp<float>(file, {"relu"}, [](auto model) { return std::string(decltype(model)::activation_type::name()); }) ==
        "relu");
}

TEST_CASE("a flowmatch model file imports as a PyTorch state_dict under the prefix 'model.'", "[io][torch]") {
  const fs::path file = fs::temp_directory_path() / "flowmatch_torch_import_test_model.safetensors";
  MLPVectorField<float, Tanh> model(3, {7, 5}, 11);
  save_checkpoint(file, model);
  const TorchMLPInfo info = inspect_torch_mlp(file);
  CHECK(info.prefix == "model.");
  CHECK(info.indices == std::vector<std::int64_t>{0, 2, 4});
  CHECK(info.widths == std::vector<Index>{4, 7, 5, 3});
  const auto back = import_torch_mlp<float, Tanh>(file, {"tanh"});
  CHECK(back.parameters() == model.parameters());
  fs::remove(file);
}

TEST_CASE("a short file declaring a huge Linear layer fails within 256 MB of address space", "[io][torch][memory]") {
#ifdef FLOWMATCH_TEST_UNDER_SANITIZER
  WARN("skipped under a sanitizer: its shadow memory needs more address space than the limit this test sets");
#else
  // Issue 19: a foreign safetensors header declaring an F32 [65536, 65536] weight (16 GiB) and its
  // bias over 16 bytes of data. The importer reads the file whole (its own size) and the decoder
  // checks the declared layout against it before anything is sized.
  const json header{{"0.weight", {{"dtype", "F32"}, {"shape", {65536, 65536}}, {"data_offsets", {0ull, 16ull << 30}}}},
                    {"0.bias", {{"dtype", "F32"}, {"shape", {65536}}, {"data_offsets", {16ull << 30, (16ull << 30) + 262144}}}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<unsigned char> bytes;
  detail::append_le<std::uint64_t>(bytes, text.size());
  bytes.insert(bytes.end(), text.begin(), text.end());
  bytes.resize(bytes.size() + 16, 0);
  test::TempDir dir("torch_memory");
  const fs::path file = dir / "huge.safetensors";
  {
    std::ofstream os(file, std::ios::binary);
    os.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  const TorchImportOptions options{"silu", false};
  for (const bool inspect : {true, false}) {
    const test::ChildOutcome r = test::run_with_address_space_budget<TorchImportError>(256, [&] {
      if (inspect)
        (void)inspect_torch_mlp(file);
      else
        (void)import_torch_mlp<float>(file, options);
    });
    INFO((inspect ? "inspect_torch_mlp: " : "import_torch_mlp: ") << r.describe());
    CHECK((r.exited && r.code == 0));
  }
  CHECK_THROWS_WITH(inspect_torch_mlp(file), Catch::Contains("the tensors need 17180131328 bytes of data but the file holds 16"));
#endif
}

}  // namespace FLOWMATCH_TEST_FILE_ID
