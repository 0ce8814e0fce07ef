"""Import TensorFlow without its start-up noise.

TF 2.19 prints CUDA-factory and "computation placer" lines to fd 2 from C++
static initialisers, before TF_CPP_MIN_LOG_LEVEL is consulted. We send fd 2
to a temporary file during the import and replay it only if the import fails."""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow():
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow
