'use strict';
// Keras 3's hard_sigmoid, relu6(x + 3) / 6, for tfjs. tfjs's hardSigmoid is
// tf-keras's clip(0.2x + 0.5, 0, 1), another formula, so
// py/tfjs_bridge/conversion/keras3.py renames Keras 3's to keras3_hard_sigmoid (tfjs
// reads it as keras3HardSigmoid) and this is that class.

/** The Keras 3 activation classes for this tf (registered by index.js). */
function kerasActivations(tf) {
  class Keras3HardSigmoid extends tf.serialization.Serializable {
    apply(x) {
      return tf.tidy(() => tf.div(tf.relu6(tf.add(x, 3)), 6));
    }

    getConfig() {
      return {};
    }
  }
  Keras3HardSigmoid.className = 'keras3HardSigmoid';
  return { Keras3HardSigmoid };
}

module.exports = { kerasActivations };
