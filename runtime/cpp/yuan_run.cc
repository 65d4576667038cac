// yuan_run: run a Yuan-compiled model with the TVM runtime alone (no Python), the C++ counterpart of
// `yuan run`. It reads the sidecar MODEL.json for the input names, shapes and dtypes, feeds .npy
// inputs, prints each output and optionally writes it as OUTDIR/<name>.npy.
//
//   yuan_run MODEL.so -i x.npy [-i y.npy ...] [-o OUTDIR] [--repeat N]
//   yuan_run --system-lib MODEL.json -i x.npy     (model archive NAME.a linked into this program)
//
// The library holds a Relax VM executable: "vm_load_executable" gives the VM module,
// "vm_initialization"(device type, device id, allocator) binds it to the CPU, and the sidecar's
// "entry" ("main") runs the model. Errors are one line on stderr and exit status 1.
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "npy.h"

namespace ffi = tvm::ffi;

namespace {

constexpr int kPooledAllocator = 2;   // the VM's allocator kinds: 1 naive, 2 pooled (Python's default)

struct Spec {
  std::string name, dtype;
  std::vector<int64_t> shape;
};

struct Options {
  std::string model, out_dir;
  std::vector<std::string> inputs;
  bool system_lib = false;
  int repeat = 0;
};

// 64-byte aligned host memory: TVM's kernels assume aligned tensors.
struct AlignedCPUAlloc {
  void AllocData(DLTensor* t) {
    size_t bytes = ffi::GetDataSize(*t);
    t->data = std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64));
    if (t->data == nullptr) throw std::runtime_error("out of memory");
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

std::string sidecar_path(const std::string& model) {
  size_t slash = model.find_last_of('/');
  size_t dot = model.find_last_of('.');
  return (dot == std::string::npos || (slash != std::string::npos && dot < slash) ? model
                                                                                   : model.substr(0, dot)) +
         ".json";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<Spec> read_specs(const ffi::json::Object& meta, const char* key, const std::string& path) {
  if (meta.count(key) == 0) throw std::runtime_error("sidecar '" + path + "' has no '" + key + "'");
  std::vector<Spec> specs;
  for (const ffi::Any& item : meta.at(key).cast<ffi::json::Array>()) {
    auto obj = item.cast<ffi::json::Object>();
    Spec s{obj.at("name").cast<ffi::String>(), obj.at("dtype").cast<ffi::String>(), {}};
    for (const ffi::Any& d : obj.at("shape").cast<ffi::json::Array>()) s.shape.push_back(d.cast<int64_t>());
    specs.push_back(s);
  }
  return specs;
}

ffi::json::Object read_sidecar(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read the sidecar '" + path + "' (written next to the model)");
  std::stringstream text;
  text << f.rdbuf();
  ffi::String error;
  ffi::json::Value v = ffi::json::Parse(text.str(), &error);
  if (!error.empty()) throw std::runtime_error("sidecar '" + path + "' is not valid JSON: " + std::string(error));
  auto meta = v.cast<ffi::json::Object>();
  if (meta.count("format") == 0 || meta.at("format").cast<ffi::String>() != "yuan-tvm")
    throw std::runtime_error("'" + path + "' is not Yuan model metadata");
  return meta;
}

ffi::Tensor load_input(const std::string& path, const Spec& spec) {
  npy::Array a = npy::load(path);
  const npy::DType& want = npy::by_name(spec.dtype);
  if (a.shape != spec.shape)
    throw std::runtime_error("input '" + spec.name + "' (" + path + "): expected shape " +
                             shape_text(spec.shape) + ", got " + shape_text(a.shape));
  if (a.descr != want.descr)
    throw std::runtime_error("input '" + spec.name + "' (" + path + "): expected dtype " + spec.dtype +
                             " ('" + want.descr + "'), got '" + a.descr + "'");
  ffi::Tensor t = ffi::Tensor::FromNDAlloc(AlignedCPUAlloc(), ffi::ShapeView(a.shape.data(), a.shape.size()),
                                           want.dl, DLDevice{kDLCPU, 0});
  std::memcpy(t.data_ptr(), a.data.data(), a.data.size());
  return t;
}

std::string safe_file_name(std::string name) {
  for (char& c : name)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
  return name;
}

template <typename T>
double as_double(const void* data, int64_t i) {
  return static_cast<double>(static_cast<const T*>(data)[i]);
}

// Element i of a host tensor as a double; false for a type without a C++ host type (float16).
bool element(const ffi::Tensor& t, int64_t i, double* out) {
  const void* d = t.data_ptr();
  DLDataType ty = t.dtype();
  int bits = ty.bits;
  if (ty.code == kDLFloat && (bits == 32 || bits == 64))
    *out = bits == 32 ? as_double<float>(d, i) : as_double<double>(d, i);
  else if (ty.code == kDLInt && bits <= 64)
    *out = bits == 8 ? as_double<int8_t>(d, i) : bits == 16 ? as_double<int16_t>(d, i)
         : bits == 32 ? as_double<int32_t>(d, i) : as_double<int64_t>(d, i);
  else if ((ty.code == kDLUInt || ty.code == kDLBool) && bits <= 64)
    *out = bits == 8 ? as_double<uint8_t>(d, i) : bits == 16 ? as_double<uint16_t>(d, i)
         : bits == 32 ? as_double<uint32_t>(d, i) : as_double<uint64_t>(d, i);
  else
    return false;
  return true;
}

// "output: float32[2, 5]  argmax per row: [3, 3]  first: -0.569398 -0.786312 ..."
void print_output(const std::string& name, const ffi::Tensor& t) {
  const npy::DType& dt = npy::by_dl(t.dtype());
  std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
  std::printf("%s: %s%s", name.c_str(), dt.name, shape_text(shape).c_str());
  int64_t n = t.numel();
  double probe;
  bool printable = n > 0 && !shape.empty() && element(t, 0, &probe);
  auto value = [&](int64_t i) {
    double v = 0;
    element(t, i, &v);
    return v;
  };
  if (printable) {
    int64_t row = n / shape[0];
    std::printf("  argmax per row: [");
    for (int64_t r = 0; r < shape[0]; ++r) {
      int64_t best = 0;
      for (int64_t i = 1; i < row; ++i) best = value(r * row + i) > value(r * row + best) ? i : best;
      std::printf("%s%lld", r ? ", " : "", static_cast<long long>(best));
    }
    std::printf("]  first:");
    for (int64_t i = 0; i < std::min<int64_t>(n, 6); ++i) std::printf(" %g", value(i));
  }
  std::printf("\n");
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "-i" || a == "--input") o.inputs.push_back(next());
    else if (a == "-o" || a == "--output") o.out_dir = next();
    else if (a == "--repeat") o.repeat = std::stoi(next());
    else if (a == "--system-lib") o.system_lib = true;
    else if (a == "-h" || a == "--help") {
      std::printf("usage: yuan_run MODEL.so -i INPUT.npy [-i ...] [-o OUTDIR] [--repeat N]\n"
                  "       yuan_run --system-lib MODEL.json -i INPUT.npy ...  (model archive linked in)\n");
      std::exit(0);
    } else if (!a.empty() && a[0] == '-') throw std::runtime_error("unknown option " + a + " (see --help)");
    else if (o.model.empty()) o.model = a;
    else throw std::runtime_error("unexpected argument '" + a + "' (one MODEL; inputs go after -i)");
  }
  if (o.model.empty()) throw std::runtime_error("no MODEL given (see --help)");
  return o;
}

// The library's module: dlopen'ed from MODEL.so, or the archive linked into this program.
ffi::Module load_library(const Options& o, const ffi::json::Object& meta) {
  if (!o.system_lib) {   // dlopen searches the library path for a name without '/': pass a full path
    char* full = realpath(o.model.c_str(), nullptr);
    std::string path = full ? full : o.model;
    std::free(full);
    return ffi::Module::LoadFromFile(path);
  }
  std::string prefix;
  if (meta.count("system_lib")) {
    auto sys = meta.at("system_lib").cast<ffi::json::Object>();
    if (sys.count("prefix")) prefix = std::string(sys.at("prefix").cast<ffi::String>());
  }
  return ffi::Function::GetGlobalRequired("ffi.SystemLib")(prefix).cast<ffi::Module>();
}

int run(const Options& o) {
  if (!o.system_lib && !std::ifstream(o.model))
    throw std::runtime_error("model library '" + o.model + "' does not exist");
  std::string meta_path = o.system_lib && o.model.size() > 5 && o.model.substr(o.model.size() - 5) == ".json"
                              ? o.model
                              : sidecar_path(o.model);
  ffi::json::Object meta = read_sidecar(meta_path);
  std::vector<Spec> in_specs = read_specs(meta, "inputs", meta_path);
  std::vector<Spec> out_specs = read_specs(meta, "outputs", meta_path);
  if (o.inputs.size() != in_specs.size())
    throw std::runtime_error("the model has " + std::to_string(in_specs.size()) + " input(s); got " +
                             std::to_string(o.inputs.size()) + " -i file(s)");
  std::string entry = meta.count("entry") ? std::string(meta.at("entry").cast<ffi::String>()) : "main";

  ffi::Module lib = load_library(o, meta);
  ffi::Optional<ffi::Function> load_exec = lib->GetFunction("vm_load_executable");
  if (!load_exec) throw std::runtime_error("'" + o.model + "' holds no Relax VM executable");
  ffi::Module vm = (*load_exec)().cast<ffi::Module>();
  vm->GetFunction("vm_initialization").value()(static_cast<int>(kDLCPU), 0, kPooledAllocator);
  ffi::Function main_fn = vm->GetFunction(entry).value();

  std::vector<ffi::Tensor> inputs;
  for (size_t i = 0; i < in_specs.size(); ++i) inputs.push_back(load_input(o.inputs[i], in_specs[i]));
  std::vector<ffi::AnyView> args(inputs.begin(), inputs.end());
  ffi::Any result;
  main_fn.CallPacked(args.data(), static_cast<int32_t>(args.size()), &result);

  std::vector<ffi::Tensor> outputs;
  if (auto t = result.as<ffi::Tensor>()) outputs.push_back(*t);
  else
    for (const ffi::Any& item : result.cast<ffi::Array<ffi::Any>>()) outputs.push_back(item.cast<ffi::Tensor>());
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::string name = i < out_specs.size() ? out_specs[i].name : "output" + std::to_string(i);
    print_output(name, outputs[i]);
    if (!o.out_dir.empty()) {
      std::vector<int64_t> shape(outputs[i].shape().begin(), outputs[i].shape().end());
      std::string path = o.out_dir + "/" + safe_file_name(name) + ".npy";
      npy::save(path, npy::by_dl(outputs[i].dtype()).descr, shape, outputs[i].data_ptr(),
                ffi::GetDataSize(*outputs[i].GetDLTensorPtr()));
      std::printf("wrote %s\n", path.c_str());
    }
  }
  if (o.repeat > 0) {   // wall time per call, median of N (after the run above as warm-up)
    std::vector<double> ms;
    for (int r = 0; r < o.repeat; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      main_fn.CallPacked(args.data(), static_cast<int32_t>(args.size()), &result);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("median %.3f ms over %d runs\n", ms[ms.size() / 2], o.repeat);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const ffi::Error& e) {   // TVM errors: kind and the first line of the message
    std::string msg = e.message();
    std::fprintf(stderr, "yuan_run: error: %s: %s\n", e.kind().c_str(), msg.substr(0, msg.find('\n')).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "yuan_run: error: %s\n", e.what());
  }
  return 1;
}
