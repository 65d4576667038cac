"""Build a PyTorch twin of a traced Yuan graph, for side-by-side benchmarks only.

The twin executes the same Graph IR nodes with torch ops and holds the same
weights, so both frameworks train exactly the same architecture. Batch norm runs
in training mode when the twin is in training mode. PyTorch is never a Yuan
dependency; this file is only imported by bench scripts.
"""
import numpy as np
import torch
import torch.nn.functional as TF


def _pads_to_torch(pads):
    t, l, b, r = pads
    return (t, l, b, r)


def _conv(x, w, b, a):
    t, l, bo, r = a.get("pads", [0, 0, 0, 0])
    if (t, l) != (bo, r):
        x = TF.pad(x, (l, r, t, bo))
        t = l = 0
    return TF.conv2d(x, w, b, stride=tuple(a.get("strides", [1, 1])), padding=(t, l),
                     dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1))


def _pool(fn, x, a, **kw):
    t, l, b, r = a.get("pads", [0, 0, 0, 0])
    return fn(x, tuple(a["kernel"]), tuple(a.get("strides", a["kernel"])), (t, l), **kw)


class TorchMirror(torch.nn.Module):
    def __init__(self, graph):
        super().__init__()
        self.graph = graph
        self.params = torch.nn.ParameterDict()
        self.stats = {}
        # Weights that feed batch norm mean/var are running statistics, not parameters.
        stat_names = {n.inputs[i] for n in graph.nodes if n.op == "batch_norm" for i in (3, 4)}
        for name, array in graph.constants.items():
            key = name.replace(".", "_")
            tensor = torch.from_numpy(np.array(array, copy=True))
            if name in stat_names or not np.issubdtype(array.dtype, np.floating):
                self.register_buffer(key, tensor)
                self.stats[name] = key
            else:
                self.params[key] = torch.nn.Parameter(tensor)

    def _get(self, env, name):
        if name in env:
            return env[name]
        key = name.replace(".", "_")
        return self.params[key] if key in self.params else getattr(self, key)

    def forward(self, *inputs):
        g = self.graph
        env = dict(zip(g.inputs, inputs))
        for node in g.nodes:
            args = [self._get(env, n) if n else None for n in node.inputs]
            out = self._run(node.op, args, node.attrs)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            env.update(zip(node.outputs, outs))
        result = [env[n] for n in g.outputs]
        return result[0] if len(result) == 1 else result

    def _run(self, op, x, a):
        if op == "conv2d":
            return _conv(x[0], x[1], x[2] if len(x) > 2 else None, a)
        if op == "batch_norm":
            return TF.batch_norm(x[0], x[3], x[4], x[1], x[2], training=self.training,
                                 momentum=0.1, eps=a.get("epsilon", 1e-5))
        if op == "linear":
            return TF.linear(x[0], x[1], x[2] if len(x) > 2 else None)
        if op == "relu":
            return TF.relu(x[0])
        if op == "clip":
            return torch.clamp(x[0], a["min"], a["max"])
        if op == "hardswish":
            return TF.hardswish(x[0])
        if op == "max_pool2d":
            return _pool(TF.max_pool2d, x[0], a)
        if op == "avg_pool2d":
            return _pool(TF.avg_pool2d, x[0], a, count_include_pad=bool(a.get("count_include_pad", 1)))
        if op in ("global_avg_pool2d",):
            return TF.adaptive_avg_pool2d(x[0], 1)
        if op == "adaptive_avg_pool2d":
            return TF.adaptive_avg_pool2d(x[0], tuple(a["output_size"]))
        if op == "add":
            return x[0] + x[1]
        if op == "mul":
            return x[0] * x[1]
        if op in ("flatten",):
            return torch.flatten(x[0], a.get("axis", 1))
        if op == "reshape":
            return torch.reshape(x[0], tuple(a["shape"]))
        if op == "concat":
            return torch.cat(x, a["axis"])
        if op == "split":
            return torch.split(x[0], list(a["sizes"]), a["axis"])
        if op == "channel_shuffle":
            n, c, h, w = x[0].shape
            return x[0].reshape(n, a["groups"], c // a["groups"], h, w).transpose(1, 2).reshape(n, c, h, w)
        if op == "identity":
            return x[0]
        raise NotImplementedError(f"torch mirror: op '{op}'")
