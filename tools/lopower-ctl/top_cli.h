#pragma once
// `lopower-ctl top` (alias `watch`): the live view, redrawn every interval
// until q or Ctrl-C; `--once` prints one frame (two samples an interval
// apart, so that it has rates) without touching the terminal.

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lopower/ctl_protocol.h"

namespace lopower {

// Sends a request and returns its result; throws std::runtime_error with the
// daemon's (or the socket's) error. Prints nothing: the live view owns the
// screen until it has restored the terminal.
using ctl_caller = std::function<nlohmann::json(const ctl::request&)>;

// Runs `top ARGS...`; returns the exit code.
int run_top_command(const std::vector<std::string>& args, const ctl_caller& call);

}  // namespace lopower
