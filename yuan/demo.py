"""`yuan demo`: the whole train -> quantize -> compile -> run path on the bundled MNIST subset.

Like the CLI this is application code: it reaches every package (imports are local).
"""
import os
import time

import numpy as np


ONNX_NAME = "small_cnn_int8.onnx"
HOST_MODULE_NAME = "small_cnn_int8_x86.so"


def _check_output_folder(output):
    """OutputPathError now, not after training, when the demo's folder cannot be written."""
    from yuan.compiler.output_files import check_output_paths
    check_output_paths([os.path.join(output, "float", "last.npz"), os.path.join(output, ONNX_NAME),
                        os.path.join(output, HOST_MODULE_NAME)])


def _batched_run(predictor, x, batch):
    """Run a fixed-batch compiled module over x (len(x) divisible by batch)."""
    name = predictor.metadata["inputs"][0]["name"]
    outs = [next(iter(predictor.run({name: x[i:i + batch]}).values())) for i in range(0, len(x), batch)]
    return np.concatenate(outs)


def run_demo(output="runs/demo", epochs=3, qat_epochs=1, batch=100, log=print):
    from yuan.compiler.build import compile_graph, prepare_target
    from yuan.compiler.onnx import import_onnx
    from yuan.compiler.targets import ToolchainError
    from . import quant_recipes
    from yuan import runtime

    from .config import make_config
    from .export import write_onnx
    from yuan.frontend.tensor import Tensor
    from yuan.frontend.trace import trace
    from .train import fit

    _check_output_folder(output)    # before minutes of training
    t_start = time.perf_counter()
    config = make_config({
        "name": "demo", "seed": 0,
        "model": {"name": "small_cnn", "args": {"in_channels": 1, "num_classes": 10}},
        "data": {"name": "mnist5k", "batch_size": 32, "normalize": {"mean": [0.1307], "std": [0.3081]},
                 "augment": {"random_crop_padding": 2}},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        "schedule": {"name": "cosine", "warmup_epochs": 1},
        "train": {"epochs": epochs, "progress": False},
        "output": {"dir": os.path.join(output, "float")},
    })
    log(f"1. training the small CNN for {epochs} epochs on MNIST (4,000 train / 1,000 test images)")
    model, _ = fit(config, log=lambda line: log("   " + line) if line.startswith("epoch") else None)
    train_loader, test_loader, preprocess = quant_recipes.loaders(config)

    log(f"2. quantization-aware fine-tuning ({qat_epochs} epoch), then conversion to the integer model")
    qmodel, _ = quant_recipes.qat_finetune(model, config, train_loader, preprocess, "ema", epochs=qat_epochs,
                                      log=lambda line: log("   " + line.strip()))

    x_test = np.concatenate([preprocess(x, train=False) for x, _ in test_loader])
    y_test = np.concatenate([y for _, y in test_loader])
    n = len(x_test) - len(x_test) % batch
    x_test, y_test = x_test[:n], y_test[:n]

    log("3. exporting the int8 model to ONNX (QDQ)")
    graph = trace(qmodel, Tensor(x_test[:batch]), name="small_cnn_int8")
    onnx_path = os.path.join(output, ONNX_NAME)
    write_onnx(graph, onnx_path)
    log(f"   {onnx_path}")

    log("4. compiling the ONNX file for the host (x86) and for aarch64")
    imported = import_onnx(onnx_path)
    t0 = time.perf_counter()
    host_path = compile_graph(imported, "x86", os.path.join(output, HOST_MODULE_NAME))
    log(f"   {host_path} ({time.perf_counter() - t0:.1f}s)")
    try:
        arm = prepare_target("aarch64")
        arm_path = compile_graph(imported, arm, os.path.join(output, "small_cnn_int8_aarch64.so"))
        log(f"   {arm_path}")
    except ToolchainError as exc:
        log(f"   aarch64 skipped: {exc}")

    log("5. running the compiled host module on the test set")
    predictor = runtime.load(host_path)
    compiled = _batched_run(predictor, x_test, batch)
    reference = np.concatenate([qmodel(Tensor(x_test[i:i + batch])).data for i in range(0, n, batch)])
    float_logits = np.concatenate([model.eval()(Tensor(x_test[i:i + batch])).data for i in range(0, n, batch)])
    stats = predictor.benchmark(inputs={predictor.metadata["inputs"][0]["name"]: x_test[:batch]},
                                repeat=20, warmup=3)

    def acc(logits):
        return float((logits.argmax(axis=1) == y_test).mean())

    identical = float(np.mean(compiled == reference))
    log("")
    log(f"   float accuracy            {acc(float_logits):.2%}")
    log(f"   int8 reference accuracy   {acc(reference):.2%}   (NumPy, quant/SPEC.md)")
    log(f"   compiled int8 accuracy    {acc(compiled):.2%}   (TVM, x86)")
    log(f"   identical int8 outputs    {identical:.2%} of {compiled.size} values")
    log(f"   latency                   {stats['median_ms']:.2f} ms per batch of {batch} "
        f"({stats['median_ms'] / batch * 1000:.0f} us per image)")
    log(f"   total                     {time.perf_counter() - t_start:.0f}s")
    return {"float_acc": acc(float_logits), "int8_ref_acc": acc(reference), "compiled_acc": acc(compiled),
            "identical": identical, "latency_ms": stats["median_ms"]}
