"""The `yuan` command line."""
import sys

import click

from .config import ConfigError


def _user_errors():
    """Errors caused by the user's input: shown as one clear line, never a traceback."""
    from yuan.compiler.ir.errors import GraphError
    from yuan.compiler.onnx.errors import OnnxImportError

    from .checkpoint import CheckpointError
    from yuan.frontend.errors import ShapeError, TraceError
    from yuan.compiler.build import BuildError
    from yuan.compiler.onnx.errors import OnnxExportError
    from yuan.compiler.relax import LoweringError
    from yuan.compiler.targets import ToolchainError, UnknownTargetError
    from yuan.quant.errors import QuantError
    from yuan.runtime import RuntimeInputError, RuntimeLoadError

    from yuan.frontend.data import DatasetError, DatasetUnavailableError
    from yuan.frontend.data.image_codecs import ImageDecodeError
    from yuan.frontend.models import ModelConfigError
    from yuan.frontend.nn import StateDictError
    return (QuantError, BuildError, LoweringError, ToolchainError, UnknownTargetError, RuntimeInputError,
            RuntimeLoadError, OnnxExportError, DatasetError, DatasetUnavailableError, ImageDecodeError,
            ModelConfigError, ConfigError, CheckpointError, StateDictError, ShapeError, TraceError, GraphError,
            OnnxImportError, FileNotFoundError, FloatingPointError)


def _run(fn):
    try:
        return fn()
    except _user_errors() as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


@click.group()
@click.version_option(package_name="yuan")
def main():
    """Yuan: train, quantize and deploy neural networks with Apache TVM."""


@main.command()
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path())
@click.option("--epochs", type=int, default=None, help="Override train.epochs.")
@click.option("--output", "-o", type=click.Path(), default=None, help="Override output.dir.")
def train(config_path, epochs, output):
    """Train the model described by CONFIG.yaml and save a checkpoint."""
    from .config import load_config
    from .train import fit

    def go():
        config = load_config(config_path)
        if epochs is not None:
            config["train"]["epochs"] = epochs
        if output is not None:
            config["output"]["dir"] = output
        fit(config)
    _run(go)


@main.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Path of the .onnx file to write.")
@click.option("--batch", type=int, default=1, show_default=True, help="Batch size baked into the graph.")
@click.option("--print-graph", is_flag=True, help="Print the traced Graph IR.")
def export(checkpoint, output, batch, print_graph):
    """Export a training CHECKPOINT to ONNX."""
    from .export import export_checkpoint

    def go():
        graph = export_checkpoint(checkpoint, output, batch=batch)
        if print_graph:
            click.echo(str(graph))
        click.echo(f"wrote {output}: {len(graph.nodes)} nodes, inputs "
                   + ", ".join(f"{n}{list(graph.values[n].shape)}" for n in graph.inputs))
    _run(go)


@main.command("quantize")
@click.argument("checkpoint", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="Path of the QDQ .onnx file to write.")
@click.option("--method", type=click.Choice(["ptq", "qat"]), default="ptq", show_default=True,
              help="Post-training calibration, or quantization-aware fine-tuning.")
@click.option("--qconfig", default=None, help="Preset name (default: minmax for ptq, ema for qat).")
@click.option("--epochs", type=int, default=3, show_default=True, help="QAT fine-tuning epochs.")
@click.option("--calib-batches", type=int, default=20, show_default=True, help="Calibration batches.")
def quantize_cmd(checkpoint, output, method, qconfig, epochs, calib_batches):
    """Quantize a float training CHECKPOINT to int8 and export it as QDQ ONNX.

    Prints the float and the integer model's test accuracy.
    """
    def go():
        # The CLI is the application layer: it may reach every package.
        import numpy as np

        from yuan.compiler.onnx import export_onnx
        from . import quant_recipes

        from .export import model_from_checkpoint
        from yuan.frontend.tensor import Tensor
        from yuan.frontend.trace import trace

        model, config, ckpt = model_from_checkpoint(checkpoint)
        train_loader, test_loader, preprocess = quant_recipes.loaders(config)
        if method == "ptq":
            qmodel, _ = quant_recipes.post_training_quantize(model, train_loader, preprocess, qconfig or "minmax",
                                                        num_batches=calib_batches)
        else:
            qmodel, _ = quant_recipes.qat_finetune(model, config, train_loader, preprocess, qconfig or "ema",
                                              epochs=epochs, calib_batches=calib_batches, log=click.echo)
        float_acc = quant_recipes.accuracy(model, test_loader, preprocess)
        int8_acc = quant_recipes.accuracy(qmodel, test_loader, preprocess)
        from .checkpoint import CheckpointError
        if not ckpt["meta"].get("input_shape"):
            raise CheckpointError(f"checkpoint '{checkpoint}' does not record the model's input shape")
        shape = [1] + list(ckpt["meta"]["input_shape"][1:])
        graph = trace(qmodel, Tensor(np.zeros(shape, np.float32)), name=config["model"]["name"] + "_int8")
        export_onnx(graph, output)
        click.echo(f"float accuracy {float_acc:.2%}, int8 ({method}) accuracy {int8_acc:.2%}; "
                   f"wrote {output} ({len(graph.nodes)} nodes)")
    _run(go)


def _load_npy(path, what):
    import numpy as np
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{what} '{path}' is not a readable .npy file ({exc})") from None


def _parse_shapes(specs):
    """["x=1,3,224,224", ...] -> {"x": (1, 3, 224, 224)}"""
    shapes = {}
    for spec in specs:
        name, _, dims = spec.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise click.BadParameter(f"'{spec}' is not NAME=D1,D2,...", param_hint="--input-shape") from None
    return shapes


def _calibration_batches(spec, graph, count=8, batch=8):
    """--calib: a .npy file of inputs (N, ...) or a bundled dataset name (mnist5k, digits)."""
    import os

    import numpy as np
    shape = graph.values[graph.inputs[0]].shape
    if os.path.isfile(spec):
        data = _load_npy(spec, "calibration data").astype(np.float32)
    else:
        from yuan.frontend.data import get_dataset
        dataset = get_dataset(spec, split="train")
        data = np.stack([dataset[i][0] for i in range(min(len(dataset), count * shape[0]))]).astype(np.float32)
    if tuple(data.shape[1:]) != tuple(shape[1:]):
        raise click.ClickException(f"calibration data '{spec}' has samples of shape {tuple(data.shape[1:])}, "
                                   f"the model's input '{graph.inputs[0]}' expects {tuple(shape[1:])}")
    n = shape[0]
    return [data[i:i + n] for i in range(0, len(data) - n + 1, n)][:count]


@main.command("compile")
@click.argument("model", type=click.Path())
@click.option("--target", "-t", default="x86", show_default=True,
              help="A compile target (`yuan targets` lists them); x86 is this machine's CPU.")
@click.option("--output", "-o", required=True, type=click.Path(), help="Artifact path (.so, or .a for iOS).")
@click.option("--quantize", "quantize_to", type=click.Choice(["int8"]), default=None,
              help="Post-training quantize a float model before compiling.")
@click.option("--calib", default=None, help="Calibration inputs: a .npy file or a dataset name (mnist5k, digits).")
@click.option("--input-shape", multiple=True, help="Fix a symbolic input shape: NAME=1,3,224,224.")
def compile_cmd(model, target, output, quantize_to, calib, input_shape):
    """Compile an ONNX MODEL (float or QDQ) into a deployable module for TARGET."""
    def go():
        import os
        import time

        from yuan.compiler.build import compile_graph, prepare_target, sidecar_path
        from yuan.compiler.onnx import import_onnx

        t0 = time.perf_counter()
        resolved = prepare_target(target, output)   # unknown target or missing toolchain: fail before any slow work
        click.echo(f"[1/3] importing {model}")
        graph = import_onnx(model, input_shapes=_parse_shapes(input_shape) or None)
        if quantize_to:
            if not calib:
                raise click.UsageError("--quantize needs --calib DATA (a .npy file or a dataset name)")
            from yuan.quant.graph_ptq import quantize_graph
            click.echo(f"[2/3] quantizing to {quantize_to} with calibration data {calib}")
            graph = quantize_graph(graph, _calibration_batches(calib, graph))
        else:
            click.echo("[2/3] no quantization requested (QDQ models keep their own)")
        click.echo(f"[3/3] compiling for {target}")
        path = compile_graph(graph, resolved, output)
        import json
        with open(sidecar_path(path)) as f:
            meta = json.load(f)
        kernels = meta.get("kernels", [])
        from collections import Counter
        counts = Counter(k.rsplit("_", 1)[0] for k in kernels)   # drop the per-shape hash suffix
        click.echo(f"ops: {', '.join(meta.get('ops', []))}")
        click.echo(f"kernels ({len(kernels)} calls): " + ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())))
        click.echo(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB) and {sidecar_path(path)} "
                   f"in {time.perf_counter() - t0:.1f}s")
    _run(go)


def _load_inputs(predictor, paths):
    names = [i["name"] for i in predictor.metadata["inputs"]]
    if len(paths) != len(names):
        raise click.UsageError(f"the module has {len(names)} input(s) ({', '.join(names)}); "
                               f"got {len(paths)} --input file(s)")
    return {name: _load_npy(p, f"input '{name}'") for name, p in zip(names, paths)}


@main.command("run")
@click.argument("module", type=click.Path())
@click.option("--input", "-i", "inputs", multiple=True, required=True, type=click.Path(exists=True),
              help=".npy file per model input, in order.")
@click.option("--output", "-o", type=click.Path(), default=None, help="Save the first output as .npy.")
def run_cmd(module, inputs, output):
    """Run a compiled MODULE on .npy inputs and print its outputs."""
    def go():
        import numpy as np

        from yuan import runtime
        predictor = runtime.load(module)
        outputs = predictor.run(_load_inputs(predictor, inputs))
        for name, value in outputs.items():
            click.echo(f"{name}: {value.dtype}{list(value.shape)}  argmax per row: "
                       f"{np.asarray(value).reshape(value.shape[0], -1).argmax(axis=1).tolist()}")
        if output:
            np.save(output, next(iter(outputs.values())))
            click.echo(f"wrote {output}")
    _run(go)


@main.command("bench")
@click.argument("module", type=click.Path())
@click.option("--repeat", type=int, default=50, show_default=True)
@click.option("--warmup", type=int, default=5, show_default=True)
def bench_cmd(module, repeat, warmup):
    """Time a compiled MODULE on random inputs (median of REPEAT runs)."""
    def go():
        from yuan import runtime
        predictor = runtime.load(module)
        stats = predictor.benchmark(repeat=repeat, warmup=warmup)
        click.echo(f"{module}: median {stats['median_ms']:.3f} ms, mean {stats['mean_ms']:.3f} ms "
                   f"over {repeat} runs (target {predictor.metadata.get('target')})")
    _run(go)


@main.command("demo")
@click.option("--output", "-o", type=click.Path(), default="runs/demo", show_default=True)
@click.option("--epochs", type=int, default=3, show_default=True, help="Float training epochs.")
def demo_cmd(output, epochs):
    """Train -> QAT -> int8 -> ONNX -> compile (x86, aarch64) -> run, on the bundled MNIST subset."""
    from .demo import run_demo
    _run(lambda: run_demo(output, epochs=epochs, log=click.echo))


@main.command()
def targets():
    """List the compile targets: name, what they run on, the features the kernels use."""
    def go():
        from yuan.compiler.targets import list_targets, resolve_target
        for name in list_targets():
            t = resolve_target(name)
            feats = " ".join(sorted(t.features - {"cpu", "gpu"}))
            click.echo(f"{name:<16} {t.description}\n{'':<16} backend {t.backend}, isa {t.isa}, features: {feats}")
    _run(go)


if __name__ == "__main__":
    sys.exit(main())
