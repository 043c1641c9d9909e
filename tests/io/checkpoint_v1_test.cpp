// Format-1 checkpoints (.fmck) still load, read-only (io/checkpoint_v1.hpp): the files in
// tests/io/data were written by the format-1 writer (tests/io/data/make_v1_files.cpp, at commit
// ae4abaa), and v1_expected.json holds the values it printed. Each converted StateDict must hold
// them under today's names (model.<2l>.weight/bias, optimizer.exp_avg, trainer.rng, ...).

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <flowmatch/io/checkpoint.hpp>
#include <nlohmann/json.hpp>

#include "support/files.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kTests = test::tests_dir();
const fs::path kData = kTests / "io" / "data";

using test::read_bytes;

// The elements of tensor `name` as doubles, checking its dtype.
template <class T>
std::vector<double> values(const StateDict& d, const std::string& name, DType dtype) {
  const Tensor* t = d.find_tensor(name);
  REQUIRE(t != nullptr);
  CHECK(t->dtype == dtype);
  std::vector<double> out;
  for (std::size_t i = 0; i < t->bytes.size() / sizeof(T); ++i)
    out.push_back(static_cast<double>(detail::read_le<T>(t->bytes.data() + i * sizeof(T))));
  return out;
}

std::vector<double> as_scalars(const json& list, bool is_float) {
  std::vector<double> out;
  for (const json& v : list) out.push_back(is_float ? static_cast<double>(static_cast<float>(v.get<double>())) : v.get<double>());
  return out;
}

// Checks the model.* part of `d` against the flat parameters of `e` (layer by layer, weight then bias).
void check_model(const StateDict& d, const json& e, bool is_float, const char* activation) {
  const DType dtype = is_float ? DType::F32 : DType::F64;
  CHECK(*d.find_attribute("model.type") == "mlp_vector_field");
  CHECK(*d.find_attribute("model.scalar") == (is_float ? "float" : "double"));
  CHECK(*d.find_attribute("model.activation") == activation);
  CHECK(*d.find_attribute("model.time") == "last");
  CHECK(json::parse(*d.find_attribute("model.widths")) == e["widths"]);
  const std::vector<double> flat = as_scalars(e["parameters"], is_float);
  const std::vector<long long> widths = e["widths"].get<std::vector<long long>>();
  std::size_t at = 0;
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    const auto in = static_cast<std::size_t>(widths[l]), out = static_cast<std::size_t>(widths[l + 1]);
    const std::string layer = "model." + std::to_string(2 * l) + ".";
    INFO(layer);
    CHECK(d.find_tensor(layer + "weight")->shape == std::vector<std::int64_t>{widths[l + 1], widths[l]});
    CHECK(d.find_tensor(layer + "bias")->shape == std::vector<std::int64_t>{widths[l + 1]});
    const std::vector<double> w = is_float ? values<float>(d, layer + "weight", dtype) : values<double>(d, layer + "weight", dtype);
    const std::vector<double> b = is_float ? values<float>(d, layer + "bias", dtype) : values<double>(d, layer + "bias", dtype);
    CHECK(w == std::vector<double>(flat.begin() + static_cast<std::ptrdiff_t>(at), flat.begin() + static_cast<std::ptrdiff_t>(at + in * out)));
    at += in * out;
    CHECK(b == std::vector<double>(flat.begin() + static_cast<std::ptrdiff_t>(at), flat.begin() + static_cast<std::ptrdiff_t>(at + out)));
    at += out;
  }
  CHECK(at == flat.size());
}

}  // namespace

TEST_CASE("Format-1 checkpoints load with the values they were written with, under today's names", "[io][checkpoint][v1]") {
  std::ifstream in(kData / "v1_expected.json");
  REQUIRE(in);
  const json expected = json::parse(in);

  SECTION("float SiLU MLP 3-8-2, Adam, trainer state") {
    const json& e = expected["v1_adam_trainer_float_silu.fmck"];
    const StateDict d = read_checkpoint(kData / "v1_adam_trainer_float_silu.fmck");
    check_model(d, e, true, "silu");
    CHECK(*d.find_attribute("optimizer.type") == "adam");
    CHECK(*d.find_attribute("optimizer.lr") == "0.002");
    CHECK(*d.find_attribute("optimizer.beta1") == "0.9");
    CHECK(*d.find_attribute("optimizer.beta2") == "0.99");
    CHECK(*d.find_attribute("optimizer.eps") == "1e-07");
    CHECK(*d.find_attribute("optimizer.steps") == "4");
    CHECK(values<float>(d, "optimizer.exp_avg", DType::F32) == as_scalars(e["exp_avg"], true));
    CHECK(values<float>(d, "optimizer.exp_avg_sq", DType::F32) == as_scalars(e["exp_avg_sq"], true));
    CHECK(*d.find_attribute("trainer.steps_done") == "4");
    const Tensor* rng = d.find_tensor("trainer.rng");
    REQUIRE(rng != nullptr);
    CHECK(rng->dtype == DType::U64);
    CHECK(rng->shape == std::vector<std::int64_t>{4});
    for (std::size_t k = 0; k < 4; ++k)
      CHECK(std::to_string(detail::read_le<std::uint64_t>(rng->bytes.data() + 8 * k)) == e["rng"][k].get<std::string>());
    CHECK(d.attributes().size() == 12);
    CHECK(d.tensors().size() == 7);
    const CheckpointInfo info = read_checkpoint_info(kData / "v1_adam_trainer_float_silu.fmck");
    CHECK(info.format_version == 1);
    CHECK(info.has_scope("trainer"));
    // Saving what was read writes format 2, which reads back to the same state.
    const StateDict again = decode_checkpoint(encode_safetensors(d), "re-saved");
    CHECK(again.attributes() == d.attributes());
    for (const auto& [name, t] : d.tensors()) CHECK(again.find_tensor(name)->bytes == t.bytes);
  }
  SECTION("double tanh MLP 2-5-4-1 with Nesterov SGD") {
    const json& e = expected["v1_sgd_double_tanh.fmck"];
    const StateDict d = read_checkpoint(kData / "v1_sgd_double_tanh.fmck");
    check_model(d, e, false, "tanh");
    CHECK(*d.find_attribute("optimizer.type") == "sgd");
    CHECK(*d.find_attribute("optimizer.lr") == "0.05");
    CHECK(*d.find_attribute("optimizer.momentum") == "0.9");
    CHECK(*d.find_attribute("optimizer.nesterov") == "true");
    CHECK(*d.find_attribute("optimizer.steps") == "2");
    CHECK(values<double>(d, "optimizer.momentum_buffer", DType::F64) == as_scalars(e["momentum_buffer"], false));
    CHECK(d.find_attribute("trainer.steps_done") == nullptr);
    CHECK(d.find_tensor("trainer.rng") == nullptr);
  }
  SECTION("float ReLU model alone") {
    const json& e = expected["v1_model_only_float_relu.fmck"];
    const StateDict d = read_checkpoint(kData / "v1_model_only_float_relu.fmck");
    check_model(d, e, true, "relu");
    CHECK(d.attributes().size() == 5);
    CHECK(d.tensors().size() == 4);
  }
}

TEST_CASE("Format-1 checkpoints: every flipped byte and every truncation is refused", "[io][checkpoint][v1][errors]") {
  const std::vector<unsigned char> bytes = read_bytes(kData / "v1_model_only_float_relu.fmck");
  REQUIRE(bytes.size() == 140);
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
  for (std::size_t length = 0; length < bytes.size(); ++length)
    CHECK_THROWS_AS(decode_checkpoint(std::vector<unsigned char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(length)), "cut"),
                    CheckpointTruncatedError);
  std::vector<unsigned char> longer = bytes;
  longer.push_back(0);
  CHECK_THROWS_AS(decode_checkpoint(longer, "longer"), CheckpointTrailingDataError);
  std::vector<unsigned char> v9 = bytes;
  v9[8] = 9;  // the format version (the header's checksum then fails first: a version error needs it fixed)
  const std::uint32_t crc = detail::crc32(0, v9.data(), 28);
  for (int k = 0; k < 4; ++k) v9[28 + static_cast<std::size_t>(k)] = static_cast<unsigned char>(crc >> (8 * k));
  CHECK_THROWS_AS(decode_checkpoint(v9, "v9"), CheckpointVersionError);
}

TEST_CASE("Format-1 files of the fuzz seed corpus (an independent encoder) load", "[io][checkpoint][v1]") {
  const fs::path corpus = kTests / "fuzz" / "corpus" / "checkpoint";
  const StateDict adam = read_checkpoint(corpus / "v1_adam_trainer.fmck");
  CHECK(*adam.find_attribute("model.widths") == "[3,2,2]");
  CHECK(*adam.find_attribute("optimizer.steps") == "3");
  CHECK(*adam.find_attribute("trainer.steps_done") == "3");
  CHECK(adam.find_tensor("optimizer.exp_avg")->shape == std::vector<std::int64_t>{14});
  const StateDict sgd = read_checkpoint(corpus / "v1_sgd_nesterov.fmck");
  CHECK(*sgd.find_attribute("optimizer.lr") == "0.01");
  CHECK(*sgd.find_attribute("optimizer.nesterov") == "true");
  const StateDict tanh = read_checkpoint(corpus / "v1_double_tanh_model.fmck");
  CHECK(tanh.find_tensor("model.2.weight")->dtype == DType::F64);
  // The format-2 seed files (also written by make_corpus.py, whose header checksum is Python's
  // json.dumps with sorted keys: the same bytes as nlohmann's dump) load too.
  int v2_files = 0;
  for (const auto& entry : fs::directory_iterator(corpus))
    if (entry.path().extension() == ".safetensors") {
      INFO(entry.path());
      CHECK_NOTHROW(read_checkpoint(entry.path()));
      ++v2_files;
    }
  CHECK(v2_files >= 4);
  const CheckpointInfo info = read_checkpoint_info(corpus / "v2_trainer.safetensors");
  CHECK(info.format_version == 2);
  CHECK(*info.attribute("optimizer.type") == "adam");
  CHECK(*read_checkpoint(corpus / "v2_odd_shapes.safetensors").find_attribute("note") == "\xc3\xa9\n");
  // A bare format-1 payload is no checkpoint.
  CHECK_THROWS_AS(read_checkpoint(corpus / "v1_adam_trainer.payload"), CheckpointHeaderSizeError);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
