#pragma once
// The outcome of a ts2021 step: a value, or an error whose message says what
// the peer (or the text) got wrong, for the log. The transport never throws
// on bad input from the network: every parser answers with one of these.

#include <string>
#include <utility>
#include <variant>

namespace lopower::tailnet {

struct control_error {
  std::string message;
};

inline control_error control_fail(std::string message) { return control_error{std::move(message)}; }

template <class T>
class [[nodiscard]] control_result {
 public:
  control_result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  control_result(control_error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }

  const control_error& error() const { return std::get<1>(v_); }
  const std::string& message() const { return std::get<1>(v_).message; }

 private:
  std::variant<T, control_error> v_;
};

// Success carries nothing.
template <>
class [[nodiscard]] control_result<void> {
 public:
  control_result() = default;
  control_result(control_error e) : failed_(true), error_(std::move(e)) {}  // NOLINT

  bool ok() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return ok(); }
  const control_error& error() const { return error_; }
  const std::string& message() const { return error_.message; }

 private:
  bool failed_ = false;
  control_error error_;
};

}  // namespace lopower::tailnet
