'use strict';
// A model's inputs as its manifest records them (the signature: name, dtype,
// shape, domain per input; py/tfjs_bridge/folder/signature.py writes it), and the
// checks every array a user hands us passes before it runs, as
// py/tfjs_bridge/folder/checked_inputs.py applies them: dtype, shape, sample count, token ids
// within [low, high), NaN/Inf.

/** The manifest's signature, or what a manifest without one means: one float input. */
function signatureOf(manifest) {
  if (manifest.signature) return manifest.signature;
  const shape = (manifest.spec && manifest.spec.input_shape) || [];
  const input = { name: 'input', dtype: 'float32', shape, kind: 'float', low: -1, high: 1 };
  return { inputs: [{ ...input, mask_value: null }], outputs: [] };
}

function firstBad(data, isBad) {
  let count = 0;
  let first = -1;
  data.forEach((v, i) => {
    if (isBad(v)) {
      count += 1;
      if (first < 0) first = i;
    }
  });
  return { count, first };
}

/**
 * Throws a one-line error naming `where` unless {data, shape, dtype} fits
 * `spec`; `only`: the model's one input (messages say "the model").
 */
function checkInput(
  { data, shape, dtype },
  where,
  spec,
  allowNonfinite = false,
  only = true,
  nonfiniteHint = '; pass --allow-nonfinite to run them anyway',
) {
  const want = spec.shape.map((d) => (d === null ? '*' : d)).join(', ');
  const who = only ? 'the model' : `input ${spec.name}`;
  if (dtype !== spec.dtype) {
    throw new Error(`${where}: dtype ${dtype}, ${who} takes ${spec.dtype}`);
  }
  const fits =
    shape.length === spec.shape.length + 1 &&
    spec.shape.every((d, i) => d === null || d === shape[i + 1]);
  if (!fits) {
    throw new Error(
      `${where}: shape [${shape.join(', ')}] does not fit ${only ? "the model's input" : `input ${spec.name}`} [N, ${want}]`,
    );
  }
  if (shape[0] === 0) throw new Error(`${where}: empty (0 samples)`);
  if (spec.kind === 'tokens') {
    const { count, first } = firstBad(data, (v) => v < spec.low || v >= spec.high);
    if (count) {
      throw new Error(
        `${where}: ${count} token ids outside [${spec.low}, ${spec.high}) ` +
          `(first ${data[first]} at flat index ${first})`,
      );
    }
  } else if (!allowNonfinite) {
    const { count, first } = firstBad(data, (v) => !Number.isFinite(v));
    if (count) {
      throw new Error(
        `${where}: ${count} NaN/Inf values (first at flat index ${first})${nonfiniteHint}`,
      );
    }
  }
  return { data, shape, dtype };
}

module.exports = { signatureOf, checkInput };
