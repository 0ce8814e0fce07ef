"""Experiments of issue #27 (spam against its bag-of-words baseline): not
shipped, not tested; docs/models.md's "Tried and discarded" rows of 5 Dec
2026 were measured with it. One configuration per run, as JSON:

    export PYTHONPATH=py
    nice -n 10 .venv/bin/python tools/spam_issue27.py '{"kind": "plain", "text": "mime"}'

kind: "plain" (the registry's spam), "count" (a count logit, from the
baseline's fitted weights unless count_zero, plus `branches`
Bidirectional(GRU(units)) logits), "stack" (the baseline's cross-fitted
logits as an offset input, a Bidirectional(GRU) logit learning the
correction; `temper` puts a trainable Dense(1) on the offset). text: "raw"
(mail_text, what the registry uses), "mime" (text/* parts decoded by
Python's email package: transfer encodings and charsets; HTML kept) or
"mime-strip" (the same, HTML tags dropped and entities unescaped).
With "seeds": [0, 1, 2], the plain model once per seed and their mean
probability. Without "final" it trains on nine tenths of the training split and scores
the tenth held out (every tenth mail); with "final": true, the whole
training split and the test split. Prints the mails right per epoch and
the paired bootstrap interval against the baseline fitted on the same mails
(its own score is the first line).
"""

import email
import html
import json
import os
import re
import sys
import time

import numpy as np

from tfjs_bridge.folder.tokenizer import Tokenizer
from tfjs_bridge.training import data, spam_corpus
from tfjs_bridge.training.comparison import accuracy_comparison
from tfjs_bridge.training.registry import SPAM_TOKENIZER
from tfjs_bridge.training.text_baseline import bag_of_words


def fit_bow(ids, labels, vocab, steps=300, lr=0.05, l2=1e-4):
    """text_baseline.bag_of_words_predictions's fit, returning its weights and bias."""
    rows, words = bag_of_words(ids, vocab)
    y = np.asarray(labels, dtype=np.float64).ravel()
    n = len(y)
    p = np.zeros(vocab + 1)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for step in range(1, steps + 1):
        w, b = p[:-1], p[-1]
        z = np.bincount(rows, weights=w[words], minlength=n) + b
        r = (1 / (1 + np.exp(-z)) - y) / n
        g = np.empty_like(p)
        g[:-1] = np.bincount(words, weights=r[rows], minlength=vocab) + l2 * w
        g[-1] = r.sum()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return p[:-1], p[-1]


def bow_logits(ids, w, b):
    ww = w.copy()
    ww[0] = 0.0  # padding counts for nothing
    return ww[ids].sum(axis=1) + b


TAG = re.compile(r"<[^>]*>")


def mime_text(raw: str, strip_html: bool = False) -> str:
    """Subject, then every text/* part decoded (base64, quoted-printable, charset);
    with strip_html, text/html parts lose their tags and their entities are unescaped."""
    subject = spam_corpus.mail_text(raw).split("\n", 1)[0]
    parts = []
    for part in email.message_from_string(raw).walk():
        if part.is_multipart() or not part.get_content_type().startswith("text/"):
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        charset = part.get_content_charset() or "latin-1"
        try:
            text = payload.decode(charset, errors="replace")
        except LookupError:
            text = payload.decode("latin-1", errors="replace")
        if strip_html and part.get_content_type() == "text/html":
            text = html.unescape(TAG.sub(" ", text))
        parts.append(text)
    return subject + "\n" + "\n".join(parts)


def mime_ids(strip_html: bool):
    root = spam_corpus.corpus_dir()
    raw = {}
    for name in json.loads((root / "file_list.json").read_text()):
        group, _, base = name.partition("/")
        record = json.loads((root / group / (base.removesuffix(".txt") + ".json")).read_text())
        raw[f"{group}/{record['id']}"] = record["text"]
    split = spam_corpus.load_spam()
    train = [mime_text(raw[k], strip_html) for k in split.train_keys]
    test = [mime_text(raw[k], strip_html) for k in split.test_keys]
    tok = Tokenizer.fit(train, SPAM_TOKENIZER["vocab_size"], SPAM_TOKENIZER["max_len"])
    labels = split.train_labels, split.test_labels
    return tok.encode(train), labels[0], tok.encode(test), labels[1], tok.vocab_size


def count_model(tf_keras, vocab, max_len, w, b, *, units, branches, zero_init):
    inp = tf_keras.Input(shape=(max_len,), dtype="int32", name="input")
    ww = w.copy()
    ww[0] = 0.0
    start = tf_keras.initializers.Constant(ww.reshape(-1, 1).astype(np.float32))
    counts = tf_keras.layers.Embedding(vocab, 1, embeddings_initializer=start)(inp)
    total = tf_keras.layers.Dense(
        1, kernel_initializer="ones", bias_initializer=tf_keras.initializers.Constant(float(b))
    )
    logits = [total(tf_keras.layers.Flatten()(counts))]
    total.kernel._trainable = False  # a sum: one weight per token id, summed over positions
    for _ in range(branches):
        e = tf_keras.layers.Embedding(vocab, 32, mask_zero=True)(inp)
        h = tf_keras.layers.Bidirectional(tf_keras.layers.GRU(units))(e)
        init = "zeros" if zero_init else "glorot_uniform"
        logits.append(tf_keras.layers.Dense(1, kernel_initializer=init)(h))
    z = tf_keras.layers.Add()(logits) if len(logits) > 1 else logits[0]
    return tf_keras.Model(inp, tf_keras.layers.Activation("sigmoid")(z))


def plain_model(tf_keras, vocab, max_len):
    return tf_keras.Sequential(
        [
            tf_keras.Input(shape=(max_len,), dtype="int32"),
            tf_keras.layers.Embedding(vocab, 32, mask_zero=True),
            tf_keras.layers.Bidirectional(tf_keras.layers.GRU(32)),
            tf_keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def seed_ensemble(tf_keras, cfg, xtr, ytr, xev, yev, vocab, base_pred):
    """The plain model trained once per seed; after each epoch, each seed's
    mails right and those of their mean probability (an ensemble that one
    Keras model could hold as parallel branches averaged)."""
    probs = {}
    for seed in cfg["seeds"]:
        tf_keras.utils.set_random_seed(seed)
        model = plain_model(tf_keras, vocab, xtr.shape[1])
        model.compile(
            optimizer=tf_keras.optimizers.Adam(1e-3),
            loss="binary_crossentropy",
            steps_per_execution=50,
        )
        for epoch in range(cfg.get("epochs", 4)):
            start = time.time()
            model.fit(
                xtr,
                ytr.reshape(-1, 1).astype(np.float32),
                epochs=1,
                batch_size=32,
                verbose=0,
                shuffle=True,
            )
            probs[seed, epoch] = model.predict(xev, batch_size=256, verbose=0).ravel()
            right = int(((probs[seed, epoch] > 0.5) == yev).sum())
            print(
                f"seed {seed} epoch {epoch + 1}: {time.time() - start:.1f} s, right {right}, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for epoch in range(cfg.get("epochs", 4)):
        mean = np.mean([probs[seed, epoch] for seed in cfg["seeds"]], axis=0)
        pred = (mean > 0.5).astype(np.int64)
        c = accuracy_comparison(pred, base_pred, yev)
        print(
            f"ensemble epoch {epoch + 1}: right {int((pred == yev).sum())}/{len(yev)}, only "
            f"model {c['only_model_right']}, only baseline {c['only_baseline_right']}, "
            f"interval {c['difference_ci95']}",
            flush=True,
        )


def main():
    cfg = json.loads(sys.argv[1])
    import tf_keras

    if cfg.get("text", "raw") == "raw":
        ds = data.load_spam()
        x, y, x_test, y_test = ds.x_train, ds.y_train.ravel(), ds.x_test, ds.y_test.ravel()
        vocab = ds.tokenizer.vocab_size
    else:
        x, y, x_test, y_test, vocab = mime_ids(cfg["text"] == "mime-strip")
    max_len = x.shape[1]
    if cfg.get("final"):
        xtr, ytr, xev, yev = x, y, x_test, y_test
    else:
        held = np.arange(len(x)) % 10 == 9
        xtr, ytr, xev, yev = x[~held], y[~held], x[held], y[held]
    w, b = fit_bow(xtr, ytr, vocab)
    base_pred = (bow_logits(xev, w, b) > 0).astype(np.int64)
    print("baseline right", int((base_pred == yev).sum()), "of", len(yev), flush=True)
    if "seeds" in cfg:
        return seed_ensemble(tf_keras, cfg, xtr, ytr, xev, yev, vocab, base_pred)
    tf_keras.utils.set_random_seed(cfg.get("seed", 0))
    kind = cfg.get("kind", "plain")
    if kind == "stack":
        folds = np.arange(len(xtr)) % cfg.get("folds", 5)
        offsets = np.zeros(len(xtr))
        for f in range(cfg.get("folds", 5)):
            wf, bf = fit_bow(xtr[folds != f], ytr[folds != f], vocab)
            offsets[folds == f] = bow_logits(xtr[folds == f], wf, bf)
        print("cross-fitted |logit| 10/50/90 %", np.quantile(np.abs(offsets), [0.1, 0.5, 0.9]))
        ids_in = tf_keras.Input(shape=(max_len,), dtype="int32")
        off_in = tf_keras.Input(shape=(1,))
        e = tf_keras.layers.Embedding(vocab, 32, mask_zero=True)(ids_in)
        h = tf_keras.layers.Bidirectional(tf_keras.layers.GRU(cfg.get("units", 32)))(e)
        init = "zeros" if cfg.get("zero_init", True) else "glorot_uniform"
        z = tf_keras.layers.Dense(1, kernel_initializer=init)(h)
        scale = cfg.get("scale", 1.0)
        if cfg.get("temper"):
            off = tf_keras.layers.Dense(1, kernel_initializer=tf_keras.initializers.Constant(scale))
        else:
            off = tf_keras.layers.Rescaling(scale)
        z = tf_keras.layers.Add()([z, off(off_in)])
        model = tf_keras.Model([ids_in, off_in], tf_keras.layers.Activation("sigmoid")(z))
        xtr = [xtr, offsets.astype(np.float32).reshape(-1, 1)]
        xev = [xev, bow_logits(xev, w, b).astype(np.float32).reshape(-1, 1)]
    elif kind == "plain":
        model = plain_model(tf_keras, vocab, max_len)
    else:
        wi, bi = (np.zeros_like(w), 0.0) if cfg.get("count_zero") else (w, b)
        model = count_model(
            tf_keras,
            vocab,
            max_len,
            wi,
            bi,
            units=cfg.get("units", 32),
            branches=cfg.get("branches", 1),
            zero_init=cfg.get("zero_init", True),
        )
    lr = cfg.get("lr", 1e-3)
    if cfg.get("cosine"):
        steps = cfg.get("epochs", 4) * ((len(ytr) + 31) // 32)
        lr = tf_keras.optimizers.schedules.CosineDecay(lr, steps)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(lr),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=50,
    )
    for epoch in range(cfg.get("epochs", 4)):
        start = time.time()
        labels = ytr.reshape(-1, 1).astype(np.float32)
        model.fit(xtr, labels, epochs=1, batch_size=32, verbose=0, shuffle=True)
        pred = (model.predict(xev, batch_size=256, verbose=0).ravel() > 0.5).astype(np.int64)
        c = accuracy_comparison(pred, base_pred, yev)
        print(
            f"epoch {epoch + 1}: {time.time() - start:.1f} s, right {int((pred == yev).sum())}"
            f"/{len(yev)}, only model {c['only_model_right']}, only baseline "
            f"{c['only_baseline_right']}, interval {c['difference_ci95']}, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
