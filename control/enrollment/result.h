#pragma once
// Enrollment answers with the project's result type: a value, or an error
// whose message is shown to the operator as it is ("device name \"x\" is taken").

#include "lopower/result.h"

namespace lopower::enrollment {

using enrollment_error = lopower::failure;
template <class T>
using result = lopower::result<T>;
using lopower::fail;

}  // namespace lopower::enrollment
