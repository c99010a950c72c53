#pragma once
// Keys live in lopowerd's memory: the device-side and node private keys,
// every session's keys, the cookie secrets. A core dump would carry them to
// wherever dumps go (systemd-coredump keeps them on disk for days, readable
// by whoever reads the journal's dumps). So by default lopowerd makes itself
// non-dumpable before it reads a key: no core file, and no ptrace or
// /proc/PID/mem by anyone but root. `[daemon] core_dumps = true` allows
// dumps for debugging; DPDK's memory (every packet buffer, devices'
// traffic) is still left out of them, but keys on the heap are in them.

namespace lopower {

// Call after EAL is up (its memory is mapped) and before any key is read.
// Returns what the kernel now says (PR_GET_DUMPABLE).
bool apply_core_dump_policy(bool allow_core_dumps);

// Whether a crash would leave a core dump (the kernel's flag).
bool core_dumps_enabled();

}  // namespace lopower
