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
    from .nn import StateDictError
    return (ConfigError, CheckpointError, StateDictError, ShapeError, TraceError, GraphError,
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


if __name__ == "__main__":
    sys.exit(main())
