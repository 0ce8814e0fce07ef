'use strict';
// Which mask a layer gets when tfjs-layers' predict runs a model.
//
// tfjs-layers 4.22's predict (engine/executor.js) keeps one arguments object
// for every layer of a run: when a layer's inputs carry a mask it sets
// `mask` to its first input's, and when they carry none it leaves the mask
// an earlier layer got. So in a model with a masked branch (Embedding
// (mask_zero) -> ...) and an unmasked one, a layer of the unmasked branch
// that runs later reads the other branch's mask: an LSTM after a
// MultiHeadAttention on numbers skipped the steps where the tokens were
// padding (docs/models.md).
//
// carriesMask reads from the model's graph whether a tensor carries a mask
// when tfjs runs it; withMaskOfItsOwn makes a layer drop a mask its inputs
// cannot have given it, or that the file says its call did without (a
// Keras 3 RNN given initial_state=: Keras 3 fills in `mask` only for a call
// on one tensor, and the tf-keras twin writes mask=None in the inbound node;
// tfjs keeps that in the node's callArgs, and its predict ignores it).
// Installed on the layers that read masks (index.js).
// TFJS_BRIDGE_SHARED_KWARGS=stock hands them tfjs's shared arguments as they
// come (the tests' negative control); the page bundle fixes it at build time.

// Layers whose output carries no mask in tfjs, whatever their input's.
const MASK_DROPPING = new Set([
  'GlobalAveragePooling1D',
  'GlobalMaxPooling1D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Flatten',
  'RepeatVector',
]);
const RECURRENT = new Set(['GRU', 'LSTM', 'SimpleRNN', 'RNN', 'Bidirectional']);
// Layers that pass their first input's (the query's) mask on, on their first output.
const QUERY_MASK = new Set(['Attention', 'MultiHeadAttention']);

/**
 * Whether symbolic tensor t carries a mask when tfjs runs the model: from an
 * Embedding(maskZero) or a Masking layer, through the layers that pass a
 * mask on (an RNN only with returnSequences, its sequence output).
 */
function carriesMask(t, seen = new Map()) {
  if (seen.has(t)) return seen.get(t);
  seen.set(t, false); // a cycle carries nothing
  const layer = t.sourceLayer;
  const cls = layer ? layer.getClassName() : 'InputLayer';
  const inputs = t.inputs || [];
  const first = (t.tensorIndex ?? 0) === 0;
  const any = () => inputs.some((x) => carriesMask(x, seen));
  let masked;
  if (cls === 'InputLayer') masked = false;
  else if (cls === 'Embedding') masked = Boolean(layer.maskZero);
  else if (cls === 'Masking') masked = true;
  else if (!layer.supportsMasking || MASK_DROPPING.has(cls)) masked = false;
  else if (RECURRENT.has(cls)) masked = first && Boolean(layer.returnSequences) && any();
  else if (QUERY_MASK.has(cls)) masked = first && inputs.length > 0 && carriesMask(inputs[0], seen);
  else masked = any();
  seen.set(t, masked);
  return masked;
}

/** Which inputs of a layer carry a mask, over every call of it in the model. */
function maskedInputs(layer) {
  const flags = [];
  layer.inboundNodes.forEach(({ inputTensors }) =>
    inputTensors.forEach((t, i) => {
      flags[i] = flags[i] || carriesMask(t);
    }),
  );
  return flags;
}

/** Whether every call of the layer in the file passed mask=None explicitly. */
function calledWithoutMask(layer) {
  return (
    layer.inboundNodes.length > 0 &&
    layer.inboundNodes.every(
      ({ callArgs }) =>
        callArgs != null && Object.hasOwn(callArgs, 'mask') && callArgs.mask == null,
    )
  );
}

/**
 * Base with a mask taken only when the layer's inputs can have given it, and
 * arguments of its own: tfjs's RNN.apply writes the states it was given as
 * inputs into that shared object (initialState), where the next RNN of the
 * run found them and failed ("When inputs is an array, neither initialState
 * or constants should be provided"), and an RNN given none started from
 * them. In a model's run the states come as inputs, so one left in the
 * arguments is another layer's.
 */
function withMaskOfItsOwn(tf, Base) {
  return class extends Base {
    apply(inputs, kwargs) {
      const first = Array.isArray(inputs) ? inputs[0] : inputs;
      const inModel = this.inboundNodes.length > 0 && !(first instanceof tf.SymbolicTensor);
      if (!inModel || kwargs == null || process.env.TFJS_BRIDGE_SHARED_KWARGS === 'stock')
        return super.apply(inputs, kwargs);
      const own = { ...kwargs };
      delete own.initialState; // with states of its own, or none, never another's
      // A list of masks comes from a nested model's run: each its input's own.
      if (own.mask != null && !Array.isArray(own.mask)) {
        if (calledWithoutMask(this) || !maskedInputs(this).some(Boolean)) own.mask = null;
      }
      return super.apply(inputs, own);
    }
  };
}

module.exports = { carriesMask, maskedInputs, withMaskOfItsOwn };
