"""Data-parallel training over MPI: one ``fit`` run by N processes, on one machine or many.

Call :func:`init` at the top of a script started by ``mpiexec -n N`` (or ``srun``); every later
``Model.fit`` is then one training shared by the N processes (ranks)::

    import fastrnn
    from fastrnn import distributed

    distributed.init()                   # a no-op, with a warning, outside MPI
    model = ...; model.compile(...)
    model.fit(x, y, batch_size=64, epochs=5)
    model.save("model.keras")            # written by rank 0 only

What ``fit`` does then:

- Rank 0's weights (and optimizer state, when resuming) are sent to every rank first.
- Every global batch of ``batch_size`` rows is split across the ranks (rank r takes the r-th of
  N near-equal parts). By default every rank is given the same arrays and rank 0's shuffle
  order is used. With ``fit(..., sharded=True)`` each rank passes its own part of the data: each
  takes about ``batch_size / N`` of its rows a step (shuffled from a seed all ranks share), and
  the ranks agree on the number of steps (that of the largest part; a rank whose part has run
  out contributes no rows).
- Each rank runs the forward and backward pass on its rows. The loss is reduced over the whole
  global batch: each rank's gradient is weighted by its share of the loss's divisor (its rows,
  or its unmasked steps for a masked sequence loss), and the gradients are summed with one
  ``Allreduce`` on one contiguous buffer a step. Every rank then takes the same optimizer step
  (clipping sees the global gradient), and regularizer penalties of the weights are added once.
- Losses and metrics, for training and for validation, are reduced over all ranks, so every
  rank sees the same logs and callbacks (``EarlyStopping``, ``ReduceLROnPlateau``,
  ``TerminateOnNaN``) decide the same on every rank; ``stop_training`` set on any rank stops all.
- Only rank 0 prints progress and callback messages, and ``Model.save``, ``save_weights`` and
  ``export`` write only on rank 0.
- A Python error in one rank's training step stops every rank with an error; an uncaught
  exception (or a rank that dies) ends the whole job through ``MPI.Abort`` / the launcher, and
  so does a rank left waiting for the others longer than ``init``'s ``timeout``.

The result equals that of one process training on the same data (up to rounding) when nothing
random depends on the rank: dropout draws its masks on each rank for that rank's rows, so with
dropout the run is a valid data-parallel training but not the single-process one. Activity
regularizers are scaled by each rank's own batch size, and ``evaluate``/``predict``
outside ``fit`` run on every rank alone (each gets the full answer).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import warnings

import numpy as np

__all__ = ["init", "is_initialized", "rank", "size", "local_rank", "local_size", "is_chief",
           "barrier", "broadcast_weights", "stats", "launched_by_mpi"]

_world = None  # the World once init() ran under MPI with more than one process

# Variables an MPI launcher sets in each process it starts (MPICH/Hydra and Slurm's PMI, Open MPI,
# PMIx).
_LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher with more than one process (or one
    whose size is only known to MPI, as with PMIx)."""
    for name in _LAUNCHER_VARIABLES:
        value = os.environ.get(name)
        if value is not None and (name == "PMIX_RANK" or value.strip() not in ("", "0", "1")):
            return True
    return False


def init(threads: int | None = None, abort_on_error: bool = True,
         timeout: float | None = 600.0) -> None:
    """Join the MPI job this process belongs to; later ``fit`` calls train data-parallel.

    threads: kernel threads for this rank; None gives the machine's physical cores divided by
        the ranks on this machine (at least 1), unless ``OMP_NUM_THREADS`` is set.
    abort_on_error: an uncaught exception on any rank ends the whole job with ``MPI.Abort``
        (else the other ranks would wait for it forever).
    timeout: seconds a rank may wait for the others in one exchange of ``fit`` before it ends
        the job with ``MPI.Abort`` (a rank stuck, or one that caught an error and went on);
        None waits forever.

    Outside MPI (one process) nothing changes, with a warning. Calling it again is a no-op.
    ImportError when mpi4py is missing: ``pip install "fastrnn[mpi]"``.
    """
    global _world
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if _world is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError("fastrnn.distributed needs mpi4py and an MPI library: "
                          'pip install "fastrnn[mpi]"') from err
    if MPI.COMM_WORLD.Get_size() == 1:
        warnings.warn("fastrnn.distributed.init(): this is a single process (not started by "
                      "mpiexec/srun with more than one); fit trains as usual", RuntimeWarning,
                      stacklevel=2)
        return
    _world = World(MPI.COMM_WORLD, MPI)
    _world.set_threads(threads)
    if abort_on_error:
        _abort_on_uncaught_exception(_world)
    if timeout is not None:
        _world.watch(timeout)


def is_initialized() -> bool:
    """True after :func:`init` joined a job of more than one process."""
    return _world is not None


def rank() -> int:
    """This process's rank (0 without MPI)."""
    return 0 if _world is None else _world.rank


def size() -> int:
    """The number of processes training together (1 without MPI)."""
    return 1 if _world is None else _world.size


def local_rank() -> int:
    """This process's rank among those on the same machine."""
    return 0 if _world is None else _world.local_rank


def local_size() -> int:
    """The number of ranks on this machine."""
    return 1 if _world is None else _world.local_size


def is_chief() -> bool:
    """True on the rank that prints and writes files (rank 0; always without MPI)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank is here (nothing to wait for without MPI)."""
    if _world is not None:
        _world.call("Barrier")


def broadcast_weights(model, root: int = 0) -> None:
    """Give every rank ``root``'s weights (all of ``model.params``), in place."""
    if _world is not None:
        _world.broadcast_params(model, root)


_COUNTERS = ("gradient_calls", "gradient_seconds", "gradient_bytes", "logs_calls", "logs_seconds")


def stats() -> dict:
    """What the exchanges of ``fit`` have cost this process so far: the gradients' Allreduce
    (calls, seconds waited, bytes summed) and that of the logs' numbers (calls, seconds);
    zeros without MPI."""
    if _world is None:
        return {key: 0 for key in _COUNTERS}
    return dict(_world.counters)


def fit_run(sharded: bool = False):
    """The per-``fit`` helper the training loop uses (None without MPI)."""
    if not isinstance(sharded, (bool, np.bool_)):
        raise TypeError(f"sharded must be True or False, got {sharded!r}")
    return None if _world is None else FitRun(_world, bool(sharded))


class World:
    """The communicator and this process's place in it."""

    def __init__(self, comm, MPI):
        self.comm, self.MPI = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.counters = {key: 0 for key in _COUNTERS}
        self.timeout = None
        self._waiting_since = None  # when this rank entered the collective it is in, if any
        self._waiting_in = None

    def call(self, name: str, *args, **kwargs):
        """``comm.<name>(*args, **kwargs)``, a collective, under the watch of the timeout."""
        self._waiting_in, self._waiting_since = name, time.monotonic()
        try:
            return getattr(self.comm, name)(*args, **kwargs)
        finally:
            self._waiting_since = None

    def watch(self, timeout: float) -> None:
        """Abort the job when this rank waits longer than ``timeout`` seconds in one collective
        (another rank stuck, or gone on without it); checked by a daemon thread."""
        self.timeout = float(timeout)

        def watchdog():
            while True:
                time.sleep(min(1.0, self.timeout / 4))
                since = self._waiting_since
                if since is not None and time.monotonic() - since > self.timeout:
                    self.abort(f"waited more than {self.timeout:g} s for the other ranks in "
                               f"{self._waiting_in}: a rank is stuck, or left training")

        threading.Thread(target=watchdog, name="fastrnn.distributed watchdog", daemon=True).start()

    def set_threads(self, threads):
        from fastrnn import ops

        if threads is None:
            if os.environ.get("OMP_NUM_THREADS"):
                return
            threads = max(1, ops.physical_cores() // self.local_size)
        ops.set_num_threads(int(threads))

    def sum_in_place(self, buffer: np.ndarray, kind: str) -> None:
        """Sum a contiguous array over all ranks, in place; counted in ``counters`` under
        ``kind`` ('gradient' or 'logs')."""
        start = time.perf_counter()
        self.call("Allreduce", self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        self.counters[f"{kind}_seconds"] += time.perf_counter() - start
        self.counters[f"{kind}_calls"] += 1
        if kind == "gradient":
            self.counters["gradient_bytes"] += buffer.nbytes

    def any(self, *flags) -> list[bool]:
        """Each flag as True when it is True on any rank."""
        values = np.array([1 if f else 0 for f in flags], dtype=np.int64)
        self.call("Allreduce", self.MPI.IN_PLACE, values, op=self.MPI.MAX)
        return [bool(v) for v in values]

    def failed_ranks(self, failed: bool) -> list[int]:
        return [r for r, f in enumerate(self.call("allgather", bool(failed))) if f]

    @contextlib.contextmanager
    def all_or_none(self, what: str):
        """Every rank leaves the block the same way: if one raises, it re-raises and the others
        raise a RuntimeError naming it, instead of waiting for it at the next collective."""
        try:
            yield
        except Exception as err:
            self.say(f"{type(err).__name__}: {err}")
            self.failed_ranks(True)
            raise
        failed = self.failed_ranks(False)
        if failed:
            raise RuntimeError(f"{what}: rank(s) {failed} of {self.size} raised an error (see "
                               "their message); every rank stops")

    def broadcast_params(self, model, root=0):
        params = model.params
        shapes = self.call("bcast", [(p.shape, p.dtype.str) for p in params], root=root)
        with self.all_or_none("fit"):
            mine = [(p.shape, p.dtype.str) for p in params]
            if mine != shapes:
                raise ValueError(f"rank {self.rank}: the model's parameters {mine} differ from "
                                 f"those of rank {root} {shapes}: every rank must build the same model")
        for p in params:
            if p.flags.c_contiguous:
                self.call("Bcast", p, root=root)
            else:
                buffer = np.ascontiguousarray(p)
                self.call("Bcast", buffer, root=root)
                p[...] = buffer

    def say(self, message: str) -> None:
        """One line on stderr, at once: before the other ranks hear of an error (and may end
        the job), the rank that hit it has said what it was."""
        sys.stderr.write(f"fastrnn.distributed: rank {self.rank}: {message}\n")
        sys.stderr.flush()

    def abort(self, message: str, code: int = 1):
        self.say(f"{message}; aborting the job")
        self.comm.Abort(code)


def _abort_on_uncaught_exception(world: World) -> None:
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        # The error's one line first: when the job ends, the launcher may not pass on the rest
        # of what this rank wrote.
        world.say(f"uncaught {exc_type.__name__}: {exc}")
        previous(exc_type, exc, tb)
        sys.stderr.flush()
        world.abort(f"uncaught {exc_type.__name__}")

    sys.excepthook = hook


# ---------------------------------------------------------------------- one fit


class FitRun:
    """One distributed ``fit``: the batches each rank takes, and the reduced training and test
    steps. ``last_rows`` is the global batch size of the last step (for the running means)."""

    def __init__(self, world: World, sharded: bool):
        self.world, self.sharded = world, sharded
        self.seed = None
        self.last_rows = 0
        self._first_order = None

    # -- before the first step

    def prepare(self, model, x, y, shuffle: bool) -> None:
        """Local: build the model and its metrics from this rank's first row (every rank has
        one), so that every rank knows the layout of the reduced numbers."""
        from fastrnn import _data
        from fastrnn.utils import get_rng

        n = _data.length(x)
        if n == 0:
            raise ValueError(f"fit: rank {self.world.rank} has no training samples")
        if not model.built and shuffle and not self.sharded:
            # One process draws the first shuffle before the weights (built at the first step).
            self._first_order = get_rng().permutation(n)
        first = np.arange(1)
        xs, ys = _data.take(x, first), _data.take(y, first)
        saved = model.carried_states()
        try:
            y_pred, _ = model._forward(xs, training=False)
        finally:
            model.restore_states(saved)
        targets = model._ensure_targets(len(y_pred))
        for target, y_true, pred in zip(targets, model._targets_for(ys, targets), y_pred):
            if target.metric_ids and y_true is not None:
                target.ensure_metrics(y_true, pred)
        model._train_params = model.trainable_params

    def synchronize(self, model, shuffle: bool) -> None:
        """Collective: rank 0's weights and optimizer state to every rank, and the seed of the
        sharded shuffle."""
        from fastrnn.utils import get_rng

        world = self.world
        world.broadcast_params(model)
        state = world.call("bcast", model.optimizer.get_state() if world.rank == 0 else None, root=0)
        if world.rank != 0:
            model.optimizer.set_state(state, model._train_params)
        if self.sharded and shuffle:
            seed = int(get_rng().integers(2**63)) if world.rank == 0 else None
            self.seed = world.call("bcast", seed, root=0)

    # -- the batches

    def order(self, n: int, shuffle: bool, epoch: int) -> np.ndarray:
        """The epoch's order of this rank's rows: rank 0's shuffle, or for sharded data a
        shuffle of the rank's own part from the shared seed."""
        from fastrnn.utils import get_rng

        if not shuffle:
            return np.arange(n)
        if self.sharded:
            return np.random.default_rng([self.seed, epoch, self.world.rank]).permutation(n)
        if self.world.rank != 0:
            order = np.empty(n, dtype=np.int64)
        elif self._first_order is not None:
            order, self._first_order = self._first_order, None
        else:
            order = get_rng().permutation(n)
        order = np.ascontiguousarray(order, dtype=np.int64)
        self.world.call("Bcast", order, root=0)
        return order

    def batches(self, order: np.ndarray, batch_size: int) -> list[np.ndarray]:
        """This rank's rows of every step (possibly none); the same number of steps on every rank."""
        world = self.world
        if not self.sharded:
            return [np.array_split(order[start:start + batch_size], world.size)[world.rank]
                    for start in range(0, len(order), batch_size)]
        share = batch_size // world.size + (1 if world.rank < batch_size % world.size else 0)
        mine = -(-len(order) // share) if share else 0
        steps = world.call("allreduce", mine, op=world.MPI.MAX)
        return [order[k * share:(k + 1) * share] for k in range(steps)]

    # -- the steps

    def train_step(self, model, x, y, sample_weight=None) -> dict:
        """One optimizer step on the global batch whose rows (x, y, sample_weight) this rank
        holds."""
        with model._states_kept_on_error():
            batch = self._reduced_batch(model, x, y, training=True, sample_weight=sample_weight)
            try:
                grads = self._summed_gradients(model, batch)
                logs = batch.logs
                logs["loss"] += model._add_weight_penalties(grads, model._train_params)
                model._apply_step(grads)
            except Exception as err:
                self.world.abort(f"{type(err).__name__} after the batch's losses were reduced: {err}")
        return logs

    def test_step(self, model, x, y, sample_weight=None) -> dict:
        batch = self._reduced_batch(model, x, y, training=False, sample_weight=sample_weight)
        batch.logs["loss"] += model._weight_penalty()
        return batch.logs

    def _reduced_batch(self, model, x, y, training, sample_weight=None):
        """Forward pass and losses on this rank's rows, then one small Allreduce of the error
        flag, the row count, the activity penalties, each loss's sum and divisor, and the
        metrics' increments -> the batch with the global logs."""
        from fastrnn import _data

        batch = _Batch(_data.length(x))
        error = None
        try:
            if batch.rows:
                batch.run_forward(model, x, y, training, sample_weight)
            numbers = batch.local_numbers(model)
        except Exception as err:
            error = err
            self.world.say(f"{type(err).__name__}: {err}")
            numbers = np.zeros(_layout(model._targets))
            numbers[0] = 1.0
        self.world.sum_in_place(numbers, "logs")
        if numbers[0]:
            failed = self.world.failed_ranks(error is not None)
            if error is not None:
                raise error
            raise RuntimeError(f"fit: rank(s) {failed} of {self.world.size} raised an error in a "
                               f"{'training' if training else 'validation'} step (see their "
                               "message); every rank stops")
        batch.use_global(model, numbers)
        self.last_rows = int(numbers[1])
        return batch

    def _summed_gradients(self, model, batch) -> list[np.ndarray]:
        """Backward pass with each output's gradient weighted by this rank's share, then the
        gradients summed over the ranks in one buffer per dtype (one, for a model of one dtype)."""
        params = model._train_params
        if batch.rows:
            model._backward(batch.output_grads(model))
            grads = model._trainable_grads()
        else:
            grads = [np.zeros_like(p) for p in params]
        out = [None] * len(grads)
        for dtype in dict.fromkeys(g.dtype for g in grads):
            index = [i for i, g in enumerate(grads) if g.dtype == dtype]
            buffer = np.concatenate([grads[i].ravel() for i in index]) if index else None
            self.world.sum_in_place(buffer, "gradient")
            offset = 0
            for i in index:
                size = grads[i].size
                out[i] = buffer[offset:offset + size].reshape(grads[i].shape)
                offset += size
        return out


def _layout(targets) -> int:
    """How many numbers a batch reduces: flag, rows, activity, 2 per target, 2 per metric."""
    return 3 + 2 * len(targets) + 2 * sum(len(t.metrics or []) for t in targets)


class _Batch:
    """One rank's part of a batch, and the global numbers once reduced."""

    def __init__(self, rows):
        self.rows = rows
        self.targets = None
        self.y = self.y_pred = self.masks = self.weights = None
        self.activity = 0.0
        self.sums = self.divisors = None
        self.before = []

    def run_forward(self, model, x, y, training, sample_weight=None):
        from fastrnn.layers.base import collect_activity_losses

        with collect_activity_losses() as activity:
            y_pred, masks = model._forward(x, training=training)
        targets = model._ensure_targets(len(y_pred))
        self.y, self.y_pred, self.masks = model._targets_for(y, targets), y_pred, masks
        self.activity = float(sum(activity))
        self.loss_masks = [model._loss_mask(m, p) for m, p in zip(masks, y_pred)]
        self.weights = model._weights_for(sample_weight, targets) or [None] * len(targets)
        self.sums, self.divisors = [], []
        for target, y_true, pred, mask, sw in zip(targets, self.y, y_pred, self.loss_masks,
                                                  self.weights):
            if target.loss is None:
                self.sums.append(0.0)
                self.divisors.append(0.0)
                continue
            if y_true is None:
                raise ValueError(f"the model's output {target.name!r} has a loss but no targets "
                                 "were given for it")
            divisor = _divisor(target.loss, y_true, pred, mask, sw)
            value = target.loss(y_true, pred, sample_weight=sw, mask=mask)
            self.sums.append(value * (divisor or 1.0))
            self.divisors.append(divisor)

    def local_numbers(self, model) -> np.ndarray:
        """This rank's numbers in the layout of ``_layout``; adds the batch to the metrics."""
        self.targets = targets = model._targets
        numbers = [0.0, float(self.rows), self.activity]
        for k in range(len(targets)):
            numbers += [self.sums[k], self.divisors[k] or 0.0] if self.rows else [0.0, 0.0]
        metrics = [m for t in targets for m in t.metrics or []]
        self.before = [(m.total, m.count) for m in metrics]
        if self.rows:
            model._update_metrics(targets, self.y, self.y_pred, self.masks, self.weights)
        for m, (total, count) in zip(metrics, self.before):
            numbers += [m.total - total, m.count - count]
        return np.array(numbers, dtype=np.float64)

    def use_global(self, model, numbers):
        """Set the logs, the metrics' totals, and each output's share of the loss from the
        reduced numbers."""
        targets = self.targets
        total, logs, self.shares = 0.0, {}, []
        with_loss = [t for t in targets if t.loss is not None]
        for k, target in enumerate(targets):
            s, d = numbers[3 + 2 * k], numbers[4 + 2 * k]
            if target.loss is None:
                self.shares.append(None)
                continue
            additive = _is_additive(target.loss)
            value = (s / d if d else 0.0) if additive else s
            local = self.divisors[k] if self.rows else 0.0
            self.shares.append((local / d if d else 0.0) if additive else 1.0)
            total += value if target.weight is None else target.weight * value
            if len(with_loss) > 1:
                logs[target.loss_log] = float(value)
        self.logs = {"loss": float(total + numbers[2]), **logs}
        metrics = [m for t in targets for m in t.metrics or []]
        offset = 3 + 2 * len(targets)
        for j, (m, (before_total, before_count)) in enumerate(zip(metrics, self.before)):
            m.total = before_total + numbers[offset + 2 * j]
            m.count = before_count + numbers[offset + 2 * j + 1]
        model.metrics = metrics

    def output_grads(self, model) -> list:
        """Each output's loss gradient on this rank's rows, times its share of the global loss."""
        grads = []
        for target, y_true, pred, mask, sw, share in zip(self.targets, self.y, self.y_pred,
                                                         self.loss_masks, self.weights, self.shares):
            if target.loss is None:
                grads.append(None)
                continue
            g = target.loss.gradient(y_true, pred, sample_weight=sw, mask=mask)
            scale = share if target.weight is None else share * target.weight
            grads.append(g * g.dtype.type(scale))
        return grads


def _is_additive(loss) -> bool:
    """A loss that is a sum over rows divided by a count (every reduction but 'sum')."""
    return loss.reduction != "sum"


def _divisor(loss, y_true, y_pred, mask, sample_weight=None) -> float | None:
    """What the loss divides its weighted sum by on these rows (None for reduction='sum'):
    the number of values, or of unmasked ones with a mask (sample weights do not change it,
    as in Keras), or for 'mean_with_sample_weight' the sum of the weights."""
    if not _is_additive(loss):
        return None
    from fastrnn import losses

    if sample_weight is not None and loss.reduction == "mean_with_sample_weight":
        t, p, _, own = loss.prepare(y_true, y_pred)
        values_shape = p.shape[:-1]
        weights, divisor = loss._weights(values_shape, sample_weight, losses._and_masks(mask, own))
        return divisor

    known = type(loss).prepare in (losses.Loss.prepare, losses.BinaryCrossentropy.prepare,
                                   losses.CategoricalCrossentropy.prepare,
                                   losses.SparseCategoricalCrossentropy.prepare)
    own = None
    if known and getattr(loss, "ignore_class", None) is None:
        shape = np.shape(y_pred)[:-1]
    else:
        _, p, _, own = loss.prepare(y_true, y_pred)
        shape = p.shape[:-1]
    if mask is None and own is None:
        return float(np.prod(shape))
    keep = np.ones(shape, dtype=bool)
    for m in (mask, own):
        if m is not None:
            keep = keep & np.broadcast_to(
                np.asarray(m, dtype=bool).reshape(np.shape(m) + (1,) * (len(shape) - np.ndim(m))), shape)
    return float(keep.sum())
