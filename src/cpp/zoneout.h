// Zoneout of the state h (haste's; equations in src/fastrnn/modes.py): in training each unit of
// h keeps its previous value with probability `rate`, drawn per step; at inference h' is its
// expectation. The draws are a hash of (seed, t, b, j), not stored: BPTT, and a checkpointed
// BPTT's recomputed forward, draw them again, the same on any number of threads, and the
// reference (fastrnn.modes.zoneout_uniform) draws the same ones.
#pragma once

#include <cstdint>

#include "tile.h"

namespace fastrnn {

struct Zoneout {
  double rate = 0;  // in [0, 1); 0: none
  uint64_t seed = 0;
  bool on() const { return rate > 0; }
};

// splitmix64's output function (Steele, Lea and Flood 2014) of z + the golden-ratio increment.
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Calls `f(r, c)` for each element of the tile (rows from batch row b0, units from j0) whose
// unit keeps its value at time t.
template <typename F>
void for_each_kept(const Zoneout& z, Index t, Index B, Index b0, Index j0, const Tile& tile, F f) {
  const uint64_t base = splitmix64(z.seed);
  for (Index r = 0; r < tile.rows; ++r) {
    const uint64_t row = (static_cast<uint64_t>(t) * B + static_cast<uint64_t>(b0 + r)) * tile.H;
    for (Index c = 0; c < tile.units; ++c) {
      const uint64_t bits = splitmix64(base + row + static_cast<uint64_t>(j0 + c)) >> 11;
      if (static_cast<double>(bits) * 0x1p-53 < z.rate) f(r, c);
    }
  }
}

// Forward: h_new (the cell's h') becomes the zoned h'. draws: training's draws, else the
// expectation. h, h_new: (rows, units) of (B, H) buffers.
template <typename T>
void zone_out(const Zoneout& z, bool draws, Index t, Index B, Index b0, Index j0, const Tile& tile, const T* h,
              T* h_new) {
  if (!draws) {
    state(h_new, tile) = T(z.rate) * state(h, tile) + T(1 - z.rate) * state(h_new, tile);
    return;
  }
  for_each_kept(z, t, B, b0, j0, tile, [&](Index r, Index c) { h_new[r * tile.H + c] = h[r * tile.H + c]; });
}

// Backward: dh, the zoned h's gradient, becomes the cell's h' share, and `to_h` gets h's share
// (both exact: the draws make each element go all one way).
template <typename T>
void zone_out_grad(const Zoneout& z, Index t, Index B, Index b0, Index j0, const Tile& tile, T* dh, T* to_h) {
  state(to_h, tile).setZero();
  for_each_kept(z, t, B, b0, j0, tile, [&](Index r, Index c) {
    const Index e = r * tile.H + c;
    to_h[e] = dh[e];
    dh[e] = T(0);
  });
}

}  // namespace fastrnn
