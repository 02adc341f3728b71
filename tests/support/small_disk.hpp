#pragma once

// A real tmpfs of limited size for disk-full tests (tests run as root), and
// a filler that leaves it nearly full.

#include <sys/mount.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

namespace keel::test {

/// A tmpfs of `mib` MiB mounted at a fresh directory, unmounted at the end
/// (also when the test fails). `mounted` is false when mounting failed.
struct small_disk {
  temp_dir dir;
  std::string path = dir.sub("mnt");
  bool mounted = false;

  explicit small_disk(int mib) {
    std::filesystem::create_directories(path);
    auto opts = "size=" + std::to_string(mib) + "m";
    mounted = ::mount("tmpfs", path.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~small_disk() {
    if (mounted)
      ::umount2(path.c_str(), MNT_DETACH);
  }
  small_disk(const small_disk&) = delete;
  small_disk& operator=(const small_disk&) = delete;
};

/// Writes `file` until the file system at `dir` has less than `leave` bytes free.
inline void fill_disk(const std::string& dir, const std::string& file, std::uint64_t leave) {
  std::ofstream out{file, std::ios::binary};
  std::string kib(1024, 'x');
  for (;;) {
    struct statvfs fs {};
    REQUIRE(::statvfs(dir.c_str(), &fs) == 0);
    if (static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize < leave)
      return;
    for (int i = 0; i < 256; ++i)
      if (!out.write(kib.data(), static_cast<std::streamsize>(kib.size())))
        return;
    out.flush();
  }
}

} // namespace keel::test
