#pragma once

// A fresh directory under the system temp directory, removed with all it holds
// on destruction: the stores of benchmarks and the scratch space of tests.

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

namespace keel {

class temp_dir {
public:
  /// Creates `<temp>/<prefix>-XXXXXX`; throws `std::system_error` when it cannot.
  explicit temp_dir(const std::string& prefix = "keel-test") {
    auto tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::system_error(errno, std::generic_category(),
                              "cannot create a temporary directory " + tmpl);
    path_ = std::move(tmpl);
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const {
    return path_;
  }

  /// A path inside the directory.
  std::string sub(const std::string& name) const {
    return path_ + "/" + name;
  }

private:
  std::string path_;
};

} // namespace keel
