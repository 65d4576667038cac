"""Checkpoint -> traced Graph -> ONNX file."""
import numpy as np

from yuan.compiler.onnx import export_onnx
from yuan.compiler.output_files import atomic_output

from .checkpoint import CheckpointError, load_checkpoint
from .config import make_config
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from .train import build_model


def write_onnx(graph, path):
    """export_onnx(graph, path), atomically: `path` is replaced only by a complete, checked file
    (staged in its folder, then renamed). compiler.onnx may not import compiler.output_files (the data
    flow), so the application layer stages it. Returns the ONNX model."""
    with atomic_output(path) as staged:
        model = export_onnx(graph, staged)
    return model


def model_from_checkpoint(path):
    """Rebuild the model a checkpoint was trained as and load its weights."""
    ckpt = load_checkpoint(path)
    config = make_config(ckpt["config"])
    model = build_model(config)
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, config, ckpt


def recorded_input_shape(ckpt, path):
    """The input shape a checkpoint was trained on (CheckpointError when it was not recorded)."""
    shape = ckpt["meta"].get("input_shape")
    if not shape:
        raise CheckpointError(f"checkpoint '{path}' does not record the model's input shape")
    return list(shape)


def export_checkpoint(path, output, batch=1):
    model, config, ckpt = model_from_checkpoint(path)
    shape = recorded_input_shape(ckpt, path)
    example = Tensor(np.zeros([batch] + shape[1:], np.float32))
    graph = trace(model, example, name=config["model"]["name"])
    write_onnx(graph, output)
    return graph
