"""Compiled image preprocessing vs NumPy: the bundled ImageNet spec (480x640 uint8 BGR -> 1x3x224x224
float32) compiled for this CPU, against the same pipeline written directly in NumPy and against the
IR interpreter (the reference the tests use). Interleaved A, B, C rounds, medians, ratios.

    python bench/preprocess.py [--spec configs/imagenet_preprocess.yaml] [--repeats 30] [--threads 1]
"""
import argparse
import os
import statistics
import tempfile


def numpy_pipeline(frame, mean, std, rows, cols):
    """What a hand-written NumPy preprocessing does: float, BGR->RGB, bilinear resize (gather + blend),
    crop, normalize, NCHW. `rows` / `cols` are the (lo, hi, frac) taps of the resize."""
    import numpy as np
    x = frame[0].astype(np.float32) * np.float32(1 / 255)
    x = x[..., ::-1]
    (r0, r1, fr), (c0, c1, fc) = rows, cols
    top = x[r0] * (1 - fr)[:, None, None] + x[r1] * fr[:, None, None]
    x = top[:, c0] * (1 - fc)[None, :, None] + top[:, c1] * fc[None, :, None]
    return ((x - mean) / std).transpose(2, 0, 1)[None]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=None, help="preprocessing YAML (default: the bundled ImageNet one)")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    from importlib import resources

    import numpy as np

    from compile_latency import interleaved

    from yuan import runtime
    from yuan.compiler.build import compile_graph
    from yuan.compiler.ir.image_ops import linear_taps, source_coordinates
    from yuan.compiler.ir.interpreter import run_graph
    from yuan.compiler.ir.preprocess import build_preprocess_graph, load_spec

    path = args.spec or resources.files("yuan.configs") / "imagenet_preprocess.yaml"
    graph = build_preprocess_graph(load_spec(path), str(path))
    raw = graph.values[graph.inputs[0]]
    frame = np.random.default_rng(0).integers(0, 256, raw.shape).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        module = runtime.load(compile_graph(graph, "x86", os.path.join(tmp, "pre.so")))
    resize = next(n for n in graph.nodes if n.op == "resize").attrs
    crop = next(n for n in graph.nodes if n.op == "crop").attrs
    norm = next(n for n in graph.nodes if n.op == "normalize").attrs
    (ih, iw), (oh, ow) = raw.shape[1:3], resize["size"]
    # the NumPy version resizes only the cropped window (a fair hand-written baseline)
    ys = source_coordinates(oh, ih, np.float32(oh) / np.float32(ih), resize["coordinate_mode"])
    xs = source_coordinates(ow, iw, np.float32(ow) / np.float32(iw), resize["coordinate_mode"])
    ys = ys[crop["top"]:crop["top"] + crop["height"]]
    xs = xs[crop["left"]:crop["left"] + crop["width"]]
    rows, cols = linear_taps(ys, ih), linear_taps(xs, iw)
    mean, std = np.float32(norm["mean"]), np.float32(norm["std"])

    name = graph.inputs[0]
    runners = {"compiled": lambda: module.run({name: frame})[graph.outputs[0]],
               "numpy": lambda: numpy_pipeline(frame, mean, std, rows, cols),
               "interpreter": lambda: run_graph(graph, {name: frame})[graph.outputs[0]]}
    ref = runners["interpreter"]()
    for label, fn in runners.items():
        print(f"{label:12s} max |diff| vs interpreter: {float(np.abs(fn() - ref).max()):.2e}")
    samples = interleaved(runners, args.repeats, warmup=0)      # ms; each ran once above
    base = statistics.median(samples["compiled"])
    print(f"{raw.dtype}{list(raw.shape)} -> {list(ref.shape)}, {args.repeats} interleaved rounds, "
          f"{args.threads} thread(s)")
    for label, s in samples.items():
        med = statistics.median(s)
        print(f"{label:12s} median {med:8.3f} ms   x{med / base:5.2f} of compiled")


if __name__ == "__main__":
    main()
