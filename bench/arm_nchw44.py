"""NCHW44 against NHWC for the int8 sdot conv on Arm, per layer, in instructions counted exactly under qemu-aarch64
(bench/arm_insn.py's plugin and per-call counts): the NHWC sdot conv layout planning picks today
(`qconv2d_int8_nhwc_sdot`) and the NCHW44 one (`qconv2d_int8_nchw44_sdot`, schedules/aarch64_nchw44_int8.py) on
the same shapes, weights and codes: ResNet-18's 3x3 stride-1 / stride-2 and 1x1 stride-2 convs, MobileNetV2's
1x1 expand and project convs, ShuffleNetV2's 1x1 convs with C % 16 != 0 (224x224 input, batch 1).

    python bench/arm_nchw44.py [--cpu cortex-a76] [--only resnet|mobilenet|shufflenet] [--keep DIR]

Every call is a bare kernel call of one library (compiler/kernel_module.py; no graph reaches layout NCHW44 yet),
run once; the instructions executed in each call's code (staging, conv, requantize) come from the plugin's
per-block counts mapped to its symbol. Prints per layer both counts, per MAC, NHWC / NCHW44 (> 1: NCHW44
executes fewer), per class the ratio of the summed counts, and whether the two outputs agree bit for bit.
"""
import argparse
import os
import tempfile

# (class, C, O, input H = W, kernel, stride)
RESNET = [("resnet 3x3 s1", c, c, h, 3, 1) for c, h in ((64, 56), (128, 28), (256, 14), (512, 7))] + \
    [("resnet 3x3 s2", c, 2 * c, h, 3, 2) for c, h in ((64, 56), (128, 28), (256, 14))] + \
    [("resnet 1x1 s2", c, 2 * c, h, 1, 2) for c, h in ((64, 56), (128, 28), (256, 14))]
MOBILENET = [("mbv2 1x1 expand", c, o, h, 1, 1) for c, o, h in
             ((16, 96, 112), (24, 144, 56), (32, 192, 28), (64, 384, 14), (96, 576, 14), (160, 960, 7),
              (320, 1280, 7))] + \
    [("mbv2 1x1 project", c, o, h, 1, 1) for c, o, h in
     ((32, 16, 112), (144, 24, 56), (192, 32, 28), (384, 64, 14), (576, 96, 14), (960, 160, 7), (960, 320, 7))]
# ShuffleNetV2 x1.0's branch 1x1 convs with O % 4 == 0 (C % 16 != 0: the NHWC sdot conv's ld1r path)
SHUFFLENET = [("shufflenet_v2 1x1", c, c, h, 1, 1) for c, h in ((116, 14), (232, 7))]
NHWC_KERNEL, NCHW44_KERNEL = "qconv2d_int8_nhwc_sdot", "qconv2d_int8_nchw44_sdot"


def layer_calls(layers, rng):
    """(inputs, calls): per layer the NHWC and then the NCHW44 call, on the same codes."""
    import numpy as np

    from yuan.compiler.kernel_module import KernelCall
    from yuan.compiler.targets import resolve_target
    from yuan.schedules import kernel_inputs, select_kernel
    from yuan.schedules.aarch64_nchw44_int8 import to_nchw44
    target = resolve_target("aarch64-dotprod")
    inputs, calls = [], []
    for layer in layers:
        _, C, O, H, k, s = layer
        x = rng.integers(-128, 128, (1, C, H, H)).astype("int8")
        w = rng.integers(-127, 128, (O, C, k, k)).astype("int8")
        b = rng.integers(-5000, 5000, O).astype("int32")
        attrs = dict(pads=[k // 2] * 4, strides=[s, s], x_zero_point=-128, y_zero_point=-128, out_min=-128,
                     out_max=127, out_dtype="int8", shift=[40] * O,
                     multiplier=[int(v) for v in rng.integers(1 << 29, 1 << 30, O)])
        OH = (H + 2 * (k // 2) - k) // s + 1
        for layout, xl, out_shape in (("NHWC", x.transpose(0, 2, 3, 1), (1, OH, OH, O)),
                                      ("NCHW44", to_nchw44(x, -128), (1, (O + 3) // 4, OH, OH, 4))):
            a = dict(attrs, layout=layout)
            in_types = [(xl.shape, "int8"), (w.shape, "int8"), (b.shape, "int32")]
            f = select_kernel("qconv2d", a, in_types, (out_shape, "int8"), target)[1]
            plan = kernel_inputs(f, a, in_types, [None, w, b])
            calls.append(KernelCall(f, [len(inputs) if isinstance(p, int) else p for p in plan], (out_shape, "int8"),
                                    dict(op="qconv2d", macs=O * C * k * k * OH * OH, layer=list(layer), layout=layout)))
            inputs.append(np.ascontiguousarray(xl))
    return inputs, calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", default="cortex-a76")
    ap.add_argument("--only", choices=("resnet", "mobilenet", "shufflenet"), default=None)
    ap.add_argument("--keep", default=None, help="folder for the library and the log (default: temporary)")
    args = ap.parse_args()
    import numpy as np
    from arm_insn import KernelMap, build_plugin, run_counted

    from yuan.compiler.kernel_module import kernel_library
    sets = dict(resnet=RESNET, mobilenet=MOBILENET, shufflenet=SHUFFLENET)
    layers = [layer for name, some in sets.items() if args.only in (None, name) for layer in some]
    work = args.keep or tempfile.mkdtemp(prefix="yuan_nchw44_")
    os.makedirs(work, exist_ok=True)
    plugin = build_plugin(work)
    inputs, calls = layer_calls(layers, np.random.default_rng(0))
    lib = kernel_library([(a.shape, str(a.dtype)) for a in inputs], calls, "aarch64-dotprod",
                         os.path.join(work, "layers.so"))
    _, blocks, ys = run_counted(lib, inputs, plugin, args.cpu, os.path.join(work, "layers.log"), tag="nchw44")
    per = KernelMap(lib, by_call=True).per_kernel(blocks)
    print(f"int8 convs, aarch64 dotprod, qemu -cpu {args.cpu}: instructions executed in each call (staging, conv, "
          "requantize), batch 1")
    print("| class | C -> O | input HxW | NHWC M insns | per MAC | NCHW44 M insns | per MAC | NHWC / NCHW44 | same |")
    print("|---|---|---|---|---|---|---|---|---|")
    classes = {}
    for i, layer in enumerate(layers):
        (cn, cq), (yn, yq) = calls[2 * i: 2 * i + 2], ys[2 * i: 2 * i + 2]
        assert cn.func.attrs["yuan.kernel"] == NHWC_KERNEL and cq.func.attrs["yuan.kernel"] == NCHW44_KERNEL
        name, C, O, H, k, s = layer
        n, q = (per.get(str(c.func.attrs["global_symbol"]), 0) for c in (cn, cq))
        same = np.array_equal(yq.transpose(0, 2, 3, 1, 4).reshape(yn.shape[:3] + (-1,))[..., :O], yn)
        macs = cn.info["macs"]
        sums = classes.setdefault(name, [0, 0])
        sums[0], sums[1] = sums[0] + n, sums[1] + q
        print(f"| {name} | {C} -> {O} | {H}x{H} | {n / 1e6:.2f} | {n / macs:.3f} | {q / 1e6:.2f} | {q / macs:.3f} "
              f"| {n / q:.2f} | {same} |")
    print("\n| class | NHWC M insns | NCHW44 M insns | NHWC / NCHW44 |")
    print("|---|---|---|---|")
    for name, (n, q) in classes.items():
        print(f"| {name} | {n / 1e6:.1f} | {q / 1e6:.1f} | {n / q:.2f} |")


if __name__ == "__main__":
    main()
