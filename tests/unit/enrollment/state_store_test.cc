#include "control/state_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>
#include <vector>

#include "tests/unit/enrollment/temp_dir.h"

namespace lopower::enrollment {
namespace {

using testing::mode_of;
using testing::temp_dir;

struct simulated_crash : std::runtime_error {
  simulated_crash() : std::runtime_error("simulated crash") {}
};

std::vector<std::string> temp_files(const std::string& dir, const std::string& name) {
  std::vector<std::string> out;
  const std::string prefix = temp_file_prefix(name);
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(prefix, 0) == 0) out.push_back(f);
  }
  return out;
}

TEST(StateStore, CreatesThePrivateDirectory) {
  temp_dir tmp;
  const std::string dir = tmp / "a/b/state";
  auto store = state_store::open(dir);
  ASSERT_TRUE(store.ok()) << store.message();
  EXPECT_EQ(mode_of(dir), 0700);
}

TEST(StateStore, TightensALooseDirectoryAndWarns) {
  temp_dir tmp;
  const std::string dir = tmp / "state";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  std::vector<std::string> warnings;
  auto store = state_store::open(dir, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(store.ok()) << store.message();
  EXPECT_EQ(mode_of(dir), 0700);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("0755"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("0700"), std::string::npos) << warnings[0];
}

TEST(StateStore, APrivateDirectoryIsLeftAloneQuietly) {
  temp_dir tmp;
  const std::string dir = tmp / "state";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  int warnings = 0;
  ASSERT_TRUE(state_store::open(dir, [&](const std::string&) { ++warnings; }).ok());
  EXPECT_EQ(warnings, 0);
}

TEST(StateStore, AFileInTheWayIsAnError) {
  temp_dir tmp;
  ASSERT_TRUE(atomic_write_file(tmp / "file", "x").ok());
  auto store = state_store::open(tmp / "file");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("not a directory"), std::string::npos) << store.message();
}

TEST(StateStore, WriteThenReadWithMode0600) {
  temp_dir tmp;
  auto store = std::move(state_store::open(tmp / "state")).value();
  ASSERT_TRUE(store.write("x.json", "first").ok());
  EXPECT_EQ(*store.read("x.json"), "first");
  EXPECT_EQ(mode_of(store.path_of("x.json")), 0600);
  ASSERT_TRUE(store.write("x.json", "second, longer").ok());
  EXPECT_EQ(*store.read("x.json"), "second, longer");
  EXPECT_EQ(mode_of(store.path_of("x.json")), 0600);
  EXPECT_TRUE(temp_files(store.dir(), "x.json").empty());
}

TEST(StateStore, ReplacingALooseFileMakesIt0600) {
  temp_dir tmp;
  const std::string path = tmp / "out.png";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  ASSERT_TRUE(atomic_write_file(path, "secret").ok());
  EXPECT_EQ(mode_of(path), 0600);
}

TEST(StateStore, ReadingAMissingFileSaysSo) {
  temp_dir tmp;
  auto store = std::move(state_store::open(tmp / "state")).value();
  EXPECT_FALSE(store.exists("nope.json"));
  auto r = store.read("nope.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("nope.json"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("No such file"), std::string::npos) << r.message();
}

TEST(StateStore, CrashMidWriteLeavesTheOldFile) {
  temp_dir tmp;
  auto store = std::move(state_store::open(tmp / "state")).value();
  const std::string old_content(1000, 'o');
  ASSERT_TRUE(store.write("devices.json", old_content).ok());

  write_test_hooks hooks;
  hooks.crash_after_bytes = 300;
  hooks.crash = [] { throw simulated_crash(); };
  store.set_test_hooks(hooks);
  EXPECT_THROW((void)store.write("devices.json", std::string(2000, 'n')), simulated_crash);

  // The half-written temporary file is there, as after a real crash, and the
  // target is untouched.
  const auto leftovers = temp_files(store.dir(), "devices.json");
  ASSERT_EQ(leftovers.size(), 1u);
  EXPECT_EQ(std::filesystem::file_size(store.dir() + "/" + leftovers[0]), 300u);
  EXPECT_EQ(*store.read("devices.json"), old_content);

  // A later write succeeds and removes the leftover.
  store.clear_test_hooks();
  ASSERT_TRUE(store.write("devices.json", "new").ok());
  EXPECT_EQ(*store.read("devices.json"), "new");
  EXPECT_TRUE(temp_files(store.dir(), "devices.json").empty());
}

TEST(StateStore, CrashBeforeRenameLeavesTheOldFile) {
  temp_dir tmp;
  auto store = std::move(state_store::open(tmp / "state")).value();
  ASSERT_TRUE(store.write("devices.json", "old").ok());
  write_test_hooks hooks;
  hooks.before_rename = [] { throw simulated_crash(); };
  store.set_test_hooks(hooks);
  EXPECT_THROW((void)store.write("devices.json", "new and complete"), simulated_crash);
  EXPECT_EQ(*store.read("devices.json"), "old");
  EXPECT_EQ(temp_files(store.dir(), "devices.json").size(), 1u);

  store.clear_test_hooks();
  ASSERT_TRUE(store.write("devices.json", "newer").ok());
  EXPECT_EQ(*store.read("devices.json"), "newer");
  EXPECT_TRUE(temp_files(store.dir(), "devices.json").empty());
}

TEST(StateStore, AWriteStoppedWithoutACrashIsAnErrorAndKeepsTheOldFile) {
  temp_dir tmp;
  auto store = std::move(state_store::open(tmp / "state")).value();
  ASSERT_TRUE(store.write("f", "old").ok());
  write_test_hooks hooks;
  hooks.crash_after_bytes = 1;
  store.set_test_hooks(hooks);
  EXPECT_FALSE(store.write("f", "new").ok());
  EXPECT_EQ(*store.read("f"), "old");
}

TEST(StateStore, OtherFilesTempFilesAreNotTouched) {
  temp_dir tmp;
  auto store = std::move(state_store::open(tmp / "state")).value();
  const std::string other = store.dir() + "/" + temp_file_prefix("other.json") + "123.0";
  ASSERT_TRUE(atomic_write_file(other, "x").ok());
  ASSERT_TRUE(store.write("devices.json", "y").ok());
  EXPECT_TRUE(std::filesystem::exists(other));
}

TEST(StateStore, EmptyContentIsFine) {
  temp_dir tmp;
  auto store = std::move(state_store::open(tmp / "state")).value();
  ASSERT_TRUE(store.write("empty", "").ok());
  EXPECT_EQ(*store.read("empty"), "");
}

}  // namespace
}  // namespace lopower::enrollment
