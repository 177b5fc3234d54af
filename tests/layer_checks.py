"""Checks shared by the tests of the non-recurrent layers (``tests/test_layers_*.py``).

``check_gradients(layer, inputs, ...)``: the input and parameter gradients of ``backward``
against central finite differences of the scalar ``sum(R * output)`` (R fixed random weights,
one array per output), in float64.
``keras_run(keras_layer, inputs, ...)``: a Keras layer called on NumPy inputs (masks attached
to the tensors the way Keras's merge layers read them), outputs back as NumPy.
``round_trip(layer)``: a twin made from the layer's config.
"""
from __future__ import annotations

import numpy as np

from conftest import finite_difference
from fastrnn.layers import deserialize, serialize


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def check_gradients(layer, inputs, mask=None, rtol=1e-6, atol=1e-9, seed=0, reseed=None,
                    **call_kwargs):
    """Compare ``layer.backward`` with finite differences for every input and parameter.

    inputs: an array, or a list of arrays for a multi-input layer (float64, changed in place
    during the differences and restored). ``reseed()``, if given, is called before every
    forward run, so that a layer with dropout draws the same masks each time (the runs are
    then training runs). Returns the input gradients.
    """
    rng = np.random.default_rng(seed)
    training = reseed is not None
    xs = _as_list(inputs)

    def run(train):
        if reseed is not None:
            reseed()
        return _as_list(layer(inputs, training=train, mask=mask, **call_kwargs))

    if reseed is not None:
        reseed()
    first = layer(inputs, mask=mask, **call_kwargs)
    several = isinstance(first, (list, tuple))
    weights = [rng.standard_normal(o.shape) for o in _as_list(first)]

    def loss():
        return sum(float((w * o).sum()) for w, o in zip(weights, run(training)))

    run(True)
    dx = layer.backward(weights if several else weights[0])
    dx = _as_list(dx) if isinstance(inputs, (list, tuple)) else [dx]
    grads = [g.copy() for g in layer.grads]
    for k, (x, g) in enumerate(zip(xs, dx)):
        np.testing.assert_allclose(g, finite_difference(loss, x), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k}")
    assert len(grads) == len(layer.params)
    for k, (p, g) in enumerate(zip(layer.params, grads)):
        assert g.shape == p.shape, f"gradient of parameter {k}"
        np.testing.assert_allclose(g, finite_difference(loss, p), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of parameter {k}")
    return dx


def to_numpy(tensor) -> np.ndarray:
    """A Keras (torch) tensor -> ndarray, without NumPy's deprecated copy-less ``__array__``."""
    return tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)


def keras_run(keras, keras_layer, inputs, masks=None, **call_kwargs):
    """Call a Keras layer on NumPy ``inputs`` (an array or a list); ``masks`` (a list, one per
    input, entries None) are attached to the input tensors as Keras's masks. -> NumPy output(s)."""
    from keras.src import backend

    multi = isinstance(inputs, (list, tuple))
    tensors = [keras.ops.convert_to_tensor(x) for x in _as_list(inputs)]
    if masks is not None:
        for t, m in zip(tensors, masks):
            if m is not None:
                backend.set_keras_mask(t, keras.ops.convert_to_tensor(m))
    out = keras_layer(tensors if multi else tensors[0], **call_kwargs)
    if isinstance(out, (list, tuple)):
        return [to_numpy(o) for o in out]
    return to_numpy(out)


def keras_mask(keras, keras_layer, inputs, masks):
    """A Keras layer's ``compute_mask`` on NumPy inputs and masks -> NumPy bool mask or None."""
    def tensor(a):
        return None if a is None else keras.ops.convert_to_tensor(a)

    if isinstance(inputs, (list, tuple)):
        out = keras_layer.compute_mask([tensor(x) for x in inputs],
                                       None if masks is None else [tensor(m) for m in masks])
    else:
        out = keras_layer.compute_mask(tensor(inputs), tensor(masks))
    return None if out is None else to_numpy(out)


def round_trip(layer):
    """A new layer from ``serialize(layer)`` (through JSON, as a saved model stores it)."""
    import json

    return deserialize(json.loads(json.dumps(serialize(layer))))
