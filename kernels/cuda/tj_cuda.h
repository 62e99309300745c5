// tj_cuda.h: helpers for the CUDA C that tracejit/codegen/cuda.py generates (issue 8).
//
// Conventions of the generated code:
// * indices and extents are 64-bit (`long long`);
// * bool is a `bool` in registers and an `unsigned char` (0/1) in memory, like the CPU backend;
// * float16 is stored as `__half` and computed in float32;
// * every helper reproduces the numpy reference of the primitive (tracejit/primitives), the same
//   semantics codegen/lower.py gives the CPU backend: NaN-propagating maximum/minimum, Python's
//   floor division and remainder, saturating float -> integer conversion (NaN -> 0).
#pragma once
#ifdef TJ_EMULATE
#include "tj_emu.h"  // the host emulation: this code compiled as C++ (kernels/cuda/tj_emu.h)
#else
#include <cuda_fp16.h>
#include <stdint.h>
// a kernel: C linkage, so a runtime finds it by its name (C++ linkage under TJ_BATCH: several
// modules compiled as one translation unit, each in its own namespace, as the tests do)
#ifdef TJ_BATCH
#define TJ_KERNEL __global__
#else
#define TJ_KERNEL extern "C" __global__
#endif
// `count` elements of T in the block's shared memory, at `byte_offset` of the block's shared
// bytes (the emulation lays them out by it; the offsets of one kernel's arrays must not overlap)
#define TJ_SHARED(T, name, count, byte_offset) __shared__ __align__(16) T name[count]
// nothing under nvcc; the emulation's C entry point launching kernel `name`
#define TJ_EMU_ENTRY(name)
#endif

#define TJ_DEV static __device__ __forceinline__

// -- special constants ------------------------------------------------------------------------
#define TJ_INF_F __int_as_float(0x7f800000)
#define TJ_NAN_F __int_as_float(0x7fc00000)
#define TJ_INF_D __longlong_as_double(0x7ff0000000000000LL)
#define TJ_NAN_D __longlong_as_double(0x7ff8000000000000LL)

// -- float16 storage ---------------------------------------------------------------------------
TJ_DEV float tj_h2f(__half h) { return __half2float(h); }
TJ_DEV __half tj_f2h(float f) { return __float2half_rn(f); }
// a float32 rounded to half precision, kept in a float32 register
TJ_DEV float tj_round_half(float f) { return __half2float(__float2half_rn(f)); }

// -- maximum / minimum: NaN if either operand is NaN (np.maximum, np.max) ---------------------
TJ_DEV float tj_max(float a, float b) { return (a > b || a != a) ? a : b; }
TJ_DEV float tj_min(float a, float b) { return (a < b || a != a) ? a : b; }
TJ_DEV double tj_max(double a, double b) { return (a > b || a != a) ? a : b; }
TJ_DEV double tj_min(double a, double b) { return (a < b || a != a) ? a : b; }
template <typename T> TJ_DEV T tj_imax(T a, T b) { return a > b ? a : b; }
template <typename T> TJ_DEV T tj_imin(T a, T b) { return a < b ? a : b; }

// -- sign (NaN -> 0, as the CPU lowering) ------------------------------------------------------
template <typename T> TJ_DEV T tj_sign(T x) { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)); }

// -- float -> integer: saturating, NaN -> 0 (llvm.fptosi.sat / fptoui.sat) --------------------
template <typename T, typename F> TJ_DEV T tj_f2i(F x, T lo, T hi) {
  if (x != x) return T(0);
  if (x <= (F)lo) return lo;
  if (x >= (F)hi) return hi;
  return (T)x;
}

// -- floor division and remainder with Python/numpy semantics ---------------------------------
// signed integers: rounds toward -inf; x // 0 == x % 0 == 0 (numpy, with a warning);
// MIN // -1 wraps to MIN, MIN % -1 == 0.
// (U is the unsigned type of T's width, so the negation wraps instead of overflowing)
template <typename T, typename U> TJ_DEV T tj_floordiv_s(T a, T b) {
  if (b == T(0)) return T(0);
  if (b == T(-1)) return (T)(U(0) - (U)a);
  T q = a / b;
  if ((a % b != T(0)) && ((a < T(0)) != (b < T(0)))) q = q - T(1);
  return q;
}
template <typename T> TJ_DEV T tj_rem_s(T a, T b) {
  if (b == T(0) || b == T(-1)) return T(0);
  T r = a % b;
  if (r != T(0) && ((r < T(0)) != (b < T(0)))) r = r + b;
  return r;
}
template <typename T> TJ_DEV T tj_floordiv_u(T a, T b) { return b == T(0) ? T(0) : (T)(a / b); }
template <typename T> TJ_DEV T tj_rem_u(T a, T b) { return b == T(0) ? T(0) : (T)(a % b); }

// floats: numpy's npy_divmod
TJ_DEV float tj_rem(float a, float b) {
  float mod = fmodf(a, b);
  if (b == 0.0f) return mod;
  if (mod != 0.0f) { if ((b < 0.0f) != (mod < 0.0f)) mod += b; }
  else mod = copysignf(0.0f, b);
  return mod;
}
TJ_DEV double tj_rem(double a, double b) {
  double mod = fmod(a, b);
  if (b == 0.0) return mod;
  if (mod != 0.0) { if ((b < 0.0) != (mod < 0.0)) mod += b; }
  else mod = copysign(0.0, b);
  return mod;
}
TJ_DEV float tj_floordiv(float a, float b) {
  if (b == 0.0f) return a / b;
  float mod = fmodf(a, b);
  float div = (a - mod) / b;
  if (mod != 0.0f && ((b < 0.0f) != (mod < 0.0f))) div -= 1.0f;
  float fd;
  if (div != 0.0f) { fd = floorf(div); if (div - fd > 0.5f) fd += 1.0f; }
  else fd = copysignf(0.0f, a / b);
  return fd;
}
TJ_DEV double tj_floordiv(double a, double b) {
  if (b == 0.0) return a / b;
  double mod = fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0.0) != (mod < 0.0))) div -= 1.0;
  double fd;
  if (div != 0.0) { fd = floor(div); if (div - fd > 0.5) fd += 1.0; }
  else fd = copysign(0.0, a / b);
  return fd;
}

// -- transcendental helpers -------------------------------------------------------------------
// rsqrt as 1/sqrt (correctly rounded steps, like the CPU backend; CUDA's rsqrtf is approximate)
TJ_DEV float tj_rsqrt(float x) { return 1.0f / sqrtf(x); }
TJ_DEV double tj_rsqrt(double x) { return 1.0 / sqrt(x); }
TJ_DEV float tj_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
TJ_DEV double tj_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

// -- launch geometry ----------------------------------------------------------------------------
TJ_DEV long long tj_thread_index() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
TJ_DEV long long tj_thread_stride() { return (long long)blockDim.x * gridDim.x; }

// -- 16-byte vector loads and stores (vectorized elementwise kernels) ---------------------------
// tj_ldv(d, p): d[0..V) = p[0..V) as one 16-byte load (V = 16 / sizeof(T): float4, double2,
// int4, longlong2; through the read-only cache, ld.global.nc.v4.f32 for float);
// tj_stv(p, s): p[0..V) = s[0..V) as one 16-byte store. `p` must be 16-byte aligned: the code
// generator vectorizes only accesses whose first element is at a multiple of V elements from a
// buffer's start, and buffers are at least 64-byte aligned (256 on a GPU). A misaligned access
// faults on a GPU; the emulation checks and aborts with a message instead of passing by luck.
#ifdef TJ_EMULATE
#define TJ_VEC_CHECK(p)                                                                     \
  do {                                                                                      \
    if ((uintptr_t)(p) % 16) {                                                              \
      fprintf(stderr, "tj_cuda.h: misaligned 16-byte vector access at %p\n", (const void*)(p)); \
      abort();                                                                              \
    }                                                                                       \
  } while (0)
#else
#define TJ_VEC_CHECK(p) ((void)0)
#endif
#define TJ_VEC4(T, VT)                                                                      \
  TJ_DEV void tj_ldv(T* d, const T* p) {                                                    \
    TJ_VEC_CHECK(p);                                                                        \
    const VT v = __ldg(reinterpret_cast<const VT*>(p));                                     \
    d[0] = v.x; d[1] = v.y; d[2] = v.z; d[3] = v.w;                                         \
  }                                                                                         \
  TJ_DEV void tj_stv(T* p, const T* s) {                                                    \
    TJ_VEC_CHECK(p);                                                                        \
    VT v; v.x = s[0]; v.y = s[1]; v.z = s[2]; v.w = s[3];                                   \
    *reinterpret_cast<VT*>(p) = v;                                                          \
  }
#define TJ_VEC2(T, VT)                                                                      \
  TJ_DEV void tj_ldv(T* d, const T* p) {                                                    \
    TJ_VEC_CHECK(p);                                                                        \
    const VT v = __ldg(reinterpret_cast<const VT*>(p));                                     \
    d[0] = (T)v.x; d[1] = (T)v.y;                                                           \
  }                                                                                         \
  TJ_DEV void tj_stv(T* p, const T* s) {                                                    \
    TJ_VEC_CHECK(p);                                                                        \
    VT v; v.x = s[0]; v.y = s[1];                                                           \
    *reinterpret_cast<VT*>(p) = v;                                                          \
  }
TJ_VEC4(float, float4)
TJ_VEC4(int32_t, int4)
TJ_VEC2(double, double2)
TJ_VEC2(int64_t, longlong2)
#undef TJ_VEC4
#undef TJ_VEC2

// Full unrolling of a loop with a compile-time trip count (as tj_gemm.h, identical definition)
#ifndef TJ_UNROLL
#ifdef TJ_EMULATE
#define TJ_UNROLL
#else
#define TJ_UNROLL _Pragma("unroll")
#endif
#endif
