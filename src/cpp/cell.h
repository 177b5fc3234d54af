// The interface between the sequence driver (sequence.cpp) and the cells (cells.h).
//
// A cell is the element-wise math of one time step. It knows nothing about time, direction,
// padding or matrix products: the driver runs the products and hands the cell one tile of one
// step (tile.h) at a time. What the cell needs from the driver is data, its Layout: its gate
// blocks, the states it carries, the recurrent products that feed it and from what, and the
// arrays it keeps for BPTT. The driver and the bindings read only that.
//
// A step runs in stages, one per entry of Layout::stages: the stage's products by w_hh, then
// the cell's forward for that stage. Backward runs the stages from the last: the cell's
// backward for the stage, then the products' gradients. A product's input is the state h or a
// per-step transform of h that the cell wrote in an earlier stage (GRU with the reset before
// the product multiplies W_hn by r * h); its output is added to its gate blocks'
// pre-activations, or goes to an array of the cell's own, started from its blocks of b_hh (GRU
// with the reset after: W_hn h + b_hn, which r multiplies).
//
// A cell may also have parameters of its own beside the weights: per-unit vectors (a peephole
// LSTM's p_i, p_f, p_o), each declared in Layout::params with its width in blocks of H. The
// driver hands them to every step, and BPTT's cell backward writes each row's contribution to
// their gradients, which the driver sums over rows and steps as it sums the bias gradients.
#pragma once

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

#include "activations.h"
#include "tile.h"

namespace fastrnn {

constexpr int kMaxStates = 2;  // h, and a cell state
constexpr int kMaxSaved = 4;   // arrays of a cell's own
constexpr int kMaxParams = 2;  // parameter vectors of a cell's own
constexpr int kState = -1;     // Product::input: the state h
constexpr int kGates = -1;     // Product::output: added to the gate pre-activations

// Rows [first*H, (first + blocks)*H) of w_hh times a (B, H) input, every step.
struct Product {
  int first, blocks;     // gate blocks
  int input = kState;    // kState, or the saved array (of width 1) the cell wrote in an earlier stage
  int output = kGates;   // kGates, or the saved array (of width `blocks`) it goes to
};

// An array the cell keeps per step: (T, B, width*H) when training.
struct Saved {
  std::string name;
  int width;              // in blocks of H
  bool in_inference;      // needed within a step (a product's input or output), not only for BPTT
};

// A parameter vector of the cell's own: (width*H,), its blocks of H side by side.
struct Param {
  std::string name;
  int width;  // in blocks of H
};

struct Layout {
  int gates;                                 // G: gate blocks of H
  std::vector<std::string> states;           // "h" first (the output), then e.g. "c"
  std::vector<std::vector<Product>> stages;  // each stage's products, in order
  std::vector<Saved> saved;
  std::vector<Param> params = {};
};

// The tile of a buffer of `width` blocks of H per row (a saved array, a parameter's gradient rows).
inline Tile wide_tile(const Tile& t, int width) { return {t.rows, t.units, t.H, width * t.H, t.H}; }

// One tile of one step, forward. Pointers are at the tile's first element.
template <typename T>
struct Step {
  Tile tile;
  T* gates;                                 // (rows, G*H) in: pre-activations; out: what BPTT keeps
  std::array<const T*, kMaxStates> state{};  // (rows, H) each: the states the step starts from
  std::array<T*, kMaxStates> next{};         // (rows, H) each: the states after it
  std::array<T*, kMaxSaved> saved{};         // (rows, width*H): this step's arrays; null where an
                                             // array is only for BPTT and the call is inference
  std::array<const T*, kMaxParams> params{};  // (width*H,) each, at the tile's first unit (see param)
};

// One tile of one step, backward.
template <typename T>
struct StepGrad {
  Tile tile;
  T* gates;  // in: what forward kept; out: the gradients of the pre-activations
  std::array<const T*, kMaxStates> state{};   // the states the step started from
  std::array<const T*, kMaxStates> d_next{};  // gradients w.r.t. the states after it (h's with the output's)
  // Out: gradients w.r.t. the states the step started from along every path outside the products:
  // the last stage sets them, earlier stages add to them; the driver adds the products' share.
  std::array<T*, kMaxStates> d_state{};
  std::array<T*, kMaxSaved> saved{};          // forward's; a product's output is overwritten with its gradient
  std::array<const T*, kMaxSaved> d_saved{};  // for a product's input: its gradient from that product
  std::array<T*, 2> scratch{};                // (rows, H) each
  std::array<const T*, kMaxParams> params{};  // as forward's
  // Out: (rows, width*H) each (wide_tile), this step's rows' shares of the parameters' gradients;
  // the last stage sets them, earlier stages add to them. The driver drops padded rows and sums.
  std::array<T*, kMaxParams> d_params{};
};

// A cell: its layout and its math for float and double, with its activations chosen.
class Cell {
 public:
  Cell(std::string kind, Activation activation, Activation recurrent, Layout layout)
      : kind_(std::move(kind)), activation_(activation), recurrent_(recurrent), layout_(std::move(layout)) {}
  virtual ~Cell() = default;

  const std::string& kind() const { return kind_; }
  Activation activation() const { return activation_; }
  Activation recurrent_activation() const { return recurrent_; }
  const Layout& layout() const { return layout_; }
  bool same_as(const Cell& o) const {
    return kind_ == o.kind_ && activation_ == o.activation_ && recurrent_ == o.recurrent_;
  }

  virtual void forward(int stage, const Step<float>& s) const = 0;
  virtual void forward(int stage, const Step<double>& s) const = 0;
  virtual void backward(int stage, const StepGrad<float>& s) const = 0;
  virtual void backward(int stage, const StepGrad<double>& s) const = 0;

 private:
  std::string kind_;
  Activation activation_, recurrent_;
  Layout layout_;
};

// What the driver relies on in a layout; throws std::logic_error (a mistake in cells.h).
inline void check_layout(const std::string& kind, const Layout& l) {
  auto fail = [&](const char* what) { throw std::logic_error(kind + ": " + what); };
  if (l.gates < 1 || l.states.empty() || l.states.size() > kMaxStates || l.saved.size() > kMaxSaved ||
      l.params.size() > kMaxParams)
    fail("gates, states, saved arrays or parameters out of range");
  for (const Param& p : l.params)
    if (p.width < 1) fail("a parameter's width must be at least one block");
  if (l.stages.empty()) fail("no stage");
  for (std::size_t stage = 0; stage < l.stages.size(); ++stage)
    for (const Product& p : l.stages[stage]) {
      if (p.first < 0 || p.blocks < 1 || p.first + p.blocks > l.gates) fail("a product's blocks are not gates");
      const int saved = static_cast<int>(l.saved.size());
      if (p.input != kState && (stage == 0 || p.input < 0 || p.input >= saved || l.saved[p.input].width != 1))
        fail("a product's input must be h, or an array of width 1 made in an earlier stage");
      if (p.output != kGates && (p.output < 0 || p.output >= saved || l.saved[p.output].width != p.blocks))
        fail("a product's output array must be as wide as its blocks");
    }
}

// Block k of the pre-activations a cell keeps for its activations' derivatives: in `kept` (a
// saved array of width G) when the layout has it, else the gate block itself (see Switched).
template <typename T>
ArrayView<T> kept_block(T* kept, T* gates, const Tile& t, Index k) {
  return gate(kept ? kept : gates, t, k);
}

// A cell kind of cells.h as a Cell: its math with Fused activations for the default pair (tanh,
// sigmoid), Switched for any other. Where Switched needs the pre-activations, the layout keeps
// them in one more array, "pre" (width G), the kind's saved array kPre.
template <typename Kind>
class CellOf final : public Cell {
 public:
  CellOf(Activation activation, Activation recurrent)
      : Cell(Kind::kName, activation, recurrent, layout_for(activation, recurrent)),
        fused_(activation == activation_of<Tanh>() && recurrent == activation_of<Sigmoid>()) {}

  void forward(int stage, const Step<float>& s) const override { run_forward(stage, s); }
  void forward(int stage, const Step<double>& s) const override { run_forward(stage, s); }
  void backward(int stage, const StepGrad<float>& s) const override { run_backward(stage, s); }
  void backward(int stage, const StepGrad<double>& s) const override { run_backward(stage, s); }

 private:
  static Layout layout_for(Activation activation, Activation recurrent) {
    Layout layout = Kind::layout();
    if (static_cast<int>(layout.saved.size()) != Kind::kPre)
      throw std::logic_error(std::string(Kind::kName) + ": kPre must follow the saved arrays");
    if (needs_input(activation) || needs_input(recurrent)) layout.saved.push_back({"pre", layout.gates, false});
    check_layout(Kind::kName, layout);
    return layout;
  }

  template <typename T>
  void run_forward(int stage, const Step<T>& s) const {
    if (fused_) Kind::forward(stage, s, Fused<Tanh>{}, Fused<Sigmoid>{});
    else Kind::forward(stage, s, Switched{activation()}, Switched{recurrent_activation()});
  }
  template <typename T>
  void run_backward(int stage, const StepGrad<T>& s) const {
    if (fused_) Kind::backward(stage, s, Fused<Tanh>{}, Fused<Sigmoid>{});
    else Kind::backward(stage, s, Switched{activation()}, Switched{recurrent_activation()});
  }

  bool fused_;
};

}  // namespace fastrnn
