'use strict';
// What tfjs-layers needs to load the Keras models tfjs-bridge converts:
// Keras's default GRU (reset_after=True) and Keras 3's hard_sigmoid, which
// py/tfjs_bridge/keras3.py renames to keras3_hard_sigmoid (tfjs reads it as
// keras3HardSigmoid) because tfjs's hardSigmoid is tf-keras's, another formula.
// It also puts in the faster GRU and LSTM time loop of fast_rnn.js.
const { recurrentLayers } = require('./fast_rnn');
const { oncePerTf } = require('./per_tf');

const installKerasCompat = oncePerTf((tf) => {
  recurrentLayers(tf); // the reset-after GRU, then the fast loop's GRU and LSTM over it

  class Keras3HardSigmoid extends tf.serialization.Serializable {
    apply(x) {
      return tf.tidy(() => tf.div(tf.relu6(tf.add(x, 3)), 6));
    }

    getConfig() {
      return {};
    }
  }
  Keras3HardSigmoid.className = 'keras3HardSigmoid';
  tf.serialization.registerClass(Keras3HardSigmoid);
});

module.exports = { installKerasCompat };
