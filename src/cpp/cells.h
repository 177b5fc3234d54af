// Cells: the element-wise math of one time step, each kind a unit here (the interface is cell.h).
//
// A kind declares
//   kName                      its name, which the bindings look it up by
//   layout()                   its Layout: gate blocks, states, the products of each stage, and
//                              its saved arrays, whose indices its enum lists, kPre last
//   forward(stage, step, A, R) its math for one tile of one step, after the stage's products
//   backward(stage, grad, A, R) the mirror, before the stage's products' gradients
// A and R are the activation and the recurrent activation, as Fused or Switched policies
// (activations.h): the math is written once for any pair. Equations, gate orders and weight
// layouts are written down once, in src/fastrnn/modes.py.
//
// To add a kind: its struct here and its name in AllCells; a row in modes.py, its equations in
// reference.py. The driver and the bindings take it from its layout.
#pragma once

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "cell.h"

namespace fastrnn {

// ---------------------------------------------------------------------------------------------
// Vanilla RNN: h' = act(pre), pre = W_ih x + b_ih + W_hh h + b_hh.
struct RnnCell {
  static constexpr const char* kName = "rnn";
  enum { kPre };
  static Layout layout() { return {1, {"h"}, {{{0, 1}}}, {}}; }

  // gates: (rows, H) in: pre; out: h' (kept for BPTT).
  template <typename T, typename A, typename R>
  static void forward(int, const Step<T>& s, const A& act, const R&) {
    const Tile& t = s.tile;
    auto a = gate(s.gates, t, 0);
    act.apply(a, kept_block(s.saved[kPre], s.gates, t, 0));
    state(s.next[0], t) = a;
  }

  // gates: (rows, H) in: h'; out: d pre.
  template <typename T, typename A, typename R>
  static void backward(int, const StepGrad<T>& s, const A& act, const R&) {
    const Tile& t = s.tile;
    act.grad(gate(s.gates, t, 0), state(s.d_next[0], t), kept_block(s.saved[kPre], s.gates, t, 0));
    state(s.d_state[0], t).setZero();
  }
};

// ---------------------------------------------------------------------------------------------
// LSTM, gates i, f, g, o:  c' = f * c + i * g,  h' = o * act(c');  i, f, o by the recurrent
// activation, g by the activation.
struct LstmCell {
  static constexpr const char* kName = "lstm";
  enum { kPre };
  static Layout layout() { return {4, {"h", "c"}, {{{0, 4}}}, {}}; }

  // gates: (rows, 4H) in: pre-activations; out: i, f, g, o.
  template <typename T, typename A, typename R>
  static void forward(int, const Step<T>& s, const A& act, const R& ract) {
    const Tile& t = s.tile;
    auto i = gate(s.gates, t, 0), f = gate(s.gates, t, 1), g = gate(s.gates, t, 2), o = gate(s.gates, t, 3);
    auto keep = [&](Index k) { return kept_block(s.saved[kPre], s.gates, t, k); };
    ract.apply(i, keep(0));
    ract.apply(f, keep(1));
    act.apply(g, keep(2));
    ract.apply(o, keep(3));
    auto c_new = state(s.next[1], t);
    c_new = f * state(s.state[1], t) + i * g;
    act.set_scaled(state(s.next[0], t), o, c_new);
  }

  // gates: (rows, 4H) in: i, f, g, o; out: d pre-activations. c' is recomputed, not kept: it is
  // cheap. Whole-block passes in an order that overwrites nothing still needed, so nothing is
  // allocated.
  template <typename T, typename A, typename R>
  static void backward(int, const StepGrad<T>& s, const A& act, const R& ract) {
    const Tile& t = s.tile;
    auto i = gate(s.gates, t, 0), f = gate(s.gates, t, 1), g = gate(s.gates, t, 2), o = gate(s.gates, t, 3);
    auto keep = [&](Index k) { return kept_block(s.saved[kPre], s.gates, t, k); };
    auto cp = state(s.state[1], t), dh = state(s.d_next[0], t);
    auto out = state(s.d_state[1], t), dct = state(s.scratch[0], t), c = state(s.scratch[1], t);
    act.set(out, f * cp + i * g, c);                                    // act(c'), c' kept if needed
    dct = state(s.d_next[1], t) + dh * o * act.derivative(out, c);     // total d c'
    ract.grad(o, dh * out, keep(3));                                    // d o
    out = dct * i;                                                      // d g's factor, parked
    ract.grad(i, dct * g, keep(0));                                     // d i
    act.grad(g, out, keep(2));                                          // d g
    out = dct * f;                                                      // d c
    ract.grad(f, dct * cp, keep(1));                                    // d f
    state(s.d_state[0], t).setZero();
  }
};

// ---------------------------------------------------------------------------------------------
// LSTM with peepholes (ONNX's LSTM with its P input): the LSTM above, with the cell state also
// feeding its gates through per-unit weights, parameter "peephole" (3H,) = [p_i, p_f, p_o]:
//   i = rec(pre_i + p_i * c),  f = rec(pre_f + p_f * c),  o = rec(pre_o + p_o * c').
struct PeepholeLstmCell {
  static constexpr const char* kName = "lstm_peephole";
  enum { kPre };
  enum { kPi, kPf, kPo };  // blocks of the peephole vector
  static Layout layout() { return {4, {"h", "c"}, {{{0, 4}}}, {}, {{"peephole", 3}}}; }

  // gates: (rows, 4H) in: pre-activations without the peephole terms; out: i, f, g, o.
  template <typename T, typename A, typename R>
  static void forward(int, const Step<T>& s, const A& act, const R& ract) {
    const Tile& t = s.tile;
    auto i = gate(s.gates, t, 0), f = gate(s.gates, t, 1), g = gate(s.gates, t, 2), o = gate(s.gates, t, 3);
    auto keep = [&](Index k) { return kept_block(s.saved[kPre], s.gates, t, k); };
    auto p = [&](Index k) { return param(s.params[0], t, k); };
    auto cp = state(s.state[1], t);
    i += cp.rowwise() * p(kPi);
    ract.apply(i, keep(0));
    f += cp.rowwise() * p(kPf);
    ract.apply(f, keep(1));
    act.apply(g, keep(2));
    auto c_new = state(s.next[1], t);
    c_new = f * cp + i * g;
    o += c_new.rowwise() * p(kPo);  // the output gate sees the new cell state
    ract.apply(o, keep(3));
    act.set_scaled(state(s.next[0], t), o, c_new);
  }

  // gates: (rows, 4H) in: i, f, g, o; out: d pre-activations. d_params[0]: (rows, 3H) out, the
  // rows' d p_i, d p_f, d p_o. c' is recomputed, as in LstmCell.
  template <typename T, typename A, typename R>
  static void backward(int, const StepGrad<T>& s, const A& act, const R& ract) {
    const Tile& t = s.tile;
    auto i = gate(s.gates, t, 0), f = gate(s.gates, t, 1), g = gate(s.gates, t, 2), o = gate(s.gates, t, 3);
    auto keep = [&](Index k) { return kept_block(s.saved[kPre], s.gates, t, k); };
    auto p = [&](Index k) { return param(s.params[0], t, k); };
    const Tile wide = wide_tile(t, 3);
    auto dp = [&](Index k) { return gate(s.d_params[0], wide, k); };
    auto cp = state(s.state[1], t), dh = state(s.d_next[0], t);
    auto out = state(s.d_state[1], t), dct = state(s.scratch[0], t), c = state(s.scratch[1], t);
    c = f * cp + i * g;                                                 // c'
    act.set(out, c, c);                                                 // act(c')
    dct = dh * o;                                                       // parked: o is overwritten next
    ract.grad(o, dh * out, keep(3));                                    // d o
    dp(kPo) = o * c;                                                    // d p_o
    dct = state(s.d_next[1], t) + dct * act.derivative(out, c) + o.rowwise() * p(kPo);  // total d c'
    out = dct * i;                                                      // d g's factor, parked
    ract.grad(i, dct * g, keep(0));                                     // d i
    act.grad(g, out, keep(2));                                          // d g
    out = dct * f;                                                      // d c, direct path
    ract.grad(f, dct * cp, keep(1));                                    // d f
    out += i.rowwise() * p(kPi) + f.rowwise() * p(kPf);                 // ... and through i and f
    dp(kPi) = i * cp;                                                   // d p_i
    dp(kPf) = f * cp;                                                   // d p_f
    state(s.d_state[0], t).setZero();
  }
};

// ---------------------------------------------------------------------------------------------
// GRU, gates r, z, n, reset after the recurrent product:
//   n = act(xn + r * hn),  hn = W_hn h + b_hn,  h' = (1 - z) * n + z * h;  r, z by the
// recurrent activation. r's and z's recurrent products are added to their pre-activations;
// n's goes to hn, which r multiplies.
struct GruCell {
  static constexpr const char* kName = "gru";
  enum { kHn, kPre };
  static Layout layout() { return {3, {"h"}, {{{0, 2}, {2, 1, kState, kHn}}}, {{"hn", 1, true}}}; }

  // gates: (rows, 3H) in: pre-activations (n's: its input side alone); out: r, z, n.
  // hn: (rows, H) in: W_hn h + b_hn, kept for BPTT.
  template <typename T, typename A, typename R>
  static void forward(int, const Step<T>& s, const A& act, const R& ract) {
    const Tile& t = s.tile;
    auto r = gate(s.gates, t, 0), z = gate(s.gates, t, 1), n = gate(s.gates, t, 2);
    auto keep = [&](Index k) { return kept_block(s.saved[kPre], s.gates, t, k); };
    ract.apply(r, keep(0));
    ract.apply(z, keep(1));
    act.set(n, n + r * state(s.saved[kHn], t), keep(2));
    state(s.next[0], t) = (1 - z) * n + z * state(s.state[0], t);
  }

  // gates: (rows, 3H) in: r, z, n; out: d pre-activations. hn in: W_hn h + b_hn; out: its
  // gradient, n's recurrent side (scaled by r).
  template <typename T, typename A, typename R>
  static void backward(int, const StepGrad<T>& s, const A& act, const R& ract) {
    const Tile& t = s.tile;
    auto r = gate(s.gates, t, 0), z = gate(s.gates, t, 1), n = gate(s.gates, t, 2);
    auto keep = [&](Index k) { return kept_block(s.saved[kPre], s.gates, t, k); };
    auto dh = state(s.d_next[0], t), direct = state(s.d_state[0], t), hn = state(s.saved[kHn], t);
    auto dn_h = state(s.scratch[0], t);
    direct = dh * z;                                          // z * dh
    ract.grad(z, dh * (state(s.state[0], t) - n), keep(1));   // d z
    act.grad(n, dh - direct, keep(2));                        // d n = (1 - z) dh act'
    dn_h = n * r;                                             // d (W_hn h + b_hn)
    ract.grad(r, n * hn, keep(0));                            // d r
    hn = dn_h;
  }
};

// ---------------------------------------------------------------------------------------------
// GRU, gates r, z, n, reset before the recurrent product (Keras's reset_after=False):
//   n = act(xn + W_hn (r * h) + b_hn),  h' = (1 - z) * n + z * h;  r, z by the recurrent
// activation. Two stages: stage 0's product gives r and z, whose forward writes r * h; stage
// 1's product adds W_hn (r * h) to n's pre-activation.
struct GruResetBeforeCell {
  static constexpr const char* kName = "gru_reset_before";
  enum { kRh, kPre };
  static Layout layout() { return {3, {"h"}, {{{0, 2}}, {{2, 1, kRh}}}, {{"rh", 1, true}}}; }

  // Stage 0, gates: (rows, 3H) in: r's and z's pre-activations; out: r, z. rh: (rows, H) out:
  // r * h. Stage 1, gates in: n's pre-activation; out: n.
  template <typename T, typename A, typename R>
  static void forward(int stage, const Step<T>& s, const A& act, const R& ract) {
    const Tile& t = s.tile;
    auto r = gate(s.gates, t, 0), z = gate(s.gates, t, 1), n = gate(s.gates, t, 2);
    auto keep = [&](Index k) { return kept_block(s.saved[kPre], s.gates, t, k); };
    if (stage == 0) {
      ract.apply(r, keep(0));
      ract.apply(z, keep(1));
      state(s.saved[kRh], t) = r * state(s.state[0], t);
      return;
    }
    act.apply(n, keep(2));
    state(s.next[0], t) = (1 - z) * n + z * state(s.state[0], t);
  }

  // Stage 1, gates in: r, z, n; out: d z's and d n's pre-activations. Stage 0, in: d (r * h)
  // from stage 1's product; out: d r's pre-activation, and r * d (r * h) added to d h.
  template <typename T, typename A, typename R>
  static void backward(int stage, const StepGrad<T>& s, const A& act, const R& ract) {
    const Tile& t = s.tile;
    auto r = gate(s.gates, t, 0), z = gate(s.gates, t, 1), n = gate(s.gates, t, 2);
    auto keep = [&](Index k) { return kept_block(s.saved[kPre], s.gates, t, k); };
    auto h = state(s.state[0], t), direct = state(s.d_state[0], t);
    if (stage == 1) {
      auto dh = state(s.d_next[0], t);
      direct = dh * z;                                // z * dh
      ract.grad(z, dh * (h - n), keep(1));            // d z
      act.grad(n, dh - direct, keep(2));              // d n = (1 - z) dh act'
      return;
    }
    auto d_rh = state(s.d_saved[kRh], t);
    direct += d_rh * r;                               // through r * h
    ract.grad(r, d_rh * h, keep(0));                  // d r
  }
};

// ---------------------------------------------------------------------------------------------
// Every cell kind, looked up by name.
using AllCells = std::tuple<RnnCell, LstmCell, PeepholeLstmCell, GruCell, GruResetBeforeCell>;

// The cell `kind` with its activations; throws std::invalid_argument for an unknown kind.
std::unique_ptr<Cell> make_cell(const std::string& kind, Activation activation, Activation recurrent);
std::vector<std::string> cell_kinds();

}  // namespace fastrnn
