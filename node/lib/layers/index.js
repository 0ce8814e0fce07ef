'use strict';
// tfjs-bridge's layers, installed into a tfjs: what tfjs-layers needs to load
// and run the Keras models tfjs-bridge converts, and our faster loop.
//
//   GRUCell        Keras's reset-after GRU cell (gru_reset_after.js)
//   GRU            that GRU with the fast loop (fast_loop.js)
//   LSTM           tfjs's LSTM with the fast loop
//   SimpleRNN      tfjs's, taking only a mask of its own (masks.js); it, GRU
//                  and LSTM given initial states output as Keras (masked_start.js)
//   Bidirectional  both directions as one loop (bidirectional.js)
//   keras3HardSigmoid  Keras 3's hard_sigmoid (activations.js)
//   Conv1D         tfjs's Conv1D, plus Keras's padding="causal" (conv1d_causal.js)
//   GlobalAveragePooling1D  the mean of the unmasked steps, as Keras; with
//   GlobalMaxPooling1D      it, Keras's data_format and keepdims (masked_pooling.js)
//   Attention      Keras's dot-product attention, which tfjs lacks (attention.js)
//   MultiHeadAttention  Keras's, on sequences (multi_head_attention.js)
//   Add, Multiply, Average, Maximum, Minimum  tfjs's, with Keras's mask: the
//                  AND of their inputs' masks; Subtract, which tfjs lacks (merge_masks.js)
//
// The layers among them that read a mask take only a mask their inputs can
// carry: tfjs's predict hands a layer an earlier layer's mask (masks.js).
// feedEachTensorOnce mends a loaded model whose layer takes a tensor twice,
// which tfjs's predict disposes too early (fed_twice.js).
//
// This is the one place classes are registered with tfjs's serialization,
// each class name once, under the names the converter writes, so
// tf.loadLayersModel picks them up. Registering a name replaces tfjs's own
// class of that name: which class wins is stated here, not left to the order
// in which modules happen to load.
const { oncePerTf } = require('./per_tf');
const { resetAfterGRU } = require('./gru_reset_after');
const { withFastLoop } = require('./fast_loop');
const { bidirectionalLayer } = require('./bidirectional');
const { kerasActivations } = require('./activations');
const { causalConv1D } = require('./conv1d_causal');
const { globalPooling1D } = require('./masked_pooling');
const { attentionLayer } = require('./attention');
const { multiHeadAttentionLayer } = require('./multi_head_attention');
const { mergeLayers } = require('./merge_masks');
const { withMaskOfItsOwn } = require('./masks');
const { withKerasMaskedStart } = require('./masked_start');
const { feedEachTensorOnce } = require('./fed_twice');

/** Installs the layers into `tf` (once per tfjs) and returns their classes. */
const installKerasLayers = oncePerTf((tf) => {
  const { GRU: ResetAfterGRU, GRUCell } = resetAfterGRU(tf);
  const StockLSTM = tf.layers.lstm({ units: 1 }).constructor;
  const StockSimpleRNN = tf.layers.simpleRNN({ units: 1 }).constructor;
  // The layers that read a mask take only one their inputs carry (masks.js);
  // the recurrent ones, given initial states, output as Keras (masked_start.js).
  const GRU = withMaskOfItsOwn(
    tf,
    withKerasMaskedStart(tf, withFastLoop(tf, ResetAfterGRU, 'GRU')),
  );
  const LSTM = withMaskOfItsOwn(tf, withKerasMaskedStart(tf, withFastLoop(tf, StockLSTM, 'LSTM')));
  const SimpleRNN = withMaskOfItsOwn(tf, withKerasMaskedStart(tf, StockSimpleRNN));
  const Bidirectional = withMaskOfItsOwn(tf, bidirectionalLayer(tf, { GRU, LSTM }));
  const { Keras3HardSigmoid } = kerasActivations(tf);
  const { Conv1D } = causalConv1D(tf);
  const pooling = globalPooling1D(tf);
  const GlobalAveragePooling1D = withMaskOfItsOwn(tf, pooling.GlobalAveragePooling1D);
  const { GlobalMaxPooling1D } = pooling;
  const { Attention } = attentionLayer(tf);
  const { MultiHeadAttention } = multiHeadAttentionLayer(tf);
  const classes = {
    GRUCell,
    GRU,
    LSTM,
    SimpleRNN,
    Bidirectional,
    Keras3HardSigmoid,
    Conv1D,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Attention,
    MultiHeadAttention,
    ...mergeLayers(tf),
  };
  Object.values(classes).forEach((cls) => tf.serialization.registerClass(cls));
  return classes;
});

module.exports = { installKerasLayers, feedEachTensorOnce };
