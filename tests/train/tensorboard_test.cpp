// The event files are read back by a reader written here from the format's
// description (TFRecord framing, protobuf wire format), sharing no code with
// the writer: its own bitwise CRC-32C, its own varint and field decoding.
#include "bla/train/tensorboard.h"

#include "bla/util/files.h"
#include "support/run_helpers.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using bla::testing::TempDir;
using bla::train::TensorBoardWriter;
namespace util = bla::util;

namespace {

// Bit by bit, reflected Castagnoli polynomial (no table, unlike the writer).
uint32_t reference_crc32c(const std::string& bytes) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
  }
  return crc ^ 0xffffffffu;
}

uint32_t reference_masked_crc(const std::string& bytes) {
  const uint32_t crc = reference_crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint64_t little_endian(const std::string& bytes, size_t at, int size) {
  uint64_t value = 0;
  for (int i = 0; i < size; ++i) value |= uint64_t{static_cast<unsigned char>(bytes[at + i])} << (8 * i);
  return value;
}

// Reads TFRecords until the end of `bytes` or the first bad one; `error`
// says what was wrong with that one (empty when every record was good).
struct Records {
  std::vector<std::string> data;
  std::string error;
};

Records read_records(const std::string& bytes) {
  Records out;
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 12) {
      out.error = "truncated header";
      return out;
    }
    const uint64_t length = little_endian(bytes, at, 8);
    if (little_endian(bytes, at + 8, 4) != reference_masked_crc(bytes.substr(at, 8))) {
      out.error = "length crc mismatch";
      return out;
    }
    at += 12;
    // A truncated record: what is there, with whatever stands where its CRC
    // should be, must fail the check.
    const std::string data = bytes.substr(at, length);
    const std::string stored_crc = at + length < bytes.size() ? bytes.substr(at + length, 4) : "";
    if (stored_crc.size() < 4 || little_endian(stored_crc, 0, 4) != reference_masked_crc(data)) {
      out.error = "data crc mismatch";
      return out;
    }
    out.data.push_back(data);
    at += length + 4;
  }
  return out;
}

// One protobuf field as it appears on the wire.
struct Field {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  uint64_t scalar = 0;  // varint, fixed64 or fixed32 bits
  std::string bytes;    // length-delimited payload
};

uint64_t read_varint(const std::string& bytes, size_t& at) {
  uint64_t value = 0;
  for (int shift = 0; at < bytes.size(); shift += 7) {
    const auto byte = static_cast<unsigned char>(bytes[at++]);
    value |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80u) == 0) return value;
  }
  ADD_FAILURE() << "varint runs past the end";
  return value;
}

std::vector<Field> parse_message(const std::string& bytes) {
  std::vector<Field> fields;
  size_t at = 0;
  while (at < bytes.size()) {
    const uint64_t key = read_varint(bytes, at);
    Field f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire_type = static_cast<uint32_t>(key & 7);
    if (f.wire_type == 0) {
      f.scalar = read_varint(bytes, at);
    } else if (f.wire_type == 1 || f.wire_type == 5) {
      const int size = f.wire_type == 1 ? 8 : 4;
      if (at + size > bytes.size()) {
        ADD_FAILURE() << "fixed field runs past the end";
        return fields;
      }
      f.scalar = little_endian(bytes, at, size);
      at += size;
    } else if (f.wire_type == 2) {
      const uint64_t size = read_varint(bytes, at);
      if (at + size > bytes.size()) {
        ADD_FAILURE() << "length-delimited field runs past the end";
        return fields;
      }
      f.bytes = bytes.substr(at, size);
      at += size;
    } else {
      ADD_FAILURE() << "unexpected wire type " << f.wire_type;
      return fields;
    }
    fields.push_back(f);
  }
  return fields;
}

struct SummaryValue {
  std::string tag;
  bool has_simple_value = false;
  float simple_value = 0;
  std::string tensor, metadata;  // raw TensorProto, SummaryMetadata
};

struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<SummaryValue> values;
};

Event decode_event(const std::string& bytes) {
  Event event;
  for (const Field& f : parse_message(bytes)) {
    if (f.number == 1 && f.wire_type == 1) {
      std::memcpy(&event.wall_time, &f.scalar, sizeof(double));
    } else if (f.number == 2 && f.wire_type == 0) {
      event.step = static_cast<int64_t>(f.scalar);
    } else if (f.number == 3 && f.wire_type == 2) {
      event.file_version = f.bytes;
    } else if (f.number == 5 && f.wire_type == 2) {
      for (const Field& s : parse_message(f.bytes)) {
        EXPECT_EQ(s.number, 1u);  // Summary.value
        SummaryValue value;
        for (const Field& v : parse_message(s.bytes)) {
          if (v.number == 1) value.tag = v.bytes;
          if (v.number == 2 && v.wire_type == 5) {
            const auto bits = static_cast<uint32_t>(v.scalar);
            std::memcpy(&value.simple_value, &bits, sizeof(float));
            value.has_simple_value = true;
          }
          if (v.number == 8) value.tensor = v.bytes;
          if (v.number == 9) value.metadata = v.bytes;
        }
        event.values.push_back(value);
      }
    }
  }
  return event;
}

// The event files in `dir`, by name.
std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& name : util::list_directory(dir)) {
    if (name.rfind("events.out.tfevents.", 0) == 0) files.push_back(util::join_path(dir, name));
  }
  return files;
}

std::vector<Event> read_events(const std::string& path) {
  const Records records = read_records(util::read_file(path));
  EXPECT_EQ(records.error, "") << path;
  std::vector<Event> events;
  for (const auto& data : records.data) events.push_back(decode_event(data));
  return events;
}

}  // namespace

TEST(TensorBoardCrc32c, KnownVectors) {
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  // RFC 3720 (iSCSI), appendix B.4, and the usual check value.
  const std::pair<std::string, uint32_t> vectors[] = {
      {"123456789", 0xE3069283u},       {std::string(32, '\0'), 0x8A9136AAu},
      {std::string(32, '\xff'), 0x62A8AB43u}, {ascending, 0x46DD794Eu},
      {descending, 0x113FDB5Cu},        {"", 0u},
  };
  for (const auto& [bytes, crc] : vectors) {
    EXPECT_EQ(reference_crc32c(bytes), crc) << "reference, " << bytes.size() << " bytes";
    EXPECT_EQ(bla::train::crc32c(bytes), crc) << "writer, " << bytes.size() << " bytes";
    EXPECT_EQ(bla::train::masked_crc32c(bytes), reference_masked_crc(bytes));
  }
  // Continuing a CRC over a second piece equals the CRC of the whole.
  EXPECT_EQ(bla::train::crc32c("6789", 4, bla::train::crc32c("12345", 5)), 0xE3069283u);
}

TEST(TensorBoardWriter, WritesFileVersionThenScalars) {
  TempDir tmp;
  std::string path;
  {
    TensorBoardWriter tb(tmp / "run");
    path = tb.path();
    tb.scalar("train/loss", 10, 4.25, 1700000000.5);
    tb.scalar("train/lr", 10, 3e-3, 1700000000.5);
    tb.flush();
    tb.scalar("train/loss", 20, 0.1, 1700000001.25);  // not exactly representable: stored as float
    tb.scalar("test/accuracy", 1'000'000'000'000LL, 0.909, 1700000002.0);
    tb.scalar("train/grad_norm", -3, 1e30, 1700000003.0);  // a negative step is a 10-byte varint
  }
  ASSERT_EQ(event_files(tmp / "run"), std::vector<std::string>{path});
  // events.out.tfevents.<unix seconds>.<host>, the host made file-name safe.
  const std::string name = util::file_name(path);
  const std::string rest = name.substr(std::strlen("events.out.tfevents."));
  const size_t dot = rest.find('.');
  ASSERT_NE(dot, std::string::npos) << name;
  const long long seconds = std::stoll(rest.substr(0, dot));
  EXPECT_NEAR(static_cast<double>(seconds), bla::train::unix_time_now(), 600.0);
  EXPECT_EQ(rest.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"),
            std::string::npos)
      << name;

  const std::vector<Event> events = read_events(path);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_EQ(events[0].step, 0);
  EXPECT_NEAR(events[0].wall_time, bla::train::unix_time_now(), 600.0);
  EXPECT_TRUE(events[0].values.empty());

  struct Expected {
    std::string tag;
    int64_t step;
    double value, wall_time;
  };
  const Expected expected[] = {{"train/loss", 10, 4.25, 1700000000.5},
                               {"train/lr", 10, 3e-3, 1700000000.5},
                               {"train/loss", 20, 0.1, 1700000001.25},
                               {"test/accuracy", 1'000'000'000'000LL, 0.909, 1700000002.0},
                               {"train/grad_norm", -3, 1e30, 1700000003.0}};
  for (size_t i = 0; i < 5; ++i) {
    const Event& e = events[i + 1];
    SCOPED_TRACE("event " + std::to_string(i + 1));
    EXPECT_EQ(e.file_version, "");
    EXPECT_EQ(e.step, expected[i].step);
    EXPECT_EQ(e.wall_time, expected[i].wall_time);  // a double, bit for bit
    ASSERT_EQ(e.values.size(), 1u);
    EXPECT_EQ(e.values[0].tag, expected[i].tag);
    ASSERT_TRUE(e.values[0].has_simple_value);
    EXPECT_EQ(e.values[0].simple_value, static_cast<float>(expected[i].value));
  }
}

TEST(TensorBoardWriter, TextCarriesTheTextPluginsTensor) {
  TempDir tmp;
  std::string path;
  {
    TensorBoardWriter tb(tmp.str());
    path = tb.path();
    tb.text("config", 0, "model:\n  mixer: bla\n", 1700000000.0);
  }
  const std::vector<Event> events = read_events(path);
  ASSERT_EQ(events.size(), 2u);
  ASSERT_EQ(events[1].values.size(), 1u);
  const SummaryValue& v = events[1].values[0];
  EXPECT_EQ(v.tag, "config");
  EXPECT_FALSE(v.has_simple_value);
  // TensorProto: dtype DT_STRING (7), a rank-0 shape, the text in string_val.
  int64_t dtype = -1;
  std::vector<std::string> strings;
  for (const Field& f : parse_message(v.tensor)) {
    if (f.number == 1) dtype = static_cast<int64_t>(f.scalar);
    if (f.number == 2) {
      EXPECT_TRUE(parse_message(f.bytes).empty()) << "shape has dimensions";
    }
    if (f.number == 8) strings.push_back(f.bytes);
  }
  EXPECT_EQ(dtype, 7);
  EXPECT_EQ(strings, std::vector<std::string>{"model:\n  mixer: bla\n"});
  // SummaryMetadata: plugin_data.plugin_name "text", data_class TENSOR (2).
  std::string plugin_name;
  int64_t data_class = -1;
  for (const Field& f : parse_message(v.metadata)) {
    if (f.number == 1) {
      for (const Field& p : parse_message(f.bytes)) {
        if (p.number == 1) plugin_name = p.bytes;
      }
    }
    if (f.number == 4) data_class = static_cast<int64_t>(f.scalar);
  }
  EXPECT_EQ(plugin_name, "text");
  EXPECT_EQ(data_class, 2);
}

// A person watching with TensorBoard sees each step once it is flushed,
// while the run goes on.
TEST(TensorBoardWriter, FlushedStepsAreReadableWhileWriting) {
  TempDir tmp;
  TensorBoardWriter tb(tmp.str());
  EXPECT_EQ(read_events(tb.path()).size(), 1u);  // the file version, at once
  tb.scalar("train/loss", 1, 2.0);
  EXPECT_EQ(read_events(tb.path()).size(), 1u);  // queued, not written
  tb.flush();
  const std::vector<Event> events = read_events(tb.path());
  ASSERT_EQ(events.size(), 2u);
  ASSERT_EQ(events[1].values.size(), 1u);
  EXPECT_EQ(events[1].values[0].simple_value, 2.0f);
  EXPECT_NEAR(events[1].wall_time, bla::train::unix_time_now(), 60.0);
}

// A resumed run, started within the same second: a second file, both whole.
TEST(TensorBoardWriter, EachWriterGetsItsOwnFile) {
  TempDir tmp;
  {
    TensorBoardWriter first(tmp.str());
    first.scalar("train/loss", 1, 1.0);
    TensorBoardWriter second(tmp.str());
    second.scalar("train/loss", 1, 0.5);
    EXPECT_NE(first.path(), second.path());
  }
  const std::vector<std::string> files = event_files(tmp.str());
  ASSERT_EQ(files.size(), 2u);
  for (const auto& file : files) EXPECT_EQ(read_events(file).size(), 2u) << file;
}

TEST(TensorBoardWriter, DamagedRecordsFailTheirCrc) {
  TempDir tmp;
  std::string path;
  {
    TensorBoardWriter tb(tmp.str());
    path = tb.path();
    tb.scalar("train/loss", 1, 1.0, 1700000000.0);
    tb.scalar("train/loss", 2, 0.5, 1700000001.0);
  }
  const std::string bytes = util::read_file(path);
  const Records whole = read_records(bytes);
  ASSERT_EQ(whole.error, "");
  ASSERT_EQ(whole.data.size(), 3u);
  const size_t last_record = bytes.size() - (12 + whole.data[2].size() + 4);

  // Cut anywhere inside the last record's data or CRC: the records before it
  // still read, the last one fails its data CRC.
  for (size_t cut = last_record + 12; cut < bytes.size(); ++cut) {
    const Records r = read_records(bytes.substr(0, cut));
    EXPECT_EQ(r.error, "data crc mismatch") << "cut at " << cut;
    EXPECT_EQ(r.data.size(), 2u) << "cut at " << cut;
  }
  // Cut inside its header: reported as such.
  EXPECT_EQ(read_records(bytes.substr(0, last_record + 5)).error, "truncated header");

  // One flipped bit in the data, then in the length.
  std::string flipped = bytes;
  flipped[last_record + 12 + 3] ^= 0x10;
  EXPECT_EQ(read_records(flipped).error, "data crc mismatch");
  flipped = bytes;
  flipped[last_record] ^= 0x01;
  EXPECT_EQ(read_records(flipped).error, "length crc mismatch");
}

TEST(TensorBoardWriter, UncreatableFolderIsNamedInTheError) {
  TempDir tmp;
  util::write_file_atomically(tmp / "file", "x");
  try {
    TensorBoardWriter tb(tmp / "file/run");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(tmp / "file"), std::string::npos) << e.what();
  }
}
