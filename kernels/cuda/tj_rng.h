// tj_rng.h: the counter-based generator of the `random_bits` primitive on the device (issue 8).
//
// Philox-4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3",
// SC'11), bit-identical to tracejit/primitives/random.py: the 64-bit seed is the key (low word
// k0, high word k1), the 64-bit counter fills words c0 (low) and c1 (high), c2 = c3 = 0.
// Each round multiplies c0 and c2 by the Philox constants, mixes the high halves with the other
// words and the round key, and bumps the key by the Weyl constants.
#pragma once
#include "tj_cuda.h"

TJ_DEV void tj_philox4x32_10(unsigned long long seed, unsigned long long counter,
                             unsigned int out[4]) {
  unsigned int k0 = (unsigned int)seed, k1 = (unsigned int)(seed >> 32);
  unsigned int c0 = (unsigned int)counter, c1 = (unsigned int)(counter >> 32), c2 = 0u, c3 = 0u;
  for (int r = 0; r < 10; ++r) {
    const unsigned long long p0 = 0xD2511F53ull * (unsigned long long)c0;
    const unsigned long long p1 = 0xCD9E8D57ull * (unsigned long long)c2;
    const unsigned int hi0 = (unsigned int)(p0 >> 32), lo0 = (unsigned int)p0;
    const unsigned int hi1 = (unsigned int)(p1 >> 32), lo1 = (unsigned int)p1;
    const unsigned int n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}
