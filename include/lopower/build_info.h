#pragma once
// What this binary is: the release version and the git revision it was built
// from ("unknown" outside a git checkout), for --version, status and metrics.

namespace lopower {

const char* build_version();
const char* build_revision();

}  // namespace lopower
