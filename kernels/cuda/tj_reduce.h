// tj_reduce.h: warp and block reductions for the CUDA C of tracejit/codegen/cuda_reduce.py.
//
// Input: a thread's partial value and the combining functor the generated code defines for its
// (operation, dtype) (an object with `T operator()(T, T) const`, built from codegen's
// `combine()`, so integer wrapping and NaN-propagating max/min are those of the rest of the
// codegen). Output: the combined value, in every participating thread.
//
// Invariants the callers keep (the host emulation checks them):
// * every lane of a warp calls a warp function (shuffles are warp barriers);
// * every thread of the block calls tj_block_allreduce (it holds two __syncthreads());
// * blockDim.x is a power of two and a multiple of 32.
// The combining order is fixed by the lane numbers alone, so results are the same run to run.
// Requires tj_cuda.h (included first by the generated source).
#pragma once

// a member function usable on the device (TJ_DEV is `static`, which members cannot be)
#define TJ_DEV_METHOD __device__ __forceinline__

// -- shuffles of every register type (8/16-bit values and bool travel as a 32-bit int) ---------
TJ_DEV int tj_shfl_xor_i32(int v, int k) { return __shfl_xor_sync(0xffffffffu, v, k); }
TJ_DEV float tj_shfl_xor(float v, int k) { return __shfl_xor_sync(0xffffffffu, v, k); }
TJ_DEV double tj_shfl_xor(double v, int k) { return __shfl_xor_sync(0xffffffffu, v, k); }
TJ_DEV bool tj_shfl_xor(bool v, int k) { return tj_shfl_xor_i32(v ? 1 : 0, k) != 0; }
TJ_DEV int8_t tj_shfl_xor(int8_t v, int k) { return (int8_t)tj_shfl_xor_i32((int)v, k); }
TJ_DEV uint8_t tj_shfl_xor(uint8_t v, int k) { return (uint8_t)tj_shfl_xor_i32((int)v, k); }
TJ_DEV int16_t tj_shfl_xor(int16_t v, int k) { return (int16_t)tj_shfl_xor_i32((int)v, k); }
TJ_DEV int32_t tj_shfl_xor(int32_t v, int k) { return tj_shfl_xor_i32(v, k); }
TJ_DEV int64_t tj_shfl_xor(int64_t v, int k) {
  return (int64_t)__shfl_xor_sync(0xffffffffu, (long long)v, k);
}

// -- warp level ----------------------------------------------------------------------------------
// Combines the values of each aligned group of `width` lanes (a power of two <= 32); every lane
// of the group ends with the group's value (butterfly: lanes of a pair compute op(a, b) and
// op(b, a), equal for the commutative operations reduced here).
template <typename T, typename Op> TJ_DEV T tj_warp_allreduce(T v, Op op, int width) {
  for (int k = width >> 1; k >= 1; k >>= 1) v = op(v, tj_shfl_xor(v, k));
  return v;
}

// Combines the lanes of a warp that are equal modulo `width` (a power of two <= 32): lane l
// ends with the combination of lanes l % width, l % width + width, ... (columns of a warp laid
// out as (32 / width) rows of `width` outputs).
template <typename T, typename Op> TJ_DEV T tj_warp_fold_rows(T v, Op op, int width) {
  for (int k = 16; k >= width; k >>= 1) v = op(v, tj_shfl_xor(v, k));
  return v;
}

// -- block level ---------------------------------------------------------------------------------
// Every thread of the block gets the combination of all the block's values. `part` is shared
// memory for blockDim.x / 32 values (reusable right after the call: the first barrier keeps a
// later call from overwriting values an earlier one is still reading).
template <typename T, typename Op> TJ_DEV T tj_block_allreduce(T v, Op op, T* part) {
  const int lane = (int)(threadIdx.x & 31u), nw = (int)(blockDim.x >> 5);
  v = tj_warp_allreduce(v, op, 32);
  __syncthreads();
  if (lane == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  // each group of nw lanes reads all nw warp values (every group the same ones, in the same
  // lane order), so every lane of every warp ends with the same value
  v = part[lane & (nw - 1)];
  return tj_warp_allreduce(v, op, nw);
}
