"""Tracing: run a model once in eval mode and record every op into a Graph IR.

Each `Function.apply` reports (op, attrs, inputs, outputs) to the active tracer.
Tensors that were not produced by a recorded op are either the declared inputs
or constants: parameters and buffers are named after their module path so the
graph reads like the model.
"""
import numpy as np

from yuan.compiler.ir import Graph

from . import autograd
from .errors import TraceError
from .tensor import Tensor


class _Tracer:
    def __init__(self, graph, constant_names):
        self.graph = graph
        self._constant_names = constant_names   # id(tensor) -> state-dict name
        self._value_of = {}                     # id(tensor) -> graph value name
        self._alive = []                        # keep traced tensors alive so ids stay unique
        self._scope = []                        # module names, for readable node names
        self._module_names = {}

    # --- module scopes (called by Module.__call__) ----------------------
    def set_module_names(self, model):
        self._module_names = {id(m): n for n, m in model.named_modules()}

    def enter_module(self, module):
        self._scope.append(self._module_names.get(id(module), type(module).__name__))

    def exit_module(self, module):
        self._scope.pop()

    # --- values ---------------------------------------------------------
    def bind_input(self, tensor, name, dtype):
        self._remember(tensor, self.graph.add_input(name, tuple(tensor.shape), dtype))

    def _remember(self, tensor, name):
        self._value_of[id(tensor)] = name
        self._alive.append(tensor)

    def value_name(self, tensor):
        name = self._value_of.get(id(tensor))
        if name is None:  # not produced by a traced op: it is a constant
            base = self._constant_names.get(id(tensor), "const")
            array = tensor.data if isinstance(tensor, Tensor) else np.asarray(tensor)
            name = self.graph.add_constant(base, np.array(array, copy=True))
            self._remember(tensor, name)
        return name

    # --- the hook -------------------------------------------------------
    def record(self, op, attrs, inputs, outputs):
        scope = next((s for s in reversed(self._scope) if s), "")
        node_name = f"{scope}.{op}" if scope else op
        input_names = [self.value_name(t) if t is not None else "" for t in inputs]
        node = self.graph.add_node(op, input_names, dict(attrs), name=node_name)
        if len(node.outputs) != len(outputs):
            raise TraceError(f"trace: node '{node.name}' ({op}) has {len(outputs)} outputs in eager mode "
                             f"but {len(node.outputs)} in the IR")
        for tensor, out_name in zip(outputs, node.outputs):
            inferred = tuple(self.graph.values[out_name].shape)
            if inferred != tuple(tensor.shape):
                raise TraceError(f"trace: node '{node.name}' ({op}) produced shape {tuple(tensor.shape)} "
                                 f"in eager mode but the IR infers {inferred}")
            self._remember(tensor, out_name)


def _as_tensor_tuple(example_inputs):
    if isinstance(example_inputs, (Tensor, np.ndarray)):
        example_inputs = (example_inputs,)
    return tuple(x if isinstance(x, Tensor) else Tensor(np.asarray(x)) for x in example_inputs)


def trace(model, example_inputs, input_names=None, output_names=None, name=None):
    """Record `model` applied to `example_inputs` as a `compiler.ir.Graph`.

    The model runs in eval mode (its mode is restored afterwards) without
    gradients. Shapes are the example inputs' shapes.
    """
    inputs = _as_tensor_tuple(example_inputs)
    input_names = list(input_names or (["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))]))
    if len(input_names) != len(inputs):
        raise TraceError(f"trace: {len(inputs)} example inputs but {len(input_names)} input names")

    graph = Graph(name or type(model).__name__)
    constant_names = {id(t): n for n, t in list(model.named_parameters()) + list(model.named_buffers())}
    tracer = _Tracer(graph, constant_names)
    tracer.set_module_names(model)
    for tensor, input_name in zip(inputs, input_names):
        tracer.bind_input(tensor, input_name, str(tensor.data.dtype))

    was_training = model.training
    model.eval()
    try:
        with autograd.no_grad(), autograd.tracing(tracer):
            result = model(*inputs)
    finally:
        model.train(was_training)

    results = result if isinstance(result, (tuple, list)) else (result,)
    output_names = list(output_names or (["output"] if len(results) == 1 else [f"output_{i}" for i in range(len(results))]))
    if len(output_names) != len(results):
        raise TraceError(f"trace: model returned {len(results)} outputs but {len(output_names)} output names were given")
    for tensor, out_name in zip(results, output_names):
        if not isinstance(tensor, Tensor):
            raise TraceError(f"trace: model output '{out_name}' is a {type(tensor).__name__}, not a Tensor")
        source = tracer.value_name(tensor)
        if graph.producer(source) is None or source in graph.outputs:
            # An input, constant or repeated output: copy it so the output has its own name.
            graph.add_node("identity", [source], {}, name=f"{out_name}.identity", outputs=[out_name])
        else:
            graph.rename_value(source, out_name)
        graph.mark_output(out_name)
    graph.validate()
    return graph
