'use strict';
// A drawn or photographed digit made to look like an MNIST digit, as gru was
// trained on them. MNIST's recipe (LeCun et al.): the digit's ink, size-
// normalised to fit a 20 x 20 box keeping its aspect ratio (anti-aliased,
// hence grey levels), placed in 28 x 28 so that its centre of mass is at the
// centre. A stroke's width is made MNIST's too: a thin pen stroke scaled
// down, or a fat finger's, is far from the ~2-pixel strokes gru has seen.
//
// Pure arithmetic on arrays, no require: the demo page (lib/demo/app.js,
// bundled for the browser) and node/predict.js --image run this same code.

const SIDE = 28; // MNIST's image
const BOX = 20; // the box the digit's ink is scaled to fit
// Measured on MNIST's 60,000 training digits with strokeWidth() below:
// median 2.64 pixels, 10 % below 1.86, 10 % above 4.04; mean centre of
// mass (row, column) (14.50, 14.51), a pixel's centre at +0.5.
const MNIST_STROKES = [1.86, 4.04]; // a stroke's width is brought into this range
const MNIST_CENTRE = [14.5, 14.5];
const SUPER = 8; // work at 8 x MNIST's resolution, then average each 8 x 8
const MAX_SIDE = 256; // larger inputs (photos) are first scaled to this
const MAX_CHANGE = 3; // pixels: the most a stroke is widened or narrowed
const INK = 0.5; // of the brightest pixel: what counts as the stroke itself
const FAINT = 0.1; // of the brightest pixel: below it, background

/**
 * An image's pixels as ink in [0, 1], bright ink on a dark background as in
 * MNIST. rgba: 4 bytes a pixel (canvas ImageData, a decoded PNG);
 * transparency is composited over white; dark ink on light paper (a photo,
 * most drawings) is inverted, told apart by the border's brightness, and the
 * border's level is taken as the background's.
 */
function inkFromRgba(rgba, width, height) {
  const gray = new Float32Array(width * height);
  for (let i = 0; i < gray.length; i++) {
    const a = rgba[4 * i + 3] / 255;
    const luma = (0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]) / 255;
    gray[i] = a * luma + (1 - a);
  }
  let border = 0;
  let count = 0;
  for (let x = 0; x < width; x++) {
    border += gray[x] + gray[(height - 1) * width + x];
    count += 2;
  }
  for (let y = 0; y < height; y++) {
    border += gray[y * width] + gray[y * width + width - 1];
    count += 2;
  }
  const paper = border / count > 0.5;
  // The background's level (the border's mean, once ink is bright) is
  // taken away: grey paper, a photo's light, are not ink.
  const background = paper ? 1 - border / count : border / count;
  for (let i = 0; i < gray.length; i++) {
    const ink = paper ? 1 - gray[i] : gray[i];
    gray[i] = Math.max(0, ink - background) / (1 - background || 1);
  }
  return gray;
}

/** Zhang-Suen thinning of a 0/1 mask (w x h, modified in place): one-pixel-wide centre lines. */
function thin(mask, w, h) {
  const at = (x, y) => (x >= 0 && y >= 0 && x < w && y < h ? mask[y * w + x] : 0);
  for (let changed = true; changed;) {
    changed = false;
    for (const pass of [0, 1]) {
      const remove = [];
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          if (!mask[y * w + x]) continue;
          // neighbours clockwise from north
          const n = [
            at(x, y - 1),
            at(x + 1, y - 1),
            at(x + 1, y),
            at(x + 1, y + 1),
            at(x, y + 1),
            at(x - 1, y + 1),
            at(x - 1, y),
            at(x - 1, y - 1),
          ];
          const b = n.reduce((s, v) => s + v, 0);
          if (b < 2 || b > 6) continue;
          let a = 0;
          for (let k = 0; k < 8; k++) if (!n[k] && n[(k + 1) % 8]) a++;
          if (a !== 1) continue;
          const [p2, , p4, , p6, , p8] = n;
          const keep = pass === 0 ? p2 * p4 * p6 || p4 * p6 * p8 : p2 * p4 * p8 || p2 * p6 * p8;
          if (!keep) remove.push(y * w + x);
        }
      }
      for (const i of remove) mask[i] = 0;
      if (remove.length) changed = true;
    }
  }
  return mask;
}

/** A stroke's mean width in pixels: its ink (in units of full pixels) over its centre line's length. */
function strokeWidth(ink, w, h) {
  let peak = 0;
  for (const v of ink) peak = Math.max(peak, v);
  if (!peak) return 0;
  const mask = new Uint8Array(w * h);
  let mass = 0;
  for (let i = 0; i < ink.length; i++) {
    mass += ink[i] / peak;
    mask[i] = ink[i] >= INK * peak ? 1 : 0;
  }
  const length = thin(mask, w, h).reduce((s, v) => s + v, 0);
  return length ? mass / length : 0;
}

/**
 * Resamples ink[y0:y0+ch, x0:x0+cw] (of an image w pixels wide) by `scale`
 * into an image with `margin` empty pixels around it. Each new pixel is the
 * mean of the source over its footprint (area resampling): no aliasing when
 * shrinking, no blur beyond the pixel grid when enlarging.
 */
function resample(ink, w, h, [x0, y0, cw, ch], scale, margin) {
  const axis = (start, length, size) => {
    const outSize = Math.ceil(length * scale) + 2 * margin;
    return Array.from({ length: outSize }, (_, u) => {
      const a = start + (u - margin) / scale;
      const b = a + 1 / scale;
      const first = Math.max(0, Math.floor(a));
      const weights = [];
      for (let i = first; i < Math.min(size, Math.ceil(b)); i++) {
        weights.push((Math.min(b, i + 1) - Math.max(a, i)) * scale); // outside: background
      }
      return { first, weights };
    });
  };
  const cols = axis(x0, cw, w);
  const rows = axis(y0, ch, h);
  const ow = cols.length;
  const oh = rows.length;
  const across = new Float32Array(h * ow);
  for (let y = 0; y < h; y++) {
    for (let u = 0; u < ow; u++) {
      const { first, weights } = cols[u];
      let s = 0;
      for (let k = 0; k < weights.length; k++) s += weights[k] * ink[y * w + first + k];
      across[y * ow + u] = s;
    }
  }
  const out = new Float32Array(oh * ow);
  for (let v = 0; v < oh; v++) {
    const { first, weights } = rows[v];
    for (let u = 0; u < ow; u++) {
      let s = 0;
      for (let k = 0; k < weights.length; k++) s += weights[k] * across[(first + k) * ow + u];
      out[v * ow + u] = s;
    }
  }
  return { image: out, width: ow, height: oh, margin };
}

/** Grey dilation (radius > 0) or erosion (radius < 0) by a disc: strokes made wider or narrower. */
function morph({ image, width, height, margin }, radius) {
  const r = Math.abs(radius);
  const reach = Math.floor(r);
  const offsets = [];
  for (let dy = -reach; dy <= reach; dy++) {
    for (let dx = -reach; dx <= reach; dx++) if (dx * dx + dy * dy <= r * r) offsets.push([dx, dy]);
  }
  const grow = radius > 0;
  const out = new Float32Array(image.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v = grow ? 0 : 1;
      for (const [dx, dy] of offsets) {
        const xx = x + dx;
        const yy = y + dy;
        const p = xx >= 0 && yy >= 0 && xx < width && yy < height ? image[yy * width + xx] : 0;
        v = grow ? Math.max(v, p) : Math.min(v, p);
      }
      out[y * width + x] = v;
    }
  }
  return { image: out, width, height, margin };
}

function inkBox(ink, w, h, level) {
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (ink[y * w + x] <= level) continue;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
  }
  return x1 < 0 ? null : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}

/**
 * The 28 x 28 MNIST-style input (784 values in [0, 1], multiples of 1/255
 * as MNIST's bytes are) of an image's ink (w x h values in [0, 1], bright
 * ink: inkFromRgba). No ink at all: all zeros.
 */
function mnistDigit(ink, w, h, strokes = MNIST_STROKES) {
  let peak = 0;
  for (const v of ink) peak = Math.max(peak, v);
  let box = peak > 0 ? inkBox(ink, w, h, FAINT * peak) : null;
  if (!box) return new Float32Array(SIDE * SIDE);
  let source = { image: ink.map((v) => v / peak), width: w, height: h };
  if (Math.max(box[2], box[3]) > MAX_SIDE) {
    // a photo: thinning millions of pixels is slow and learns nothing more
    source = resample(source.image, w, h, box, MAX_SIDE / Math.max(box[2], box[3]), 1);
    box = inkBox(source.image, source.width, source.height, FAINT);
    if (!box) return new Float32Array(SIDE * SIDE);
  }
  const crop = resample(source.image, source.width, source.height, box, 1, 0);
  const width = strokeWidth(crop.image, crop.width, crop.height);
  const extent = Math.max(box[2], box[3]);
  // Scaled to fit the box, the stroke would be `natural` pixels wide; outside
  // MNIST's range, its centre line is scaled and the stroke drawn at the
  // nearest MNIST width: (extent - width) * scale + target = BOX.
  const natural = (width * BOX) / extent;
  const target = Math.min(Math.max(natural, strokes[0]), strokes[1]);
  // A blob (a dot, a scribble) has no centre line to speak of: the scale
  // stays near the box's and the width changes by a few pixels at most,
  // which also bounds the work.
  const fit = BOX / extent;
  const scale =
    target === natural
      ? fit
      : Math.min(Math.max((BOX - target) / Math.max(extent - width, 1), 0.75 * fit), 1.5 * fit);
  const change = Math.min(Math.max(target - width * scale, -MAX_CHANGE), MAX_CHANGE);
  const radius = (change / 2) * SUPER; // in the 8x image's pixels
  let big = resample(
    source.image,
    source.width,
    source.height,
    box,
    scale * SUPER,
    Math.ceil(Math.max(radius, 0)) + 1,
  );
  if (Math.abs(radius) >= 0.5) big = morph(big, radius);
  // Centre of mass, in `big`'s pixel-centre coordinates
  let mass = 0;
  let cx = 0;
  let cy = 0;
  for (let y = 0; y < big.height; y++) {
    for (let x = 0; x < big.width; x++) {
      const v = big.image[y * big.width + x];
      mass += v;
      cx += v * (x + 0.5);
      cy += v * (y + 0.5);
    }
  }
  if (!mass) return new Float32Array(SIDE * SIDE);
  // Moved by whole MNIST pixels, as MNIST's digits were (their centres of
  // mass are within half a pixel of the centre): the crop's corner lands on
  // a pixel's corner, so a digit already MNIST-like comes back unchanged.
  const whole = (ideal) => SUPER * Math.round((ideal + big.margin) / SUPER) - big.margin;
  const dx = whole(MNIST_CENTRE[1] * SUPER - cx / mass);
  const dy = whole(MNIST_CENTRE[0] * SUPER - cy / mass);
  const sums = new Float32Array(SIDE * SIDE);
  for (let y = 0; y < big.height; y++) {
    const r = Math.floor((y + dy) / SUPER);
    if (r < 0 || r >= SIDE) continue;
    for (let x = 0; x < big.width; x++) {
      const c = Math.floor((x + dx) / SUPER);
      if (c >= 0 && c < SIDE) sums[r * SIDE + c] += big.image[y * big.width + x];
    }
  }
  return sums.map((s) => Math.round(255 * Math.min(1, s / (SUPER * SUPER))) / 255);
}

module.exports = {
  inkFromRgba,
  mnistDigit,
  strokeWidth,
  SIDE,
  BOX,
  MNIST_STROKES,
  MNIST_CENTRE,
};
