'use strict';
// The GRU and LSTM step equations, written once. The reset-after GRU cell
// (gru_reset_after.js), the fast loop (fast_loop.js) and training's forward
// pass (backprop.js) all take a step here; only what surrounds the step
// differs (where the input projection comes from, which ops, whether the
// hard-sigmoid is folded into the weights). Each step returns its
// intermediates too: the backward pass keeps them.
//
// `ops` (ops.js): matMul, add, sub, mul, split along axis 1. `act` and
// `recAct`: the activation and recurrent activation as functions of tensors.
// `width`: the state's width W ([B, W]; a Bidirectional run as one loop has
// W = 2U, its gate columns side by side).

/**
 * One GRU step. xParts: this step's input projection x·W + b_in cut into
 * [xGates [B, 2W], xCandidate [B, W]]; h: the state [B, W]; hIn: h as the
 * recurrent product sees it (the cell's recurrent dropout), h by default.
 *
 * Reset before (tfjs default; Keras reset_after=False), with weights
 * {recurrentGates [W, 2W], recurrentCandidate [W, W]}:
 *   z, r = σ(x_zr + h·U_zr)   h~ = tanh(x_h + (r ⊙ h)·U_h)
 * Reset after (Keras default), with weights {recurrent [W, 3W], recurrentBias}:
 *   [i_zr, i_h] = h·U + b_rec   z, r = σ(x_zr + i_zr)   h~ = tanh(x_h + r ⊙ i_h)
 * Both: h' = z ⊙ h + (1 − z) ⊙ h~, computed as h~ + z ⊙ (h − h~).
 *
 * Returns {h: h', zr, z, r, candidate: h~, kept}, kept being r ⊙ h (reset
 * before) or i_h (reset after): what the backward pass needs of the step.
 */
function gruStep(
  ops,
  { act, recAct, resetAfter, width },
  weights,
  [xGates, xCandidate],
  h,
  hIn = h,
) {
  let zr;
  let z;
  let r;
  let candidateIn;
  let kept;
  if (resetAfter) {
    let inner = ops.matMul(hIn, weights.recurrent);
    if (weights.recurrentBias) inner = ops.add(inner, weights.recurrentBias);
    const [innerGates, innerCandidate] = ops.split(inner, [2 * width, width]);
    zr = recAct(ops.add(xGates, innerGates));
    [z, r] = ops.split(zr, [width, width]);
    candidateIn = ops.add(xCandidate, ops.mul(r, innerCandidate));
    kept = innerCandidate;
  } else {
    zr = recAct(ops.add(xGates, ops.matMul(hIn, weights.recurrentGates)));
    [z, r] = ops.split(zr, [width, width]);
    kept = ops.mul(r, hIn);
    candidateIn = ops.add(xCandidate, ops.matMul(kept, weights.recurrentCandidate));
  }
  const candidate = act(candidateIn);
  return { h: ops.add(candidate, ops.mul(z, ops.sub(h, candidate))), zr, z, r, candidate, kept };
}

/**
 * One LSTM step, its gates in the order i, f, o, g (Keras and tfjs store
 * i, f, g, o; loop_weights.js reorders the columns so that the three sigmoid
 * gates take one activation): xProjected = x·W + b [B, 4W], weights
 * {recurrent [W, 4W]}, state h and c [B, W].
 *   [i, f, o] = σ(·)   g = tanh(·)   c' = f ⊙ c + i ⊙ g   h' = o ⊙ tanh(c')
 * Returns {h: h', c: c', ifo, i, f, o, g, tc: tanh(c')}.
 */
function lstmStep(ops, { act, recAct, width }, { recurrent }, xProjected, h, c) {
  const pre = ops.add(xProjected, ops.matMul(h, recurrent));
  const [sigmoidIn, candidateIn] = ops.split(pre, [3 * width, width]);
  const ifo = recAct(sigmoidIn);
  const [i, f, o] = ops.split(ifo, [width, width, width]);
  const g = act(candidateIn);
  const cNext = ops.add(ops.mul(f, c), ops.mul(i, g));
  const tc = act(cNext);
  return { h: ops.mul(o, tc), c: cNext, ifo, i, f, o, g, tc };
}

/**
 * One SimpleRNN step: xProjected = x·W + b [B, W], weights {recurrent [W, W]}.
 *   h' = act(xProjected + h·U)
 * (No fast loop runs it; the streams of stream.js do.)
 */
function simpleStep(ops, { act }, { recurrent }, xProjected, h) {
  return { h: act(ops.add(xProjected, ops.matMul(h, recurrent))) };
}

// Per kind: the weights' column groups of W (blocks), how many of them come
// first and go through recAct (sigmoidGates: z, r of a GRU's z, r, h; i, f, o
// of the LSTM's reordered i, f, o, g), and how a step's input projection is
// cut (parts, in multiples of W).
const CELLS = {
  GRU: { blocks: 3, sigmoidGates: 2, parts: [2, 1] },
  LSTM: { blocks: 4, sigmoidGates: 3, parts: [4] },
  SimpleRNN: { blocks: 1, sigmoidGates: 0, parts: [1] },
};

module.exports = { gruStep, lstmStep, simpleStep, CELLS };
