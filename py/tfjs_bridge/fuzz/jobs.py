"""Job processes for a fuzz run: each verifies one model at a time, in its own
process group (its converter process and Node workers in it too), and says
which step it is at. A model that takes longer than its time limit is a
finding (`hang`, with the step), not the end of the run: its job's process
group is killed and a new job takes the next model. A job that dies is
recorded the same way (`crash`, with the step and the exit code)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path

MODEL_TIMEOUT = 300.0  # seconds for one model, all steps: 2.5x the slowest seen on a loaded machine


class Steps:
    """Tells the parent which step the job's model is at."""

    def __init__(self, conn):
        self.conn, self.current = conn, "build"

    def __call__(self, name: str) -> None:
        self.current = name
        self.conn.send(("step", name))


def _job_main(conn, work: str, samples: int) -> None:
    os.setsid()  # a process group of its own: the parent can end it with its children
    from ..conversion.converter_process import install_for_process
    from ..core.errors import unexpected
    from .harness import CRASH, Outcome, run_model

    install_for_process()
    while True:
        spec = conn.recv()
        if spec is None:
            return
        steps = Steps(conn)
        try:
            outcome = run_model(spec, Path(work), samples, step=steps)
        except Exception as exc:  # the harness's own failure: the fuzzer's bug
            outcome = Outcome(spec)
            outcome.failure = {
                "kind": CRASH,
                "step": f"harness ({steps.current})",
                "message": unexpected(exc),
            }
        conn.send(("done", outcome))


class Job:
    def __init__(self, context, work: Path, samples: int):
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=_job_main, args=(child, str(work), samples))
        self.proc.start()
        child.close()
        self.spec: dict | None = None
        self.step = ""
        self.started = 0.0

    def give(self, spec: dict) -> None:
        self.spec, self.step, self.started = spec, "build", time.monotonic()
        self.conn.send(spec)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the job, its converter and Node workers
        except (ProcessLookupError, PermissionError):
            self.proc.kill()
        self.proc.join(30)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(60)
        if self.proc.is_alive():
            self.kill()
        self.conn.close()


def run_jobs(
    specs: list[dict],
    jobs: int,
    work: Path,
    samples: int,
    done: Callable[[object], None],
    timeout: float = MODEL_TIMEOUT,
) -> None:
    """run_model for every spec, `jobs` at a time; done(outcome) as each ends."""
    from .harness import CRASH, HANG, Outcome

    context = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
    pending = deque(specs)
    pool = [Job(context, work, samples) for _ in range(min(jobs, len(specs)))]

    def failed(job: Job, kind: str, message: str) -> None:
        outcome = Outcome(job.spec)
        outcome.failure = {"kind": kind, "step": job.step, "message": message}
        outcome.seconds = time.monotonic() - job.started
        done(outcome)

    def replace(job: Job) -> Job:
        job.kill()
        fresh = Job(context, work, samples)
        pool[pool.index(job)] = fresh
        return fresh

    for job in pool:
        job.give(pending.popleft())
    try:
        while any(job.spec is not None for job in pool):
            busy = {job.conn: job for job in pool if job.spec is not None}
            for conn in wait(list(busy), timeout=5.0):
                job = busy[conn]
                try:
                    kind, value = conn.recv()
                except (EOFError, OSError):
                    code = job.proc.exitcode
                    failed(job, CRASH, f"the job process died (exit code {code})")
                    job = replace(job)
                    kind, value = "next", None
                if kind == "step":
                    job.step = value
                    continue
                if kind == "done":
                    done(value)
                job.spec = None
                if pending:
                    job.give(pending.popleft())
            now = time.monotonic()
            for job in list(pool):
                if job.spec is not None and now - job.started > timeout:
                    failed(job, HANG, f"no verdict after {timeout:.0f} s (killed)")
                    job = replace(job)
                    if pending:
                        job.give(pending.popleft())
    finally:
        for job in pool:
            if job.spec is None:
                job.stop()
            else:
                job.kill()
