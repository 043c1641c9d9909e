#pragma once
// Test helpers for core/state.hpp: copies of a StateDict with one key removed, replaced or an
// element changed (to make each kind of bad state), and bit-for-bit comparison of two dicts.

#include <cstdint>
#include <cstring>
#include <string>

#include <flowmatch/core/state.hpp>

namespace flowmatch::test {

/// A copy of `d` without the tensor or attribute `key`.
inline StateDict without(const StateDict& d, const std::string& key) {
  StateDict out;
  for (const auto& [k, t] : d.tensors())
    if (k != key) out.put_tensor(k, t);
  for (const auto& [k, v] : d.attributes())
    if (k != key) out.put_attribute(k, v);
  return out;
}

/// A copy of `d` with attribute `key` set to `value` (added if absent).
inline StateDict with_attribute(const StateDict& d, const std::string& key, const std::string& value) {
  StateDict out = without(d, key);
  out.put_attribute(key, value);
  return out;
}

/// A copy of `d` with tensor `key` replaced by (or added as) `t`.
inline StateDict with_tensor(const StateDict& d, const std::string& key, Tensor t) {
  StateDict out = without(d, key);
  out.put_tensor(key, std::move(t));
  return out;
}

/// A copy of `d` with element i of tensor `key` (element type T) set to `value`.
template <class T>
StateDict with_element(const StateDict& d, const std::string& key, std::size_t i, T value) {
  Tensor t = *d.find_tensor(key);
  std::memcpy(t.bytes.data() + i * sizeof(T), &value, sizeof(T));  // little-endian hosts only
  return with_tensor(d, key, std::move(t));
}

/// Whether two dicts hold the same names, attributes, and tensors with the same dtype, shape and bytes.
inline bool same_state(const StateDict& a, const StateDict& b) {
  if (a.attributes() != b.attributes() || a.tensors().size() != b.tensors().size()) return false;
  for (const auto& [k, t] : a.tensors()) {
    const Tensor* u = b.find_tensor(k);
    if (u == nullptr || u->dtype != t.dtype || u->shape != t.shape || u->bytes != t.bytes) return false;
  }
  return true;
}

/// The state of one part, saved under its default scope.
template <class P>
StateDict state_of(const P& part) {
  StateDict d;
  save_state_parts(d, part);
  return d;
}

}  // namespace flowmatch::test
