// tj_extern.h: helpers for the CUDA kernels of extern steps (tracejit/codegen/cuda_extern.py):
// the error flag, scatter-add atomics for every storage type, integer powers, and the
// argmax/argmin comparison. Each reproduces the numpy reference of its primitive
// (tracejit/primitives). TJ_DEV functions only; compiles under nvcc and under -DTJ_EMULATE.
#pragma once
#include "tj_cuda.h"
#ifndef TJ_EMULATE
#include <string.h>  // memcpy (device code too)
#endif

// -- the error flag: the first int of a step's scratch, zeroed by the runtime ---------------------
// Set on bad input (an index out of bounds, an integer division by zero); the runtime then runs
// the step's numpy reference on the host, which raises the error the CPU backend gives.
TJ_DEV void tj_flag_error(char* scratch) { *(volatile int*)scratch = 1; }

// -- scatter-add: out[i] += v, atomically (duplicate indices accumulate) --------------------------
TJ_DEV void tj_atomic_add(float* p, float v) { atomicAdd(p, v); }
TJ_DEV void tj_atomic_add(double* p, double v) { atomicAdd(p, v); }
TJ_DEV void tj_atomic_add(int32_t* p, int32_t v) { atomicAdd((int*)p, (int)v); }
TJ_DEV void tj_atomic_add(int64_t* p, int64_t v) {  // wraps like numpy: two's complement
  atomicAdd((unsigned long long*)p, (unsigned long long)v);
}

// values narrower than 32 bits: a compare-and-swap loop on the aligned 32-bit word holding them
// (device buffers are at least 4-byte aligned, so the word lies inside the allocation)
TJ_DEV int8_t tj_narrow_sum(int8_t a, int8_t b) { return (int8_t)(uint8_t)((uint32_t)a + (uint32_t)b); }
TJ_DEV uint8_t tj_narrow_sum(uint8_t a, uint8_t b) { return (uint8_t)((uint32_t)a + (uint32_t)b); }
TJ_DEV int16_t tj_narrow_sum(int16_t a, int16_t b) {
  return (int16_t)(uint16_t)((uint32_t)a + (uint32_t)b);
}
// float16 + float16 rounds the float32 sum to half, like numpy's half loops
TJ_DEV __half tj_narrow_sum(__half a, __half b) { return tj_f2h(tj_h2f(a) + tj_h2f(b)); }

template <typename T> TJ_DEV void tj_atomic_add_narrow(T* p, T v) {
  const unsigned long long addr = (unsigned long long)p;
  unsigned int* word = (unsigned int*)(addr & ~3ull);
  const unsigned int shift = (unsigned int)(addr & 3ull) * 8u;
  const unsigned int mask = (sizeof(T) == 1 ? 0xFFu : 0xFFFFu) << shift;
  unsigned int old = *(volatile unsigned int*)word, assumed;
  do {
    assumed = old;
    const unsigned int bits = (assumed & mask) >> shift;
    T cur;
    memcpy(&cur, &bits, sizeof(T));  // (little-endian: the low bytes)
    const T sum = tj_narrow_sum(cur, v);
    unsigned int nb = 0;
    memcpy(&nb, &sum, sizeof(T));
    old = atomicCAS(word, assumed, (assumed & ~mask) | (nb << shift));
  } while (old != assumed);
}
TJ_DEV void tj_atomic_add(int8_t* p, int8_t v) { tj_atomic_add_narrow(p, v); }
TJ_DEV void tj_atomic_add(uint8_t* p, uint8_t v) { tj_atomic_add_narrow(p, v); }
TJ_DEV void tj_atomic_add(int16_t* p, int16_t v) { tj_atomic_add_narrow(p, v); }
TJ_DEV void tj_atomic_add(__half* p, __half v) { tj_atomic_add_narrow(p, v); }

// -- integer power (the `pow` reference for integers) ---------------------------------------------
// a ** b wraps like numpy (square-and-multiply in the unsigned type U of T's width: a^b mod
// 2^bits whatever the order); a negative exponent gives PyTorch's answer: 1 ** b == 1,
// (-1) ** b == +-1 by parity, anything else 0.
// (tj_upow: unsigned types, whose exponents are never negative)
template <typename T, typename U> TJ_DEV T tj_upow(T a, T b) {
  U r = 1, base = (U)a, e = (U)b;
  while (e) {
    if (e & U(1)) r = (U)(r * base);
    base = (U)(base * base);
    e >>= 1;
  }
  return (T)r;
}
template <typename T, typename U> TJ_DEV T tj_ipow(T a, T b) {
  if (b < T(0)) {
    if (a == T(1)) return T(1);
    if (a == T(-1)) return ((U)(T(0) - b) & U(1)) ? T(-1) : T(1);
    return T(0);
  }
  return tj_upow<T, U>(a, b);
}

// -- argmax / argmin: does (a at ia) beat (b at ib)? -----------------------------------------------
// numpy's rule: the first index of the extreme, and NaN beats every number (the first NaN wins).
// An index < 0 marks an empty candidate, which never wins.
template <bool MAX, typename T> TJ_DEV bool tj_arg_wins(T a, long long ia, T b, long long ib) {
  if (ia < 0) return false;
  if (ib < 0) return true;
  const bool an = a != a, bn = b != b;
  if (an || bn) return an && (!bn || ia < ib);
  if (MAX ? (a > b) : (a < b)) return true;
  return a == b && ia < ib;
}
