'use strict';
// A layer fed one tensor twice: Multiply()([h, h]), an LSTM given
// initial_state=[h, h]. tfjs-layers 4.22's predict counts a tensor's
// consumers once per layer but counts them down once per input, so the
// tensor was disposed after that layer even when a later layer still needed
// it, and predict failed ("Cannot read properties of undefined (reading
// 'backend')"). Each such layer's node is given its distinct inputs, and the
// layer spreads them back to the inputs it was built with when it runs.
// TFJS_BRIDGE_FED_TWICE=stock leaves the model as loaded (the test's control).

/** Rewrites, in place, the nodes of `model` (and of the models in it) that take a tensor twice. */
function feedEachTensorOnce(tf, model) {
  if (process.env.TFJS_BRIDGE_FED_TWICE === 'stock') return model;
  for (const layer of model.layers) {
    if (Array.isArray(layer.layers)) feedEachTensorOnce(tf, layer);
    if (layer.inboundNodes.length !== 1) continue; // called more than once: left as it is
    const [node] = layer.inboundNodes;
    const distinct = [...new Set(node.inputTensors)];
    if (distinct.length === node.inputTensors.length) continue;
    const positions = node.inputTensors.map((t) => distinct.indexOf(t));
    node.outputTensors.forEach((t) => {
      t.inputs = distinct; // what predict's executor reads and counts
    });
    const apply = layer.apply.bind(layer);
    layer.apply = (inputs, kwargs) => {
      const given = Array.isArray(inputs) ? inputs : [inputs];
      const running = given.length === distinct.length && !(given[0] instanceof tf.SymbolicTensor);
      return apply(running ? positions.map((i) => given[i]) : inputs, kwargs);
    };
  }
  return model;
}

module.exports = { feedEachTensorOnce };
