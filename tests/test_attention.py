"""Keras's `Attention` and `MultiHeadAttention` on the layers paths
(node/lib/layers/attention.js, multi_head_attention.js): tfjs-layers 4.22
has no class for either, so these models were `unsupported` there
("Unknown layer: Attention"). Tiny tf-keras models with Keras's
initialisers, exported as `verify --keras-model` exports them, verified on
tfjs-node/layers and tfjs-cpu/layers: self-attention after a masked GRU
with Keras's causal mask (dot, scaled) beside concat scores with a separate
key and the attention scores as an output; two MultiHeadAttentions (causal,
value_dim apart; a key, output_shape and scores); and a query and value from
different tensors with a mask, which tfjs's predict cannot give the layer
(refused in one line, `unsupported`).
The negative control runs the same verify with TFJS_BRIDGE_ATTENTION=unmasked
(the masks dropped from the scores) and must see a mismatch."""

import json

import pytest

from test_user_models import _run
from tfjs_bridge.core.quiet_tf import import_tensorflow

LAYERS_PATHS = ("tfjs-node/layers", "tfjs-cpu/layers")
STEPS, VOCAB = 10, 30


def _text_model(K, name, attend):
    """Embedding(mask_zero) -> GRU(return_sequences) -> attend(h, e) -> outputs."""
    tokens = K.Input((STEPS,), dtype="int32", name="tokens")
    embedded = K.layers.Embedding(VOCAB, 6, mask_zero=True)(tokens)
    h = K.layers.GRU(6, return_sequences=True)(embedded)
    return K.Model(tokens, attend(K, h, embedded), name=name)


def _self_attention(K, h, embedded):
    """Two attentions over the GRU's states: dot, scaled, with Keras's causal
    mask; concat scores, a separate key, dropout, and the scores returned."""
    causal = K.layers.Attention(use_scale=True, name="causal_dot")([h, h], use_causal_mask=True)
    first = K.layers.Dense(3, activation="softmax")(K.layers.GlobalAveragePooling1D()(causal))
    concat = K.layers.Attention(score_mode="concat", dropout=0.2, name="concat_key")
    attended, scores = concat([h, h, embedded], return_attention_scores=True)
    second = K.layers.Dense(2)(K.layers.GlobalMaxPooling1D()(attended))
    return [first, second, scores]


def _multi_head(K, h, embedded):
    """MultiHeadAttention over the GRU's states: causal, value_dim apart from
    key_dim; and one with the key given, an output_shape and its scores out."""
    causal = K.layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=2, name="causal_mha")
    first = K.layers.GlobalAveragePooling1D()(causal(h, h, use_causal_mask=True))
    keyed = K.layers.MultiHeadAttention(num_heads=2, key_dim=4, output_shape=5, name="keyed_mha")
    attended, scores = keyed(h, h, key=h, return_attention_scores=True)
    second = K.layers.GlobalAveragePooling1D()(attended)
    return [K.layers.Dense(3, activation="softmax")(first), K.layers.Dense(2)(second), scores]


def _cross(K, h, embedded):
    """The query: the embeddings; the value: the GRU's states (both masked)."""
    attended = K.layers.Attention(name="cross")([embedded, h])
    return K.layers.Dense(2)(K.layers.GlobalAveragePooling1D()(attended))


MODELS = {"self_attention": _self_attention, "multi_head": _multi_head, "cross": _cross}
PASSING = ("self_attention", "multi_head")


@pytest.fixture(scope="module")
def attention_models(tmp_path_factory):
    """Each model saved as a user saves it and exported once (as verify
    --keras-model exports it; the converter started once, as the fuzzer
    runs it): both tests verify the same folders."""
    import_tensorflow()
    import tf_keras

    from tfjs_bridge.conversion.converter_process import shared_converter
    from tfjs_bridge.conversion.export import export_model

    folder = tmp_path_factory.mktemp("attention")
    dirs = {}
    with shared_converter():
        for seed, (name, attend) in enumerate(MODELS.items()):
            tf_keras.utils.set_random_seed(20 + seed)
            source = folder / f"{name}.h5"
            _text_model(tf_keras, name, attend).save(source)
            dirs[name] = folder / name
            export_model(source, dirs[name])
    return dirs


def _verify(model_dirs, report):
    args = [arg for path in LAYERS_PATHS for arg in ("--runtime", path)]
    args += [arg for model_dir in model_dirs for arg in ("--model-dir", model_dir)]
    return _run("verify", *args, "--samples", 48, "--report", report)


def _results(report_dir):
    saved = json.loads((report_dir / "report.json").read_text())
    return {(r["model"], r["runtime"]): r for r in saved["results"]}


def test_attention_passes_the_layers_paths(node_runtime, attention_models, tmp_path):
    result = _verify(attention_models.values(), tmp_path)
    results = _results(tmp_path)
    assert set(results) == {(m, p) for m in MODELS for p in LAYERS_PATHS}
    for path in LAYERS_PATHS:
        for name in PASSING:
            r = results[(name, path)]
            assert r["status"] == "pass", (name, path, r["reason"])
            assert r["max_abs"] <= 1e-6, (name, path)
            # the scores are an output of their own, compared as one
            assert len(r["outputs"]) == 3
        cross = results[("cross", path)]
        assert cross["status"] == "unsupported"
        assert cross["reason"] == (
            "layer Attention cross: its value is another tensor than the query and carries "
            "a mask (tfjs's predict passes a layer only its first input's mask)"
        )
    # the cross model passes no path verify ran here: exit 1, naming it alone
    assert result.exit_code == 1
    assert "2 of 6 paths did not pass: cross tfjs-node/layers, cross tfjs-cpu/layers" in (
        result.output
    )


def test_attention_without_its_masks_would_be_caught(
    node_runtime, attention_models, tmp_path, monkeypatch
):
    monkeypatch.setenv("TFJS_BRIDGE_ATTENTION", "unmasked")
    result = _verify([attention_models[name] for name in PASSING], tmp_path)
    assert result.exit_code == 1
    results = _results(tmp_path)
    for path in LAYERS_PATHS:
        for name in PASSING:
            r = results[(name, path)]
            assert r["status"] == "mismatch", (name, path)
            assert r["outside"] > 0, (name, path)
