'use strict';
// Keras's MultiHeadAttention for tfjs-layers, on sequences (rank-3 inputs,
// attention over the time axis: tf_keras 2.19's default attention_axes [1]).
//
// tfjs-layers 4.22 has no class for it ("Unknown layer: MultiHeadAttention").
// tf_keras's layer (layers/attention/multi_head_attention.py), with T query
// steps, S value steps, H heads:
//
//   q = query . Wq + bq   [B, T, H, key_dim]   (EinsumDense abc,cde->abde)
//   k = key . Wk + bk     [B, S, H, key_dim]   (the key is the value if not given)
//   v = value . Wv + bv   [B, S, H, value_dim]
//   scores = (q / sqrt(key_dim)) . k^T   [B, H, T, S]
//   weights = softmax(scores + (1 - mask) * -1e9)   (tf_keras's Softmax with a mask)
//   out = (weights . v) . Wo + bo        [B, T, output_shape or query's width]
//
// The mask is the query's [B, T, 1] and the value's and key's [B, 1, S]
// masks and the causal mask, combined; unlike Attention, the output is not
// zeroed where the query is masked. The output passes the query's mask on.
// Weights: query, key, value and attention_output, each kernel then bias
// (no biases with use_bias=False), as the converter writes them
// (multi_head_attention/query/kernel ...).
//
// tf_keras passes the value (and key) to the layer as keyword arguments: the
// file's inbound node reads [["gru", 0, 0, {"value": ["gru", 0, 0]}]], and
// tfjs hands that reference to apply() as it is. apply() finds the tensor it
// names among the query's ancestors (the query itself for self-attention)
// and calls the layer on [query, value(, key)]. Masks, call arguments and
// the scores output are handled as in attention.js (tfjs's predict passes
// only the first input's mask: a value or key of its own that carries a
// mask is refused). TFJS_BRIDGE_ATTENTION=unmasked drops the whole mask.
//
// Refused in one line, naming the layer and the option: an attention_mask
// argument, attention_axes other than the time axis, an output_shape of more
// than one dimension, inputs of another rank.
//
// The class is registered by index.js (installKerasLayers).

const { oncePerTf } = require('./per_tf');
const { attentionBase, refusal } = require('./attention');

// tf_keras's Softmax adds (1 - mask) times this in float32 (float16.min / 2 in float16).
const MASKED_SCORE = -1e9;

const scoresUnmasked = () => process.env.TFJS_BRIDGE_ATTENTION === 'unmasked';

// tfjs camel-cases the strings of a model's config, the layer names in these
// references too ("gru_1" reads "gru1"): tfjs-layers' toCamelCase.
const camel = (s) => (s.includes('_') ? s.replace(/[_]+(\w|$)/g, (m, c) => c.toUpperCase()) : s);

/** The symbolic tensor a Keras node reference [layer, node, tensor] names, among x's ancestors. */
function findTensor(x, [layerName, nodeIndex, tensorIndex]) {
  const seen = new Set();
  const queue = [x];
  while (queue.length > 0) {
    const t = queue.shift();
    if (seen.has(t)) continue;
    seen.add(t);
    const index = t.nodeIndex ?? 0;
    const name = t.sourceLayer && t.sourceLayer.name;
    if (name != null && (name === layerName || camel(name) === layerName) && index === nodeIndex) {
      if ((t.tensorIndex ?? 0) === tensorIndex) return t;
    }
    queue.push(...(t.inputs || []));
  }
  return null;
}

/** The classes for this tf. */
const multiHeadAttentionLayer = oncePerTf((tf) => {
  class MultiHeadAttention extends attentionBase(tf) {
    constructor(args = {}) {
      super(args);
      const {
        numHeads,
        keyDim,
        valueDim = null,
        dropout = 0,
        useBias = true,
        outputShape = null,
        attentionAxes = null,
      } = args;
      this.numHeads = numHeads;
      this.keyDim = keyDim;
      this.valueDim = valueDim ?? keyDim;
      this.dropout = dropout;
      this.useBias = useBias !== false;
      this.projectedShape = outputShape;
      this.attentionAxes = attentionAxes;
      const axes = attentionAxes == null ? null : [attentionAxes].flat();
      if (axes != null && !(axes.length === 1 && axes[0] === 1)) {
        throw refusal(this, `attention_axes ${JSON.stringify(attentionAxes)}`);
      }
      const shape = outputShape == null ? null : [outputShape].flat();
      if (shape != null && shape.length !== 1) {
        throw refusal(this, `output_shape ${JSON.stringify(outputShape)}`);
      }
      this.outputWidth = shape && shape[0];
    }

    build(inputShape) {
      const [query, value, key = value] = this.shapesByRole(inputShape);
      if ([query, value, key].some((s) => s.length !== 3)) {
        throw refusal(this, 'inputs that are not sequences (rank 3)');
      }
      const [h, kd, vd] = [this.numHeads, this.keyDim, this.valueDim];
      const out = this.outputWidth ?? query[2];
      const glorot = tf.initializers.glorotUniform({});
      const dense = (name, kernel, bias) => ({
        kernel: this.addWeight(`${name}/kernel`, kernel, 'float32', glorot),
        bias: this.useBias
          ? this.addWeight(`${name}/bias`, bias, 'float32', tf.initializers.zeros())
          : null,
      });
      this.query = dense('query', [query[2], h, kd], [h, kd]);
      this.key = dense('key', [key[2], h, kd], [h, kd]);
      this.value = dense('value', [value[2], h, vd], [h, vd]);
      this.attentionOutput = dense('attention_output', [h, vd, out], [out]);
      this.built = true;
    }

    /** [query, value(, key)]: the value and key come as keywords, references the file names. */
    kerasInputs(inputs, kwargs) {
      const { value, key, attentionMask, attention_mask: snakeMask } = kwargs || {};
      if (attentionMask != null || snakeMask != null) {
        throw refusal(this, 'an attention_mask argument');
      }
      const list = super.kerasInputs(inputs, kwargs);
      for (const ref of [value, key]) {
        if (ref == null) continue;
        const found = ref instanceof tf.SymbolicTensor ? ref : findTensor(list[0], ref);
        if (!found) {
          throw refusal(
            this,
            `its value or key ${JSON.stringify(ref)} is not among the query's inputs`,
          );
        }
        list.push(found);
      }
      return list;
    }

    /** The [B, T, S] mask: the query's, value's, key's and the causal one, or null. */
    attentionMask(mask, steps, causal) {
      const [t, s] = steps;
      const masks = this.masksByRole(
        mask,
        this.roles && this.roles.length === 3 ? [0, 1, 2] : [0, 1],
      );
      const [queryMask, valueMask, keyMask] = masks;
      const parts = [];
      if (queryMask != null) parts.push(tf.expandDims(tf.cast(queryMask, 'bool'), -1));
      if (valueMask != null) parts.push(tf.expandDims(tf.cast(valueMask, 'bool'), -2));
      if (keyMask != null) parts.push(tf.expandDims(tf.cast(keyMask, 'bool'), -2));
      if (causal) {
        const lower = tf.linalg.bandPart(tf.ones([t, s]), -1, 0);
        parts.push(tf.expandDims(tf.cast(lower, 'bool'), 0));
      }
      if (parts.length === 0 || scoresUnmasked()) return null;
      return parts.reduce((a, b) => tf.logicalAnd(a, b));
    }

    /** x [B, T, C] . kernel [C, ...] + bias: the EinsumDense abc,cde->abde. */
    project(x, { kernel, bias }) {
      const k = kernel.read();
      const [batch, steps, width] = x.shape;
      const flat = tf.matMul(tf.reshape(x, [batch * steps, width]), tf.reshape(k, [width, -1]));
      const y = tf.reshape(flat, [batch, steps, ...k.shape.slice(1)]);
      return bias ? tf.add(y, bias.read()) : y;
    }

    call(inputs, kwargs) {
      return tf.tidy(() => {
        const [query, value, key = value] = this.byRole(inputs);
        const { causal, withScores } = this.options(kwargs);
        const [batch, t] = query.shape;
        const s = value.shape[1];
        // [B, T, H, K] -> [B, H, T, K]
        const heads = (x) => tf.transpose(x, [0, 2, 1, 3]);
        const q = heads(tf.mul(this.project(query, this.query), 1 / Math.sqrt(this.keyDim)));
        const k = heads(this.project(key, this.key));
        const v = heads(this.project(value, this.value));
        let scores = tf.matMul(q, k, false, true); // [B, H, T, S]
        const mask = this.attentionMask(kwargs && kwargs.mask, [t, s], causal);
        if (mask != null) {
          const off = tf.sub(1, tf.cast(tf.expandDims(mask, -3), scores.dtype));
          scores = tf.add(scores, tf.mul(off, MASKED_SCORE));
        }
        let weights = tf.softmax(scores, -1);
        if (kwargs && kwargs.training && this.dropout > 0) {
          weights = tf.dropout(weights, this.dropout);
        }
        const attended = tf.transpose(tf.matMul(weights, v), [0, 2, 1, 3]); // [B, T, H, V]
        const flat = tf.reshape(attended, [batch, t, this.numHeads * this.valueDim]);
        const { kernel, bias } = this.attentionOutput;
        const wo = kernel.read();
        let out = tf.reshape(
          tf.matMul(tf.reshape(flat, [batch * t, -1]), tf.reshape(wo, [-1, wo.shape[2]])),
          [batch, t, wo.shape[2]],
        );
        if (bias) out = tf.add(out, bias.read());
        return withScores ? [out, weights] : out;
      });
    }

    computeOutputShape(inputShape) {
      const [query, value] = this.shapesByRole(inputShape);
      const out = [...query.slice(0, 2), this.outputWidth ?? query[2]];
      if (!(this.callOptions && this.callOptions.withScores)) return out;
      return [out, [query[0], this.numHeads, query[1], value[1]]];
    }

    getConfig() {
      return {
        ...super.getConfig(),
        numHeads: this.numHeads,
        keyDim: this.keyDim,
        valueDim: this.valueDim,
        dropout: this.dropout,
        useBias: this.useBias,
        outputShape: this.projectedShape,
        attentionAxes: this.attentionAxes,
      };
    }
  }
  MultiHeadAttention.className = 'MultiHeadAttention';

  return { MultiHeadAttention };
});

module.exports = { multiHeadAttentionLayer };
