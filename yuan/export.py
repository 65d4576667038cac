"""Checkpoint -> traced Graph -> ONNX file."""
import numpy as np

from yuan.compiler.onnx import export_onnx

from .checkpoint import CheckpointError, load_checkpoint
from .config import make_config
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from .train import build_model


def model_from_checkpoint(path):
    """Rebuild the model a checkpoint was trained as and load its weights."""
    ckpt = load_checkpoint(path)
    config = make_config(ckpt["config"])
    model = build_model(config)
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, config, ckpt


def export_checkpoint(path, output, batch=1):
    model, config, ckpt = model_from_checkpoint(path)
    shape = ckpt["meta"].get("input_shape")
    if not shape:
        raise CheckpointError(f"checkpoint '{path}' does not record the model's input shape")
    example = Tensor(np.zeros([batch] + list(shape[1:]), np.float32))
    graph = trace(model, example, name=config["model"]["name"])
    export_onnx(graph, output)
    return graph
