"""tfjs-bridge: train recurrent models in Keras, convert them for TensorFlow.js,
and prove that Node.js (tfjs-node) computes what Python computed."""

import os

__version__ = "0.1.0"

# TensorFlow prints CUDA-stub and oneDNN notices to stderr on import; users
# should not have to read them. Set before anything imports tensorflow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
