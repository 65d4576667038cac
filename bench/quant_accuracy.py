"""Float vs PTQ int8 vs QAT int8 vs QAT 4-bit accuracy on the bundled datasets.

For each (dataset, model) pair the float model is trained with its bundled
config, then:
  * PTQ int8  - calibrated on 20 training batches (MinMax), converted to the integer model;
  * QAT int8  - fine-tuned 3 epochs with fake quant (EMA observers), converted;
  * QAT 4-bit - fine-tuned 3 epochs with LSQ learned scales, 4-bit weights and activations.
Quantized accuracies are those of the integer models (the NumPy reference of quant/SPEC.md).

    python bench/quant_accuracy.py [--runs mnist5k:small_cnn,digits:resnet_small] [--qat-epochs 3]
"""
import argparse
import os
import time


from yuan.config import load_config  # noqa: E402
from yuan.train import fit  # noqa: E402
from yuan.quant_recipes import accuracy, loaders, post_training_quantize, qat_finetune  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {
    "mnist5k:small_cnn": "configs/mnist_small_cnn.yaml",
    "mnist5k:resnet_small": "configs/mnist_resnet_small.yaml",
    "digits:small_cnn": "configs/digits_small_cnn.yaml",
    "digits:resnet_small": "configs/digits_resnet_small.yaml",
}


def run_one(key, qat_epochs, out_dir, log):
    config = load_config(os.path.join(ROOT, RUNS[key]))
    config["train"]["progress"] = False
    config["output"]["dir"] = os.path.join(out_dir, config["name"])
    t0 = time.perf_counter()
    model, results = fit(config, log=lambda line: None)
    train_loader, test_loader, preprocess = loaders(config)
    row = {"float": accuracy(model, test_loader, preprocess)}
    ptq, _ = post_training_quantize(model, train_loader, preprocess, qconfig="minmax")
    row["ptq_int8"] = accuracy(ptq, test_loader, preprocess)
    qat8, _ = qat_finetune(model, config, train_loader, preprocess, qconfig="ema", epochs=qat_epochs, log=log)
    row["qat_int8"] = accuracy(qat8, test_loader, preprocess)
    qat4, _ = qat_finetune(model, config, train_loader, preprocess, qconfig="lsq_4bit", epochs=qat_epochs,
                           lr_scale=0.2, log=log)
    row["qat_4bit"] = accuracy(qat4, test_loader, preprocess)
    row["seconds"] = time.perf_counter() - t0
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated among {', '.join(RUNS)}")
    ap.add_argument("--qat-epochs", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "quant_accuracy"))
    args = ap.parse_args()
    rows = {}
    for key in args.runs.split(","):
        print(f"{key}: training float model, then PTQ / QAT int8 / QAT 4-bit ...", flush=True)
        rows[key] = run_one(key, args.qat_epochs, args.out, log=lambda line: print(line, flush=True))
    print()
    print("| dataset | model | float | PTQ int8 | QAT int8 | QAT 4-bit (LSQ) | Δ PTQ | Δ QAT |")
    print("|---|---|---|---|---|---|---|---|")
    for key, r in rows.items():
        dataset, model = key.split(":")
        print(f"| {dataset} | {model} | {r['float']:.2%} | {r['ptq_int8']:.2%} | {r['qat_int8']:.2%} | "
              f"{r['qat_4bit']:.2%} | {100 * (r['ptq_int8'] - r['float']):+.1f} | "
              f"{100 * (r['qat_int8'] - r['float']):+.1f} |")


if __name__ == "__main__":
    main()
