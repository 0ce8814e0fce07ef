'use strict';
// TensorFlow eager ops called directly through tfjs-node's binding, the way
// tfjs-node's own kernels call them, for the recurrent loops (fast_loop.js, backprop.js).
//
// Several tfjs ops are more than one TensorFlow op on tfjs-node: matMul is
// four (reshapes to 3-D around BatchMatMulV2), clipByValue two plus two new
// scalars, split makes its size and axis tensors afresh. Measured at batch 1:
// matMul 170 -> 25 µs, clip 83 -> 21, split 57 -> 22, add 20 -> 8.
//
// These calls record nothing on a gradient tape: use them where no tape is
// on (inference), or inside a tf.customGrad that supplies the gradient.

/** The ops, for the tfjs-node backend of `tf`. Small constants are made once
 *  per call of directOps (the caller's tidy disposes them). */
function directOps(tf) {
  const backend = tf.backend();
  const { binding } = backend;
  const attr = (name, type, value) => ({ name, type: binding[type], value });
  const float = [attr('T', 'TF_ATTR_TYPE', binding.TF_FLOAT)];
  // The transposed products use BatchMatMulV2, the kernel tfjs's own matMul
  // runs (oneDNN's brgemm). MatMul goes to oneDNN's sgemm (gemm_api), whose
  // JIT kernels point the stack pointer into the heap while they run: a
  // signal arriving then (Node's --cpu-prof, or any handled signal) writes
  // its frame over heap memory, and glibc aborts later ("corrupted size vs.
  // prev_size"; oneDNN issue #4845, fixed in oneDNN 3.11.2, newer than the
  // one TensorFlow 2.19 bundles). Which shapes reach it varies: under SIGUSR2
  // storms 32x96x64, 32x128x128 and 256x192x64 aborted, 32x64x192 and the
  // registry models' loop shapes did not. ONEDNN_MAX_CPU_ISA=AVX2 saved those
  // three, not the backward pass's 64x896x192 (weights' gradients), nor a
  // transposed product there, so training keeps BatchMatMulV2 (90 µs a call
  // against 18 µs for MatMul; node/test/profiler.test.js fails without it).
  const batchAttrs = (ta, tb) => [
    ...float,
    attr('adj_x', 'TF_ATTR_BOOL', ta),
    attr('adj_y', 'TF_ATTR_BOOL', tb),
  ];
  const plain = [
    ...float,
    attr('transpose_a', 'TF_ATTR_BOOL', false),
    attr('transpose_b', 'TF_ATTR_BOOL', false),
  ];
  const [transA, transB] = [batchAttrs(true, false), batchAttrs(false, true)];
  const run = (op, inputs, attrs = float) => backend.executeSingleOutput(op, attrs, inputs);
  const int32 = (value) => tf.scalar(value, 'int32');
  const [zero, one, six, axis0, axis1] = [
    tf.scalar(0),
    tf.scalar(1),
    tf.scalar(6),
    int32(0),
    int32(1),
  ];
  const splitSizes = new Map();
  const sizesTensor = (sizes) => {
    const key = sizes.join(',');
    if (!splitSizes.has(key)) splitSizes.set(key, tf.tensor1d(sizes, 'int32'));
    return splitSizes.get(key);
  };
  const concatAttrs = (n) => [
    ...float,
    attr('N', 'TF_ATTR_INT', n),
    attr('Tidx', 'TF_ATTR_TYPE', binding.TF_INT32),
  ];

  return {
    matMul: (a, b) => run('MatMul', [a, b], plain),
    /** aᵀ·b */
    matMulTA: (a, b) => run('BatchMatMulV2', [a, b], transA),
    /** a·bᵀ */
    matMulTB: (a, b) => run('BatchMatMulV2', [a, b], transB),
    add: (a, b) => run('AddV2', [a, b]),
    sub: (a, b) => run('Sub', [a, b]),
    mul: (a, b) => run('Mul', [a, b]),
    /** where(condition, a, b): condition a bool tensor of a's shape. */
    select: (condition, a, b) => run('Select', [condition, a, b]),
    tanh: (v) => run('Tanh', [v]),
    sigmoid: (v) => run('Sigmoid', [v]),
    clip01: (v) => run('ClipByValue', [v, zero, one]),
    /** [B, N] cut along axis 1 into parts of `sizes` columns. */
    split: (v, sizes) => {
      const attrs = [
        ...float,
        attr('Tlen', 'TF_ATTR_TYPE', binding.TF_INT32),
        attr('num_split', 'TF_ATTR_INT', sizes.length),
      ];
      return backend.executeMultipleOutputs(
        'SplitV',
        attrs,
        [v, sizesTensor(sizes), axis1],
        sizes.length,
      );
    },
    /** Tensors joined along axis 0 or 1. */
    concat: (tensors, axis) =>
      tensors.length === 1
        ? tensors[0]
        : run('ConcatV2', [...tensors, axis === 0 ? axis0 : axis1], concatAttrs(tensors.length)),
    /** [T, ...] as T tensors [...]; and back. */
    unstack: (v) =>
      backend.executeMultipleOutputs(
        'Unpack',
        [...float, attr('num', 'TF_ATTR_INT', v.shape[0]), attr('axis', 'TF_ATTR_INT', 0)],
        [v],
        v.shape[0],
      ),
    stack: (tensors) =>
      run('Pack', tensors, [
        ...float,
        attr('N', 'TF_ATTR_INT', tensors.length),
        attr('axis', 'TF_ATTR_INT', 0),
      ]),
    /** Column sums of [R, C]: [C]. */
    sumRows: (v) =>
      run(
        'Sum',
        [v, axis0],
        [
          ...float,
          attr('Tidx', 'TF_ATTR_TYPE', binding.TF_INT32),
          attr('keep_dims', 'TF_ATTR_BOOL', false),
        ],
      ),
    // Gradients of activations, from their outputs y and the incoming dy.
    tanhGrad: (y, dy) => run('TanhGrad', [y, dy]),
    sigmoidGrad: (y, dy) => run('SigmoidGrad', [y, dy]),
    reluGrad: (y, dy) => run('ReluGrad', [dy, y]),
    /** dy where 0 < y < 1, else 0 (TensorFlow's Relu6Grad on 6y). */
    insideUnitGrad: (y, dy) => run('Relu6Grad', [dy, run('Mul', [y, six])]),
  };
}

module.exports = { directOps };
