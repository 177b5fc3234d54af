"""Keras-style layers on the fastrnn kernels; batch-major input ``(B, T, F)``.

Recurrent: ``SimpleRNN``, ``LSTM``, ``GRU`` (``recurrent.py``); ``RNN`` with the cells
``SimpleRNNCell``, ``LSTMCell``, ``GRUCell`` and ``StackedRNNCells`` (``rnn.py``). Wrappers: ``Bidirectional``,
``TimeDistributed`` (``wrappers.py``). Others: ``Dense``, ``Activation``, ``Dropout``,
``Embedding``, ``Masking``, ``Input``/``InputLayer`` (``core.py``); the merges ``Add``,
``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum``, ``Concatenate``, ``Dot`` and
their lowercase functions (``merging.py``); ``Flatten``, ``Reshape``, ``Permute``,
``RepeatVector`` (``reshaping.py``); ``GlobalAveragePooling1D``, ``GlobalMaxPooling1D``
(``pooling.py``); ``LayerNormalization`` (``normalization.py``); ``Attention``,
``AdditiveAttention`` (``attention.py``). The protocol every layer follows (call, backward,
params, grads, masks, configs) is described in ``base.py``.
"""
from fastrnn.layers.attention import AdditiveAttention, Attention
from fastrnn.layers.base import Layer, deserialize, serialize
from fastrnn.layers.core import Activation, Dense, Dropout, Embedding, Input, InputLayer, Masking
from fastrnn.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply,
                                    Subtract, add, average, concatenate, dot, maximum, minimum,
                                    multiply, subtract)
from fastrnn.layers.normalization import LayerNormalization
from fastrnn.layers.pooling import (GlobalAveragePooling1D, GlobalAvgPool1D, GlobalMaxPool1D,
                                    GlobalMaxPooling1D)
from fastrnn.layers.recurrent import GRU, LSTM, Recurrent, SimpleRNN
from fastrnn.layers.reshaping import Flatten, Permute, RepeatVector, Reshape
from fastrnn.layers.rnn import RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from fastrnn.layers.wrappers import Bidirectional, TimeDistributed

__all__ = [
    "Layer", "Recurrent", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed",
    "RNN", "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells",
    "Dense", "Activation", "Dropout", "Embedding", "Masking", "Input", "InputLayer",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
    "Flatten", "Reshape", "Permute", "RepeatVector",
    "GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalAvgPool1D", "GlobalMaxPool1D",
    "LayerNormalization", "Attention", "AdditiveAttention",
    "serialize", "deserialize",
]
