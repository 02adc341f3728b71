#include "faulty_fs.hpp"

namespace keel::storage {

namespace {

rocksdb::IOStatus injected(io_faults& f) {
  f.injected.fetch_add(1, std::memory_order_relaxed);
  return rocksdb::IOStatus::IOError("injected I/O error (EIO)");
}

class faulty_file : public rocksdb::FSWritableFileOwnerWrapper {
public:
  faulty_file(std::unique_ptr<rocksdb::FSWritableFile>&& file, std::shared_ptr<io_faults> faults)
    : FSWritableFileOwnerWrapper(std::move(file)), faults_(std::move(faults)) {
  }

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& opts,
                           rocksdb::IODebugContext* dbg) override {
    return failing() ? injected(*faults_) : FSWritableFileOwnerWrapper::Append(data, opts, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& opts,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    return failing() ? injected(*faults_)
                     : FSWritableFileOwnerWrapper::Append(data, opts, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& opts,
                                     rocksdb::IODebugContext* dbg) override {
    return failing() ? injected(*faults_)
                     : FSWritableFileOwnerWrapper::PositionedAppend(data, offset, opts, dbg);
  }
  rocksdb::IOStatus Flush(const rocksdb::IOOptions& opts, rocksdb::IODebugContext* dbg) override {
    return failing() ? injected(*faults_) : FSWritableFileOwnerWrapper::Flush(opts, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& opts, rocksdb::IODebugContext* dbg) override {
    return failing() ? injected(*faults_) : FSWritableFileOwnerWrapper::Sync(opts, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& opts, rocksdb::IODebugContext* dbg) override {
    return failing() ? injected(*faults_) : FSWritableFileOwnerWrapper::Fsync(opts, dbg);
  }

private:
  bool failing() const {
    return faults_->fail_writes.load(std::memory_order_relaxed);
  }

  std::shared_ptr<io_faults> faults_;
};

class faulty_fs : public rocksdb::FileSystemWrapper {
public:
  faulty_fs(std::shared_ptr<rocksdb::FileSystem> base, std::shared_ptr<io_faults> faults)
    : FileSystemWrapper(base), faults_(std::move(faults)) {
  }

  const char* Name() const override {
    return "KeelFaultyFileSystem";
  }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    if (faults_->fail_writes.load(std::memory_order_relaxed))
      return injected(*faults_);
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto st = target()->NewWritableFile(name, opts, &file, dbg);
    if (st.ok())
      *result = std::make_unique<faulty_file>(std::move(file), faults_);
    return st;
  }

  rocksdb::IOStatus ReopenWritableFile(const std::string& name, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override {
    if (faults_->fail_writes.load(std::memory_order_relaxed))
      return injected(*faults_);
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto st = target()->ReopenWritableFile(name, opts, &file, dbg);
    if (st.ok())
      *result = std::make_unique<faulty_file>(std::move(file), faults_);
    return st;
  }

private:
  std::shared_ptr<io_faults> faults_;
};

} // namespace

std::shared_ptr<rocksdb::FileSystem> make_faulty_fs(std::shared_ptr<rocksdb::FileSystem> base,
                                                    std::shared_ptr<io_faults> faults) {
  return std::make_shared<faulty_fs>(std::move(base), std::move(faults));
}

} // namespace keel::storage
