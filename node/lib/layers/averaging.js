'use strict';
// Weight averaging for Node training (registry field ema_momentum): the model
// ends training holding an exponential moving average of its weights, updated
// after every batch, with the momentum warming up as in
// py/tfjs_bridge/training/averaging.py: min(momentum, (1 + t) / (10 + t)) after step t.

const warmupMomentum = (momentum, step) => Math.min(momentum, (1 + step) / (10 + step));

/** fit() callbacks that average `model`'s trainable weights and write the
 *  averages into it when training ends. */
function weightAveraging(tf, model, momentum) {
  let averages = [];
  let step = 0;
  return {
    onTrainBegin: async () => {
      step = 0;
      averages = model.trainableWeights.map((w) => tf.variable(w.read().clone(), false));
    },
    onBatchEnd: async () => {
      step += 1;
      const rate = warmupMomentum(momentum, step);
      tf.tidy(() =>
        model.trainableWeights.forEach((w, i) => {
          averages[i].assign(averages[i].mul(rate).add(w.read().mul(1 - rate)));
        }),
      );
    },
    onTrainEnd: async () => {
      model.trainableWeights.forEach((w, i) => w.write(averages[i].clone()));
      averages.forEach((a) => a.dispose());
      averages = [];
    },
  };
}

module.exports = { warmupMomentum, weightAveraging };
