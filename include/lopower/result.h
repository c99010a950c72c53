#pragma once
// The outcome of an operation on untrusted or operator input: a value, or an
// error whose message says what was wrong, for the operator or the log.
// Parsers of network input and the enrollment commands answer with these
// instead of throwing.

#include <string>
#include <utility>
#include <variant>

namespace lopower {

struct failure {
  std::string message;
};

inline failure fail(std::string message) { return failure{std::move(message)}; }

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  result(failure e) : v_(std::in_place_index<1>, std::move(e)) {}      // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }

  const failure& error() const { return std::get<1>(v_); }
  const std::string& message() const { return std::get<1>(v_).message; }

 private:
  std::variant<T, failure> v_;
};

// Success carries nothing.
template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(failure e) : failed_(true), error_(std::move(e)) {}  // NOLINT

  bool ok() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return ok(); }
  const failure& error() const { return error_; }
  const std::string& message() const { return error_.message; }

 private:
  bool failed_ = false;
  failure error_;
};

}  // namespace lopower
