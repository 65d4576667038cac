"""The `yuan` command line.

Every command checks its output paths before any slow work (an output never replaces one of its
inputs, a folder or a device; compiler/output_files.py) and writes its files atomically, so a failed or
interrupted run leaves the previous files intact. User errors are one line (`Error: ...`), never a
traceback.
"""
import contextlib
import os
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
    from yuan.compiler.output_files import OutputPathError
    from yuan.compiler.onnx.errors import OnnxExportError
    from yuan.compiler.relax import LoweringError
    from yuan.compiler.targets import ToolchainError, UnknownTargetError
    from yuan.quant.errors import QuantError
    from yuan.runtime import RuntimeInputError, RuntimeLoadError
    from yuan.runtime.deploy_kit import DeployKitError

    from yuan.frontend.data import DatasetError, DatasetUnavailableError
    from yuan.frontend.data.image_codecs import ImageDecodeError
    from yuan.frontend.models import ModelConfigError
    from yuan.frontend.nn import StateDictError
    return (QuantError, BuildError, LoweringError, ToolchainError, UnknownTargetError, RuntimeInputError,
            RuntimeLoadError, OnnxExportError, DatasetError, DatasetUnavailableError, ImageDecodeError,
            ModelConfigError, ConfigError, CheckpointError, StateDictError, ShapeError, TraceError, GraphError,
            OnnxImportError, OutputPathError, DeployKitError, OSError, FloatingPointError)


def _run(fn):
    try:
        return fn()
    except BrokenPipeError:
        # whoever read our output went away (`yuan bench m.so | head -1`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except _user_errors() as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


# Where `-o` may name a folder (the help of those commands says so).
_FOLDER_HELP = "An existing folder, or a path ending in '/', gets {} inside it."


def _stem(path):
    """'runs/a/last.npz' -> 'last'"""
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]


def _existing_files(*paths):
    """The given paths that are files (the inputs an output must never replace)."""
    return [p for p in paths if p and os.path.isfile(p)]


def _output_file(output, default_name, inputs):
    """The path `-o` names (DIR/default_name when it names a folder), checked before any slow work:
    OutputPathError when it is an input, a device, unwritable, ..."""
    from yuan.compiler.output_files import check_output_paths, output_in_folder
    path = output_in_folder(output, default_name)
    check_output_paths([path], inputs)
    return path


@click.group()
@click.version_option(package_name="yuan")
def main():
    """Yuan: train, quantize and deploy neural networks with Apache TVM."""


@main.command()
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path())
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override train.epochs (at least 1).")
@click.option("--output", "-o", type=click.Path(), default=None,
              help="Override output.dir: the folder that gets last.npz (created if missing).")
def train(config_path, epochs, output):
    """Train the model described by CONFIG.yaml and save a checkpoint."""
    from .config import load_config
    from .train import fit

    def go():
        from yuan.compiler.output_files import check_output_paths
        config = load_config(config_path)
        if epochs is not None:
            config["train"]["epochs"] = epochs
        # Resolved here as fit() would, so that the checkpoint path is checked before training.
        config["output"]["dir"] = output or config["output"]["dir"] or os.path.join("runs", config["name"])
        check_output_paths([os.path.join(config["output"]["dir"], "last.npz")], [config_path])
        fit(config)
    _run(go)


@main.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(),
              help="The .onnx file to write. " + _FOLDER_HELP.format("CHECKPOINT's name with .onnx"))
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size baked into the graph (at least 1).")
@click.option("--print-graph", is_flag=True, help="Print the traced Graph IR.")
def export(checkpoint, output, batch, print_graph):
    """Export a training CHECKPOINT to ONNX."""
    from .export import export_checkpoint

    def go():
        path = _output_file(output, _stem(checkpoint) + ".onnx", [checkpoint])
        graph = export_checkpoint(checkpoint, path, batch=batch)
        if print_graph:
            click.echo(str(graph))
        click.echo(f"wrote {path}: {len(graph.nodes)} nodes, inputs "
                   + ", ".join(f"{n}{list(graph.values[n].shape)}" for n in graph.inputs))
    _run(go)


@main.command("quantize")
@click.argument("source", metavar="CHECKPOINT|MODEL.onnx", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(),
              help="The QDQ .onnx file to write. " + _FOLDER_HELP.format("the input's name with _int8.onnx"))
@click.option("--method", type=click.Choice(["ptq", "qat"]), default="ptq", show_default=True,
              help="Post-training calibration, or quantization-aware fine-tuning (checkpoints only).")
@click.option("--qconfig", default=None, help="Preset name (default: minmax for ptq, ema for qat).")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True,
              help="QAT fine-tuning epochs (at least 1).")
@click.option("--calib-batches", type=click.IntRange(min=1), default=20, show_default=True,
              help="Calibration batches (at least 1).")
@click.option("--calib", default=None,
              help="MODEL.onnx only: calibration inputs, a .npy file (N, ...) or a dataset name (mnist5k, digits).")
def quantize_cmd(source, output, method, qconfig, epochs, calib_batches, calib):
    """Quantize a float model to int8 and export it as QDQ ONNX.

    The argument is a training CHECKPOINT (.npz: calibrated or fine-tuned on its own training data;
    prints the float and the integer model's test accuracy) or a float MODEL.onnx (a name ending in
    .onnx: post-training quantized on the --calib data).
    """
    def go():
        path = _output_file(output, _stem(source) + "_int8.onnx", _existing_files(source, calib))
        if source.lower().endswith(".onnx"):
            _quantize_onnx(source, path, method, qconfig, calib, calib_batches)
        else:
            _quantize_checkpoint(source, path, method, qconfig, epochs, calib_batches, calib)
    _run(go)


def _quantize_checkpoint(checkpoint, path, method, qconfig, epochs, calib_batches, calib):
    # The CLI is the application layer: it may reach every package.
    import numpy as np

    from . import quant_recipes
    from .export import model_from_checkpoint, recorded_input_shape, write_onnx
    from yuan.frontend.tensor import Tensor
    from yuan.frontend.trace import trace

    if calib:
        raise click.ClickException("--calib is for an ONNX model; a checkpoint calibrates on its own "
                                   "training data (see --calib-batches)")
    model, config, ckpt = model_from_checkpoint(checkpoint)
    shape = [1] + recorded_input_shape(ckpt, checkpoint)[1:]    # checked before the slow work
    train_loader, test_loader, preprocess = quant_recipes.loaders(config)
    if method == "ptq":
        qmodel, _ = quant_recipes.post_training_quantize(model, train_loader, preprocess, qconfig or "minmax",
                                                         num_batches=calib_batches)
    else:
        qmodel, _ = quant_recipes.qat_finetune(model, config, train_loader, preprocess, qconfig or "ema",
                                               epochs=epochs, calib_batches=calib_batches, log=click.echo)
    float_acc = quant_recipes.accuracy(model, test_loader, preprocess)
    int8_acc = quant_recipes.accuracy(qmodel, test_loader, preprocess)
    graph = trace(qmodel, Tensor(np.zeros(shape, np.float32)), name=config["model"]["name"] + "_int8")
    write_onnx(graph, path)
    click.echo(f"float accuracy {float_acc:.2%}, int8 ({method}) accuracy {int8_acc:.2%}; "
               f"wrote {path} ({len(graph.nodes)} nodes)")


def _quantize_onnx(model_path, path, method, qconfig, calib, calib_batches):
    from yuan.compiler.onnx import import_onnx
    from .export import write_onnx

    if method != "ptq":
        raise click.ClickException("--method qat needs a training checkpoint; an ONNX model can only be "
                                   "post-training quantized (--method ptq)")
    if not calib:
        raise click.ClickException(f"quantizing the ONNX model '{model_path}' needs --calib DATA "
                                   f"(a .npy file of inputs or a dataset name: mnist5k, digits)")
    graph = import_onnx(model_path)
    _refuse_quantized(graph, model_path, "it needs no further quantization")
    qgraph = _post_training_quantize(graph, calib, calib_batches, qconfig)
    write_onnx(qgraph, path)
    click.echo(f"calibrated on {calib}; wrote {path} ({len(qgraph.nodes)} nodes)")


def _refuse_quantized(graph, source, hint):
    """Quantizing a QDQ model again would stack a second set of scales on the first."""
    if any(node.op in ("quantize", "dequantize") for node in graph.nodes):
        raise click.ClickException(f"'{source}' is already quantized (it has QuantizeLinear/DequantizeLinear "
                                   f"nodes); {hint}")


def _post_training_quantize(graph, calib, count, qconfig=None):
    """PTQ of an imported float graph on `count` batches of the --calib data (see quant.graph_ptq)."""
    from yuan.quant.graph_ptq import quantize_graph
    options = {"qconfig": qconfig} if qconfig else {}
    return quantize_graph(graph, _calibration_batches(calib, graph, count=count), **options)


def _load_npy(path, what):
    import numpy as np
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise click.ClickException(f"{what} '{path}' is not a readable .npy file ({exc})") from None
    if not isinstance(array, np.ndarray):   # an .npz archive
        array.close()
        raise click.ClickException(f"{what} '{path}' is an .npz archive; give a .npy file (one array)")
    return array


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


def _calibration_batches(spec, graph, count=8):
    """--calib: a .npy file of inputs (N, ...) or a bundled dataset name (mnist5k, digits), cut into
    at most `count` batches of the model's input batch size."""
    name = graph.inputs[0]
    shape = tuple(graph.values[name].shape)
    batch = shape[0] if shape else 0
    if batch < 1:
        raise click.ClickException(f"the model's input '{name}' has shape {list(shape)}: no batch to calibrate on")
    data = _calibration_data(spec, shape[1:], count * batch)
    if data.ndim == 0 or tuple(data.shape[1:]) != shape[1:]:
        raise click.ClickException(f"calibration data '{spec}' has samples of shape {tuple(data.shape[1:])}, "
                                   f"the model's input '{name}' expects {shape[1:]}")
    if len(data) < batch:
        raise click.ClickException(f"calibration data '{spec}' has {len(data)} sample(s), fewer than one "
                                   f"batch: the model's input '{name}' takes batches of {batch}")
    return [data[i:i + batch] for i in range(0, len(data) - batch + 1, batch)][:count]


def _calibration_data(spec, sample_shape, wanted):
    import numpy as np
    if os.path.isfile(spec):
        return _load_npy(spec, "calibration data").astype(np.float32)
    from yuan.frontend.data import get_dataset
    dataset = get_dataset(spec, split="train")
    samples = [dataset[i][0] for i in range(min(len(dataset), wanted))]
    return np.stack(samples).astype(np.float32) if samples else np.zeros((0,) + sample_shape, np.float32)


@main.command("compile")
@click.argument("model", type=click.Path())
@click.option("--target", "-t", default="x86", show_default=True,
              help="A compile target (`yuan targets` lists them); x86 is this machine's CPU.")
@click.option("--output", "-o", required=True, type=click.Path(),
              help="Artifact path (.so, or .a for iOS); its metadata NAME.json is written beside it. "
                   + _FOLDER_HELP.format("MODEL's name (DIR/MODEL.so)"))
@click.option("--quantize", "quantize_to", type=click.Choice(["int8"]), default=None,
              help="Post-training quantize a float model before compiling.")
@click.option("--calib", default=None, help="Calibration inputs: a .npy file or a dataset name (mnist5k, digits).")
@click.option("--input-shape", multiple=True, help="Fix a symbolic input shape: NAME=1,3,224,224.")
@click.option("--preprocess", default=None,
              help="Image preprocessing compiled in front of the model's first input, so the module takes the "
                   "raw image: a YAML spec (e.g. configs/imagenet_preprocess.yaml), a bundled name (imagenet), "
                   "or inline: resize=256,crop=224,normalize=imagenet,layout=hwc,dtype=uint8[,order=bgr,"
                   "input=480x640] (see compiler/ir/preprocess_option.py).")
@click.option("--tune", is_flag=True,
              help="Time every applicable conv/linear kernel per distinct shape on this machine and keep the "
                   "fastest; results are cached ($YUAN_CACHE_DIR/tune, else $XDG_CACHE_HOME/yuan/tune or "
                   "~/.cache/yuan/tune) and reused by later compiles for the same target.")
@click.option("--retune", is_flag=True, help="Like --tune, but measure every shape again.")
def compile_cmd(model, target, output, quantize_to, calib, input_shape, preprocess, tune, retune):
    """Compile an ONNX MODEL (float or QDQ) into a deployable module for TARGET."""
    def go():
        import time

        from yuan.compiler.build import check_outputs, compile_graph, prepare_target, sidecar_path
        from yuan.compiler.onnx import import_onnx
        from yuan.compiler.output_files import output_in_folder

        t0 = time.perf_counter()
        if quantize_to and not calib:
            raise click.ClickException("--quantize needs --calib DATA (a .npy file or a dataset name)")
        output_path = output_in_folder(output, _stem(model) + ".so")
        # unknown target, missing toolchain or an output that must not be written: before any slow work
        resolved = prepare_target(target, output_path)
        check_outputs(resolved, output_path, inputs=_existing_files(model, calib, preprocess))
        mode = "retune" if retune else "tune" if tune else "cached"
        from yuan.compiler.tuning import check_tuning, describe_choice
        check_tuning(resolved, mode)   # --tune on a target that does not run here, an unwritable cache
        from yuan.compiler.ir.preprocess import prepend_preprocess
        from yuan.compiler.ir.preprocess_option import PreprocessOption
        pre = PreprocessOption(preprocess) if preprocess else None
        click.echo(f"[1/3] importing {model}")
        graph = import_onnx(model, input_shapes=_parse_shapes(input_shape) or None)
        if quantize_to:
            _refuse_quantized(graph, model, "compile it without --quantize")
            click.echo(f"[2/3] quantizing to {quantize_to} with calibration data {calib}")
            graph = _post_training_quantize(graph, calib, count=8)
        else:
            click.echo("[2/3] no quantization requested (QDQ models keep their own)")
        if pre is not None:
            graph = prepend_preprocess(graph, pre.spec_for(graph), preprocess)
            raw = graph.values[graph.inputs[0]]
            click.echo(f"preprocessing from {preprocess}: input '{raw.name}' {raw.dtype}{list(raw.shape)}")
        click.echo(f"[3/3] compiling for {target}")
        path = compile_graph(graph, resolved, output_path, tune=mode)
        import json
        with open(sidecar_path(path)) as f:
            meta = json.load(f)
        kernels = meta.get("kernels", [])
        from collections import Counter
        counts = Counter(k.rsplit("_", 1)[0] for k in kernels)   # drop the per-shape hash suffix
        click.echo(f"ops: {', '.join(meta.get('ops', []))}")
        click.echo(f"kernels ({len(kernels)} calls): " + ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())))
        click.echo(describe_choice(meta.get("kernel_choice")))
        from yuan.compiler.memory_plan import describe_memory
        click.echo(describe_memory(meta.get("memory", {})))
        click.echo(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB) and {sidecar_path(path)} "
                   f"in {time.perf_counter() - t0:.1f}s")
    _run(go)


def _rpc_option(fn):
    return click.option("--rpc", default=None, metavar="HOST:PORT[/KEY]",
                        help="Run on a remote device through TVM RPC: a server (python -m tvm.exec.rpc_server) "
                             "at HOST:PORT, or a tracker at HOST:PORT and a device KEY.")(fn)


def _threads_option(fn):
    return click.option("--threads", type=click.IntRange(min=1), default=None,
                        help="TVM CPU threads for this run (default: one per physical core, or TVM_NUM_THREADS).")(fn)


def _use_threads(threads, rpc=None):
    """Size TVM's thread pool before the module loads (the pool cannot grow once started); without --threads,
    TVM_NUM_THREADS if set, else one thread per physical core (runtime/threads.py)."""
    if threads is None:
        if rpc or "TVM_NUM_THREADS" in os.environ:
            return
        from yuan.runtime.threads import default_threads
        threads = default_threads()
    if rpc:
        raise click.ClickException("--threads sizes this machine's thread pool; for an RPC device start its "
                                   "server with TVM_NUM_THREADS=N instead")
    from yuan.runtime.threads import set_num_threads
    set_num_threads(threads)


def _threads_used() -> str:
    from yuan.runtime.threads import num_threads
    count = num_threads()
    return f", {count} thread{'s' if count != 1 else ''}"


@contextlib.contextmanager
def _loaded_module(module, rpc):
    """The module loaded here, or uploaded to and loaded on the RPC device (same run/benchmark);
    a remote session is ended on exit (an RPC server serves one session at a time)."""
    from yuan import runtime
    if not rpc:
        yield runtime.load(module)
        return
    from yuan.runtime import remote
    with remote.load(module, rpc) as predictor:
        yield predictor


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
@click.option("--output", "-o", type=click.Path(), default=None,
              help="Save the outputs: a .npz path gets every output (keyed by output name); a .npy path gets "
                   "the first output only (the first of the module's metadata; the only one of a "
                   "one-output model). " + _FOLDER_HELP.format("MODULE_outputs.npz"))
@_rpc_option
@_threads_option
def run_cmd(module, inputs, output, rpc, threads):
    """Run a compiled MODULE on .npy inputs and print its outputs."""
    def go():
        path = _run_output_file(output, module, inputs) if output else None
        _use_threads(threads, rpc)
        with _loaded_module(module, rpc) as predictor:
            outputs = predictor.run(_load_inputs(predictor, inputs))
        for name, value in outputs.items():
            click.echo(_describe_output(name, value))
        if path:
            _save_outputs(path, outputs)
            click.echo(f"wrote {path}")
    _run(go)


def _run_output_file(output, module, inputs):
    from yuan.runtime import sidecar_path
    path = _output_file(output, _stem(module) + "_outputs.npz", [module, sidecar_path(module), *inputs])
    if not path.lower().endswith((".npz", ".npy")):
        raise click.ClickException(f"--output '{path}' must end in .npz (every output) or .npy (the first output)")
    return path


def _describe_output(name, value):
    """'y: float32[2, 10]  argmax per row: [...]' (no argmax for scalars or empty batches)."""
    import numpy as np
    value = np.asarray(value)
    text = f"{name}: {value.dtype}{list(value.shape)}"
    if value.ndim >= 1 and value.size:
        text += f"  argmax per row: {value.reshape(value.shape[0], -1).argmax(axis=1).tolist()}"
    return text


def _save_outputs(path, outputs):
    import numpy as np

    from yuan.compiler.output_files import atomic_output
    with atomic_output(path) as staged, open(staged, "wb") as f:   # a file object: no suffix appended
        if path.lower().endswith(".npz"):
            np.savez(f, **outputs)
        else:
            np.save(f, next(iter(outputs.values())))


@main.command("bench")
@click.argument("module", type=click.Path())
@click.option("--repeat", type=click.IntRange(min=1), default=50, show_default=True, help="Timed runs (at least 1).")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed runs first (0 or more).")
@_rpc_option
@_threads_option
def bench_cmd(module, repeat, warmup, rpc, threads):
    """Time a compiled MODULE on random inputs (median of REPEAT runs)."""
    def go():
        _use_threads(threads, rpc)
        from yuan.compiler.memory_plan import describe_memory
        from yuan.runtime.resident import peak_kib, reset_peak, resident_kib
        before = resident_kib()
        reset_peak()   # the peak below is what loading and running the module took
        with _loaded_module(module, rpc) as predictor:
            stats = predictor.benchmark(repeat=repeat, warmup=warmup)
        click.echo(f"{module}: median {stats['median_ms']:.3f} ms, mean {stats['mean_ms']:.3f} ms "
                   f"over {repeat} runs (target {predictor.metadata.get('target')}"
                   f"{f', on the RPC device {rpc}' if rpc else _threads_used()})")
        click.echo(describe_memory(predictor.metadata.get("memory", {})))
        if before is not None and not rpc:   # over RPC the module runs in another process
            click.echo(f"memory (measured): peak resident {peak_kib() / 1024:.1f} MiB, "
                       f"+{(peak_kib() - before) / 1024:.1f} MiB for loading and running the module")
    _run(go)


@main.command("profile")
@click.argument("module", type=click.Path())
@click.option("--input", "-i", "inputs", multiple=True, type=click.Path(exists=True),
              help=".npy file per model input, in order (default: random inputs of the module's shapes).")
@click.option("--repeat", type=click.IntRange(min=1), default=20, show_default=True,
              help="Timed runs of every op (at least 1).")
@_rpc_option
@_threads_option
@click.option("--trace", type=click.Path(), default=None,
              help="Write a Chrome trace (Perfetto, chrome://tracing): one slice per op per run.")
@click.option("--top", type=click.IntRange(min=1), default=None, help="Show only the K slowest calls.")
def profile_cmd(module, inputs, repeat, rpc, threads, trace, top):
    """Per-op time of a compiled MODULE: node, op, kernel, layout, shapes, GOPS, share (slowest first)."""
    def go():
        from yuan import runtime
        from yuan.runtime.profiler import profile
        trace_path = _output_file(trace, _stem(module) + "_trace.json",
                                  [module, runtime.sidecar_path(module), *inputs]) if trace else None
        _use_threads(threads, rpc)
        with _loaded_module(module, rpc) as predictor:   # over RPC: timed on the device (remote_profiler)
            prof = profile(predictor, _load_inputs(predictor, inputs) if inputs else None, repeat=repeat)
        click.echo(prof.table(top=top))
        click.echo("\nby kernel:\n" + prof.kernel_table(top=top))
        if trace_path:
            prof.write_chrome_trace(trace_path)
            click.echo(f"wrote {trace_path} ({len(prof.ops)} ops x {repeat} runs)")
    _run(go)


@main.command("deploy-kit")
@click.argument("folder", type=click.Path())
@click.option("--build", "build_it", is_flag=True, help="Also build yuan_run there with make and g++.")
def deploy_kit_cmd(folder, build_it):
    """Copy the C++ deployment kit (yuan_run: runs a compiled module with the TVM runtime alone,
    no Python) into FOLDER; see docs/deploy.md for cross builds and mobile apps."""
    def go():
        from yuan.runtime.deploy_kit import build, copy_kit
        for path in copy_kit(folder):
            click.echo(f"wrote {path}")
        if build_it:
            click.echo(f"built {build(folder, os.path.join(folder, 'build'))}")
        else:
            click.echo(f"build it with: make -C {folder}   (cross: make -C {folder} CXX=aarch64-linux-gnu-g++ "
                       f"SITE=<aarch64 site-packages> BUILD=build-aarch64)")
    _run(go)


@main.command("demo")
@click.option("--output", "-o", type=click.Path(), default="runs/demo", show_default=True,
              help="The folder that gets every file of the demo (created if missing).")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Float training epochs (at least 1).")
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
