"""The training input pipeline, on tf.data: one for every registry data set
and every strategy (one process, mirrored, multi-worker), so a distributed
run reads its data exactly as a single-process run does.

The data sets are NumPy arrays read and checked by data.py (MNIST from its
IDX files, the sine windows, the seed LSTM's points, the spam mails' token
ids); here they become batches: shuffled with the run's seed (a new order
each epoch), batched by the *global* batch size (the strategy splits each
batch between its replicas), prefetched, and sharded by worker with
AutoShardPolicy.DATA: every worker builds the same pipeline and keeps its
own part of each global batch. (FILE sharding needs one input file per
worker or more; an in-memory data set has none.)"""

from __future__ import annotations

import numpy as np


def drops_remainder(samples: int, global_batch: int, distributed: bool) -> bool:
    """Under a strategy an epoch's last, partial batch is dropped: workers
    must see batches of one shape (an Embedding's sparse gradients are
    gathered between workers, and a gather of unequal shapes aborts the
    run). The order changes every epoch, so no sample is left out for good.
    A data set smaller than one global batch is kept whole, as one batch."""
    return distributed and samples >= global_batch


def training_batches(
    tf, x: np.ndarray, y: np.ndarray, global_batch: int, seed: int, distributed: bool = False
):
    """A tf.data.Dataset of (x, y) batches of global_batch samples, in a
    seeded order drawn anew each epoch (see drops_remainder for the last one)."""
    examples = tf.data.Dataset.from_tensor_slices((x, y))
    drop = drops_remainder(len(x), global_batch, distributed)
    batches = (
        examples.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(global_batch, drop_remainder=drop)
        .prefetch(tf.data.AUTOTUNE)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True  # the seed decides the order, not thread timing
    return batches.with_options(options)


def steps_per_epoch(samples: int, global_batch: int, distributed: bool = False) -> int:
    if drops_remainder(samples, global_batch, distributed):
        return samples // global_batch
    return -(-samples // global_batch)
