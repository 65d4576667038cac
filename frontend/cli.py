"""The `yuan` command line."""
import sys

import click

from .config import ConfigError


def _user_errors():
    """Errors caused by the user's input: shown as one clear line, never a traceback."""
    from compiler.ir.errors import GraphError
    from compiler.onnx.errors import OnnxImportError

    from .checkpoint import CheckpointError
    from .errors import ShapeError, TraceError
    from quant.errors import QuantError

    from .nn import StateDictError
    return (QuantError, ConfigError, CheckpointError, StateDictError, ShapeError, TraceError, GraphError,
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

        from compiler.onnx import export_onnx
        from quant import workflow

        from .export import model_from_checkpoint
        from .tensor import Tensor
        from .trace import trace

        model, config, ckpt = model_from_checkpoint(checkpoint)
        train_loader, test_loader, preprocess = workflow.loaders(config)
        if method == "ptq":
            qmodel, _ = workflow.post_training_quantize(model, train_loader, preprocess, qconfig or "minmax",
                                                        num_batches=calib_batches)
        else:
            qmodel, _ = workflow.qat_finetune(model, config, train_loader, preprocess, qconfig or "ema",
                                              epochs=epochs, calib_batches=calib_batches, log=click.echo)
        float_acc = workflow.accuracy(model, test_loader, preprocess)
        int8_acc = workflow.accuracy(qmodel, test_loader, preprocess)
        shape = [1] + list(ckpt["meta"]["input_shape"][1:])
        graph = trace(qmodel, Tensor(np.zeros(shape, np.float32)), name=config["model"]["name"] + "_int8")
        export_onnx(graph, output)
        click.echo(f"float accuracy {float_acc:.2%}, int8 ({method}) accuracy {int8_acc:.2%}; "
                   f"wrote {output} ({len(graph.nodes)} nodes)")
    _run(go)


if __name__ == "__main__":
    sys.exit(main())
