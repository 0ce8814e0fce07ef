'use strict';
// Training the fast loop on tfjs-node: the recurrence of a GRU or LSTM as one
// tf.customGrad op whose forward and backward passes (backpropagation through
// time, written out below) call TensorFlow's ops directly (tf_direct.js).
// The forward pass takes cells.js's steps and keeps their intermediates.
//
// Under a gradient tape (fit, tf.grad) tfjs records every op of the loop and
// replays each one's gradient, all through tfjs's slower op wrappers. Here
// the tape records one op per layer; the backward pass is 15-20 direct ops per
// step, and the recurrent weights' gradients are one matMul per weight over
// all steps at once. One epoch of the seed GRU in Node: 70.1 -> 27.7 s.
//
// What stays outside, as taped tfjs ops: the input projection x·W + b (one
// matMul for the whole sequence), goBackwards, the LSTM's gate reordering and
// returnSequences' transpose. Activations with a known derivative only
// (tanh, sigmoid, hardSigmoid, relu, linear); anything else keeps the taped
// loop. node/test/fast_rnn.test.js checks every weight's gradient against
// tfjs's stock loop.
const { directOps, activationOf } = require('./ops');
const { gruStep, lstmStep } = require('./cells');

// d(activation)/d(input) times dy, from the activation's output y.
const DERIVATIVES = {
  tanh: (ops) => ops.tanhGrad,
  sigmoid: (ops) => ops.sigmoidGrad,
  relu: (ops) => ops.reluGrad,
  linear: () => (y, dy) => dy,
  // clip(0.2x + 0.5, 0, 1): 0.2 where the clip is not active.
  hardSigmoid: (ops, tf) => {
    const slope = tf.scalar(0.2);
    return (y, dy) => ops.insideUnitGrad(y, ops.mul(dy, slope));
  },
};

const derivable = (activation) => Object.hasOwn(DERIVATIVES, activation.getClassName());

/** Whether this layer's recurrence can run as one customGrad op. */
function backpropSupported(tf, layer) {
  const { cell } = layer;
  return (
    tf.getBackend() === 'tensorflow' &&
    derivable(cell.activation) &&
    derivable(cell.recurrentActivation)
  );
}

/** Forward and derivative of both activations, on direct ops. */
function activations(tf, ops, cell) {
  const fn = (a) => ({
    forward: activationOf(tf, ops, a),
    grad: DERIVATIVES[a.getClassName()](ops, tf),
  });
  return { act: fn(cell.activation), recAct: fn(cell.recurrentActivation) };
}

/**
 * `forward` (ops, steps of xp, weights) -> {hs, saved} and its `backward`
 * (ops, weights, saved, dh from the output at t, T) -> {dxp per step,
 * dWeights} as one customGrad op of (xp [T, B, G], ...weights); its value is
 * the last h [B, U], or every step's h as [T, B, U] when `sequences`.
 */
function recurrenceOp(tf, { forward, backward, sequences }) {
  return tf.customGrad((xp, ...rest) => {
    const save = rest.pop();
    const weights = rest;
    const ops = directOps(tf);
    const { hs, saved } = forward(ops, ops.unstack(xp), weights);
    save([...weights, ...saved]); // kept until the backward pass runs
    const value = sequences ? ops.stack(hs) : hs[hs.length - 1];
    return {
      value,
      gradFunc: (dy, kept) => {
        const bops = directOps(tf);
        const steps = xp.shape[0];
        const dOut = sequences ? bops.unstack(dy) : null;
        // dh arriving at step t from the layer's output
        const outputGrad = (t) => (sequences ? dOut[t] : t === steps - 1 ? dy : null);
        const keptWeights = kept.slice(0, weights.length);
        const keptSaved = kept.slice(weights.length);
        const { dxp, dWeights } = backward(bops, keptWeights, keptSaved, outputGrad, steps);
        return [bops.stack(dxp), ...dWeights];
      },
    };
  });
}

const addGrad = (ops, a, b) => (a === null ? b : b === null ? a : ops.add(a, b));

// The GRU's backward pass, for both variants (cells.js gruStep):
//   reset before: zr = σ(x_zr + h·U_zr)   hh = tanh(x_h + (r ⊙ h)·U_h)
//     h' = hh + z ⊙ (h − hh)
//   reset after, with the recurrent bias b_rec:
//     [i_zr, i_h] = h·U + b_rec   zr = σ(x_zr + i_zr)   hh = tanh(x_h + r ⊙ i_h)
function gruRecurrence(tf, layer) {
  const { units, resetAfter } = layer.cell;
  const gateSplit = [2 * units, units];
  // saved per step: h, zr, z, r, hh, and r ⊙ h (reset-before) or i_h (reset-after)
  const PER_STEP = 6;

  const forward = (ops, xs, [recurrent, recurrentBias]) => {
    const { act, recAct } = activations(tf, ops, layer.cell);
    const params = { act: act.forward, recAct: recAct.forward, resetAfter, width: units };
    const weights = { recurrent, recurrentBias };
    if (!resetAfter)
      [weights.recurrentGates, weights.recurrentCandidate] = ops.split(recurrent, gateSplit);
    let h = tf.zeros([xs[0].shape[0], units]);
    const hs = [];
    const saved = [];
    xs.forEach((xt) => {
      const step = gruStep(ops, params, weights, ops.split(xt, gateSplit), h);
      saved.push(h, step.zr, step.z, step.r, step.candidate, step.kept);
      h = step.h;
      hs.push(h);
    });
    return { hs, saved };
  };

  const backward = (ops, [recurrent, recurrentBias], saved, outputGrad, steps) => {
    const { act, recAct } = activations(tf, ops, layer.cell);
    const [recurrentGates, recurrentCandidate] = resetAfter
      ? [null, null]
      : ops.split(recurrent, gateSplit);
    const dxp = new Array(steps);
    const hs = [];
    const keptAll = [];
    const dGates = [];
    const dCandidates = [];
    const dInner = [];
    let dh = null;
    for (let t = steps - 1; t >= 0; t--) {
      dh = addGrad(ops, dh, outputGrad(t));
      const [h, zr, z, r, candidate, kept] = saved.slice(PER_STEP * t, PER_STEP * (t + 1));
      const dz = ops.mul(dh, ops.sub(h, candidate));
      const dhThroughZ = ops.mul(dh, z);
      const dCandidateIn = act.grad(candidate, ops.sub(dh, dhThroughZ));
      let dr;
      let dhPrev;
      if (resetAfter) {
        dr = ops.mul(dCandidateIn, kept); // kept = i_h
        const dZr = recAct.grad(zr, ops.concat([dz, dr], 1));
        const dInnerT = ops.concat([dZr, ops.mul(dCandidateIn, r)], 1);
        dhPrev = ops.add(dhThroughZ, ops.matMulTB(dInnerT, recurrent));
        dInner.push(dInnerT);
        dxp[t] = ops.concat([dZr, dCandidateIn], 1);
      } else {
        const dRh = ops.matMulTB(dCandidateIn, recurrentCandidate);
        dr = ops.mul(dRh, h);
        const dZr = recAct.grad(zr, ops.concat([dz, dr], 1));
        dhPrev = ops.add(ops.add(dhThroughZ, ops.mul(dRh, r)), ops.matMulTB(dZr, recurrentGates));
        dGates.push(dZr);
        dCandidates.push(dCandidateIn);
        keptAll.push(kept); // kept = r ⊙ h
        dxp[t] = ops.concat([dZr, dCandidateIn], 1);
      }
      hs.push(h);
      dh = dhPrev;
    }
    // The weights' gradients: every step's terms in one matMul.
    const allH = ops.concat(hs, 0);
    if (resetAfter) {
      const allDInner = ops.concat(dInner, 0);
      const dRecurrent = ops.matMulTA(allH, allDInner);
      return { dxp, dWeights: recurrentBias ? [dRecurrent, ops.sumRows(allDInner)] : [dRecurrent] };
    }
    const dRecurrent = ops.concat(
      [
        ops.matMulTA(allH, ops.concat(dGates, 0)),
        ops.matMulTA(ops.concat(keptAll, 0), ops.concat(dCandidates, 0)),
      ],
      1,
    );
    return { dxp, dWeights: [dRecurrent] };
  };

  return { forward, backward, PER_STEP };
}

// The LSTM's backward pass, gates in the order i, f, o, g (cells.js lstmStep):
//   [i, f, o] = σ(·)   g = tanh(·)   c' = f ⊙ c + i ⊙ g   h' = o ⊙ tanh(c')
function lstmRecurrence(tf, layer) {
  const { units } = layer.cell;
  const PER_STEP = 8; // saved per step: h, c, [i, f, o], i, f, o, g, tanh(c')
  const forward = (ops, xs, [recurrent]) => {
    const { act, recAct } = activations(tf, ops, layer.cell);
    const params = { act: act.forward, recAct: recAct.forward, width: units };
    let h = tf.zeros([xs[0].shape[0], units]);
    let c = h;
    const hs = [];
    const saved = [];
    xs.forEach((xt) => {
      const step = lstmStep(ops, params, { recurrent }, xt, h, c);
      saved.push(h, c, step.ifo, step.i, step.f, step.o, step.g, step.tc);
      ({ h, c } = step);
      hs.push(h);
    });
    return { hs, saved };
  };

  const backward = (ops, [recurrent], saved, outputGrad, steps) => {
    const { act, recAct } = activations(tf, ops, layer.cell);
    const dxp = new Array(steps);
    const hs = [];
    const dPre = [];
    let dh = null;
    let dc = null;
    for (let t = steps - 1; t >= 0; t--) {
      dh = addGrad(ops, dh, outputGrad(t));
      const [h, c, ifo, i, f, o, g, tc] = saved.slice(PER_STEP * t, PER_STEP * (t + 1));
      dc = addGrad(ops, dc, act.grad(tc, ops.mul(dh, o)));
      const dIfo = ops.concat([ops.mul(dc, g), ops.mul(dc, c), ops.mul(dh, tc)], 1);
      const dPreT = ops.concat([recAct.grad(ifo, dIfo), act.grad(g, ops.mul(dc, i))], 1);
      dxp[t] = dPreT;
      dPre.push(dPreT);
      hs.push(h);
      dh = ops.matMulTB(dPreT, recurrent);
      dc = ops.mul(dc, f);
    }
    return { dxp, dWeights: [ops.matMulTA(ops.concat(hs, 0), ops.concat(dPre, 0))] };
  };
  return { forward, backward, PER_STEP };
}

/**
 * The layer's recurrence over the time-major projection xp [T, B, G] as one
 * differentiable op: (xp, recurrentKernel[, recurrentBias]) -> last h
 * [B, U], or every h as [T, B, U] with returnSequences.
 */
function recurrenceWithBackprop(tf, layer, kind) {
  const parts = kind === 'GRU' ? gruRecurrence(tf, layer) : lstmRecurrence(tf, layer);
  return recurrenceOp(tf, { sequences: layer.returnSequences, ...parts });
}

module.exports = { backpropSupported, recurrenceWithBackprop };
