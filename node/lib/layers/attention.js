'use strict';
// Keras's Attention (dot-product, "Luong-style") for tfjs-layers.
//
// tfjs-layers 4.22 has no Attention class: a converted Keras model holding
// one fails to load with "Unknown layer: Attention". This is tf_keras 2.19's
// layer (layers/attention/attention.py and base_dense_attention.py):
//
//   scores  dot:    (query . key^T) * scale
//           concat: concat_score_weight * sum(tanh(scale * (query_i + key_j)))
//   masked  scores -= 1e9 * padding, padding = not(value mask and causal mask)
//           (a subtraction, as Keras does: a query whose keys are all masked
//           gets scores that round to the same float32, so uniform weights)
//   output  softmax(scores) . value, times the query mask (0 where it is off)
//
// `scale` and `concat_score_weight` are scalar weights, only present when
// use_scale / score_mode='concat' ask for them, in that order (the names the
// converter writes: attention/scale, attention/concat_score_weight). Dropout
// acts on the weights in training only. The layer passes the query's mask on.
//
// use_causal_mask and return_attention_scores are call arguments in Keras:
// the file keeps them in the layer's inbound node ("inboundNodes": [[["gru",
// 0, 0, {"use_causal_mask": true, ...}], ...]]), which tfjs hands to apply()
// while it builds the model, and not again when it predicts. They are kept
// from there; a layer shared by calls that disagree on them is refused.
//
// Masks: tfjs's predict passes a layer only its first input's mask, and a
// layer whose inputs carry none gets the last mask an earlier layer got.
// Self-attention (the value is the query's tensor; Keras reads no key mask)
// is called on that one tensor, whose mask is then every role's. Which
// inputs carry a mask is read from the model's graph (masks.js); a value
// of its own that carries one is refused, not guessed.
//
// TFJS_BRIDGE_ATTENTION=unmasked drops the value and causal masks from the
// scores, to show that the checks catch it (the page bundle fixes it at
// build time, as TFJS_BRIDGE_MASKED_POOLING).
//
// The class is registered by index.js (installKerasLayers).

const { oncePerTf } = require('./per_tf');
const { maskedInputs } = require('./masks');

// tf_keras's bias for masked scores in float32 (65504, float16's largest, in float16).
const PADDING_BIAS = 1e9;

const scoresUnmasked = () => process.env.TFJS_BRIDGE_ATTENTION === 'unmasked';

/** The refusal verify reports as `unsupported` (parity/verify.py's NODE_UNSUPPORTED). */
const refusal = (layer, why) =>
  new Error(`tfjs-bridge cannot run layer ${layer.getClassName()} ${layer.name}: ${why}`);

/** A call argument under its tfjs (camelCase) or Keras name. */
const callArg = (kwargs, camel, snake) => Boolean((kwargs || {})[camel] ?? (kwargs || {})[snake]);

/** Whether two lists hold the same tensor objects. */
const sameTensors = (a, b) =>
  Array.isArray(b) && a.length === b.length && a.every((t, i) => t === b[i]);

/** [query, value(, key)] as distinct tensors, and each one's place among them. */
function distinct(list) {
  const unique = [];
  const roles = list.map((t) => {
    if (!unique.includes(t)) unique.push(t);
    return unique.indexOf(t);
  });
  return { unique, roles };
}

/**
 * What Keras's attention layers share here: the call arguments kept from the
 * file, [query, value(, key)] called on distinct tensors, masks by role, and
 * tfjs's second call for a second output.
 *
 * Self-attention ([h, h]) is called on h alone: tfjs's predict counts each
 * listed input as one use, so [h, h] used h up twice and disposed it while
 * another layer still needed it. Called on h alone, the one mask tfjs passes
 * is every role's mask, exactly.
 */
const attentionBase = oncePerTf((tf) => {
  class KerasAttentionLayer extends tf.layers.Layer {
    constructor(args = {}) {
      super(args);
      this.supportsMasking = true;
      this.callOptions = null; // {causal, withScores}, from the symbolic call
      this.roles = null; // each of [query, value(, key)]'s place among the inputs
    }

    /** [query, value(, key)] of a symbolic call: as listed, or by the roles a
     * model saved by tfjs keeps (MultiHeadAttention reads keywords too). */
    kerasInputs(inputs, kwargs) {
      const list = Array.isArray(inputs) ? [...inputs] : [inputs];
      const roles = kwargs && (kwargs.kerasRoles ?? kwargs.keras_roles);
      return roles ? roles.map((i) => list[i]) : list;
    }

    apply(inputs, kwargs) {
      const first = Array.isArray(inputs) ? inputs[0] : inputs;
      if (first instanceof tf.SymbolicTensor) {
        // Building the model: the call arguments the file stored for this call.
        const options = {
          causal: callArg(kwargs, 'useCausalMask', 'use_causal_mask'),
          withScores: callArg(kwargs, 'returnAttentionScores', 'return_attention_scores'),
        };
        const { unique, roles } = distinct(this.kerasInputs(inputs, kwargs));
        const known = this.callOptions;
        const same =
          !known ||
          (known.causal === options.causal &&
            known.withScores === options.withScores &&
            this.roles.join() === roles.join());
        if (!same) throw refusal(this, 'a shared layer called in two different ways');
        this.callOptions = options;
        this.roles = roles;
        const rest = { ...kwargs };
        ['value', 'key', 'kerasRoles', 'keras_roles'].forEach((k) => delete rest[k]);
        // A model saved by tfjs lists the distinct inputs: the roles go with them.
        if (unique.length < roles.length) rest.kerasRoles = roles;
        return super.apply(unique.length === 1 ? unique[0] : unique, rest);
      }
      // tfjs's predict applies a layer once for each of its outputs it
      // fetches: the second call, on the same inputs, gets the first's
      // outputs, which tfjs already holds (and may have disposed when used up).
      const last = this.lastCall;
      const mask = kwargs && kwargs.mask;
      if (last && sameTensors(last.inputs, inputs) && last.mask === mask) return last.outputs;
      const outputs = super.apply(inputs, kwargs);
      this.lastCall = Array.isArray(outputs) ? { inputs: [...inputs], mask, outputs } : null;
      return outputs;
    }

    /** The call arguments: given to this call, or kept from building the model. */
    options(kwargs) {
      const known = this.callOptions || { causal: false, withScores: false };
      const has = (camel, snake) => kwargs && (kwargs[camel] != null || kwargs[snake] != null);
      return {
        causal: has('useCausalMask', 'use_causal_mask')
          ? callArg(kwargs, 'useCausalMask', 'use_causal_mask')
          : known.causal,
        withScores: has('returnAttentionScores', 'return_attention_scores')
          ? callArg(kwargs, 'returnAttentionScores', 'return_attention_scores')
          : known.withScores,
      };
    }

    /** [query, value(, key)] from the distinct inputs tfjs passes (or the full list). */
    byRole(list) {
      const given = Array.isArray(list) ? list : [list];
      if (!this.roles || given.length === this.roles.length) return given;
      return this.roles.map((i) => given[i]);
    }

    /** The inputs' shapes by role (tfjs gives one shape, or a list of them). */
    shapesByRole(inputShape) {
      return this.byRole(Array.isArray(inputShape[0]) ? inputShape : [inputShape]);
    }

    /**
     * The masks by role, of the roles in `used` (0 query, 1 value, 2 key),
     * from what tfjs passed: a list (a nested model: every input's), or what
     * predict passes, the first input's mask (the query's) or a mask left
     * over from an earlier layer (predict keeps one object for every layer's
     * arguments): so the mask is taken only for an input that carries one.
     */
    masksByRole(mask, used) {
      if (Array.isArray(mask)) return this.byRole(mask).map((m) => m ?? null);
      const roles = this.roles || used.map((r) => r);
      const masked = this.inboundNodes.length > 0 ? maskedInputs(this) : [mask != null];
      return used.map((r) => {
        const input = roles[r] ?? r;
        if (input === 0) return masked[0] ? (mask ?? null) : null;
        if (masked[input] || (this.inboundNodes.length === 0 && mask != null)) {
          throw refusal(
            this,
            `its ${['query', 'value', 'key'][r]} is another tensor than the query and carries ` +
              "a mask (tfjs's predict passes a layer only its first input's mask)",
          );
        }
        return null;
      });
    }

    computeMask(inputs, mask) {
      // The query's mask passes on: the query is always the first input.
      const queryMask = Array.isArray(mask) ? (mask[0] ?? null) : (mask ?? null);
      return this.callOptions && this.callOptions.withScores ? [queryMask, null] : queryMask;
    }
  }
  return KerasAttentionLayer;
});

/** The classes for this tf. */
const attentionLayer = oncePerTf((tf) => {
  class Attention extends attentionBase(tf) {
    constructor(args = {}) {
      super(args);
      const { useScale = false, scoreMode = 'dot', dropout = 0 } = args;
      if (scoreMode !== 'dot' && scoreMode !== 'concat') {
        throw new Error(`Attention: scoreMode ${scoreMode} is not one of dot, concat`);
      }
      this.useScale = Boolean(useScale);
      this.scoreMode = scoreMode;
      this.dropout = dropout;
    }

    build() {
      const scalar = (name) => this.addWeight(name, [], 'float32', tf.initializers.ones());
      this.scale = this.useScale ? scalar('scale') : null;
      this.concatScoreWeight = this.scoreMode === 'concat' ? scalar('concat_score_weight') : null;
      this.built = true;
    }

    scores(query, key) {
      if (this.scoreMode === 'dot') {
        const scores = tf.matMul(query, key, false, true);
        return this.scale ? tf.mul(scores, this.scale.read()) : scores;
      }
      // [B, Tq, 1, D] + [B, 1, Tv, D] -> [B, Tq, Tv, D], summed over D.
      let pairs = tf.add(tf.expandDims(query, -2), tf.expandDims(key, -3));
      if (this.scale) pairs = tf.mul(this.scale.read(), pairs);
      return tf.mul(this.concatScoreWeight.read(), tf.sum(tf.tanh(pairs), -1));
    }

    call(inputs, kwargs) {
      return tf.tidy(() => {
        const roles = this.byRole(inputs);
        if (roles.length < 2 || roles.length > 3) {
          throw new Error('Attention expects [query, value] or [query, value, key]');
        }
        const [query, value, key = value] = roles;
        const { causal, withScores } = this.options(kwargs);
        // Keras reads no key mask here.
        const [queryMask, valueMask] = this.masksByRole(kwargs && kwargs.mask, [0, 1]);
        let scores = this.scores(query, key);
        // [B, 1, Tv] and [1, Tq, Tv] -> which scores count.
        const keep = [];
        if (valueMask != null) keep.push(tf.expandDims(tf.cast(valueMask, 'bool'), -2));
        if (causal) {
          const [tq, tv] = scores.shape.slice(-2);
          const lower = tf.linalg.bandPart(tf.ones([tq, tv]), -1, 0);
          keep.push(tf.expandDims(tf.cast(lower, 'bool'), 0));
        }
        if (keep.length > 0 && !scoresUnmasked()) {
          const kept = keep.length === 1 ? keep[0] : tf.logicalAnd(keep[0], keep[1]);
          const padding = tf.cast(tf.logicalNot(kept), scores.dtype);
          scores = tf.sub(scores, tf.mul(PADDING_BIAS, padding));
        }
        let weights = tf.softmax(scores, -1);
        if (kwargs && kwargs.training && this.dropout > 0) {
          weights = tf.dropout(weights, this.dropout);
        }
        let result = tf.matMul(weights, value);
        if (queryMask != null) {
          result = tf.mul(result, tf.expandDims(tf.cast(queryMask, result.dtype), -1));
        }
        return withScores ? [result, weights] : result;
      });
    }

    computeOutputShape(inputShape) {
      const [query, value] = this.shapesByRole(inputShape);
      const out = query.slice();
      if (!(this.callOptions && this.callOptions.withScores)) return out;
      return [out, [query[0], query[1], value[1]]];
    }

    getConfig() {
      return {
        ...super.getConfig(),
        useScale: this.useScale,
        scoreMode: this.scoreMode,
        dropout: this.dropout,
      };
    }
  }
  Attention.className = 'Attention';

  return { Attention };
});

module.exports = { attentionLayer, attentionBase, refusal };
