"""Issue #27's third round (6 Dec 2026): spam heads over pooled token
embeddings, with and without a GRU. Not shipped, not tested; docs/models.md's
"Third round" table was measured with it. One configuration per run, as JSON:

    export PYTHONPATH=py
    nice -n 10 .venv/bin/python tools/spam_pooling.py '{"kind": "mean", "seeds": [0, 1, 2]}'

kind: "mean" (Embedding(32, mask_zero) -> GlobalAveragePooling1D, the
registry's spam), "gru" (GRU(units, return_sequences) then the same pooling;
"bidi": true wraps it in Bidirectional) or "both" (the pooled embeddings
concatenated with a Bidirectional(GRU(units // 2)) last output); "mask":
false averages over all 200 positions, padding included; every kind
then Dropout(0.5) -> Dense(64, relu) -> Dropout(0.5) -> Dense(1, sigmoid),
Adam 1e-3, batches of 32. Without "final" it trains on nine tenths of the
training split and scores the tenth held out (every tenth mail); with "final":
true, the whole training split and the test split. Prints, after every epoch,
the mails right and the paired bootstrap interval against the bag-of-words
baseline fitted on the same mails. With "folds": K, K-fold cross-validation
on the training split alone (fold f holds out every mail whose index is f
modulo K): per seed, the mails right out of fold after each epoch, summed
over the folds, beside the baseline's out-of-fold count.
"""

import json
import sys

import numpy as np
import tf_keras as keras

from tfjs_bridge.training import data, spam_corpus
from tfjs_bridge.training.comparison import accuracy_comparison
from tfjs_bridge.training.text_baseline import bag_of_words_predictions


def build(kind, seed, units=32, bidi=False, mask=True):
    keras.utils.set_random_seed(seed)
    ids = keras.Input((200,), dtype="int32")
    x = keras.layers.Embedding(10_000, 32, mask_zero=mask)(ids)
    if kind == "both":
        last = keras.layers.Bidirectional(keras.layers.GRU(units // 2))(x)
        x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(x), last])
    else:
        if kind == "gru":
            gru = keras.layers.GRU(units, return_sequences=True)
            x = (keras.layers.Bidirectional(gru) if bidi else gru)(x)
        x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    return model


def cross_validate(config, train_ids, labels, options):
    k = config["folds"]
    fold = np.arange(len(labels)) % k
    baseline = sum(
        int(
            (
                bag_of_words_predictions(
                    train_ids[fold != f], labels[fold != f], train_ids[fold == f], 10_000
                )
                == labels[fold == f]
            ).sum()
        )
        for f in range(k)
    )
    print(f"baseline out of fold: {baseline} of {len(labels)}", flush=True)
    for seed in config.get("seeds", [0]):
        right = np.zeros(config.get("epochs", 12), dtype=int)
        for f in range(k):
            model = build(config["kind"], seed, **options)
            for epoch in range(len(right)):
                model.fit(
                    train_ids[fold != f], labels[fold != f], batch_size=32, epochs=1, verbose=0
                )
                predicted = (
                    model.predict(train_ids[fold == f], batch_size=256, verbose=0)[:, 0] > 0.5
                )
                right[epoch] += int((predicted.astype(int) == labels[fold == f]).sum())
        print(json.dumps({"config": config, "seed": seed, "right": right.tolist()}), flush=True)


def main(config):
    split = spam_corpus.load_spam()
    tokenizer = data.spam_tokenizer()
    train_ids, labels = tokenizer.encode(split.train_texts), split.train_labels
    options = {k: config[k] for k in ("units", "bidi", "mask") if k in config}
    if config.get("folds"):
        return cross_validate(config, train_ids, labels, options)
    if config.get("final"):
        fit_x, fit_y = train_ids, labels
        score_x, score_y = tokenizer.encode(split.test_texts), split.test_labels
    else:
        held = np.arange(len(labels)) % 10 == 9
        fit_x, fit_y, score_x, score_y = (
            train_ids[~held],
            labels[~held],
            train_ids[held],
            labels[held],
        )
    baseline = bag_of_words_predictions(fit_x, fit_y, score_x, 10_000)
    print(f"baseline: {int((baseline == score_y).sum())} of {len(score_y)}", flush=True)
    for seed in config.get("seeds", [0]):
        model, right = build(config["kind"], seed, **options), []
        for epoch in range(1, config.get("epochs", 12) + 1):
            model.fit(fit_x, fit_y, batch_size=32, epochs=1, verbose=0)
            predicted = (model.predict(score_x, batch_size=256, verbose=0)[:, 0] > 0.5).astype(int)
            c = accuracy_comparison(predicted, baseline, score_y)
            right.append(int((predicted == score_y).sum()))
            print(f"  seed {seed} epoch {epoch}: {right[-1]} {json.dumps(c)}", flush=True)
        print(json.dumps({"config": config, "seed": seed, "right": right}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
