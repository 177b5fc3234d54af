"""Keras scripts from introductory RNN tutorials run on fastrnn with only their imports changed.

Two tutorials hold complete Keras programs (a SimpleRNN binary classifier on random data; a
SimpleRNN regressor). They are embedded below verbatim except for the two import lines
(``keras.models`` -> ``fastrnn.models``, ``keras.layers`` -> ``fastrnn.layers``). A third
describes a character-level text generator without printing its code; ``TEXT_GENERATOR`` is
that program written in the same Keras style from the description (its text chosen so that
five characters always determine the next one, which makes reproducing it a fair test).
"""
from __future__ import annotations

import numpy as np

from fastrnn.utils import set_random_seed

# A tutorial's binary classifier.
CLASSIFIER = '''
import numpy as np
from fastrnn.models import Sequential
from fastrnn.layers import SimpleRNN, Dense

# Generate dummy data
x_train = np.random.random((1000, 10, 1))
y_train = np.random.randint(2, size=(1000, 1))

# Build the RNN model
model = Sequential()
model.add(SimpleRNN(32, input_shape=(10, 1)))
model.add(Dense(1, activation='sigmoid'))

# Compile the model
model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])

# Train the model
model.fit(x_train, y_train, epochs=10, batch_size=32)

# Evaluate the model
accuracy = model.evaluate(x_train, y_train)
print("Accuracy:", accuracy)
'''

# A tutorial's regressor.
REGRESSOR = '''
import numpy as np
from fastrnn.models import Sequential
from fastrnn.layers import SimpleRNN, Dense
# Sample data
X = np.random.rand(10, 5, 1) # 10 samples, 5 time steps, 1 feature
y = np.random.rand(10, 1) # 10 target values
# Build RNN model
model = Sequential()
model.add(SimpleRNN(32, input_shape=(5, 1)))
model.add(Dense(1))
model.compile(optimizer='adam', loss='mean_squared_error')
# Train the model
model.fit(X, y, epochs=10)
'''

# Written from a tutorial's description of a character-level generator.
TEXT_GENERATOR = '''
import numpy as np
from fastrnn.models import Sequential
from fastrnn.layers import SimpleRNN, Dense

text = "This is a sample text for a tiny RNN generator that learns characters."
chars = sorted(list(set(text)))
char_to_index = {char: i for i, char in enumerate(chars)}
index_to_char = {i: char for i, char in enumerate(chars)}

seq_length = 5
sequences = []
labels = []
for i in range(len(text) - seq_length):
    seq = text[i:i + seq_length]
    label = text[i + seq_length]
    sequences.append([char_to_index[char] for char in seq])
    labels.append(char_to_index[label])

X = np.array(sequences)
y = np.array(labels)
X_one_hot = np.eye(len(chars))[X]
y_one_hot = np.eye(len(chars))[y]

model = Sequential()
model.add(SimpleRNN(50, input_shape=(seq_length, len(chars)), activation='relu'))
model.add(Dense(len(chars), activation='softmax'))
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
model.fit(X_one_hot, y_one_hot, epochs=100, batch_size=8, verbose=0)

start_seq = "This is a"
generated_text = start_seq
for i in range(20):
    x = np.array([[char_to_index[char] for char in generated_text[-seq_length:]]])
    x_one_hot = np.eye(len(chars))[x]
    prediction = model.predict(x_one_hot, verbose=0)
    next_char = index_to_char[np.argmax(prediction)]
    generated_text += next_char
print("Generated Text:")
print(generated_text)
'''


def run(script):
    """Execute a script as a program would run it, returning its global namespace."""
    set_random_seed(0)
    np.random.seed(0)
    namespace = {"__name__": "__main__"}
    exec(compile(script, "<seed script>", "exec"), namespace)
    return namespace


def test_binary_classifier_script_runs_and_reports_loss_and_accuracy(capsys):
    namespace = run(CLASSIFIER)
    loss, accuracy = namespace["accuracy"]
    assert 0 < loss < 0.75 and 0.4 < accuracy <= 1.0  # random labels: about chance, finite loss
    history = namespace["model"].history.history
    assert len(history["loss"]) == 10 and history["loss"][-1] < history["loss"][0]
    out = capsys.readouterr().out
    assert "Epoch 10/10" in out and "Accuracy: [" in out


def test_regression_script_runs_and_reduces_its_training_loss(capsys):
    namespace = run(REGRESSOR)
    history = namespace["model"].history.history
    assert len(history["loss"]) == 10 and history["loss"][-1] < history["loss"][0]
    assert "Epoch 1/10" in capsys.readouterr().out


def test_text_generator_script_reproduces_its_training_text(capsys):
    namespace = run(TEXT_GENERATOR)
    generated = namespace["generated_text"]
    assert len(generated) == len("This is a") + 20
    assert generated == namespace["text"][:len(generated)]
    assert "Generated Text:" in capsys.readouterr().out
