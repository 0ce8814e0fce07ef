"""The registry of models and their training in tf-keras: data, the tf.data
pipeline, weight averaging, tf.distribute, the spam corpus and tokenizer fit."""
