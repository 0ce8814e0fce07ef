"""Training on tf.distribute: which strategy a run uses, who writes, and the
local launcher of `train --workers N`. No distribution machinery of our own:
TensorFlow's strategies do the work, configured the standard way (TF_CONFIG
for multi-worker), so the command a user runs on one machine runs unchanged
on a cluster.

- default: one process, one device (what `train` always did).
- mirrored: MirroredStrategy over this machine's GPUs or, with none, over
  `replicas` logical CPU devices.
- multi-worker: MultiWorkerMirroredStrategy over the TF_CONFIG cluster (one
  replica per worker on CPUs).

The global batch (what one optimizer step sees) is the registry's unless
--global-batch says otherwise; each replica takes its share of it, so a
distributed run takes the same steps as one process. The learning rate stays
the registry's (manifest: `training`).
XLA (`jit_compile`) is off under both strategies: on CPU devices TF 2.19
refuses it ("Collectives are not yet implemented for CPU devices when
compiling with XLA"; with logical CPUs, variables on another device)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import BridgeError, UsageError, first_line

STRATEGIES = ("default", "mirrored", "multi-worker")
STRATEGY_HELP = (
    "tf.distribute strategy: one device, MirroredStrategy over local devices, or "
    "MultiWorkerMirroredStrategy over TF_CONFIG's cluster.  [default: default; "
    "multi-worker with --workers]"
)
# A worker that stops sending heartbeats fails the others' next collective:
# TF's coordination service noticed a SIGKILLed worker within ~8 s here.
# The local launcher stops what is still running this long after a failure.
LAUNCHER_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class Cluster:
    """TF_CONFIG, read and checked: the cluster's tasks and this one."""

    tasks: dict[str, list[str]]  # task type -> addresses
    task_type: str
    task_index: int

    @property
    def workers(self) -> int:
        return sum(len(v) for k, v in self.tasks.items() if k in ("chief", "worker"))

    @property
    def chief(self) -> bool:
        """The task that writes: `chief` if the cluster has one, else worker 0
        (TensorFlow's own rule)."""
        if "chief" in self.tasks:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    def shape(self, hosts: bool) -> dict:
        """What the manifest records: the addresses, or only how many per type."""
        return {k: (list(v) if hosts else len(v)) for k, v in self.tasks.items()}


def read_tf_config(environ=os.environ) -> Cluster | None:
    """TF_CONFIG as a Cluster (None when unset); malformed, a one-line error."""
    raw = environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        tasks = {str(k): [str(a) for a in v] for k, v in config["cluster"].items()}
        task_type, index = str(config["task"]["type"]), int(config["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(
            f"TF_CONFIG is not a TensorFlow cluster spec ({first_line(err)}): expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    if not 0 <= index < len(tasks.get(task_type, [])):
        raise UsageError(f"TF_CONFIG: task {task_type} {index} is not in its cluster {tasks}")
    return Cluster(tasks, task_type, index)


@dataclass
class Distribution:
    """How one `train` process trains: its strategy, made once per process
    (TensorFlow sets up collectives and devices once)."""

    name: str = "default"
    replicas_wanted: int = 2  # mirrored, without GPUs: logical CPU devices
    record_cluster: bool = True
    cluster: Cluster | None = None
    global_batch: int | None = None  # None: the registry's batch size
    _strategy: object = field(default=None, repr=False)

    @property
    def chief(self) -> bool:
        return self.cluster.chief if self.cluster is not None else True

    @property
    def distributed(self) -> bool:
        """Under a strategy: no XLA (see above), whole batches only (pipeline.py)."""
        return self.name != "default"

    def strategy(self, tf):
        if self._strategy is None:
            self._strategy = _make_strategy(tf, self)
        return self._strategy

    def manifest(self, strategy, global_batch: int, learning_rate: float) -> dict:
        replicas = strategy.num_replicas_in_sync
        record = {
            "strategy": self.name,
            "replicas": replicas,
            "workers": self.cluster.workers if self.cluster else 1,
            "global_batch": global_batch,
            "per_replica_batch": global_batch // replicas,
            "learning_rate": learning_rate,
        }
        if self.cluster is not None:
            record["cluster"] = self.cluster.shape(hosts=self.record_cluster)
        return record


def plan(
    name: str, replicas: int = 2, record_cluster: bool = True, global_batch: int | None = None
) -> Distribution:
    """The Distribution for --strategy name, checked against TF_CONFIG."""
    cluster = read_tf_config() if name == "multi-worker" else None  # TF_CONFIG is for it only
    if name == "multi-worker" and cluster is None:
        raise UsageError(
            "--strategy multi-worker reads the cluster from TF_CONFIG, which is not set "
            "(or use --workers N to start N local workers)"
        )
    return Distribution(name, replicas, record_cluster, cluster, global_batch)


def _make_strategy(tf, dist: Distribution):
    if dist.name == "default":
        return tf.distribute.get_strategy()
    if dist.name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration()] * dist.replicas_wanted
        try:
            tf.config.set_logical_device_configuration(cpu, logical)
        except RuntimeError:  # devices already set up in this process: use what there is
            pass
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.MultiWorkerMirroredStrategy()


def barrier(tf, strategy) -> None:
    """Every worker waits here for all the others (one all-reduce): after the
    chief has cleared an old checkpoint, before any worker could restore it."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    @tf.function
    def all_reduce():
        ones = strategy.run(lambda: tf.ones(()))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    all_reduce()


# What a collective's error says when a peer is gone, as one line; TF's
# message runs to a traceback of the graph, and the words vary with where
# the failure was caught (heartbeats, the gRPC channel, the collective).
_PEER_GONE = [
    ("stopped sending heartbeats", "a worker stopped sending heartbeats"),
    ("Socket closed", "a worker's connection closed"),
    ("Connection reset", "a worker's connection was reset"),
    ("failed to connect", "a worker cannot be reached"),
]


def collective_failure(tf, err: Exception) -> BridgeError | None:
    """A collective that failed because a worker is gone, as a one-line error."""
    if not isinstance(err, tf.errors.UnavailableError | tf.errors.AbortedError):
        return None
    text = str(err)
    what = next((reason for words, reason in _PEER_GONE if words in text), None)
    if what is None:
        what = f"a worker failed ({type(err).__name__} in a collective)"
    return BridgeError(
        f"multi-worker training failed: {what}; restart every worker with --resume "
        "to continue from the last completed epoch"
    )


# --- the local launcher: `train --workers N` --------------------------------


def free_ports(n: int) -> list[int]:
    """n ports free on 127.0.0.1 now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_tf_configs(workers: int) -> list[str]:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    return [
        json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}})
        for i in range(workers)
    ]


@dataclass
class WorkerExit:
    index: int
    code: int | None  # None: still running when stopped
    stopped: bool  # killed by the launcher after another worker failed
    last_line: str

    def describe(self) -> str:
        who = f"worker {self.index}" + (" (chief)" if self.index == 0 else "")
        if self.stopped:
            return f"{who}: stopped by the launcher"
        if self.code is not None and self.code < 0:
            return f"{who}: killed by {signal.Signals(-self.code).name}"
        return f"{who}: exit {self.code}"


def run_local_workers(
    train_args: list[str], workers: int, grace: float = LAUNCHER_GRACE_SECONDS
) -> list[WorkerExit]:
    """Runs `tfjs-bridge train TRAIN_ARGS --strategy multi-worker` as `workers`
    processes on 127.0.0.1 (TF_CONFIG each), the chief's output on this
    terminal, the others' in temporary logs. When one fails, the others get
    `grace` seconds to notice and stop on their own, then are killed."""
    command = [sys.executable, "-m", "tfjs_bridge.cli", "train", *train_args]
    command += ["--strategy", "multi-worker"]
    procs, logs = [], []
    with tempfile.TemporaryDirectory(prefix="tfjs-bridge-workers-") as tmp:
        for i, config in enumerate(local_tf_configs(workers)):
            env = {**os.environ, "TF_CONFIG": config}
            log = open(Path(tmp) / f"worker{i}.log", "w+")  # noqa: SIM115 (closed below)
            logs.append(log)
            out = None if i == 0 else subprocess.DEVNULL
            err = None if i == 0 else log
            # Own session: a Ctrl-C here is not delivered into the workers'
            # TensorFlow (see PITFALLS: signals during sgemm); they are stopped below.
            procs.append(
                subprocess.Popen(command, env=env, stdout=out, stderr=err, start_new_session=True)
            )
        stopped = set()
        try:
            failed_at = None
            while any(p.poll() is None for p in procs):
                if failed_at is None and any(p.returncode not in (None, 0) for p in procs):
                    failed_at = time.monotonic()
                if failed_at is not None and time.monotonic() - failed_at > grace:
                    for i, p in enumerate(procs):
                        if p.poll() is None:
                            p.kill()
                            stopped.add(i)
                time.sleep(0.2)
        finally:
            for i, p in enumerate(procs):
                if p.poll() is None:
                    p.kill()
                    stopped.add(i)
                p.wait()
        exits = []
        for i, (p, log) in enumerate(zip(procs, logs, strict=True)):
            log.seek(0)
            lines = [line.strip() for line in log.read().splitlines() if line.strip()]
            log.close()
            exits.append(WorkerExit(i, p.returncode, i in stopped, lines[-1] if lines else ""))
        return exits
