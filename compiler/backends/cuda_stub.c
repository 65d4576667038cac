/* Yuan: stand-in for the NVIDIA driver library (libcuda.so.1) on a machine WITHOUT a GPU driver.
   TVM's libtvm_runtime_cuda.so links libcuda.so.1; without it TVM silently skips its CUDA runtime and
   never runs nvcc.  This stub lets that library load so TVM can compile + export CUDA modules.
   Every driver call reports CUDA_ERROR_NO_DEVICE (100).  Built on demand by compiler/cuda_support.py
   into a cache directory; never used when a real libcuda.so.1 is present. */
#define YUAN_NO_DEVICE 100
#define STUB(name) int name(void) { return YUAN_NO_DEVICE; }
STUB(cuInit)
STUB(cuDriverGetVersion)
STUB(cuDeviceGetCount)
STUB(cuDeviceGetName)
STUB(cuModuleLoadData)
STUB(cuModuleUnload)
STUB(cuModuleGetFunction)
STUB(cuModuleGetGlobal_v2)
STUB(cuFuncSetAttribute)
STUB(cuLaunchKernel)
STUB(cuLaunchKernelEx)
STUB(cuTensorMapEncodeTiled)
STUB(cuGetProcAddress)
STUB(cuGetProcAddress_v2)
static const char* yuan_stub_msg = "CUDA_ERROR_NO_DEVICE (yuan stub libcuda: no GPU driver here)";
int cuGetErrorName(int err, const char** s) { (void)err; *s = yuan_stub_msg; return 0; }
int cuGetErrorString(int err, const char** s) { (void)err; *s = yuan_stub_msg; return 0; }
