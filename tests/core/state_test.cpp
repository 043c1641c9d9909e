#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <tuple>

#include "flowmatch/core/state.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// A small part: a vector, a counter and a hyper-parameter that must match on load.
struct Counter {
  static constexpr std::string_view state_scope = "counter";
  double rate = 0.5;
  long long count = 0;
  Vector<float> values = Vector<float>::Zero(3);

  void save_state(StateWriter& w) const {
    w.text("type", "counter");
    w.real("rate", rate);
    w.integer("count", count);
    w.vector("values", values);
  }
  void load_state(const StateReader& r) {
    r.expect_text("type", "counter", "part type");
    r.expect_real("rate", rate, "rate");
    const long long c = r.integer("count");
    if (c < 0) r.fail("count " + std::to_string(c) + " is negative");
    Vector<float> v = r.vector<float>("values", values.size());
    count = c;
    values = std::move(v);
  }
};

// A composite: two counters under their own names plus its own part.
struct Pair {
  Counter a, b;
  auto state_parts() { return std::make_tuple(state_part("a", a), state_part("b", b)); }
};

}  // namespace

TEST_CASE("state: a part round-trips through a StateDict, with its scope", "[state]") {
  Counter c;
  c.count = 7;
  c.values << 1.f, -2.5f, 3.25f;
  c.rate = 0.1;
  StateDict d;
  save_state_parts(d, c);
  REQUIRE(d.find_tensor("counter.values") != nullptr);
  CHECK(d.find_tensor("counter.values")->shape == std::vector<std::int64_t>{3});
  CHECK(*d.find_attribute("counter.rate") == "0.1");
  Counter c2;
  c2.rate = 0.1;
  load_state_parts(d, "mem", c2);
  CHECK(c2.count == 7);
  CHECK(c2.values == c.values);
}

TEST_CASE("state: a failing part leaves every part as it was", "[state]") {
  Pair src;
  src.a.count = 3;
  src.b.count = 4;
  src.b.rate = 0.25;  // b will not match the destination's rate
  StateDict d;
  save_state_parts(d, state_part("pair", src));
  CHECK(d.find_attribute("pair.a.count") != nullptr);
  Pair dst;
  dst.a.count = 11;
  dst.b.count = 12;
  REQUIRE_THROWS_AS(load_state_parts(d, "mem", state_part("pair", dst)), CheckpointMismatchError);
  CHECK(dst.a.count == 11);  // rolled back
  CHECK(dst.b.count == 12);
}

TEST_CASE("state: left-over keys, missing keys and wrong shapes are refused by name", "[state]") {
  Counter c;
  StateDict d;
  save_state_parts(d, c);
  d.put_attribute("counter.extra", "1");
  Counter c2;
  try {
    load_state_parts(d, "f.safetensors", c2);
    FAIL("no throw");
  } catch (const CheckpointMismatchError& e) {
    CHECK(std::string(e.what()).find("counter.extra") != std::string::npos);
    CHECK(std::string(e.what()).find("f.safetensors") != std::string::npos);
  }
  Counter wide;
  wide.values = Vector<float>::Zero(4);
  StateDict d2;
  save_state_parts(d2, c);
  CHECK_THROWS_WITH(load_state_parts(d2, "x", wide), Catch::Contains("shape [3]") && Catch::Contains("[4]"));
}

TEST_CASE("state: reals round-trip bit for bit and integer lists parse strictly", "[state]") {
  StateDict d;
  StateWriter w(d);
  const double x = 0.1 + 0.2;
  w.real("x", x);
  w.integers("w", {3, 1024, 16, 2});
  w.text("bad", "[1,,2]");
  StateReader r(d, "mem");
  CHECK(r.real("x") == x);
  CHECK(r.integers("w") == std::vector<long long>{3, 1024, 16, 2});
  CHECK_THROWS_AS(r.integers("bad"), CheckpointMismatchError);
  CHECK(*d.find_attribute("w") == "[3,1024,16,2]");
}

TEST_CASE("state: matrices are written in C order whatever their storage", "[state]") {
  Matrix<double> m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  StateDict d;
  StateWriter(d).matrix("m", m);
  const Tensor& t = *d.find_tensor("m");
  CHECK(t.shape == std::vector<std::int64_t>{2, 3});
  double second = 0;
  std::memcpy(&second, t.bytes.data() + 8, 8);
  CHECK(second == 2.0);
  CHECK(StateReader(d, "mem").matrix<double>("m", 2, 3) == m);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
