#pragma once
/// \file
/// Reading a data set from a CSV file into a matrix with one sample per column (any dimension, an
/// optional header). Every problem is a CsvError naming the file, the line and the column.

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/io/detail/file_info.hpp"

namespace flowmatch {

/// A CSV file that cannot be read or holds something other than a rectangular table of finite
/// numbers. what() reads "<file>:<line>:<column>: <problem>"; line and column are 1-based (0 when
/// the problem is the whole file, such as an empty one or one that cannot be opened).
class CsvError : public Error {
 public:
  CsvError(const std::string& file, long long line, long long column, const std::string& problem)
      : Error(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + problem),
        file_(file),
        line_(line),
        column_(column) {}
  const std::string& file() const { return file_; }
  long long line() const { return line_; }
  long long column() const { return column_; }

 private:
  std::string file_;
  long long line_, column_;
};

/// Whether the first (non-blank, non-comment) line is a header of column names.
enum class CsvHeader {
  Auto,     ///< a header if none of its fields is a number (not even NaN, infinite or out of range)
            ///< and one at least is not empty
  Present,  ///< always a header
  Absent,   ///< always data
};

struct CsvOptions {
  char delimiter = ',';
  CsvHeader header = CsvHeader::Auto;
  /// Lines whose first non-blank character is this one are skipped ('\0': no comments).
  char comment = '#';
};

/// A table read from CSV: the column names (empty without a header) and the data, one sample
/// (row of the file) per column: data(i, j) is field i + 1 of the j-th data row.
template <Real S = double>
struct CsvTable {
  std::vector<std::string> names;
  Matrix<S> data;
};

namespace detail {

inline std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

inline std::string printable_field(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out.append("\\x").push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    }
  }
  if (s.size() > 40) out.append("...");
  return out;
}

/// Calls f(index, field) for each field of a line, trimmed (no quoting: a field is everything
/// between delimiters), without storing them: a line of n fields costs no n-sized allocation.
template <class F>
void for_each_field(std::string_view line, char delimiter, F&& f) {
  std::size_t start = 0;
  for (std::size_t index = 0;; ++index) {
    const std::size_t end = line.find(delimiter, start);
    if (end == std::string_view::npos) {
      f(index, trim_blanks(line.substr(start)));
      return;
    }
    f(index, trim_blanks(line.substr(start, end - start)));
    start = end + 1;
  }
}

/// The number of fields of a line: one more than its delimiters.
inline std::size_t count_fields(std::string_view line, char delimiter) {
  return static_cast<std::size_t>(std::count(line.begin(), line.end(), delimiter)) + 1;
}

enum class FieldStatus { Ok, Empty, NotANumber, OutOfRange, NonFinite };

/// Parses a whole field as a number of type S (a leading '+' is allowed).
template <Real S>
FieldStatus parse_field(std::string_view field, S& out) {
  if (field.empty()) return FieldStatus::Empty;
  std::string_view digits = field;
  if (digits.front() == '+') digits.remove_prefix(1);
  if (digits.empty() || digits.front() == '+' || digits.front() == ' ') return FieldStatus::NotANumber;
  double value = 0.0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec == std::errc::invalid_argument || end != digits.data() + digits.size()) return FieldStatus::NotANumber;
  if (ec == std::errc::result_out_of_range) {
    // Overflow or underflow: strtod tells them apart (HUGE_VAL, or a tiny or zero value, kept).
    const std::string copy(digits);
    value = std::strtod(copy.c_str(), nullptr);
    if (!std::isfinite(value)) return FieldStatus::OutOfRange;
  }
  if (!std::isfinite(value)) return FieldStatus::NonFinite;
  if (std::abs(value) > static_cast<double>(std::numeric_limits<S>::max())) return FieldStatus::OutOfRange;
  out = static_cast<S>(value);
  return FieldStatus::Ok;
}

}  // namespace detail

/// Parses CSV text (see read_csv); `name` stands for the file in error messages.
template <Real S = double>
CsvTable<S> parse_csv_table(std::string_view text, const std::string& name = "<text>", const CsvOptions& options = {}) {
  if (options.delimiter == '\n' || options.delimiter == '\r' || options.delimiter == '\0')
    detail::throw_invalid("flowmatch::parse_csv", "options.delimiter", static_cast<int>(options.delimiter),
                          "must be a visible character such as ',' ';' or a tab");
  CsvTable<S> table;
  // Memory (issue 19: bounded by what the text holds): no per-line list of fields; `values`
  // holds 8 bytes (double) per data field (at least 2 bytes of text), the names one std::string
  // (32 bytes) per header field (at least 1 byte: a delimiter).
  std::vector<S> values;  // row after row: sample j's fields are contiguous (column j of the result)
  long long line_no = 0, rows = 0, first_row_line = 0;
  std::size_t width = 0;
  bool seen_first = false, any_line = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    any_line = true;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string_view content = detail::trim_blanks(line);
    if (content.empty() || (options.comment != '\0' && content.front() == options.comment)) continue;
    const std::size_t num_fields = detail::count_fields(line, options.delimiter);
    if (!seen_first) {
      seen_first = true;
      width = num_fields;
      bool header = options.header == CsvHeader::Present;
      if (options.header == CsvHeader::Auto) {
        // A number, even out of range or NaN, makes the line data; so does a line of empty fields.
        bool number = false, named = false;
        S scratch{};
        detail::for_each_field(line, options.delimiter, [&](std::size_t, std::string_view f) {
          const detail::FieldStatus status = detail::parse_field(f, scratch);
          number = number || (status != detail::FieldStatus::NotANumber && status != detail::FieldStatus::Empty);
          named = named || !f.empty();
        });
        header = named && !number;
      }
      if (header) {
        table.names.reserve(num_fields);
        detail::for_each_field(line, options.delimiter, [&](std::size_t, std::string_view f) {
          if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = f.substr(1, f.size() - 2);
          table.names.emplace_back(f);
        });
        first_row_line = line_no;
        continue;
      }
      first_row_line = line_no;
    }
    if (num_fields != width) {
      const long long column = static_cast<long long>(std::min(num_fields, width)) + 1;
      throw CsvError(name, line_no, column,
                     "ragged row: " + std::to_string(num_fields) + " fields, but line " +
                         std::to_string(first_row_line) + " has " + std::to_string(width));
    }
    detail::for_each_field(line, options.delimiter, [&](std::size_t c, std::string_view field) {
      S value{};
      const detail::FieldStatus status = detail::parse_field(field, value);
      if (status != detail::FieldStatus::Ok) {
        std::string problem;
        switch (status) {
          case detail::FieldStatus::Empty: problem = "empty field"; break;
          case detail::FieldStatus::NotANumber: problem = "'" + detail::printable_field(field) + "' is not a number"; break;
          case detail::FieldStatus::OutOfRange:
            problem = "'" + detail::printable_field(field) + "' is out of the range of " +
                      (std::is_same_v<S, float> ? "float" : "double");
            break;
          default: problem = "'" + detail::printable_field(field) + "': NaN and infinity are not allowed in data"; break;
        }
        if (c < table.names.size() && !table.names[c].empty())
          problem += " (column '" + detail::printable_field(table.names[c]) + "')";
        throw CsvError(name, line_no, static_cast<long long>(c) + 1, problem);
      }
      values.push_back(value);
    });
    ++rows;
  }
  if (rows == 0)
    throw CsvError(name, 0, 0, !any_line ? "the file is empty"
                                         : (seen_first ? "no data rows (only a header)" : "no data rows (only blank or comment lines)"));
  table.data = Eigen::Map<const Matrix<S>>(values.data(), static_cast<Index>(width), static_cast<Index>(rows));
  return table;
}

/// Parses CSV text into a matrix with one sample per column.
template <Real S = double>
Matrix<S> parse_csv(std::string_view text, const std::string& name = "<text>", const CsvOptions& options = {}) {
  return parse_csv_table<S>(text, name, options).data;
}

/// Reads a CSV file of numbers into a table: each line one sample, each field one coordinate (any
/// number of them, the same on every line), fields separated by options.delimiter and trimmed of
/// blanks, an optional first line of column names (options.header), blank lines and comment lines
/// skipped, "\r\n" line ends accepted. No quoting. Throws CsvError naming the file, line and column
/// for a field that is not a number, is empty, out of range, NaN or infinite, for a row of another
/// length than the first, and for a file that is empty or cannot be read.
template <Real S = double>
CsvTable<S> read_csv_table(const std::string& file, const CsvOptions& options = {}) {
  // A std::string path (a std::filesystem::path converts to one): <filesystem> alone cost 0.25 s
  // of compile time in every file that included <flowmatch.hpp>.
  std::ifstream in(file, std::ios::binary);
  if (!in) throw CsvError(file, 0, 0, std::string("cannot open the file: ") + std::strerror(errno));
  // The file's own size (not a number read from it) sizes the text; it is read to its end, so a
  // file that grows meanwhile is read as far as it reached.
  std::string text;
  const detail::FileInfo info = detail::file_info(file);
  if (info.is_directory) throw CsvError(file, 0, 0, "cannot read the file: it is a folder");
  text.reserve(static_cast<std::size_t>(info.size));
  std::array<char, 1 << 16> chunk;
  while (in.read(chunk.data(), chunk.size()) || in.gcount() > 0) text.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
  if (in.bad()) throw CsvError(file, 0, 0, "error while reading the file");
  return parse_csv_table<S>(text, file, options);
}

/// read_csv_table's data alone: a dim x n matrix, one sample per column.
template <Real S = double>
Matrix<S> read_csv(const std::string& file, const CsvOptions& options = {}) {
  return read_csv_table<S>(file, options).data;
}

}  // namespace flowmatch
