"""A training script for tests/test_distributed.py, run alone or under ``mpiexec -n N``.

    python tests/distributed_fit.py MODEL DTYPE OUT [--sharded] [--resume FILE] [--save FILE]
        [--fail-rank R] [--die-rank R] [--bad-rank R] [--empty-rank R] [--stop-rank R]
        [--callbacks DIR] [--pydataset]

MODEL: lstm | gru | bimask. Rank 0 writes the weights, the history and the Allreduce counters to
OUT (an .npz). Every rank's final weights are also checked to be equal.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import fastrnn
from fastrnn import distributed, layers

N_ROWS, STEPS, FEATURES = 23, 6, 3


def data(dtype):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N_ROWS, STEPS, FEATURES)).astype(dtype)
    lengths = rng.integers(2, STEPS + 1, size=N_ROWS)
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0  # padding, masked in the bidirectional model
    y_last = rng.normal(size=(N_ROWS, 2)).astype(dtype)
    y_seq = rng.normal(size=(N_ROWS, STEPS, 2)).astype(dtype)
    return x, y_last, y_seq


def build(kind, dtype):
    fastrnn.utils.set_random_seed(3)
    inputs = fastrnn.Input(shape=(STEPS, FEATURES), dtype=dtype)
    if kind == "lstm":
        h = layers.LSTM(5, dtype=dtype)(inputs)
        outputs = layers.Dense(2, dtype=dtype)(h)
        opt = fastrnn.optimizers.Adam(0.01, global_clipnorm=0.5)
    elif kind == "gru":
        h = layers.GRU(4, return_sequences=True, dtype=dtype)(inputs)
        h = layers.GRU(4, dtype=dtype)(h)
        outputs = layers.Dense(2, dtype=dtype)(h)
        opt = fastrnn.optimizers.Adam(0.01, clipnorm=0.1)
    else:  # a masked bidirectional model with a sequence loss over the real steps only
        h = layers.Masking(0.0, dtype=dtype)(inputs)
        h = layers.Bidirectional(layers.LSTM(4, return_sequences=True, dtype=dtype))(h)
        outputs = layers.Dense(2, dtype=dtype)(h)
        opt = fastrnn.optimizers.Adam(0.01, clipvalue=0.05)
    model = fastrnn.Model(inputs, outputs)
    model.compile(optimizer=opt, loss="mse", metrics=["mae"])
    return model


def shard(arrays, batch_size, rank, size):
    """This rank's rows such that its k-th local batch is its share of the k-th global batch."""
    parts = [np.array_split(np.arange(s, min(s + batch_size, N_ROWS)), size)[rank]
             for s in range(0, N_ROWS, batch_size)]
    rows = np.concatenate(parts)
    return [a[rows] for a in arrays]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("dtype")
    parser.add_argument("out")
    parser.add_argument("--sharded", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--resume")
    parser.add_argument("--save")
    parser.add_argument("--fail-rank", type=int)
    parser.add_argument("--die-rank", type=int)
    parser.add_argument("--bad-rank", type=int, help="sharded: this rank's targets have a wrong shape")
    parser.add_argument("--empty-rank", type=int, help="sharded: this rank passes no rows")
    parser.add_argument("--stop-rank", type=int, help="this rank alone sets stop_training")
    parser.add_argument("--callbacks", help="a folder for ModelCheckpoint's files")
    parser.add_argument("--hang-rank", type=int, help="this rank stops answering")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--no-abort", action="store_true", help="init(abort_on_error=False)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--pydataset", action="store_true",
                        help="fit on a shuffled PyDataset of (x, y, sample_weight) batches")
    parser.add_argument("--perturb", action="store_true",
                        help="ranks but 0 start from other weights and optimizer state")
    args = parser.parse_args()
    distributed.init(timeout=args.timeout, abort_on_error=not args.no_abort)
    rank, size = distributed.rank(), distributed.size()
    x, y_last, y_seq = data(args.dtype)
    y = y_seq if args.model == "bimask" else y_last
    batch_size = args.batch_size or (6 if args.sharded else 7)
    if args.resume:
        model = fastrnn.load_model(args.resume)
    else:
        model = build(args.model, args.dtype)
    if args.perturb and rank != 0:  # fit must start every rank from rank 0's
        model.set_weights([w * 1.5 + 0.1 for w in model.get_weights()])
        state = model.optimizer.get_state()
        model.optimizer.set_state([state[0] + 5] + [a * 3.0 + 1.0 for a in state[1:]])
    fastrnn.utils.set_random_seed(11)
    callbacks = []
    if args.fail_rank is not None or args.die_rank is not None or args.hang_rank is not None:
        class Fault(fastrnn.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                if batch == 2 and rank == args.fail_rank:
                    raise RuntimeError("a fault on purpose")
                if batch == 2 and rank == args.die_rank:
                    os._exit(3)
                if batch == 2 and rank == args.hang_rank:
                    time.sleep(120)
        callbacks.append(Fault())
    if args.stop_rank is not None:
        class Stop(fastrnn.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == 1 and self.params and rank == args.stop_rank:
                    self.model.stop_training = True
        callbacks.append(Stop())
    if args.callbacks:
        callbacks += [
            fastrnn.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=0.06),
            fastrnn.callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=0.012),
            fastrnn.callbacks.TerminateOnNaN(),
            fastrnn.callbacks.ModelCheckpoint(os.path.join(args.callbacks, "epoch{epoch}.keras")),
        ]
    if args.pydataset:
        model.compile(optimizer=model.optimizer, loss="mse", metrics=["mae"], weighted_metrics=["mae"])
        weights = np.random.default_rng(5).uniform(0.0, 2.0, N_ROWS).astype(args.dtype)

        class Weighted(fastrnn.utils.PyDataset):
            def __init__(self, rows):
                super().__init__()
                self.rows = rows

            def __len__(self):
                return -(-len(self.rows) // batch_size)

            def __getitem__(self, i):
                rows = self.rows[i * batch_size:(i + 1) * batch_size]
                return x[rows], y[rows], weights[rows]

        history = model.fit(Weighted(np.arange(18)), epochs=args.epochs, verbose=0, shuffle=True,
                            validation_data=Weighted(np.arange(18, N_ROWS)), callbacks=callbacks)
    elif args.sharded:
        x, y = shard([x, y], batch_size, rank, size)
        if rank == args.bad_rank:
            y = np.concatenate([y, y[..., :1]], axis=-1)
        if rank == args.empty_rank:
            x, y = x[:0], y[:0]
        history = model.fit(x, y, batch_size=batch_size, epochs=args.epochs, shuffle=False,
                            verbose=0, sharded=True, callbacks=callbacks)
    else:
        history = model.fit(x, y, batch_size=batch_size, epochs=args.epochs, verbose=0,
                            validation_split=0.2, callbacks=callbacks)
    weights = model.get_weights()
    if size > 1:  # every rank ends with rank 0's weights, bit for bit
        comm = distributed._world.comm
        theirs = comm.bcast(weights, root=0)
        if not all(np.array_equal(a, b) for a, b in zip(weights, theirs)):
            print(f"rank {rank}: weights differ from rank 0's", file=sys.stderr)
            sys.exit(4)
    if args.save:
        model.save(args.save)
    if rank == 0:
        np.savez(args.out, *weights, history=json.dumps(history.history),
                 stats=json.dumps(distributed.stats()), size=size,
                 learning_rate=model.optimizer.learning_rate)


if __name__ == "__main__":
    main()
