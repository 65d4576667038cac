// Minimal .npy reader/writer (format versions 1-3, little-endian, C order): enough to feed a model
// with arrays saved by numpy.save and to write its outputs back for numpy.load.
#pragma once

#include <dlpack/dlpack.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace npy {

struct Array {
  std::string descr;            // NumPy type string, e.g. "<f4", "|i1"
  std::vector<int64_t> shape;
  std::vector<char> data;       // raw bytes, C order
};

// NumPy dtype name (the sidecar's "dtype") <-> .npy descr <-> DLPack type.
struct DType {
  const char* name;
  const char* descr;
  DLDataType dl;
};

inline const std::vector<DType>& dtypes() {
  static const std::vector<DType> table = {
      {"float32", "<f4", {kDLFloat, 32, 1}}, {"float64", "<f8", {kDLFloat, 64, 1}},
      {"float16", "<f2", {kDLFloat, 16, 1}}, {"int8", "|i1", {kDLInt, 8, 1}},
      {"uint8", "|u1", {kDLUInt, 8, 1}},     {"int16", "<i2", {kDLInt, 16, 1}},
      {"uint16", "<u2", {kDLUInt, 16, 1}},   {"int32", "<i4", {kDLInt, 32, 1}},
      {"uint32", "<u4", {kDLUInt, 32, 1}},   {"int64", "<i8", {kDLInt, 64, 1}},
      {"uint64", "<u8", {kDLUInt, 64, 1}},   {"bool", "|b1", {kDLBool, 8, 1}},
  };
  return table;
}

inline const DType& by_name(const std::string& name) {
  for (const auto& d : dtypes())
    if (name == d.name) return d;
  throw std::runtime_error("unsupported dtype '" + name + "'");
}

inline const DType& by_dl(DLDataType t) {
  for (const auto& d : dtypes())
    if (d.dl.code == t.code && d.dl.bits == t.bits && d.dl.lanes == t.lanes) return d;
  throw std::runtime_error("unsupported output dtype (code " + std::to_string(t.code) + ", " +
                           std::to_string(t.bits) + " bits)");
}

// The value of `key` in the header dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".
inline std::string header_value(const std::string& header, const std::string& key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) throw std::runtime_error("no '" + key + "' in the .npy header");
  size_t start = header.find(':', k) + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  char open = header[start];
  char close = open == '(' ? ')' : open == '\'' ? '\'' : ',';
  size_t end = header.find(close, start + 1);
  if (end == std::string::npos) throw std::runtime_error("bad .npy header");
  return header.substr(open == '(' || open == '\'' ? start + 1 : start,
                       end - start - (open == '(' || open == '\'' ? 1 : 0));
}

inline Array load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open '" + path + "'");
  char magic[8];
  if (!f.read(magic, 8) || std::string(magic, 6) != "\x93NUMPY")
    throw std::runtime_error("'" + path + "' is not a .npy file");
  uint32_t header_len = 0;
  unsigned char len_bytes[4] = {0, 0, 0, 0};
  f.read(reinterpret_cast<char*>(len_bytes), magic[6] == 1 ? 2 : 4);
  for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  std::string header(header_len, '\0');
  f.read(&header[0], header_len);
  Array a;
  a.descr = header_value(header, "descr");
  if (header_value(header, "fortran_order").find("True") != std::string::npos)
    throw std::runtime_error("'" + path + "' is in Fortran order; save a C-ordered array");
  if (a.descr[0] == '>') throw std::runtime_error("'" + path + "' is big-endian");
  std::stringstream dims(header_value(header, "shape"));
  std::string dim;
  size_t count = 1;
  while (std::getline(dims, dim, ','))
    if (dim.find_first_of("0123456789") != std::string::npos) {
      a.shape.push_back(std::stoll(dim));
      count *= static_cast<size_t>(a.shape.back());
    }
  size_t item = std::stoul(a.descr.substr(2));
  a.data.resize(count * item);
  if (!f.read(a.data.data(), static_cast<std::streamsize>(a.data.size())))
    throw std::runtime_error("'" + path + "' is truncated");
  return a;
}

inline void save(const std::string& path, const std::string& descr, const std::vector<int64_t>& shape,
                 const void* data, size_t nbytes) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 2);   // "(2, 5)"; a 1-d shape keeps "(5,)"
  if (shape.size() == 1) dims.resize(dims.size() - 1);
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";   // data starts 64-byte aligned
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot write '" + path + "'");
  uint16_t len = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  f.write(len_bytes, 2);
  f << header;
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(nbytes));
}

}  // namespace npy
