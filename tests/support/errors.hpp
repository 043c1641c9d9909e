#pragma once
// The message of the exception a call throws, for checks that errors name the argument and value.

#include <catch2/catch.hpp>

#include <exception>
#include <string>

#include <flowmatch/core/error.hpp>

namespace flowmatch::test {

/// The what() of the exception of type E that f() throws; fails the test case if f throws nothing
/// or an exception of another type.
template <class E = Error, class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected another exception type, got: " << e.what());
  }
  FAIL("no exception thrown");
  return {};
}

}  // namespace flowmatch::test
