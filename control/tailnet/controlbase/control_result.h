#pragma once
// ts2021 steps answer with the project's result type: a value, or an error
// saying what the peer (or the text) got wrong. The transport never throws on
// bad input from the network.

#include <string>
#include <utility>

#include "lopower/result.h"

namespace lopower::tailnet {

using control_error = lopower::failure;
template <class T>
using control_result = lopower::result<T>;
inline control_error control_fail(std::string message) { return lopower::fail(std::move(message)); }

}  // namespace lopower::tailnet
