// The run-time side of activations.h: names, and each activation applied to a whole block.
#include "activations.h"

#include <stdexcept>

namespace fastrnn {
namespace {

template <std::size_t... I>
constexpr std::array<const char*, kActivations> names(std::index_sequence<I...>) {
  return {std::tuple_element_t<I, AllActivations>::kName...};
}
constexpr auto kNames = names(std::make_index_sequence<kActivations>{});

}  // namespace

Activation parse_activation(const std::string& name) {
  for (std::size_t a = 0; a < kActivations; ++a)
    if (name == kNames[a]) return Activation(a);
  throw std::invalid_argument("unknown activation '" + name + "'");
}

const char* activation_name(Activation a) { return kNames.at(static_cast<std::size_t>(a)); }

std::vector<std::string> activation_names() { return {kNames.begin(), kNames.end()}; }

template <typename T>
void activate(Activation a, ArrayView<T> y) {
  visit(a, [&](auto f) { y = decltype(f)::f(y); });
}

template <typename T>
void derivative(Activation a, ArrayView<T> out, ArrayView<T> y, ArrayView<T> x) {
  visit(a, [&](auto f) { out = decltype(f)::df(y, x); });
}

template void activate<float>(Activation, ArrayView<float>);
template void activate<double>(Activation, ArrayView<double>);
template void derivative<float>(Activation, ArrayView<float>, ArrayView<float>, ArrayView<float>);
template void derivative<double>(Activation, ArrayView<double>, ArrayView<double>, ArrayView<double>);

}  // namespace fastrnn
