"""Import and run TensorFlow without its native noise on stderr.

TF 2.19 prints CUDA-factory and "computation placer" lines to fd 2 from C++
static initialisers, and XLA logs its compilations through absl, all before or
regardless of TF_CPP_MIN_LOG_LEVEL. `native_stderr_hidden` sends fd 2 to a
temporary file for the duration and replays it only if the block fails;
Python code that wants to print meanwhile gets the real stderr."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager


@contextmanager
def native_stderr_hidden():
    """Yields a text stream on the real stderr while fd 2 is captured."""
    sys.stderr.flush()
    saved = os.dup(2)
    real = os.fdopen(os.dup(saved), "w", buffering=1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield real
        except BaseException:
            real.flush()
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            real.close()
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with native_stderr_hidden():
        import tensorflow
    # Python-side warnings meant for training scripts ("compiled metrics have yet to be built").
    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


@contextmanager
def op_determinism_off():
    """Within: TensorFlow's op determinism is off, as it was before train()
    turned it on for the whole process. Determinism refuses unseeded random
    ops, and code that builds a model in a graph of its own (the converter's
    tfjs -> Keras conversion: initial weights, overwritten at once) runs them."""
    from tensorflow.python.framework import config  # no public switch back off

    import_tensorflow()
    was_on = config.is_op_determinism_enabled()
    if was_on:
        config.disable_op_determinism()
    try:
        yield
    finally:
        if was_on:
            config.enable_op_determinism()
