"""The truth of a stateful model's folder (conversion/stateful.py): the Keras
stateful model itself, never its stateless twin.

Whole-sequence paths are checked against it called on batches of its fixed
batch size (the last one padded with zero rows), `reset_states()` before
each batch, so that every sequence starts from the zero state.

Stream paths (runtime/streams.py) are checked as a stateful model is used:
each sequence fed in chunks of several steps, the state carried from one
call to the next. Keras's stateful model is fed the same chunks (a free
time axis copy, conversion/stateful.chunkable) and the Node streams must
give its output after every chunk (the whole output sequence for a
return_sequences model). The chunk sizes are drawn here, from the number of
steps, and sent to Node in the stream feed."""

from __future__ import annotations

import numpy as np

from ..conversion.stateful import chunkable, reset_states
from ..runtime.runtimes import STREAM_RUNTIMES
from ..runtime.streams import VERIFY_FEED
from .truth import Comparison, KerasTruth, Subject, as_list


def chunk_sizes(steps: int) -> list[int]:
    """Sizes adding up to `steps`, each 1 to max(1, steps / 4), seeded by
    `steps`: single steps, chunks and the joins between them all occur."""
    rng = np.random.default_rng(steps)
    largest, sizes = max(1, steps // 4), []
    while sum(sizes) < steps:
        sizes.append(min(steps - sum(sizes), int(rng.integers(1, largest + 1))))
    return sizes


class StatefulTruth(KerasTruth):
    """KerasTruth on the stateful model, reset before each batch of its fixed size."""

    def __init__(self, subject: Subject):
        super().__init__(subject)
        self.batch = int(subject.stateful["batch"])
        whole = self._call
        self._call = lambda xs: self._in_batches(self.keras_model, whole, xs)
        self._chunked_model = None
        self._chunked: dict[int, tuple] = {}  # id(python_side) -> (python_side, outputs)
        self.said = (
            f"Keras stateful model, reset_states() before each batch of {self.batch} "
            "(the last padded with zero rows)"
        )

    def _in_batches(self, model, call, xs: list[np.ndarray]) -> list[np.ndarray]:
        """call(batch) on batches of the fixed size, padded, `model` reset before each."""
        n, parts = len(xs[0]), []
        for i in range(0, n, self.batch):
            part = [x[i : i + self.batch] for x in xs]
            short = self.batch - len(part[0])
            part = [np.concatenate([p, np.zeros((short, *p.shape[1:]), p.dtype)]) for p in part]
            reset_states(model)
            parts.append([np.asarray(y)[: self.batch - short] for y in call(part)])
        return [np.concatenate(ys) for ys in zip(*parts, strict=True)]

    def stream_feed(self, xs) -> dict:
        """The stream paths' feed: the chunks Keras is fed, and every step's output."""
        return {**VERIFY_FEED, "chunks": chunk_sizes(xs[0].shape[1]), "per_step": True}

    def _chunks_of(self, xs) -> tuple[list[np.ndarray], list[bool]]:
        """The stateful model fed xs in chunk_sizes' chunks, reset between
        batches: per output, its output after every chunk [N, chunks, ...],
        or every step's [N, T, ...] for a return_sequences output (True in
        the second list)."""
        if self._chunked_model is None:
            self._chunked_model = chunkable(self.keras_model)
        model, sizes = self._chunked_model, chunk_sizes(xs[0].shape[1])
        sequences = []

        def fed(batch):
            calls, t = [], 0
            for size in sizes:
                calls.append([np.asarray(y) for y in as_list(model(batch[0][:, t : t + size]))])
                t += size
            per_output = list(zip(*calls, strict=True))
            # a return_sequences output gives one row per step of the chunk
            sequences[:] = [
                ys[0].ndim >= 3 and [y.shape[1] for y in ys] == sizes for ys in per_output
            ]
            return [
                np.concatenate(ys, 1) if seq else np.stack(ys, 1)
                for ys, seq in zip(per_output, sequences, strict=True)
            ]

        outputs = self._in_batches(model, fed, xs)
        real = self._real_steps(xs[0])
        if real is not None:
            outputs = [_carried(y, real if seq else _chunk_real(real, sizes))
                       for y, seq in zip(outputs, sequences, strict=True)]  # fmt: skip
        return outputs, sequences

    def _real_steps(self, x: np.ndarray) -> np.ndarray | None:
        """[N, T]: which steps the model's mask keeps (None: no mask)."""
        value = self.subject.signature.inputs[0].mask_value
        if value is None:
            return None
        kept = x != value
        return kept if kept.ndim == 2 else kept.reshape(*kept.shape[:2], -1).any(-1)

    def _streamed(self, python_side) -> tuple[list[np.ndarray], list[bool]]:
        """_chunks_of python_side's inputs, computed once for each (the
        conditioning check asks again with its nudged ones)."""
        key = id(python_side)
        if key not in self._chunked:
            self._chunked[key] = (python_side, self._chunks_of(python_side.xs))
        return self._chunked[key][1]

    def comparisons(self, runtime, fmt, run, python_side):
        if runtime not in STREAM_RUNTIMES:
            found = super().comparisons(runtime, fmt, run, python_side)
            return [_relabelled(c, self.said) for c in found]
        expected, sequences = self._streamed(python_side)
        sizes = chunk_sizes(python_side.xs[0].shape[1])
        ends = np.cumsum(sizes) - 1

        def at_chunk_ends(outputs):  # every step a stream gave -> what Keras's calls gave
            # (any other shape is left as it came, for the comparison to name)
            return [y[:, ends] if not seq and y.ndim >= 2 and y.shape[1] == ends[-1] + 1 else y
                    for y, seq in zip(outputs, sequences, strict=True)]  # fmt: skip

        got, singles = at_chunk_ends(run.outputs), at_chunk_ends(run.singles)
        said = (f"Keras stateful model fed chunks of {'+'.join(map(str, sizes))} steps, "
                "state carried between calls, reset_states() before each batch of "
                f"{self.batch}; compared after every chunk")  # fmt: skip
        if self.subject.signature.inputs[0].mask_value is not None:
            said += "; at a masked step, Keras's output before it (its call starts from zeros)"
        c = Comparison(runtime, expected, self.output_names, got, run.output_names,
                       [e[: len(singles[0])] for e in expected], singles)  # fmt: skip
        return [_relabelled(c, said)]


def _chunk_real(real: np.ndarray, sizes: list[int]) -> np.ndarray:
    """[N, chunks]: whether each chunk holds a step the mask keeps."""
    starts = np.cumsum([0, *sizes[:-1]])
    return np.stack([real[:, a : a + n].any(1) for a, n in zip(starts, sizes, strict=True)], 1)


def _carried(y: np.ndarray, real: np.ndarray) -> np.ndarray:
    """y [N, T or chunks, ...] with each masked position given the one before
    it: what a stream gives there, and Keras on the whole sequence. A Keras
    stateful call carries its state over but starts its outputs from zeros,
    so a masked step before any kept step of its call gives 0 there."""
    y = y.copy()
    for t in range(1, y.shape[1]):
        y[~real[:, t], t] = y[~real[:, t], t - 1]
    return y


def _relabelled(c: Comparison, said: str) -> Comparison:
    """The comparison, its report figures saying what the truth was."""

    def relabel(figures: dict) -> dict:
        figures["truth"] = said
        return figures

    c.relabel = relabel
    return c
