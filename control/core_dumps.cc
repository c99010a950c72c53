#include "control/core_dumps.h"

#include <rte_memory.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <cerrno>
#include <cstring>

#include "control/log.h"

namespace lopower {

namespace {

int leave_out_of_dumps(const rte_memseg_list* msl, void*) {
  if (msl->base_va == nullptr || msl->len == 0) return 0;
  if (madvise(msl->base_va, msl->len, MADV_DONTDUMP) != 0)
    LOG_WARNING("cannot keep DPDK memory at %p (%zu bytes) out of core dumps: %s", msl->base_va,
                static_cast<std::size_t>(msl->len), std::strerror(errno));
  return 0;
}

}  // namespace

bool apply_core_dump_policy(bool allow_core_dumps) {
  if (!allow_core_dumps) {
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
      LOG_WARNING("cannot turn core dumps off (they would hold keys): %s", std::strerror(errno));
    return core_dumps_enabled();
  }
  rte_memseg_list_walk(leave_out_of_dumps, nullptr);
  LOG_WARNING("core dumps on (daemon.core_dumps): a dump holds lopower's private keys; packet buffers are left out");
  return core_dumps_enabled();
}

bool core_dumps_enabled() { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1; }

}  // namespace lopower
