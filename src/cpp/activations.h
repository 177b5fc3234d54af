// Activations: each a unit here, a function and its derivative, listed in AllActivations.
//
// A cell applies them to whole gate blocks of a tile through one of two policies:
//   Fused<F>   F known at compile time, written into the cell's own expressions (one pass over
//              a block for an activation and whatever the cell combines with it);
//   Switched   F chosen at run time by its Activation, one switch per tile and gate block around
//              a vectorised expression of each activation (activations.cpp), so that any pair of
//              activations costs one instantiation of each cell, not one per pair.
// The cells run Fused<Tanh> and Fused<Sigmoid> for the default pair and Switched for any other.
//
// Derivatives are written in terms of the activation's output y = f(x), which is what BPTT
// keeps, and of x where y does not determine it (kNeedsInput): a cell then keeps x as well.
#pragma once

#include <Eigen/Core>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "tile.h"

namespace fastrnn {

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

// ---------------------------------------------------------------------------------------------
// The activations. Each has
//   kName         its name, as Keras spells it
//   kNeedsInput   the derivative needs x, not only y = f(x)
//   kFlat         the derivative is exactly zero on some interval: there the gradient is zero
//                 whatever flows in (not dy * 0: an inf or NaN stops there)
//   f(x)          y, as an Eigen array expression
//   df(y, x)      f'(x), from y and (for kNeedsInput) x

template <typename X>
using Scalar = typename X::Scalar;

struct Tanh {
  static constexpr const char* kName = "tanh";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) {
    if constexpr (std::is_same_v<Scalar<X>, double>) return x.unaryExpr(DoubleTanhOp());
    else return x.tanh();
  }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return 1 - y.square(); }
};

struct Sigmoid {
  static constexpr const char* kName = "sigmoid";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) {
    if constexpr (std::is_same_v<Scalar<X>, double>) return x.unaryExpr(DoubleSigmoidOp());
    else return x.logistic();
  }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return y * (1 - y); }
};

struct Relu {
  static constexpr const char* kName = "relu";
  static constexpr bool kNeedsInput = false, kFlat = true;
  template <typename X> static auto f(const X& x) { return x.max(Scalar<X>(0)); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) {
    return (y > Scalar<Y>(0)).template cast<Scalar<Y>>();
  }
};

// The others Keras 3 has as element-wise functions of one argument, with Keras's default
// constants (keras/src/ops/nn.py). Those needing x for the derivative run on kept
// pre-activations; the rest recover f'(x) from y. An expression that would refer to an array
// local to f or df is evaluated before it is returned.

template <typename X>
auto logistic(const X& x) {
  if constexpr (std::is_same_v<Scalar<X>, double>) return x.unaryExpr(DoubleSigmoidOp());
  else return x.logistic();
}

// An array of y's shape filled with v.
template <typename Y>
auto constant(const Y& y, double v) {
  return Y::PlainObject::Constant(y.rows(), y.cols(), Scalar<Y>(v));
}

// 0 below and 1 above: (lo < y < hi) as 0 or 1.
template <typename Y>
auto inside(const Y& y, double lo, double hi) {
  using S = Scalar<Y>;
  return ((y > S(lo)) && (y < S(hi))).template cast<S>();
}

struct Linear {
  static constexpr const char* kName = "linear";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) { return x; }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return constant(y, 1); }
};

struct HardSigmoid {  // relu6(x + 3) / 6
  static constexpr const char* kName = "hard_sigmoid";
  static constexpr bool kNeedsInput = false, kFlat = true;
  template <typename X> static auto f(const X& x) {
    using S = Scalar<X>;
    return (x * S(1.0 / 6.0) + S(0.5)).max(S(0)).min(S(1));
  }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return inside(y, 0, 1) * Scalar<Y>(1.0 / 6.0); }
};

struct Relu6 {
  static constexpr const char* kName = "relu6";
  static constexpr bool kNeedsInput = false, kFlat = true;
  template <typename X> static auto f(const X& x) { return x.max(Scalar<X>(0)).min(Scalar<X>(6)); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return inside(y, 0, 6); }
};

struct LeakyRelu {  // negative_slope 0.2
  static constexpr const char* kName = "leaky_relu";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) { return (x > Scalar<X>(0)).select(x, x * Scalar<X>(0.2)); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) {
    using S = Scalar<Y>;
    return (y > S(0)).select(constant(y, 1), constant(y, 0.2));
  }
};

struct Elu {  // alpha 1; celu with alpha 1 is the same function
  static constexpr const char* kName = "elu";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) { return (x > Scalar<X>(0)).select(x, x.expm1()); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) {
    using S = Scalar<Y>;
    return (y > S(0)).select(constant(y, 1), y + S(1));
  }
};

struct Celu : Elu {
  static constexpr const char* kName = "celu";
};

struct Selu {
  static constexpr const char* kName = "selu";
  static constexpr bool kNeedsInput = false, kFlat = false;
  static constexpr double kAlpha = 1.6732632423543772848170429916717;
  static constexpr double kScale = 1.0507009873554804934193349852946;
  template <typename X> static auto f(const X& x) {
    using S = Scalar<X>;
    return (x > S(0)).select(x * S(kScale), x.expm1() * S(kScale * kAlpha));
  }
  template <typename Y, typename X> static auto df(const Y& y, const X&) {
    using S = Scalar<Y>;
    return (y > S(0)).select(constant(y, kScale), y + S(kScale * kAlpha));
  }
};

struct Softplus {  // log(1 + e^x) = max(x, 0) + log1p(e^-|x|); f' = 1 - e^-y
  static constexpr const char* kName = "softplus";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) { return x.max(Scalar<X>(0)) + (-x.abs()).exp().log1p(); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return -((-y).expm1()); }
};

struct Softsign {  // x / (1 + |x|); f' = (1 - |y|)^2
  static constexpr const char* kName = "softsign";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) { return x / (x.abs() + Scalar<X>(1)); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return (Scalar<Y>(1) - y.abs()).square(); }
};

struct Exponential {
  static constexpr const char* kName = "exponential";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) { return x.exp(); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return y; }
};

struct Silu {  // x sigmoid(x)
  static constexpr const char* kName = "silu";
  static constexpr bool kNeedsInput = true, kFlat = false;
  template <typename X> static auto f(const X& x) { return x * logistic(x); }
  template <typename Y, typename X> static auto df(const Y&, const X& x) {
    auto s = logistic(x).eval();
    return (s * (Scalar<X>(1) + x * (Scalar<X>(1) - s))).eval();
  }
};

struct HardSilu {  // x relu6(x + 3) / 6
  static constexpr const char* kName = "hard_silu";
  static constexpr bool kNeedsInput = true, kFlat = true;
  template <typename X> static auto f(const X& x) { return x * HardSigmoid::f(x); }
  template <typename Y, typename X> static auto df(const Y&, const X& x) {
    using S = Scalar<X>;
    return (x < S(-3)).select(constant(x, 0), (x <= S(3)).select(x * S(1.0 / 3.0) + S(0.5), constant(x, 1)));
  }
};

struct Gelu {  // exact: x Phi(x), Keras's default approximate=False
  static constexpr const char* kName = "gelu";
  static constexpr bool kNeedsInput = true, kFlat = false;
  template <typename X> static auto f(const X& x) {
    using S = Scalar<X>;
    return x * (x.unaryExpr([](S v) { return S(0.5) * std::erfc(-v * S(M_SQRT1_2)); }));
  }
  template <typename Y, typename X> static auto df(const Y&, const X& x) {
    using S = Scalar<X>;
    return x.unaryExpr([](S v) {
      return S(0.5) * std::erfc(-v * S(M_SQRT1_2)) + v * std::exp(S(-0.5) * v * v) * S(0.5 * M_2_SQRTPI * M_SQRT1_2);
    });
  }
};

struct Mish {  // x tanh(softplus(x))
  static constexpr const char* kName = "mish";
  static constexpr bool kNeedsInput = true, kFlat = false;
  template <typename X> static auto f(const X& x) {
    auto softplus = Softplus::f(x).eval();
    return (x * Tanh::f(softplus)).eval();
  }
  template <typename Y, typename X> static auto df(const Y&, const X& x) {
    auto softplus = Softplus::f(x).eval();
    auto t = Tanh::f(softplus).eval();
    return (t + x * logistic(x) * (Scalar<X>(1) - t.square())).eval();
  }
};

struct LogSigmoid {  // -softplus(-x); f' = 1 - e^y
  static constexpr const char* kName = "log_sigmoid";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) {
    auto minus = (-x).eval();
    return (-Softplus::f(minus)).eval();
  }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return -(y.expm1()); }
};

struct SparsePlus {  // 0, (x + 1)^2 / 4, x below -1, between, from 1; f' = sqrt(y) below 1
  static constexpr const char* kName = "sparse_plus";
  static constexpr bool kNeedsInput = false, kFlat = true;
  template <typename X> static auto f(const X& x) {
    using S = Scalar<X>;
    return (x <= S(-1)).select(constant(x, 0), (x < S(1)).select((x + S(1)).square() * S(0.25), x));
  }
  template <typename Y, typename X> static auto df(const Y& y, const X&) {
    using S = Scalar<Y>;
    return (y >= S(1)).select(constant(y, 1), y.sqrt());
  }
};

struct SparseSigmoid {  // 0, (x + 1) / 2, 1
  static constexpr const char* kName = "sparse_sigmoid";
  static constexpr bool kNeedsInput = false, kFlat = true;
  template <typename X> static auto f(const X& x) { return ((x + Scalar<X>(1)) * Scalar<X>(0.5)).max(Scalar<X>(0)).min(Scalar<X>(1)); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return inside(y, 0, 1) * Scalar<Y>(0.5); }
};

struct HardTanh {
  static constexpr const char* kName = "hard_tanh";
  static constexpr bool kNeedsInput = false, kFlat = true;
  template <typename X> static auto f(const X& x) { return x.max(Scalar<X>(-1)).min(Scalar<X>(1)); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return inside(y, -1, 1); }
};

struct TanhShrink {  // x - tanh x; f' = tanh(x)^2
  static constexpr const char* kName = "tanh_shrink";
  static constexpr bool kNeedsInput = true, kFlat = false;
  template <typename X> static auto f(const X& x) { return x - Tanh::f(x); }
  template <typename Y, typename X> static auto df(const Y&, const X& x) { return Tanh::f(x).square(); }
};

struct SoftShrink {  // threshold 0.5
  static constexpr const char* kName = "soft_shrink";
  static constexpr bool kNeedsInput = false, kFlat = true;
  template <typename X> static auto f(const X& x) {
    using S = Scalar<X>;
    return (x > S(0.5)).select(x - S(0.5), (x < S(-0.5)).select(x + S(0.5), constant(x, 0)));
  }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return (y != Scalar<Y>(0)).template cast<Scalar<Y>>(); }
};

struct HardShrink {  // threshold 0.5
  static constexpr const char* kName = "hard_shrink";
  static constexpr bool kNeedsInput = false, kFlat = true;
  template <typename X> static auto f(const X& x) { return (x.abs() > Scalar<X>(0.5)).select(x, constant(x, 0)); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return (y != Scalar<Y>(0)).template cast<Scalar<Y>>(); }
};

struct Squareplus {  // (x + sqrt(x^2 + 4)) / 2; f' = y^2 / (y^2 + 1)
  static constexpr const char* kName = "squareplus";
  static constexpr bool kNeedsInput = false, kFlat = false;
  template <typename X> static auto f(const X& x) { return (x + (x.square() + Scalar<X>(4)).sqrt()) * Scalar<X>(0.5); }
  template <typename Y, typename X> static auto df(const Y& y, const X&) { return y.square() / (y.square() + Scalar<Y>(1)); }
};

// Every activation; an Activation is a position in this list.
using AllActivations = std::tuple<Tanh, Sigmoid, Relu, Linear, HardSigmoid, Relu6, LeakyRelu, Elu, Celu, Selu,
                                  Softplus, Softsign, Exponential, Silu, HardSilu, Gelu, Mish, LogSigmoid,
                                  SparsePlus, SparseSigmoid, HardTanh, TanhShrink, SoftShrink, HardShrink,
                                  Squareplus>;
using Activation = int;
constexpr std::size_t kActivations = std::tuple_size_v<AllActivations>;

namespace detail {
template <typename F, std::size_t... I>
constexpr Activation position(std::index_sequence<I...>) {
  Activation found = -1;
  ((std::is_same_v<F, std::tuple_element_t<I, AllActivations>> ? (found = Activation(I)) : 0), ...);
  return found;
}
template <std::size_t... I>
constexpr std::array<std::array<bool, 2>, kActivations> properties(std::index_sequence<I...>) {
  return {{{std::tuple_element_t<I, AllActivations>::kNeedsInput, std::tuple_element_t<I, AllActivations>::kFlat}...}};
}
constexpr auto kProperties = properties(std::make_index_sequence<kActivations>{});
}  // namespace detail

template <typename F>
constexpr Activation activation_of() {
  return detail::position<F>(std::make_index_sequence<kActivations>{});
}
constexpr bool needs_input(Activation a) { return detail::kProperties[a][0]; }
constexpr bool is_flat(Activation a) { return detail::kProperties[a][1]; }

// fn(F{}) for the activation F at position a.
template <typename Fn, std::size_t... I>
void visit(Activation a, Fn&& fn, std::index_sequence<I...>) {
  ((a == Activation(I) ? (fn(std::tuple_element_t<I, AllActivations>{}), true) : false) || ...);
}
template <typename Fn>
void visit(Activation a, Fn&& fn) {
  visit(a, fn, std::make_index_sequence<kActivations>{});
}

Activation parse_activation(const std::string& name);  // throws std::invalid_argument
const char* activation_name(Activation a);
std::vector<std::string> activation_names();

// y = f(y), in place.
template <typename T>
void activate(Activation a, ArrayView<T> y);
// out = f'(x) from y = f(x) and x; out may be y or x.
template <typename T>
void derivative(Activation a, ArrayView<T> out, ArrayView<T> y, ArrayView<T> x);

// ---------------------------------------------------------------------------------------------
// The two policies; both take views of one gate block of a tile. `keep` is where a block's
// pre-activation x is kept for BPTT when the derivative needs it (the block itself when it is
// not kept: the cell's layout keeps it whenever the activations need it).

template <typename F>
struct Fused {
  // y = f(y)
  template <typename T> void apply(ArrayView<T> y, ArrayView<T>) const { y = F::f(y); }
  // y = f(x)
  template <typename T, typename X> void set(ArrayView<T> y, const X& x, ArrayView<T>) const { y = F::f(x); }
  // y = factor * f(x)
  template <typename T, typename S> void set_scaled(ArrayView<T> y, const S& factor, ArrayView<T> x) const {
    y = factor * F::f(x);
  }
  // f'(x) as an expression, from y = f(x) and x.
  template <typename T> auto derivative(ArrayView<T> y, ArrayView<T> x) const { return F::df(y, x); }
  // y: f(x) in, dy * f'(x) out.
  template <typename T, typename D> void grad(ArrayView<T> y, const D& dy, ArrayView<T> keep) const {
    y = dy * F::df(y, keep);
  }
};

struct Switched {
  Activation kind;

  template <typename T> void apply(ArrayView<T> y, ArrayView<T> keep) const {
    if (needs_input(kind) && keep.data() != y.data()) keep = y;
    activate<T>(kind, y);
  }
  template <typename T, typename X> void set(ArrayView<T> y, const X& x, ArrayView<T> keep) const {
    y = x;
    apply(y, keep);
  }
  template <typename T, typename S> void set_scaled(ArrayView<T> y, const S& factor, ArrayView<T> x) const {
    y = x;
    activate<T>(kind, y);
    y *= factor;
  }
  // f'(x), written over x (which must be writable scratch) and returned.
  template <typename T> ArrayView<T> derivative(ArrayView<T> y, ArrayView<T> x) const {
    fastrnn::derivative<T>(kind, x, y, x);
    return x;
  }
  template <typename T, typename D> void grad(ArrayView<T> y, const D& dy, ArrayView<T> keep) const {
    fastrnn::derivative<T>(kind, y, y, keep);
    if (is_flat(kind)) y = (y == T(0)).select(T(0), dy * y);
    else y *= dy;
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
