"""The other way: a tfjs layers model back to Keras (tf-keras .h5 and Keras 3)."""
