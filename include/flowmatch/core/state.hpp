#pragma once
/// \file
/// State as named tensors: the one protocol by which every stateful part of flowmatch (models,
/// optimizers, learning-rate schedules, the EMA, trainers, wrappers' settings) lists and restores
/// its state. io/checkpoint.hpp writes a StateDict to a file and reads it back; it knows no model
/// or optimizer type. A new part that implements the protocol is saved with no change to io/.
///
/// The protocol (concept `Stateful`), for a part `p`:
///   void save_state(StateWriter& w) const;   // w.vector("m", m_); w.integer("steps", steps_); ...
///   void load_state(const StateReader& r);   // reads what save_state wrote, checks every value
/// - Names are relative: the writer and reader carry the part's scope ("optimizer."), so a part
///   never spells its own prefix, and a part that holds another saves it with `w.scope("inner")`.
/// - Tensors hold arrays (F32/F64 parameters, I64/U64 counters and generator states), C order
///   (row-major), little-endian: what numpy and PyTorch read. Attributes hold a few scalars and
///   strings (a type tag, hyper-parameters, architecture); doubles are written in the shortest form
///   that reads back to the same bits.
/// - load_state should check what it reads before it changes the part (types, shapes, domains);
///   whatever it does, `load_state_parts` below restores every part it was given if any of them
///   throws, so a failed load never leaves a mixture of old and new state behind.
/// - A part may instead list sub-parts (a trainer: its model, its optimizer, its own counters):
///   `state_parts()` returns a std::tuple of `NamedPart`s, each saved under its own scope.
/// - `static constexpr std::string_view state_scope = "model";` gives a part a default scope, used
///   when it is passed to save_checkpoint/load_checkpoint without a name.

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/state_dict.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {


/// Writes a part's state into a StateDict under the part's scope.
class StateWriter {
 public:
  explicit StateWriter(StateDict& dict, std::string prefix = "") : dict_(&dict), prefix_(std::move(prefix)) {}

  /// A writer for a sub-part: names get `name + "."` appended to this writer's prefix.
  StateWriter scope(std::string_view name) const { return StateWriter(*dict_, prefix_ + std::string(name) + "."); }
  const std::string& prefix() const { return prefix_; }

  /// A tensor of the given shape from `count` contiguous elements in C order.
  template <class T>
  void tensor(std::string_view name, const T* data, std::vector<std::int64_t> shape) {
    Tensor t;
    t.dtype = dtype_of<T>();
    t.shape = std::move(shape);
    const auto n = static_cast<std::size_t>(t.numel());
    t.bytes.reserve(n * sizeof(T));
    for (std::size_t i = 0; i < n; ++i) detail::append_le(t.bytes, data[i]);
    dict_->put_tensor(full(name), std::move(t));
  }
  /// A 1-D tensor of shape [size] (any Eigen vector or flat expression).
  template <class D>
  void vector(std::string_view name, const Eigen::DenseBase<D>& v) {
    using T = typename D::Scalar;
    const Eigen::Matrix<T, Eigen::Dynamic, 1> flat = v.derived().reshaped();
    tensor(name, flat.data(), {static_cast<std::int64_t>(flat.size())});
  }
  /// A 2-D tensor of shape [rows, cols], element (i, j) at i * cols + j (C order), whatever the
  /// storage order of `m`.
  template <class D>
  void matrix(std::string_view name, const Eigen::DenseBase<D>& m) {
    using T = typename D::Scalar;
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rm = m;
    tensor(name, rm.data(), {static_cast<std::int64_t>(rm.rows()), static_cast<std::int64_t>(rm.cols())});
  }

  void text(std::string_view name, std::string value) { dict_->put_attribute(full(name), std::move(value)); }
  void real(std::string_view name, double value) { text(name, detail::format_real(value)); }
  void integer(std::string_view name, long long value) { text(name, std::to_string(value)); }
  void flag(std::string_view name, bool value) { text(name, value ? "true" : "false"); }
  /// A list of integers, written as "[3,1024,16,2]" (JSON: json.loads reads it).
  void integers(std::string_view name, const std::vector<long long>& values) {
    std::string s = "[";
    for (std::size_t i = 0; i < values.size(); ++i) s.append(i ? "," : "").append(std::to_string(values[i]));
    text(name, s + "]");
  }

 private:
  std::string full(std::string_view name) const { return prefix_ + std::string(name); }
  StateDict* dict_;
  std::string prefix_;
};

/// Reads a part's state from a StateDict under the part's scope. Every failure throws
/// CheckpointMismatchError naming the source (a file name), the full key and what was expected.
/// Remembers which keys were read, so that a loader can refuse left-over keys.
class StateReader {
 public:
  StateReader(const StateDict& dict, std::string source = "", std::string prefix = "")
      : dict_(&dict), used_(std::make_shared<std::set<std::string>>()), source_(std::move(source)),
        prefix_(std::move(prefix)) {}

  StateReader scope(std::string_view name) const {
    StateReader r(*this);
    r.prefix_ = prefix_ + std::string(name) + ".";
    return r;
  }
  const std::string& prefix() const { return prefix_; }
  const std::string& source() const { return source_; }
  const StateDict& dict() const { return *dict_; }

  bool has_tensor(std::string_view name) const { return dict_->find_tensor(full(name)) != nullptr; }
  bool has_attribute(std::string_view name) const { return dict_->find_attribute(full(name)) != nullptr; }

  /// Throws CheckpointMismatchError "flowmatch::load_checkpoint: '<source>': <what>".
  [[noreturn]] void fail(const std::string& what) const {
    throw CheckpointMismatchError("flowmatch::load_checkpoint: '" + source_ + "': " + what);
  }

  // ---------------------------------------------------------------- attributes
  const std::string& text(std::string_view name) const {
    const std::string key = full(name);
    const std::string* v = dict_->find_attribute(key);
    if (v == nullptr) fail("has no attribute '" + key + "'");
    used_->insert(key);
    return *v;
  }
  double real(std::string_view name) const {
    const std::string& s = text(name);
    double v = 0.0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
      fail("attribute '" + full(name) + "' = '" + s + "' is not a number");
    return v;
  }
  long long integer(std::string_view name) const {
    const std::string& s = text(name);
    long long v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
      fail("attribute '" + full(name) + "' = '" + s + "' is not an integer");
    return v;
  }
  bool flag(std::string_view name) const {
    const std::string& s = text(name);
    if (s != "true" && s != "false") fail("attribute '" + full(name) + "' = '" + s + "' is neither true nor false");
    return s == "true";
  }
  std::vector<long long> integers(std::string_view name) const {
    const std::string& s = text(name);
    std::vector<long long> out;
    const auto bad = [&] { fail("attribute '" + full(name) + "' = '" + s + "' is not a list of integers"); };
    if (s.size() < 2 || s.front() != '[' || s.back() != ']') bad();
    const char* p = s.data() + 1;
    const char* end = s.data() + s.size() - 1;
    while (p < end) {
      long long v = 0;
      const auto r = std::from_chars(p, end, v);
      if (r.ec != std::errc()) bad();
      out.push_back(v);
      p = r.ptr;
      if (p < end && *p++ != ',') bad();
      if (p == end && *(p - 1) == ',') bad();
    }
    return out;
  }
  /// Reads attribute `name` and throws CheckpointMismatchError unless it equals `expected`;
  /// `what` describes it in the message ("optimizer type").
  void expect_text(std::string_view name, std::string_view expected, std::string_view what) const {
    const std::string& s = text(name);
    if (s != expected)
      fail("holds " + std::string(what) + " '" + s + "' at '" + full(name) + "', the part passed has '" +
           std::string(expected) + "'");
  }
  void expect_real(std::string_view name, double expected, std::string_view what) const {
    const double v = real(name);
    if (!(v == expected))
      fail("holds " + std::string(what) + " = " + detail::format_real(v) + " at '" + full(name) +
           "', the part passed has " + detail::format_real(expected));
  }

  /// The real attribute `name`, refused unless finite and > 0 (a learning rate); `what` names it.
  double positive_real(std::string_view name, std::string_view what) const {
    const double v = real(name);
    if (!(v > 0.0 && std::isfinite(v))) fail("holds " + std::string(what) + " " + detail::format_real(v) + ", not finite and > 0");
    return v;
  }
  /// The integer attribute `name`, refused when negative (a step count); `what` names it.
  long long count(std::string_view name, std::string_view what) const {
    const long long v = integer(name);
    if (v < 0) fail("holds a negative " + std::string(what) + " " + std::to_string(v) + " at '" + full(name) + "'");
    return v;
  }

  // ---------------------------------------------------------------- tensors
  /// The tensor `name`, checked to have element type T and the given shape.
  template <class T>
  const Tensor& tensor(std::string_view name, const std::vector<std::int64_t>& shape) const {
    const std::string key = full(name);
    const Tensor* t = dict_->find_tensor(key);
    if (t == nullptr) fail("has no tensor '" + key + "'");
    if (t->dtype != dtype_of<T>())
      fail("tensor '" + key + "' holds " + std::string(dtype_name(t->dtype)) + " elements, the part passed has " +
           std::string(dtype_name(dtype_of<T>())));
    if (t->shape != shape)
      fail("tensor '" + key + "' has shape " + shape_string(t->shape) + ", the part passed needs " +
           shape_string(shape));
    used_->insert(key);
    return *t;
  }
  /// The shape of tensor `name` (for a part whose size comes from the file); throws if absent.
  std::vector<std::int64_t> shape(std::string_view name) const {
    const std::string key = full(name);
    const Tensor* t = dict_->find_tensor(key);
    if (t == nullptr) fail("has no tensor '" + key + "'");
    return t->shape;
  }
  /// Copies the elements of tensor `name` (type T, the given shape) into `out`, C order.
  template <class T>
  void read(std::string_view name, const std::vector<std::int64_t>& shape, T* out) const {
    const Tensor& t = tensor<T>(name, shape);
    const auto n = static_cast<std::size_t>(t.numel());
    if constexpr (std::endian::native == std::endian::little) {
      if (n > 0) std::memcpy(out, t.bytes.data(), n * sizeof(T));
    } else {
      for (std::size_t i = 0; i < n; ++i) out[i] = detail::read_le<T>(t.bytes.data() + i * sizeof(T));
    }
  }
  /// A new vector from the 1-D tensor `name` of `size` elements.
  template <class T>
  Eigen::Matrix<T, Eigen::Dynamic, 1> vector(std::string_view name, Index size) const {
    Eigen::Matrix<T, Eigen::Dynamic, 1> v(size);
    read(name, {static_cast<std::int64_t>(size)}, v.data());
    return v;
  }
  /// A new vector from the 1-D tensor `name` (type T) of `size` elements, or of the length the file
  /// holds when size < 0 (a part whose size comes from the file), refused unless every element is
  /// finite; `what` names it in the message.
  template <class T>
  Eigen::Matrix<T, Eigen::Dynamic, 1> finite_vector(std::string_view name, std::string_view what, Index size = -1) const {
    if (size < 0) {
      const std::vector<std::int64_t> s = shape(name);
      if (s.size() != 1 || s[0] < 0)
        fail("tensor '" + full(name) + "' has shape " + shape_string(s) + ", " + std::string(what) + " must be 1-D");
      size = static_cast<Index>(s[0]);
    }
    Eigen::Matrix<T, Eigen::Dynamic, 1> v = vector<T>(name, size);
    if (!v.allFinite()) fail("tensor '" + full(name) + "' holds a NaN or an infinity");
    return v;
  }
  /// A new rows x cols matrix from the 2-D tensor `name` (C order).
  template <class T>
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> matrix(std::string_view name, Index rows, Index cols) const {
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> m(rows, cols);
    read(name, {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)}, m.data());
    return m;
  }

  /// Throws CheckpointMismatchError if a tensor or attribute under this reader's prefix was not
  /// read (a file with more state than the parts passed: another optimizer, a wider model, ...).
  void require_all_read() const {
    for (const auto& [key, t] : dict_->tensors())
      if (key.starts_with(prefix_) && !used_->contains(key))
        fail("holds tensor '" + key + "' that the part passed does not have");
    for (const auto& [key, v] : dict_->attributes())
      if (key.starts_with(prefix_) && !used_->contains(key))
        fail("holds attribute '" + key + "' = '" + v + "' that the part passed does not have");
  }

 private:
  std::string full(std::string_view name) const { return prefix_ + std::string(name); }
  const StateDict* dict_;
  std::shared_ptr<std::set<std::string>> used_;  // shared by a reader and its scopes
  std::string source_;
  std::string prefix_;
};

/// A part that saves and restores its own state (see the file comment).
template <class T>
concept Stateful = requires(const T& ct, T& t, StateWriter& w, const StateReader& r) {
  ct.save_state(w);
  t.load_state(r);
};

/// A part passed with the scope it is saved under.
template <class T>
struct NamedPart {
  std::string name;
  T* part;
};
/// `state_part("ema", ema)`: saves and loads `part` under "ema.".
template <class T>
NamedPart<T> state_part(std::string name, T& part) {
  return {std::move(name), &part};
}

/// A part made of sub-parts (a trainer): `state_parts()` returns a tuple of NamedParts.
template <class T>
concept CompositeStateful = requires(T& t) { t.state_parts(); };

namespace detail {

template <class T>
struct is_named_part : std::false_type {};
template <class T>
struct is_named_part<NamedPart<T>> : std::true_type {};

/// Calls f(name, part) for every leaf part, expanding names, defaults and composites in order.
template <class F, class P>
void for_each_leaf(F&& f, P&& p) {
  using Q = std::remove_cvref_t<P>;
  if constexpr (is_named_part<Q>::value) {
    using T = std::remove_reference_t<decltype(*p.part)>;
    if constexpr (CompositeStateful<std::remove_const_t<T>>) {
      std::apply([&](auto&&... sub) { (for_each_leaf(f, NamedPart<std::remove_reference_t<decltype(*sub.part)>>{
                                                          p.name + "." + sub.name, sub.part}),
                                       ...); },
                 const_cast<std::remove_const_t<T>&>(*p.part).state_parts());
    } else {
      static_assert(Stateful<std::remove_const_t<T>>,
                    "flowmatch: this part has no state protocol: give it save_state(StateWriter&) const and "
                    "load_state(const StateReader&) (see flowmatch/core/state.hpp)");
      f(p.name, *p.part);
    }
  } else if constexpr (CompositeStateful<std::remove_const_t<Q>>) {
    std::apply([&](auto&&... sub) { (for_each_leaf(f, sub), ...); }, const_cast<std::remove_const_t<Q>&>(p).state_parts());
  } else {
    static_assert(requires { Q::state_scope; },
                  "flowmatch: pass this part with a name, as state_part(\"name\", part): its type declares no "
                  "default state_scope");
    for_each_leaf(f, NamedPart<std::remove_reference_t<P>>{std::string(Q::state_scope), &p});
  }
}

}  // namespace detail

/// Saves every part into `dict`, each under its scope.
template <class... Parts>
void save_state_parts(StateDict& dict, const Parts&... parts) {
  (detail::for_each_leaf([&](const std::string& name, const auto& part) {
     StateWriter w(dict, name + ".");
     part.save_state(w);
   }, parts),
   ...);
}

/// Loads every part from `dict` (`source` names it in messages). Each part must find all of its
/// state and nothing else under its scope. If any part throws, every part is put back as it was
/// (from a copy of their state taken first) and the exception is rethrown.
template <class... Parts>
void load_state_parts(const StateDict& dict, const std::string& source, Parts&&... parts) {
  StateDict backup;
  (detail::for_each_leaf([&](const std::string& name, const auto& part) {
     StateWriter w(backup, name + ".");
     part.save_state(w);
   }, parts),
   ...);
  // A list, not a vector: GCC 12 reports a false -Warray-bounds in vector growth here when
  // load_state_parts is inlined deep into a caller (a collective load of a data-parallel trainer).
  std::list<std::pair<std::string, std::function<void(const StateReader&)>>> loaded;
  try {
    (detail::for_each_leaf([&](const std::string& name, auto& part) {
       loaded.emplace_back(name, [&part](const StateReader& r) { part.load_state(r); });
       StateReader r(dict, source, name + ".");
       part.load_state(r);
       r.require_all_read();
     }, parts),
     ...);
  } catch (...) {
    for (auto it = loaded.rbegin(); it != loaded.rend(); ++it) it->second(StateReader(backup, "(backup)", it->first + "."));
    throw;
  }
}

}  // namespace flowmatch
