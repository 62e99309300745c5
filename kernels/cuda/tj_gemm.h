// tj_gemm.h: device helpers of the tiled matrix products that tracejit/codegen/cuda_gemm.py
// renders (issue 8). Included after tj_cuda.h; compiles under nvcc and, with -DTJ_EMULATE, as
// plain C++ for the host emulation (tj_emu.h).
#pragma once

// Full unrolling of a loop with a compile-time trip count (the register tiles are arrays indexed
// by such loops: unrolled, they stay in registers). The host compiler needs no hint.
#ifdef TJ_EMULATE
#define TJ_UNROLL
#else
#define TJ_UNROLL _Pragma("unroll")
#endif

// The element type the shared tiles are declared with (TJ_SHARED): 16 bytes, 16-byte aligned,
// so that nvcc aligns the arrays for the vector loads below (a float array is only aligned to 4
// bytes); the kernel reads and writes them through a float or double pointer.
struct alignas(16) tj_gemm_chunk { unsigned char bytes[16]; };

// 16 bytes of shared memory at a 16-byte aligned address into registers: 4 floats or 2 doubles
// (one ld.shared.v4 / .v2 instead of four or two scalar loads). The emulation copies elements.
TJ_DEV void tj_gemm_lds(const float* p, float* r) {
#ifdef TJ_EMULATE
  r[0] = p[0]; r[1] = p[1]; r[2] = p[2]; r[3] = p[3];
#else
  const float4 v = *reinterpret_cast<const float4*>(p);
  r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
#endif
}
TJ_DEV void tj_gemm_lds(const double* p, double* r) {
#ifdef TJ_EMULATE
  r[0] = p[0]; r[1] = p[1];
#else
  const double2 v = *reinterpret_cast<const double2*>(p);
  r[0] = v.x; r[1] = v.y;
#endif
}
