#include "keel/storage/seed.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "keel/events/error.hpp"

namespace keel::storage {

namespace fs = std::filesystem;

namespace {

constexpr const char* marker = "KEEL_SEED";
constexpr std::uint64_t max_piece = 4u << 20;

std::string out_root(const std::string& data) {
  return fs::path{data}.lexically_normal().string() + ".seed-out";
}

caf::error fs_error(const std::error_code& ec, const std::string& what) {
  return make_error(errc::storage_failure, what + ": " + ec.message());
}

caf::error sync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0)
    return make_error(errc::storage_failure, "opening " + path + " to sync it");
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return make_error(errc::storage_failure, "syncing " + path);
  return caf::error{};
}

bool plain_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

} // namespace

caf::expected<seed_files> prepare_seed(const event_store& store, const std::string& data,
                                       std::uint64_t token) {
  auto root = out_root(data);
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root, ec);
  if (ec)
    return fs_error(ec, "creating " + root);
  auto tmp = root + "/new";
  auto position = store.export_checkpoint(tmp);
  if (!position)
    return position.error();
  seed_files out;
  out.id = std::to_string(token) + "-" + std::to_string(*position);
  out.position = *position;
  fs::rename(tmp, root + "/" + out.id, ec);
  if (ec)
    return fs_error(ec, "naming the checkpoint in " + root);
  for (auto& entry : fs::directory_iterator{root + "/" + out.id, ec}) {
    if (!entry.is_regular_file())
      continue;
    out.files.push_back(entry.path().filename().string());
    out.sizes.push_back(static_cast<std::uint64_t>(entry.file_size()));
  }
  if (ec)
    return fs_error(ec, "listing the checkpoint");
  return out;
}

caf::expected<std::string> read_seed(const std::string& data, const std::string& id,
                                     const std::string& file, std::uint64_t offset,
                                     std::uint64_t length) {
  if (!plain_name(id) || !plain_name(file))
    return make_error(errc::invalid_argument, "not a checkpoint file: " + id + "/" + file);
  auto path = out_root(data) + "/" + id + "/" + file;
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    std::error_code ec;
    if (!fs::exists(out_root(data) + "/" + id, ec))
      return make_error(errc::not_found, "checkpoint " + id + " is gone (a newer one replaced it)");
    return make_error(errc::invalid_argument, "checkpoint " + id + " has no file " + file);
  }
  std::string out(static_cast<std::size_t>(std::min(length, max_piece)), '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return out;
}

void drop_seeds(const std::string& data) {
  std::error_code ec;
  fs::remove_all(out_root(data), ec);
}

std::string incoming_seed_dir(const std::string& data) {
  return fs::path{data}.lexically_normal().string() + ".seed";
}

caf::error append_to(const std::string& path, const std::string& bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::app};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out)
    return make_error(errc::storage_failure, "writing " + path);
  return caf::error{};
}

caf::error finish_seed(const std::string& data, const std::string& about) {
  auto dir = incoming_seed_dir(data);
  std::error_code ec;
  for (auto& entry : fs::directory_iterator{dir, ec})
    if (entry.is_regular_file())
      if (auto err = sync_path(entry.path().string(), false))
        return err;
  if (ec)
    return fs_error(ec, "listing " + dir);
  {
    std::ofstream out{dir + "/" + marker, std::ios::trunc};
    out << about << '\n';
    out.close();
    if (!out)
      return make_error(errc::storage_failure, "writing " + dir + "/" + marker);
  }
  if (auto err = sync_path(dir + "/" + marker, false))
    return err;
  return sync_path(dir, true);
}

caf::expected<std::string> adopt_seed(const std::string& data) {
  auto target = fs::path{data}.lexically_normal().string();
  auto seed = incoming_seed_dir(data);
  auto old = target + ".replaced";
  auto parent = fs::absolute(fs::path{target}).parent_path().string();
  std::error_code ec;
  fs::remove(target + "/" + marker, ec); // a crash after the last rename
  fs::remove_all(old, ec);
  if (!fs::exists(seed + "/" + marker, ec)) {
    fs::remove_all(seed, ec); // a download that did not finish
    return std::string{};
  }
  std::string about;
  {
    std::ifstream in{seed + "/" + marker};
    std::getline(in, about);
  }
  if (fs::exists(target, ec)) {
    fs::rename(target, old, ec);
    if (ec)
      return fs_error(ec, "moving " + target + " aside");
  }
  fs::rename(seed, target, ec);
  if (ec)
    return fs_error(ec, "moving the seed into " + target);
  if (auto err = sync_path(parent, true))
    return err;
  fs::remove(target + "/" + marker, ec);
  fs::remove_all(old, ec);
  return about.empty() ? std::string{"a seed"} : about;
}

} // namespace keel::storage
