#include "control/state_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace lopower {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string octal(unsigned mode) {
  char m[8];
  std::snprintf(m, sizeof m, "%04o", mode & 07777u);
  return m;
}

// Closes a descriptor on every exit path, including a test hook's exception.
class fd_guard {
 public:
  explicit fd_guard(int fd) : fd_(fd) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports close's error (NFS and friends report write errors here).
  int close_now() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

void split_path(const std::string& path, std::string& dir, std::string& name) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    dir = ".";
    name = path;
  } else {
    dir = slash == 0 ? "/" : path.substr(0, slash);
    name = path.substr(slash + 1);
  }
}

result<void> fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail("cannot open directory " + dir + " to sync it: " + errno_text(errno));
  fd_guard guard(fd);
  if (::fsync(fd) != 0) return fail("cannot sync directory " + dir + ": " + errno_text(errno));
  return {};
}

// Removes the temporary files an interrupted write of `name` left in `dir`.
void remove_stale_temp_files(const std::string& dir, const std::string& name) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  const std::string prefix = temp_file_prefix(name);
  while (const dirent* e = ::readdir(d)) {
    const std::string_view entry(e->d_name);
    if (entry.size() > prefix.size() && entry.substr(0, prefix.size()) == prefix)
      ::unlinkat(::dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

std::atomic<unsigned> temp_counter{0};

}  // namespace

std::string temp_file_prefix(std::string_view target_name) { return "." + std::string(target_name) + ".tmp."; }

result<void> atomic_write_file(const std::string& path, std::string_view content, const write_test_hooks* hooks) {
  std::string dir, name;
  split_path(path, dir, name);
  if (name.empty() || name == "." || name == "..") return fail("cannot write " + path + ": not a file name");

  remove_stale_temp_files(dir, name);

  std::string temp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    temp = dir + "/" + temp_file_prefix(name) + std::to_string(::getpid()) + "." + std::to_string(temp_counter++);
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno != EEXIST) return fail("cannot create " + temp + ": " + errno_text(errno));
  }
  if (fd < 0) return fail("cannot create a temporary file beside " + path);
  fd_guard guard(fd);

  // From here on, a failure that is not a (simulated) crash removes the temporary file.
  const auto give_up = [&](const std::string& what, int err) -> result<void> {
    ::unlink(temp.c_str());
    return fail(what + ": " + errno_text(err));
  };

  const std::size_t limit = hooks != nullptr ? hooks->crash_after_bytes : content.size();
  std::size_t written = 0;
  while (written < content.size()) {
    if (written >= limit) {
      if (hooks != nullptr && hooks->crash) hooks->crash();
      return fail("write of " + path + " stopped by a test hook");
    }
    const std::size_t want = std::min(content.size() - written, limit - written);
    const ssize_t n = ::write(fd, content.data() + written, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return give_up("cannot write " + temp, errno);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return give_up("cannot sync " + temp, errno);
  if (guard.close_now() != 0) return give_up("cannot close " + temp, errno);

  if (hooks != nullptr && hooks->before_rename) hooks->before_rename();

  if (::rename(temp.c_str(), path.c_str()) != 0) return give_up("cannot rename " + temp + " to " + path, errno);
  return fsync_directory(dir);
}

result<std::string> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail("cannot read " + path + ": " + errno_text(errno));
  fd_guard guard(fd);
  std::string out;
  // Reserved up front so that the key material it may hold is not left in
  // freed buffers as the string grows.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<std::size_t>(st.st_size) + 1);
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      sodium_memzero(buf, sizeof buf);
      return fail("cannot read " + path + ": " + errno_text(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  sodium_memzero(buf, sizeof buf);
  return out;
}

result<state_store> state_store::open(std::string dir, const warning_fn& warn) {
  if (dir.empty()) return fail("the state directory is not set (daemon.state_dir)");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();

  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail("cannot use state directory " + dir + ": " + errno_text(errno));
    const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return fail("cannot create " + parent.string() + " for the state directory: " + ec.message());
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return fail("cannot create state directory " + dir + ": " + errno_text(errno));
    if (::stat(dir.c_str(), &st) != 0) return fail("cannot use state directory " + dir + ": " + errno_text(errno));
  }
  if (!S_ISDIR(st.st_mode)) return fail("state directory " + dir + " is not a directory");
  const unsigned mode = st.st_mode & 07777u;
  if ((mode & 077u) != 0 || (mode & 0700u) != 0700u) {
    if (::chmod(dir.c_str(), 0700) != 0)
      return fail("state directory " + dir + " has mode " + octal(mode) +
                  " and cannot be made private (0700): " + errno_text(errno));
    if (warn && (mode & 077u) != 0)
      warn("state directory " + dir + " was mode " + octal(mode) + "; it holds private keys, so it is now 0700");
  }
  return state_store(std::move(dir));
}

result<void> state_store::write(std::string_view name, std::string_view content) const {
  return atomic_write_file(path_of(name), content, has_hooks_ ? &hooks_ : nullptr);
}

result<std::string> state_store::read(std::string_view name) const { return read_file(path_of(name)); }

result<void> state_store::remove(std::string_view name) const {
  const std::string path = path_of(name);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return {};
    return fail("cannot remove " + path + ": " + errno_text(errno));
  }
  return fsync_directory(dir_);
}

bool state_store::exists(std::string_view name) const {
  struct stat st {};
  return ::stat(path_of(name).c_str(), &st) == 0;
}

}  // namespace lopower
