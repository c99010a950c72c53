#pragma once
// Crash-safe files for lopower's state. A write goes to a new temporary file
// beside the target (O_CREAT|O_EXCL, mode 0600), is fsynced, renamed over the
// target, and the directory is fsynced: after a crash at any point the target
// is either the old file or the new one, never a mix. Temporary files a crash
// left behind are never read, and are removed by the next write of the same
// file.
//
// One writer per file is assumed (lopowerd's control thread).

#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <string_view>

#include "lopower/result.h"

namespace lopower {

// Receives operator-facing warnings ("state directory ... was mode 0755; now 0700").
using warning_fn = std::function<void(const std::string&)>;

// Lets a unit test stop a write where a crash could stop it. The hooks may
// throw; the exception leaves the temporary file behind, as a crash would.
struct write_test_hooks {
  // Write only this many bytes of the content, then call `crash` (which should throw).
  std::size_t crash_after_bytes = std::numeric_limits<std::size_t>::max();
  std::function<void()> crash;
  // Called after the temporary file is complete and fsynced, before the rename.
  std::function<void()> before_rename;
};

// Writes `content` to `path` atomically, mode 0600. The directory must exist.
result<void> atomic_write_file(const std::string& path, std::string_view content,
                               const write_test_hooks* hooks = nullptr);

// The whole content of a file; an error names the file and the reason.
result<std::string> read_file(const std::string& path);

// Prefix of the temporary files written for `target_name` (".<name>.tmp.").
std::string temp_file_prefix(std::string_view target_name);

class state_store {
 public:
  // Opens (creating it 0700 if missing) the state directory. A directory
  // with looser permissions is tightened to 0700 and a warning is reported.
  static result<state_store> open(std::string dir, const warning_fn& warn = {});

  const std::string& dir() const { return dir_; }
  std::string path_of(std::string_view name) const { return dir_ + "/" + std::string(name); }

  // Atomically replaces the file `name` in the directory.
  result<void> write(std::string_view name, std::string_view content) const;
  // The file's content; an error if it is missing or unreadable.
  result<std::string> read(std::string_view name) const;
  bool exists(std::string_view name) const;
  // Removes the file `name` (durably: the directory is fsynced); a missing
  // file is no error.
  result<void> remove(std::string_view name) const;

  // Tests only: hooks applied to every later write (empty hooks clear them).
  void set_test_hooks(write_test_hooks hooks) { hooks_ = std::move(hooks); has_hooks_ = true; }
  void clear_test_hooks() { hooks_ = {}; has_hooks_ = false; }

 private:
  explicit state_store(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
  write_test_hooks hooks_;
  bool has_hooks_ = false;
};

}  // namespace lopower
