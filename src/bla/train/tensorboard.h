// TensorBoard event files, written without TensorFlow or protobuf, so that
// `tensorboard --logdir runs` shows bla-train runs as they go.
//
// Use (rank 0 only; one writer per process):
//
//   TensorBoardWriter tb(run_dir);                    // events.out.tfevents.<time>.<host> in run_dir
//   tb.scalar("train/loss", step, loss);             // at each log step, every quantity...
//   tb.scalar("train/lr", step, lr);
//   tb.flush();                                      // ...then one flush: TensorBoard sees the step
//   tb.scalar("test/accuracy", step, accuracy);      // after an evaluation
//   tb.text("config", 0, resolved_config_yaml);      // optional, shown in the Text tab
//   tb.flush();
//
// Writing into the run directory itself makes `tensorboard --logdir runs`
// list each run under its directory name; "train/..." and "test/..." tags
// group the charts by split.
//
// Resuming: every process start opens a new file (that is how TensorBoard's
// own writers behave). TensorBoard reads a run's files in name order, which is
// start-time order, and a step it has seen before replaces the earlier value,
// so the steps redone after a resume supersede the ones logged past the
// checkpoint by the interrupted process.
//
// The format (tensorflow/core/util/event.proto, summary.proto, and TFRecord
// framing): a file is a sequence of records
//   uint64 length (little-endian) | uint32 masked_crc32c(length bytes) |
//   length bytes of data          | uint32 masked_crc32c(data)
// where masked_crc32c(x) = rotate_right(crc32c(x), 15) + 0xa282ead8, and each
// record's data is one serialized Event:
//   Event   { double wall_time = 1; int64 step = 2;
//             oneof { string file_version = 3; Summary summary = 5; } }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2;
//             SummaryMetadata metadata = 9; TensorProto tensor = 8; }
// The first record is Event{file_version: "brain.Event:2"}.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace bla::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses:
// crc32c("123456789") == 0xE3069283. Continues `crc` (start from 0).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
inline uint32_t crc32c(std::string_view bytes) { return crc32c(bytes.data(), bytes.size()); }
// TFRecord's mask, so that a CRC stored inside CRC-checked data stays checkable.
uint32_t masked_crc32c(std::string_view bytes);

// Seconds since the Unix epoch, with sub-second precision (an Event's wall_time).
double unix_time_now();

class TensorBoardWriter {
 public:
  // Creates `log_dir` if needed and a new event file in it, named
  // events.out.tfevents.<unix seconds>.<host name> (".N" appended if that
  // name is taken), and writes the file_version event. Throws
  // std::runtime_error naming the path when the file cannot be created.
  explicit TensorBoardWriter(const std::string& log_dir);
  // Flushes what is pending; errors are ignored here (call flush() to see them).
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // Queues one scalar (stored as a float, as TensorBoard's scalars are).
  void scalar(const std::string& tag, int64_t step, double value, double wall_time = unix_time_now());
  // Queues a text (markdown) value for TensorBoard's Text tab.
  void text(const std::string& tag, int64_t step, const std::string& value, double wall_time = unix_time_now());
  // Writes the queued events to the file (one write call, so a reader never
  // sees half a step unless the process dies inside it). Throws
  // std::runtime_error naming the file when the write fails.
  void flush();

  const std::string& path() const { return path_; }

 private:
  void queue_event(const std::string& event);

  std::string path_;
  int fd_ = -1;
  std::string pending_;  // framed records not yet written
};

}  // namespace bla::train
