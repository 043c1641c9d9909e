#pragma once
// The examples' data files (docs/outputs.md): CSV with a header line naming the columns, then one
// row per line. Numbers are written in full: the shortest text that reads back as the same float
// or double (std::to_chars; a non-finite value as nan or inf). Text cells are quoted when they
// hold a comma, a quote or a line break (RFC 4180); an empty cell is a missing value. The file is
// written atomically (a temporary file renamed over it), so a reader never sees half of one.
//
//   fm::examples::Csv s({"dataset", "x", "y"});
//   s.samples(x, {"moons"});            // one row per column of x: moons,<x(0, j)>,<x(1, j)>
//   s.row("circles", 0.5, 1.25);        // one row of cells
//   s.save(out_dir / "samples.csv");

#include <Eigen/Core>

#include <charconv>
#include <concepts>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <flowmatch/io/atomic_file.hpp>

namespace flowmatch::examples {

/// Column names `first`, then `rest`.
inline std::vector<std::string> columns(std::vector<std::string> first, const std::vector<std::string>& rest) {
  first.insert(first.end(), rest.begin(), rest.end());
  return first;
}

/// A number as the CSV files write it: the shortest text that reads back as the same value.
template <std::floating_point F>
std::string csv_number(F v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc{}) throw std::logic_error("csv_number: cannot format a number");
  return std::string(buf, end);
}

/// A CSV file built in memory, then saved atomically.
class Csv {
 public:
  explicit Csv(const std::vector<std::string>& columns) : columns_(columns.size()) {
    if (columns.empty()) throw std::logic_error("Csv: no columns");
    for (std::size_t k = 0; k < columns.size(); ++k) {
      if (k > 0) text_ += ',';
      text(columns[k]);
    }
    text_ += '\n';
  }

  /// One row: a cell per column, each text (std::string, const char*), an integer or a real.
  template <class... Cells>
  Csv& row(const Cells&... cells) {
    if (sizeof...(cells) != columns_) throw std::logic_error("Csv::row: the number of cells is not the number of columns");
    std::size_t k = 0;
    (put(k++, cells), ...);
    text_ += '\n';
    ++rows_;
    return *this;
  }

  /// One row: the `leading` text cells, then the `numbers`.
  Csv& row_values(const std::vector<std::string>& leading, const std::vector<double>& numbers) {
    check_width(leading.size() + numbers.size());
    lead(leading);
    for (std::size_t k = 0; k < numbers.size(); ++k) put(leading.size() + k, numbers[k]);
    text_ += '\n';
    ++rows_;
    return *this;
  }

  /// One row per column of `x` (one sample per column): the `leading` text cells, then x's
  /// coordinates.
  template <class Derived>
  Csv& samples(const Eigen::MatrixBase<Derived>& x, const std::vector<std::string>& leading = {}) {
    check_width(leading.size() + static_cast<std::size_t>(x.rows()));
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      lead(leading);
      coordinates(x, j, !leading.empty());
    }
    return *this;
  }

  /// One row per column of `x`: the `leading` text cells, the column's label, then x's coordinates.
  template <class Derived, class Labels>
  Csv& labelled_samples(const Eigen::MatrixBase<Derived>& x, const Eigen::DenseBase<Labels>& labels,
                        const std::vector<std::string>& leading = {}) {
    check_width(leading.size() + 1 + static_cast<std::size_t>(x.rows()));
    if (labels.size() != x.cols())
      throw std::logic_error("Csv::labelled_samples: one label per sample needed");
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      lead(leading);
      if (!leading.empty()) text_ += ',';
      cell(static_cast<long long>(labels(j)));
      coordinates(x, j, true);
    }
    return *this;
  }

  std::size_t rows() const { return rows_; }
  const std::string& str() const { return text_; }

  /// Writes the file atomically (its folder must exist); throws flowmatch::CheckpointIOError.
  void save(const std::filesystem::path& file) const {
    const std::vector<unsigned char> bytes(text_.begin(), text_.end());
    detail::write_file_atomically(file, bytes, "writing a CSV file");
  }

 private:
  void check_width(std::size_t n) const {
    if (n != columns_) throw std::logic_error("Csv: a row's width is not the number of columns");
  }
  void lead(const std::vector<std::string>& leading) {
    for (std::size_t k = 0; k < leading.size(); ++k) {
      if (k > 0) text_ += ',';
      text(leading[k]);
    }
  }
  template <class Derived>
  void coordinates(const Eigen::MatrixBase<Derived>& x, Eigen::Index j, bool comma_first) {
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      if (i > 0 || comma_first) text_ += ',';
      cell(x(i, j));
    }
    text_ += '\n';
    ++rows_;
  }
  void text(std::string_view s) {
    if (s.find_first_of(",\"\n\r") == std::string_view::npos) {
      text_ += s;
      return;
    }
    text_ += '"';
    for (char c : s) {
      if (c == '"') text_ += '"';
      text_ += c;
    }
    text_ += '"';
  }
  template <class Cell>
  void put(std::size_t k, const Cell& c) {
    if (k > 0) text_ += ',';
    cell(c);
  }
  void cell(std::string_view s) { text(s); }
  void cell(const std::string& s) { text(s); }
  void cell(const char* s) { text(s); }
  template <std::integral I>
  void cell(I v) {
    text_ += std::to_string(static_cast<long long>(v));
  }
  template <std::floating_point F>
  void cell(F v) {
    text_ += csv_number(v);
  }

  std::size_t columns_;
  std::size_t rows_ = 0;
  std::string text_;
};

}  // namespace flowmatch::examples
