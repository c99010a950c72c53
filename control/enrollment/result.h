#pragma once
// The outcome of an enrollment operation: a value, or an error whose message
// is shown to the operator as it is ("device name \"x\" is taken"). The
// control plane reports these; it never has to guess what went wrong.

#include <string>
#include <utility>
#include <variant>

namespace lopower::enrollment {

struct enrollment_error {
  std::string message;
};

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  result(enrollment_error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }

  const enrollment_error& error() const { return std::get<1>(v_); }
  const std::string& message() const { return std::get<1>(v_).message; }

 private:
  std::variant<T, enrollment_error> v_;
};

// Success carries nothing.
template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(enrollment_error e) : failed_(true), error_(std::move(e)) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const enrollment_error& error() const { return error_; }
  const std::string& message() const { return error_.message; }

 private:
  bool failed_ = false;
  enrollment_error error_;
};

inline enrollment_error fail(std::string message) { return enrollment_error{std::move(message)}; }

}  // namespace lopower::enrollment
