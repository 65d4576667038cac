"""Yuan: train, quantize and compile neural networks for x86, Arm and CUDA with one integer spec.

The handful of names a user needs, importable from here:

    import yuan
    model = yuan.get_model("small_cnn", in_channels=1, num_classes=10)
    qat = yuan.quantize_qat(model)            # ... train, or yuan.calibrate(qat, batches)
    qmodel = yuan.quantize(qat)
    graph = yuan.trace(qmodel, yuan.Tensor(x))
    yuan.export_onnx(graph, "model.onnx")
    yuan.compile(graph, "x86", "out/model.so")  # or an ONNX path
    y = yuan.load("out/model.so").run({"x": x})

The library packages below it keep one direction of imports:
    frontend -> quant -> compiler.ir -> compiler passes/backends -> schedules -> runtime
and this root package (cli, demo, training recipes, checkpoints) sits on top of all of them.
Names are imported on first use, so `import yuan.runtime` on a device loads no compiler.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute)
_API = {
    "Tensor": ("yuan.frontend", "Tensor"),
    "F": ("yuan.frontend", "F"),
    "nn": ("yuan.frontend", "nn"),
    "optim": ("yuan.frontend", "optim"),
    "no_grad": ("yuan.frontend", "no_grad"),
    "trace": ("yuan.frontend", "trace"),
    "get_model": ("yuan.frontend.models", "get_model"),
    "DataLoader": ("yuan.frontend.data", "DataLoader"),
    "get_dataset": ("yuan.frontend.data", "get_dataset"),
    "quantize_qat": ("yuan.quant", "quantize_qat"),
    "calibrate": ("yuan.quant", "calibrate"),
    "quantize": ("yuan.quant", "quantize"),
    "get_qconfig": ("yuan.quant", "get_qconfig"),
    "export_onnx": ("yuan.compiler.onnx", "export_onnx"),
    "import_onnx": ("yuan.compiler.onnx", "import_onnx"),
    "calibrate_onnx": ("yuan.ptq", "calibrate_onnx"),
    "resolve_target": ("yuan.compiler.targets", "resolve_target"),
    "list_targets": ("yuan.compiler.targets", "list_targets"),
    "compile": ("yuan.api", "compile"),
    "load": ("yuan.runtime", "load"),
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value          # cached: the next access is a plain attribute
        return value
    raise AttributeError(f"module 'yuan' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_API))
