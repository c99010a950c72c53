#include "lopower/build_info.h"

#include "lopower_revision.h"  // regenerated from git on every build (vcs_tag)
#include "lopower_build_config.h"

namespace lopower {

const char* build_version() { return LOPOWER_VERSION; }
const char* build_revision() { return LOPOWER_GIT_REVISION; }

}  // namespace lopower
