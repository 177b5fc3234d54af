// Cells: the element-wise math of one time step, for the whole batch at once.
//
// A cell knows nothing about time, direction, padding or matrix products: the sequence
// driver (sequence.h) does the GEMMs and hands each cell the pre-activations of one step.
// Equations, gate orders and weight layouts are written down once, in src/fastrnn/modes.py.
//
// Every buffer here is row-major with the batch as rows:
//   gates: (B, G*H) with row stride G*H, the gate blocks side by side in the order of modes.py
//   h, c:  (B, H)
// A cell works on a Tile of these: some batch rows by some hidden units (all of them, unless
// the driver splits the units between threads), with every pointer at the tile's first element.
//
// Traits each cell declares, read by the driver:
//   kGates               G, the number of gate blocks
//   kHasCellState        LSTM's c
//   kSeparateRecurrent   the recurrent product W_hh h + b_hh is needed on its own (GRU's reset
//                        gate multiplies it), so it cannot be summed into the input projection.
//                        Then the last gate block's recurrent-side gradient differs from the
//                        input side's; backward writes it over the saved `hn`. Every other
//                        block's gradient is the same on both sides.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <type_traits>

namespace fastrnn {

using Eigen::Index;

// A (rows, cols) view with a row stride, as an Eigen array so that operators are element-wise.
template <typename T>
using ArrayView = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                             Eigen::OuterStride<>>;
template <typename T>
using ConstArrayView = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                  0, Eigen::OuterStride<>>;

// rows x units of a step; gate k of a unit sits k*H further along its gates row.
struct Tile {
  Index rows, units;
  Index H;             // hidden units in all: the distance between gate blocks
  Index gates_stride;  // G*H: the distance between rows of a gates buffer
  Index state_stride;  // H: the distance between rows of a state buffer
};

// Gate block k of the tile: (rows, units) with row stride G*H.
template <typename T>
ArrayView<T> gate(T* gates, const Tile& t, Index k) {
  return ArrayView<T>(gates + k * t.H, t.rows, t.units, Eigen::OuterStride<>(t.gates_stride));
}
template <typename T>
ConstArrayView<T> gate(const T* gates, const Tile& t, Index k) {
  return ConstArrayView<T>(gates + k * t.H, t.rows, t.units, Eigen::OuterStride<>(t.gates_stride));
}
// A state's part of the tile: (rows, units) with row stride H.
template <typename T>
ArrayView<T> state(T* p, const Tile& t) {
  return ArrayView<T>(p, t.rows, t.units, Eigen::OuterStride<>(t.state_stride));
}
template <typename T>
ConstArrayView<T> state(const T* p, const Tile& t) {
  return ConstArrayView<T>(p, t.rows, t.units, Eigen::OuterStride<>(t.state_stride));
}

// ---------------------------------------------------------------------------------------------
// e^x for a packet of doubles, for the logistic function and tanh below. On AVX-512 it is our
// own, since Eigen 3.4's divides and rebuilds the exponent in several steps and is markedly
// slower (bench/NOTES.md, "exp for float64 on AVX-512"); elsewhere it is Eigen's.
// x = (16 k + j) ln2/16 + r with |r| <= ln2/32, so e^x = 2^k 2^(j/16) e^r: 2^(j/16) from a
// 16-entry table held in two registers, with a second table of what rounding it to a double
// left out; e^r - 1 its degree-7 Taylor polynomial (remainder below 2e-18 of e^r); 2^k applied
// by vscalefpd, which gives inf, subnormals (rounded a second time) and 0 as they fall.
// It rounds nearly as well as the C library's exp (tested), and the logistic function and tanh
// built on it are tested in units in the last place.
#if defined(EIGEN_VECTORIZE_AVX512)
inline Eigen::internal::Packet8d exp_avx512(const Eigen::internal::Packet8d& x) {
  // Beyond these bounds e^x is inf or 0 all the same, and every step below stays finite.
  const __m512d xc = _mm512_min_pd(_mm512_max_pd(x, _mm512_set1_pd(-746.0)), _mm512_set1_pd(710.0));
  // x 16/ln2 + 1.5 2^52 rounds x 16/ln2 to an integer n = 16 k + j and leaves j in its lowest bits.
  const __m512d shifter = _mm512_set1_pd(0x1.8p52);
  const __m512d s = _mm512_fmadd_pd(xc, _mm512_set1_pd(23.083120654223414), shifter);
  const __m512d n = _mm512_sub_pd(s, shifter);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(0.04332169878499658), xc);            // ln2/16, high
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.4494042586539372e-18), r);                  // ... and low part
  __m512d q = _mm512_set1_pd(1.0 / 5040);
  for (double c : {1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0}) q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(c));
  q = _mm512_mul_pd(q, r);  // e^r - 1
  const __m512d table_lo = _mm512_setr_pd(1.0, 1.0442737824274138, 1.0905077326652577, 1.1387886347566916,
                                          1.189207115002721, 1.241857812073484, 1.2968395546510096,
                                          1.3542555469368927);
  const __m512d table_hi = _mm512_setr_pd(1.4142135623730951, 1.4768261459394993, 1.5422108254079407,
                                          1.6104903319492543, 1.681792830507429, 1.7562521603732995,
                                          1.8340080864093424, 1.9152065613971474);
  // ... and what rounding 2^(j/16) to a double left out
  const __m512d tail_lo = _mm512_setr_pd(0.0, 8.551889705537965e-17, -3.046782079812471e-17, 8.912812676025408e-17,
                                         3.982015231465646e-17, 4.658027591836937e-17, 2.5382502794888315e-17,
                                         7.70094837980299e-17);
  const __m512d tail_hi = _mm512_setr_pd(-9.667293313452913e-17, -3.483994556892796e-17, 7.949834809697621e-17,
                                         2.4707192569797888e-17, 8.199010020581497e-17, 2.960140695448873e-17,
                                         3.283107224245627e-17, -1.0619946056195963e-16);
  const __m512i j = _mm512_castpd_si512(s);  // the table lookups read its lowest four bits
  const __m512d t = _mm512_permutex2var_pd(table_lo, j, table_hi);  // 2^(j/16) = t + tail
  const __m512d tail = _mm512_permutex2var_pd(tail_lo, j, tail_hi);
  const __m512d y = _mm512_add_pd(t, _mm512_fmadd_pd(t, q, tail));  // t (1 + q) + tail, rounded once at the end
  const __m512d e = _mm512_scalef_pd(y, _mm512_mul_pd(n, _mm512_set1_pd(1.0 / 16)));  // y 2^floor(n/16)
  return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), e, x);  // NaN stays NaN
}
#endif

// Packet8d as a template argument drops the SIMD type's attributes, as in Eigen's own kernels.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
template <typename Packet>
Packet double_exp(const Packet& x) {
#if defined(EIGEN_VECTORIZE_AVX512)
  if constexpr (std::is_same_v<Packet, Eigen::internal::Packet8d>) return exp_avx512(x);
#endif
  return Eigen::internal::pexp(x);
}
#pragma GCC diagnostic pop

// ---------------------------------------------------------------------------------------------
// tanh for double with SIMD: Eigen 3.4 vectorises tanh only for float, and a scalar tanh per
// element would make float64 several times slower than float32 in the cells. With a = |x|:
//   a >= 0.625:  tanh a = 1 - 2 / (e^2a + 1), accurate there since the result is above 0.55;
//   a <  0.625:  tanh a = a + a u P(u), u = a^2, where 1 - 2 / (e^2a + 1) would cancel.
// P is the degree-11 polynomial interpolating (tanh(a)/a - 1) / a^2 at the Chebyshev points
// of [0, 0.625], solved for in 60-digit arithmetic and rounded to double. Either way the
// result is within 2 units in the last place of tanh (tested).
struct DoubleTanhOp {
  static constexpr double kSmall = 0.625;
  static constexpr double kPoly[12] = {
      -0.3333333333333333,    0.13333333333333042,   -0.05396825396789699,  0.021869488519008305,
      -0.008863235103240878,  0.0035921217511549622, -0.0014557754120478055, 0.0005896606577757043,
      -0.0002375906496055562, 9.257116129556769e-05, -3.12011014257974e-05,  6.485163482793113e-06};

  double operator()(double x) const { return std::tanh(x); }
  template <typename Packet>
  Packet packetOp(const Packet& x) const {
    using namespace Eigen::internal;
    const Packet one = pset1<Packet>(1.0);
    const Packet a = pabs(x), u = pmul(a, a);
    Packet p = pset1<Packet>(kPoly[11]);
    for (int j = 10; j >= 0; --j) p = pmadd(p, u, pset1<Packet>(kPoly[j]));
    const Packet small = pmadd(pmul(a, u), p, a);
    // e^2a overflows to inf from a = 354.9 on, and 2 / (inf + 1) = 0 then gives exactly 1, for
    // a = inf too; NaN stays NaN.
    const Packet large = psub(one, pdiv(pset1<Packet>(2.0), padd(double_exp(padd(a, a)), one)));
    const Packet r = pselect(pcmp_lt(a, pset1<Packet>(kSmall)), small, large);
    return pselect(pcmp_lt(x, pzero(x)), pnegate(r), r);
  }
};

// ---------------------------------------------------------------------------------------------
// Activations. The derivative is written in terms of the activation's output y, which is what
// BPTT keeps.
// grad(y, dy) is the gradient through the activation, dy * f'.
struct Tanh {
  template <typename X> static auto f(const X& x) {
    if constexpr (std::is_same_v<typename X::Scalar, double>) return x.unaryExpr(DoubleTanhOp());
    else return x.tanh();
  }
  template <typename Y> static auto df(const Y& y) { return 1 - y.square(); }
  template <typename Y, typename D> static auto grad(const Y& y, const D& dy) { return dy * df(y); }
};
struct Relu {
  template <typename X> static auto f(const X& x) { return x.max(typename X::Scalar(0)); }
  // A select, not dy * (y > 0): an inactive unit passes no gradient, not even a NaN or inf.
  template <typename Y, typename D> static auto grad(const Y& y, const D& dy) {
    return (y > typename Y::Scalar(0)).select(dy, typename Y::Scalar(0));
  }
};
// The logistic function for double, 1 / (1 + e^-x) as Eigen's, on the exp above.
struct DoubleSigmoidOp {
  double operator()(double x) const { return 1.0 / (1.0 + std::exp(-x)); }
  template <typename Packet>
  Packet packetOp(const Packet& x) const {
    using namespace Eigen::internal;
    const Packet one = pset1<Packet>(1.0);
    return pdiv(one, padd(one, double_exp(pnegate(x))));
  }
};

struct Sigmoid {
  template <typename X> static auto f(const X& x) {
    if constexpr (std::is_same_v<typename X::Scalar, double>) return x.unaryExpr(DoubleSigmoidOp());
    else return x.logistic();
  }
  template <typename Y> static auto df(const Y& y) { return y * (1 - y); }
};

// ---------------------------------------------------------------------------------------------
// Vanilla RNN: h' = act(pre), pre = W_ih x + b_ih + W_hh h + b_hh.
template <typename Act>
struct RnnCell {
  static constexpr Index kGates = 1;
  static constexpr bool kHasCellState = false;
  static constexpr bool kSeparateRecurrent = false;

  // gates: (B, H) in: pre-activation; out: h' (kept for BPTT). h: (B, H) out.
  template <typename T>
  static void forward(const Tile& tile, T* gates, T* h) {
    auto a = gate(gates, tile, 0);
    a = Act::f(a);
    state(h, tile) = a;
  }

  // gates: (B, H) in: h' from forward; out: d pre. dh: (B, H) gradient w.r.t. h'.
  template <typename T>
  static void backward(const Tile& tile, T* gates, const T* dh) {
    auto a = gate(gates, tile, 0);
    a = Act::grad(a, state(dh, tile));
  }
};

// ---------------------------------------------------------------------------------------------
// LSTM, gates i, f, g, o:  c' = f * c + i * g,  h' = o * tanh(c').
struct LstmCell {
  static constexpr Index kGates = 4;
  static constexpr bool kHasCellState = true;
  static constexpr bool kSeparateRecurrent = false;

  // gates: (B, 4H) in: pre-activations; out: i, f, g, o. c_prev: (B, H). h, c: (B, H) out.
  template <typename T>
  static void forward(const Tile& tile, T* gates, const T* c_prev, T* h, T* c) {
    auto i = gate(gates, tile, 0), f = gate(gates, tile, 1);
    auto g = gate(gates, tile, 2), o = gate(gates, tile, 3);
    i = Sigmoid::f(i);
    f = Sigmoid::f(f);
    g = Tanh::f(g);
    o = Sigmoid::f(o);
    auto c_new = state(c, tile);
    c_new = f * state(c_prev, tile) + i * g;
    state(h, tile) = o * Tanh::f(c_new);
  }

  // gates: (B, 4H) in: i, f, g, o; out: d pre-activations. dh, dc: (B, H) gradients w.r.t. h', c'.
  // dc_prev: (B, H) out, gradient w.r.t. c. scratch: (B, H). c' is recomputed, not kept: it is cheap.
  // Whole-block passes in an order that overwrites nothing still needed, so nothing is allocated.
  template <typename T>
  static void backward(const Tile& tile, T* gates, const T* c_prev, const T* dh, const T* dc,
                       T* dc_prev, T* scratch) {
    auto i = gate(gates, tile, 0), f = gate(gates, tile, 1);
    auto g = gate(gates, tile, 2), o = gate(gates, tile, 3);
    auto cp = state(c_prev, tile), dh_ = state(dh, tile);
    auto out = state(dc_prev, tile), dct = state(scratch, tile);
    out = Tanh::f(f * cp + i * g);                         // tanh(c')
    dct = state(dc, tile) + dh_ * o * Tanh::df(out);       // total d c'
    o = dh_ * out * Sigmoid::df(o);                        // d o
    out = dct * i * Tanh::df(g);                           // d g, parked
    i = dct * g * Sigmoid::df(i);                          // d i
    g = out;
    out = dct * f;                                         // d c
    f = dct * cp * Sigmoid::df(f);                         // d f
  }
};

// ---------------------------------------------------------------------------------------------
// GRU, gates r, z, n, reset after the recurrent product:
//   n = tanh(xn + r * hn),  hn = W_hn h + b_hn,  h' = (1 - z) * n + z * h.
struct GruCell {
  static constexpr Index kGates = 3;
  static constexpr bool kHasCellState = false;
  static constexpr bool kSeparateRecurrent = true;

  // gates: (B, 3H) in: input projections (+ b_ih); out: r, z, n.
  // gh: (B, 3H) recurrent projections W_hh h + b_hh. h_prev, h: (B, H).
  // hn: (B, H) out: W_hn h + b_hn, kept for BPTT.
  template <typename T>
  static void forward(const Tile& tile, T* gates, const T* gh, const T* h_prev, T* h, T* hn) {
    auto r = gate(gates, tile, 0), z = gate(gates, tile, 1), n = gate(gates, tile, 2);
    r = Sigmoid::f(r + gate(gh, tile, 0));
    z = Sigmoid::f(z + gate(gh, tile, 1));
    auto hn_ = state(hn, tile);
    hn_ = gate(gh, tile, 2);
    n = Tanh::f(n + r * hn_);
    state(h, tile) = (1 - z) * n + z * state(h_prev, tile);
  }

  // gates: (B, 3H) in: r, z, n; out: d input pre-activations (for r and z these are also the
  // recurrent side's). hn: (B, H) in: W_hn h + b_hn from forward; out: d (W_hn h + b_hn), the one
  // recurrent-side block that differs (scaled by r). dh: (B, H) gradient w.r.t. h'.
  // dh_prev: (B, H) out: the direct path z * dh. scratch: (B, H).
  template <typename T>
  static void backward(const Tile& tile, T* gates, T* hn, const T* h_prev, const T* dh, T* dh_prev,
                       T* scratch) {
    auto r = gate(gates, tile, 0), z = gate(gates, tile, 1), n = gate(gates, tile, 2);
    auto dh_ = state(dh, tile), direct = state(dh_prev, tile), hn_ = state(hn, tile);
    auto dn_h = state(scratch, tile);
    direct = dh_ * z;                                          // z * dh
    z = dh_ * (state(h_prev, tile) - n) * Sigmoid::df(z);      // d z
    n = (dh_ - direct) * Tanh::df(n);                          // d n = (1 - z) dh tanh'
    dn_h = n * r;                                              // d (W_hn h + b_hn)
    r = n * hn_ * Sigmoid::df(r);                              // d r
    hn_ = dn_h;
  }
};

}  // namespace fastrnn

namespace Eigen::internal {
template <>
struct functor_traits<fastrnn::DoubleTanhOp> {
  enum { Cost = 40, PacketAccess = packet_traits<double>::HasExp && packet_traits<double>::HasDiv };
};
template <>
struct functor_traits<fastrnn::DoubleSigmoidOp> {
  enum { Cost = 30, PacketAccess = packet_traits<double>::HasExp && packet_traits<double>::HasDiv };
};
}  // namespace Eigen::internal
