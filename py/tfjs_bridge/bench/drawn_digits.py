"""Real MNIST test digits redrawn as pen strokes, as people draw on the demo
page's canvas: each digit's centre line (thinned here, in numpy, not by the
code under test) drawn with a round pen of another width, size and place on
a 280 x 280 canvas, saved as PNG. Those PNGs go through Node's MNIST-style
preprocessing (node/lib/io/digit_image.js, via `node predict.js --image`)
to gru; the answer should be what Keras answers for the original 28 x 28.

The control: the same canvases scaled to 28 x 28 as drawn (the mean of each
10 x 10 block, what the page did before), classified by Keras.

    python -m tfjs_bridge.bench.drawn_digits --model shared_models/gru --count 500
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CANVAS = 280  # the demo page's canvas
UPSCALE = CANVAS // 28
SUPERSAMPLE = 4  # strokes drawn 4x larger, then averaged: anti-aliased like a canvas's


@dataclass(frozen=True)
class Variant:
    name: str
    scale: float  # of the digit's centre line, 1 = as large as MNIST's 20 x 20 box on the canvas
    shift: tuple[int, int]  # (x, y) of its centre from the canvas's centre, in canvas pixels
    width: float  # the pen's, in canvas pixels (the page's pen: 22)
    paper: bool = False  # dark ink on white, as a photo or a drawing program gives


VARIANTS = (
    Variant("page pen, centred", 1.0, (0, 0), 22),
    Variant("thin pen, off-centre", 0.9, (-60, 40), 6),
    Variant("thick pen", 1.0, (0, 0), 40),
    Variant("small, in a corner", 0.45, (80, -80), 12),
    Variant("large, off-centre", 1.3, (10, 8), 26),
    Variant("dark ink on paper", 0.8, (-30, -20), 18, paper=True),
)


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image: its one-pixel-wide centre lines."""
    m = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            c = m[1:-1, 1:-1]
            # neighbours clockwise from north: p2 .. p9
            n = [m[:-2, 1:-1], m[:-2, 2:], m[1:-1, 2:], m[2:, 2:],
                 m[2:, 1:-1], m[2:, :-2], m[1:-1, :-2], m[:-2, :-2]]  # fmt: skip
            count = sum(p.astype(int) for p in n)
            turns = sum(((n[k] == 0) & (n[(k + 1) % 8] == 1)).astype(int) for k in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if step == 0:
                free = ((p2 & p4 & p6) == 0) & ((p4 & p6 & p8) == 0)
            else:
                free = ((p2 & p4 & p8) == 0) & ((p2 & p6 & p8) == 0)
            remove = (c == 1) & (count >= 2) & (count <= 6) & (turns == 1) & free
            if remove.any():
                c[remove] = 0
                changed = True
        if not changed:
            return m[1:-1, 1:-1].astype(bool)


def centre_line(image: np.ndarray) -> np.ndarray:
    """A 28 x 28 digit's centre line: (n, 2) points (x, y) in canvas pixels from its centre."""
    from PIL import Image

    big = Image.fromarray(np.rint(image * 255).astype(np.uint8)).resize(
        (CANVAS, CANVAS), Image.Resampling.BILINEAR
    )
    ys, xs = np.nonzero(thin(np.asarray(big) >= 128))
    points = np.stack([xs, ys], 1).astype(np.float64) + 0.5
    return points - (points.min(0) + points.max(0)) / 2


def draw(points: np.ndarray, variant: Variant) -> np.ndarray:
    """The digit drawn with a round pen: CANVAS x CANVAS uint8, 255 on 0 (on paper 0 on 255)."""
    from PIL import Image, ImageDraw

    size = CANVAS * SUPERSAMPLE
    canvas = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(canvas)
    r = variant.width * SUPERSAMPLE / 2
    centre = np.array([CANVAS / 2 + variant.shift[0], CANVAS / 2 + variant.shift[1]])
    for x, y in (points * variant.scale + centre) * SUPERSAMPLE:
        pen.ellipse([x - r, y - r, x + r, y + r], fill=255)
    ink = np.asarray(canvas.resize((CANVAS, CANVAS), Image.Resampling.BOX))
    return 255 - ink if variant.paper else ink


def naive_input(canvas: np.ndarray, variant: Variant) -> np.ndarray:
    """The control: the canvas's ink scaled to 28 x 28 as drawn (10 x 10 block means), in [0, 1]."""
    ink = (255 - canvas if variant.paper else canvas).astype(np.float64)
    blocks = ink.reshape(28, UPSCALE, 28, UPSCALE).mean(axis=(1, 3))
    return (np.rint(blocks) / 255).astype(np.float32)


def write_strokes(images: np.ndarray, folder: Path, variants=VARIANTS) -> list[dict]:
    """Every digit in every variant, as PNG files in `folder`; one record each."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, image in enumerate(images):
        points = centre_line(image)
        for v, variant in enumerate(variants):
            canvas = draw(points, variant)
            path = folder / f"digit{i:05d}_v{v}.png"
            Image.fromarray(canvas).save(path)
            records.append(
                {"index": i, "variant": variant, "png": path, "naive": naive_input(canvas, variant)}
            )
    return records


def node_classes(model: Path, pngs: list[Path]) -> np.ndarray:
    """gru's answers in tfjs-node (`predict.js --image`, the layers model) for each PNG."""
    from ..runtime.node_process import run_node_json

    args = ["--model", str(model), "--format", "layers", "--json"]
    for png in pngs:
        args += ["--image", str(png)]
    out = run_node_json("predict.js", *args)
    return np.array([image["probabilities"] for image in out["images"]], dtype=np.float32)


def measure(model: Path, count: int, start: int = 0) -> dict:
    import tf_keras

    from ..core.quiet_tf import import_tensorflow
    from ..training.data import mnist_split

    import_tensorflow()
    images, labels = mnist_split("test", start + count)
    images, labels = images[start:], labels[start:]
    keras = tf_keras.models.load_model(model / "keras.h5", compile=False)
    original = keras.predict(images, verbose=0).argmax(1)
    with tempfile.TemporaryDirectory() as tmp:
        records = write_strokes(images, Path(tmp))
        node = node_classes(model, [r["png"] for r in records]).argmax(1)
    naive = keras.predict(np.stack([r["naive"] for r in records]), verbose=0).argmax(1)
    wanted = np.array([original[r["index"]] for r in records])
    rows = {}
    for variant in VARIANTS:
        pick = np.array([r["variant"] == variant for r in records])
        rows[variant.name] = {
            "preprocessed": float((node[pick] == wanted[pick]).mean()),
            "naive": float((naive[pick] == wanted[pick]).mean()),
        }
    return {
        "model": str(model),
        "digits": count,
        "first": start,
        "images": len(records),
        "keras_on_originals_correct": float((original == labels).mean()),
        "preprocessed_as_keras": float((node == wanted).mean()),
        "naive_as_keras": float((naive == wanted).mean()),
        "preprocessed_correct": float((node == labels[[r["index"] for r in records]]).mean()),
        "by_variant": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="an MNIST model's folder (gru)")
    parser.add_argument(
        "--count", type=int, default=500, help="MNIST test digits (each in 6 variants)"
    )
    parser.add_argument("--start", type=int, default=0, help="the first test digit")
    args = parser.parse_args(argv)
    result = measure(args.model, args.count, args.start)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
