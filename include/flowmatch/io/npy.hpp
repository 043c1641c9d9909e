#pragma once
/// \file
/// Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) of 1-D or 2-D arrays
/// of float32 or float64, little or big endian, C or Fortran order: the exchange format of data
/// sets and samples with Python (`np.save` / `np.load`). A small reader of our own: the format is
/// a magic string, a version, a header length and a Python-literal dict
/// (`{'descr': '<f8', 'fortran_order': False, 'shape': (n, d), }`), then the raw values.
///
/// A 2-D array of shape (n, d) is n samples of dimension d: read_npy returns the d x n matrix with
/// one sample per column (as read_csv does); a 1-D array of shape (n,) is n samples of dimension 1.
/// write_npy writes a d x n matrix as a C-order little-endian array of shape (n, d).
///
/// Everything else (other dtypes, 0-D or 3-D+ arrays, object arrays, truncated or malformed files,
/// trailing bytes, non-finite values when asked) throws NpyError naming the file and the field.

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/io/detail/file_info.hpp"

namespace flowmatch {

/// A `.npy` file that cannot be read or holds something read_npy does not take. what() reads
/// "<file>: <field>: <problem>".
class NpyError : public Error {
 public:
  NpyError(const std::string& file, const std::string& field, const std::string& problem)
      : Error(file + ": " + field + ": " + problem) {}
};

/// Settings of read_npy.
struct NpyReadOptions {
  /// Refuse NaN and infinite values (NpyError naming the first one's position).
  bool require_finite = true;
};

namespace detail {

inline constexpr unsigned char kNpyMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

// A cursor over the header's Python-literal dict.
struct NpyHeaderParser {
  std::string_view s;
  std::size_t pos = 0;
  const std::string& file;

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw NpyError(file, field, problem);
  }
  void skip_blanks() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) ++pos;
  }
  bool eat(char c) {
    skip_blanks();
    if (pos < s.size() && s[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }
  void expect(char c, const std::string& field) {
    if (!eat(c)) fail(field, std::string("expected '") + c + "' at byte " + std::to_string(pos) + " of the header");
  }
  std::string string_literal(const std::string& field) {
    skip_blanks();
    if (pos >= s.size() || (s[pos] != '\'' && s[pos] != '"')) fail(field, "expected a quoted string");
    const char q = s[pos++];
    const std::size_t start = pos;
    while (pos < s.size() && s[pos] != q) {
      if (s[pos] == '\\') fail(field, "escapes in strings are not supported");
      ++pos;
    }
    if (pos >= s.size()) fail(field, "unterminated string");
    std::string out(s.substr(start, pos - start));
    ++pos;
    return out;
  }
  bool boolean(const std::string& field) {
    skip_blanks();
    if (s.substr(pos, 4) == "True") {
      pos += 4;
      return true;
    }
    if (s.substr(pos, 5) == "False") {
      pos += 5;
      return false;
    }
    fail(field, "expected True or False");
  }
  std::vector<std::uint64_t> shape(const std::string& field) {
    expect('(', field);
    std::vector<std::uint64_t> dims;
    for (;;) {
      if (eat(')')) break;
      skip_blanks();
      if (pos >= s.size() || s[pos] < '0' || s[pos] > '9') fail(field, "expected a non-negative integer in the shape");
      std::uint64_t v = 0;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        const auto digit = static_cast<std::uint64_t>(s[pos] - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) fail(field, "dimension too large");
        v = v * 10 + digit;
        ++pos;
      }
      if (s.substr(pos, 1) == "L") ++pos;  // Python 2 longs
      dims.push_back(v);
      if (dims.size() > 32) fail(field, "too many dimensions");
      if (eat(')')) break;
      expect(',', field);
    }
    return dims;
  }
};

struct NpyHeader {
  char byte_order = '<';  // '<' little, '>' big
  int item_size = 8;      // 4 or 8
  bool fortran = false;
  std::vector<std::uint64_t> shape;
};

inline NpyHeader parse_npy_header(std::string_view text, const std::string& file) {
  NpyHeaderParser p{text, 0, file};
  NpyHeader h;
  bool have_descr = false, have_order = false, have_shape = false;
  p.expect('{', "header");
  for (;;) {
    if (p.eat('}')) break;
    const std::string key = p.string_literal("header");
    p.expect(':', "header");
    if (key == "descr") {
      const std::string d = p.string_literal("descr");
      if (d.size() != 3 || (d[0] != '<' && d[0] != '>' && d[0] != '=' && d[0] != '|') || d[1] != 'f' ||
          (d[2] != '4' && d[2] != '8'))
        p.fail("descr", "dtype '" + d + "' is not supported (only float32 '<f4'/'>f4' and float64 '<f8'/'>f8')");
      h.byte_order = d[0] == '>' ? '>' : (d[0] == '<' ? '<' : (std::endian::native == std::endian::little ? '<' : '>'));
      h.item_size = d[2] - '0';
      have_descr = true;
    } else if (key == "fortran_order") {
      h.fortran = p.boolean("fortran_order");
      have_order = true;
    } else if (key == "shape") {
      h.shape = p.shape("shape");
      have_shape = true;
    } else {
      p.fail("header", "unknown key '" + key + "'");
    }
    if (p.eat('}')) break;
    p.expect(',', "header");
  }
  p.skip_blanks();
  if (p.pos != text.size()) p.fail("header", "unexpected text after the dict");
  if (!have_descr) p.fail("descr", "missing from the header");
  if (!have_order) p.fail("fortran_order", "missing from the header");
  if (!have_shape) p.fail("shape", "missing from the header");
  if (h.shape.empty() || h.shape.size() > 2)
    p.fail("shape", "a " + std::to_string(h.shape.size()) + "-D array; only 1-D (n,) and 2-D (n, d) arrays are supported");
  return h;
}

template <class T>
T npy_load_value(const unsigned char* p, bool swap) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  U u;
  std::memcpy(&u, p, sizeof u);
  if (swap) {
    U r = 0;
    for (std::size_t k = 0; k < sizeof u; ++k) r = static_cast<U>((r << 8) | ((u >> (8 * k)) & 0xFF));
    u = r;
  }
  return std::bit_cast<T>(u);
}

}  // namespace detail

/// Decodes `.npy` bytes into a d x n matrix (one sample, i.e. one row of the array, per column);
/// `name` labels messages. Throws NpyError naming the field for anything unsupported or malformed.
template <Real S = double>
Matrix<S> decode_npy(const unsigned char* data, std::size_t size, const std::string& name,
                     const NpyReadOptions& options = {}) {
  if (size < 10 || std::memcmp(data, detail::kNpyMagic, 6) != 0)
    throw NpyError(name, "magic", "not a .npy file (it does not start with \\x93NUMPY)");
  const int major = data[6], minor = data[7];
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<std::size_t>(data[8]) | (static_cast<std::size_t>(data[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw NpyError(name, "header length", "the file ends inside the preamble");
    header_len = static_cast<std::size_t>(data[8]) | (static_cast<std::size_t>(data[9]) << 8) |
                 (static_cast<std::size_t>(data[10]) << 16) | (static_cast<std::size_t>(data[11]) << 24);
    offset = 12;
  } else {
    throw NpyError(name, "version",
                   "format version " + std::to_string(major) + "." + std::to_string(minor) + " is not supported (1.0, 2.0, 3.0)");
  }
  if (minor != 0)
    throw NpyError(name, "version", "format version " + std::to_string(major) + "." + std::to_string(minor) + " is not supported");
  if (header_len > size - offset)
    throw NpyError(name, "header length", "the header (" + std::to_string(header_len) + " bytes) runs past the end of the file");
  std::string_view text(reinterpret_cast<const char*>(data + offset), header_len);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\0')) text.remove_suffix(1);
  const detail::NpyHeader h = detail::parse_npy_header(text, name);
  const std::uint64_t rows = h.shape[0], cols = h.shape.size() == 2 ? h.shape[1] : 1;
  constexpr std::uint64_t kMax = std::uint64_t{1} << 40;
  if (rows > kMax || cols > kMax || (cols != 0 && rows > kMax / cols))
    throw NpyError(name, "shape", "the array is too large");
  const std::uint64_t count = rows * cols;
  const std::size_t body = size - offset - header_len;
  if (count * static_cast<std::uint64_t>(h.item_size) != body)
    throw NpyError(name, "data", "the shape and dtype need " + std::to_string(count * static_cast<std::uint64_t>(h.item_size)) +
                                     " bytes of data, the file holds " + std::to_string(body));
  if (rows == 0 || cols == 0) throw NpyError(name, "shape", "the array is empty");
  const unsigned char* p = data + offset + header_len;
  const bool swap = (h.byte_order == '>') != (std::endian::native == std::endian::big);
  Matrix<S> out(static_cast<Index>(cols), static_cast<Index>(rows));
  for (std::uint64_t i = 0; i < rows; ++i)
    for (std::uint64_t j = 0; j < cols; ++j) {
      // Element (i, j) of the (rows, cols) array: C order i * cols + j, Fortran order j * rows + i.
      const std::uint64_t k = h.fortran ? j * rows + i : i * cols + j;
      const unsigned char* q = p + k * static_cast<std::uint64_t>(h.item_size);
      const double v = h.item_size == 4 ? static_cast<double>(detail::npy_load_value<float>(q, swap))
                                        : detail::npy_load_value<double>(q, swap);
      const S value = static_cast<S>(v);
      if (options.require_finite && !std::isfinite(value))
        throw NpyError(name, "data",
                       std::string(std::isfinite(v) ? "value out of the range of float" : "non-finite value") +
                           " at row " + std::to_string(i) + ", column " + std::to_string(j));
      out(static_cast<Index>(j), static_cast<Index>(i)) = value;
    }
  return out;
}

/// Reads a `.npy` file (see decode_npy) into a d x n matrix, one sample per column.
template <Real S = double>
Matrix<S> read_npy(const std::string& file, const NpyReadOptions& options = {}) {
  const std::string& name = file;
  if (detail::file_info(file).is_directory) throw NpyError(name, "file", "is a folder");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw NpyError(name, "file", std::string("cannot open for reading: ") + std::strerror(errno));
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw NpyError(name, "file", "read error");
  return decode_npy<S>(bytes.data(), bytes.size(), name, options);
}

/// The `.npy` bytes (version 1.0, C order, little-endian '<f4' for float or '<f8' for double) of
/// the (n, d) array whose rows are the columns of the d x n matrix `x`; `one_d`: shape (n,)
/// (d must be 1).
template <class D>
std::vector<unsigned char> encode_npy(const Eigen::MatrixBase<D>& x, bool one_d = false) {
  using S = typename D::Scalar;
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "flowmatch::encode_npy: float or double");
  if (one_d && x.rows() != 1) detail::throw_invalid("flowmatch::encode_npy", "one_d", "true", "needs a 1 x n matrix");
  const std::string shape = one_d ? "(" + std::to_string(x.cols()) + ",)"
                                  : "(" + std::to_string(x.cols()) + ", " + std::to_string(x.rows()) + ")";
  std::string header = std::string("{'descr': '<f") + (sizeof(S) == 4 ? "4" : "8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so that the data start on a multiple of 64 bytes, ending in '\n'.
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  if (header.size() > 65535) detail::throw_invalid("flowmatch::encode_npy", "x", "(shape)", "header too long");
  std::vector<unsigned char> out(detail::kNpyMagic, detail::kNpyMagic + 6);
  out.push_back(1);
  out.push_back(0);
  out.push_back(static_cast<unsigned char>(header.size() & 0xFF));
  out.push_back(static_cast<unsigned char>(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  const std::size_t start = out.size();
  out.resize(start + static_cast<std::size_t>(x.size()) * sizeof(S));
  unsigned char* p = out.data() + start;
  for (Index i = 0; i < x.cols(); ++i)
    for (Index j = 0; j < x.rows(); ++j) {
      S v = x(j, i);
      if constexpr (std::endian::native == std::endian::big) {
        using U = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
        v = detail::npy_load_value<S>(reinterpret_cast<const unsigned char*>(&v), true);
        (void)sizeof(U);
      }
      std::memcpy(p, &v, sizeof(S));
      p += sizeof(S);
    }
  return out;
}

/// Writes the d x n matrix `x` to `file` as a `.npy` array of shape (n, d) (see encode_npy).
/// Throws Error naming the file if it cannot be written.
template <class D>
void write_npy(const std::string& file, const Eigen::MatrixBase<D>& x, bool one_d = false) {
  const std::vector<unsigned char> bytes = encode_npy(x, one_d);
  std::ofstream os(file, std::ios::binary | std::ios::trunc);
  if (!os) throw Error(file + ": cannot open for writing: " + std::strerror(errno));
  os.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  os.close();
  if (!os) throw Error(file + ": error while writing");
}

}  // namespace flowmatch
