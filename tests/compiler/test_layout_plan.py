"""Activation layouts (compiler/ir/layout.py) and layout planning (compiler/passes/layout_plan.py).

* every op in LAYOUT_OPS with layout="NHWC": shape inference gives the permuted NCHW shape and the
  reference interpreter gives the transposed NCHW result; a bad layout names the node;
* plan_layout on the int8 zoo models: bit-identical reference outputs, unchanged graph interface,
  every qconv2d NHWC, transposes only where the NHWC region begins or ends;
* hand-built cases: concat/split axis remapping, what stays NCHW (per-channel requantize,
  rank-changing broadcasts, flatten), graph outputs, quant params, no leaders, planning twice.

Only the zoo tests need the packages test_compiled_zoo.py imports (TVM, ONNX, ONNX Runtime); the
rest is NumPy only."""
import collections

import numpy as np
import pytest

from yuan.compiler.ir import Graph, QuantParams, ShapeInferenceError, run_graph
from yuan.compiler.ir import integer_spec as ispec
from yuan.compiler.ir.kernels import KERNELS
from yuan.compiler.ir.layout import LAYOUT_OPS, TO_NCHW, TO_NHWC, permute
from yuan.compiler.passes import eliminate_dead_code, fold_constants, plan_layout
from yuan.compiler.passes.layout_plan import AXIS_OPS, ELEMENTWISE
from tests.conftest import ZOO, int8_zoo_model, zoo_input

RNG = np.random.default_rng(11)
LEADERS = {"qconv2d"}


def codes(shape, dtype="int8"):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max + 1, shape).astype(dtype)


def random_feed(graph, seed):
    rng = np.random.default_rng(seed)
    feed = {}
    for name in graph.inputs:
        v = graph.values[name]
        if v.dtype.startswith(("int", "uint")):
            info = np.iinfo(v.dtype)
            feed[name] = rng.integers(info.min, info.max + 1, v.shape).astype(v.dtype)
        else:
            feed[name] = rng.standard_normal(v.shape).astype(v.dtype)
    return feed


def requant_attrs(count, lo=0.002, hi=0.01, zx=-3, zy=2, out_dtype="int8"):
    m, n = ispec.requant_multiplier(RNG.uniform(lo, hi, count))
    qmin, qmax = (-128, 127) if out_dtype == "int8" else (0, 255)
    return dict(x_zero_point=zx, multiplier=[int(v) for v in m], shift=[int(v) for v in n],
                y_zero_point=zy, out_min=qmin, out_max=qmax, out_dtype=out_dtype)


# ------------------------------------------------------------------ NHWC ops == transposed NCHW ops
def _qconv_case(xdt):
    def make(g, x, nchw_shape):
        C = nchw_shape[1]
        w = g.add_constant("w", codes((6, C // 2, 3, 2)))
        b = g.add_constant("b", RNG.integers(-400, 400, 6).astype(np.int32))
        attrs = dict(strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2], group=2,
                     **requant_attrs(6, zx=-3 if xdt == "int8" else 131))
        return [x, w, b], attrs
    return make


def _max_pool_case(g, x, nchw_shape):
    return [x], dict(kernel=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], ceil_mode=1)


def _qavg_case(g, x, nchw_shape):
    H, W = nchw_shape[2:]
    kernel, strides, pads = [3, 2], [2, 2], [1, 0, 1, 1]
    oh = (H + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (W + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    m, n = ispec.average_multipliers(0.04, 0.03, RNG.integers(2, 7, (oh, ow)))
    mm = g.add_constant("mm", m.reshape(oh, ow).astype(np.int32))
    sm = g.add_constant("sm", n.reshape(oh, ow).astype(np.int32))
    return [x, mm, sm], dict(kernel=kernel, strides=strides, pads=pads, x_zero_point=-2, y_zero_point=1,
                             out_min=-120, out_max=127, out_dtype="int8")


def _qgap_case(g, x, nchw_shape):
    m, n = ispec.average_multipliers(0.02, 0.05, nchw_shape[2] * nchw_shape[3])
    return [x], dict(x_zero_point=100, multiplier=[int(m)], shift=[int(n)], y_zero_point=3, out_min=0,
                     out_max=255, out_dtype="uint8")


def _shuffle_case(g, x, nchw_shape):
    return [x], dict(groups=3)


# (op, NCHW input shape, input dtype, builder(graph, x, nchw_shape) -> (inputs, attrs))
LAYOUT_CASES = [
    ("qconv2d", (2, 4, 7, 5), "int8", _qconv_case("int8")),
    ("qconv2d", (1, 6, 6, 9), "uint8", _qconv_case("uint8")),
    ("max_pool2d", (2, 3, 7, 6), "int8", _max_pool_case),
    ("max_pool2d", (1, 5, 6, 8), "float32", _max_pool_case),
    ("qavg_pool2d", (1, 3, 7, 6), "int8", _qavg_case),
    ("qglobal_avg_pool2d", (2, 5, 3, 4), "uint8", _qgap_case),
    ("channel_shuffle", (2, 6, 3, 4), "int8", _shuffle_case),
    ("channel_shuffle", (1, 9, 2, 5), "float32", _shuffle_case),
]


def test_layout_cases_cover_every_layout_op():
    assert {c[0] for c in LAYOUT_CASES} == set(LAYOUT_OPS)


def _one_node_graph(case, layout):
    """Same constants for every layout: the builder draws from a generator seeded per case."""
    global RNG
    op, nchw_shape, dtype, make = LAYOUT_CASES[case]
    RNG = np.random.default_rng(100 + case)
    g = Graph(f"{op}_{layout}")
    shape = permute(nchw_shape, TO_NHWC) if layout == "NHWC" else nchw_shape
    x = g.add_input("x", shape, dtype)
    inputs, attrs = make(g, x, nchw_shape)
    if layout is not None:
        attrs = dict(attrs, layout=layout)
    node = g.add_node(op, inputs, attrs, outputs=["y"], name="node")
    g.mark_output(*node.outputs)
    return g, inputs, attrs


@pytest.mark.parametrize("case", range(len(LAYOUT_CASES)), ids=[f"{c[0]}-{c[2]}" for c in LAYOUT_CASES])
def test_nhwc_op_is_the_transposed_nchw_op(case):
    op, nchw_shape, dtype, make = LAYOUT_CASES[case]
    ref_g, _, _ = _one_node_graph(case, None)
    nchw_g, _, _ = _one_node_graph(case, "NCHW")
    nhwc_g, _, _ = _one_node_graph(case, "NHWC")
    ref_y, nhwc_y = ref_g.values["y"], nhwc_g.values["y"]
    assert nchw_g.values["y"].shape == ref_y.shape          # layout="NCHW" is the default
    assert nhwc_g.values["x"].shape == permute(nchw_shape, TO_NHWC)
    assert nhwc_y.shape == permute(ref_y.shape, TO_NHWC) and nhwc_y.dtype == ref_y.dtype
    nhwc_g.validate()
    for seed in (1, 2):
        x = random_feed(ref_g, seed)["x"]
        ref = run_graph(ref_g, {"x": x})["y"]
        assert np.array_equal(run_graph(nchw_g, {"x": x})["y"], ref)
        got = run_graph(nhwc_g, {"x": np.ascontiguousarray(x.transpose(TO_NHWC))})["y"]
        assert got.dtype == ref.dtype and got.shape == permute(ref.shape, TO_NHWC)
        np.testing.assert_array_equal(got, ref.transpose(TO_NHWC))
        # the kernel table entry itself (what the schedules tests compare against)
        args = [x.transpose(TO_NHWC)] + [nhwc_g.constants[i] for i in nhwc_g.nodes[0].inputs[1:]]
        if op == "qconv2d" and len(args) == 2:
            args.append(None)
        attrs = nhwc_g.nodes[0].attrs
        np.testing.assert_array_equal(KERNELS[op](args, attrs), ref.transpose(TO_NHWC))
    assert ref.std() > 0   # not a degenerate (saturated) case


@pytest.mark.parametrize("bad", ["NHCW", "nhwc", "CHWN", ""])
@pytest.mark.parametrize("op", ["max_pool2d", "channel_shuffle", "qglobal_avg_pool2d"])
def test_bad_layout_names_the_node_and_the_value(op, bad):
    g = Graph("g")
    x = g.add_input("x", (1, 6, 4, 4), "int8")
    attrs = {"max_pool2d": dict(kernel=[2, 2]), "channel_shuffle": dict(groups=2),
             "qglobal_avg_pool2d": requant_attrs(1)}[op]
    with pytest.raises(ShapeInferenceError) as err:
        g.add_node(op, [x], dict(attrs, layout=bad), name="the_node_7")
    assert "the_node_7" in str(err.value) and repr(bad) in str(err.value)


def test_bad_layout_on_qconv2d_and_in_validate():
    g = Graph("g")
    x = g.add_input("x", (1, 4, 5, 5), "int8")
    w = g.add_constant("w", codes((4, 4, 1, 1)))
    with pytest.raises(ShapeInferenceError, match=r"conv_a.*'NWHC'"):
        g.add_node("qconv2d", [x, w], dict(requant_attrs(4), layout="NWHC"), name="conv_a")
    node = g.add_node("qconv2d", [x, w], requant_attrs(4), name="conv_b")
    g.mark_output(*node.outputs)
    node.attrs["layout"] = "nchw"
    with pytest.raises(ShapeInferenceError, match=r"conv_b.*'nchw'"):
        g.validate()


def test_bad_layout_at_run_time_names_the_node():
    """A graph edited after construction: the interpreter's error should name the node too."""
    g = Graph("g")
    x = g.add_input("x", (1, 4, 5, 5), "int8")
    node = g.add_node("max_pool2d", [x], dict(kernel=[2, 2]), name="pool_9")
    g.mark_output(*node.outputs)
    node.attrs["layout"] = "NHCW"
    with pytest.raises(ShapeInferenceError) as err:
        run_graph(g, {"x": codes((1, 4, 5, 5))})
    assert "pool_9" in str(err.value) and "'NHCW'" in str(err.value)


def test_nhwc_needs_a_4d_input():
    g = Graph("g")
    x = g.add_input("x", (4, 5, 6), "int8")
    with pytest.raises(ShapeInferenceError, match=r"shuf.*4-D"):
        g.add_node("channel_shuffle", [x], dict(groups=2, layout="NHWC"), name="shuf")


# ------------------------------------------------------------------ helpers for planned graphs
def _plan(graph, leaders=LEADERS):
    return eliminate_dead_code(fold_constants(plan_layout(graph, leaders)))


def _assert_same_interface(src, planned):
    assert planned.inputs == src.inputs and planned.outputs == src.outputs
    for name in src.inputs + src.outputs:
        a, b = src.values[name], planned.values[name]
        assert (a.shape, a.dtype) == (b.shape, b.dtype), name


def _assert_equivalent(src, planned, seeds=(1, 2)):
    _assert_same_interface(src, planned)
    planned.validate()
    for seed in seeds:
        feed = random_feed(src, seed)
        ref, got = run_graph(src, feed), run_graph(planned, feed)
        for name in src.outputs:
            assert got[name].dtype == ref[name].dtype, name
            np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def _nhwc_values(graph):
    """Values held channels-last: transposes to NHWC, nodes with layout NHWC, and whatever a
    (layout-free) follower computes from an NHWC value."""
    nhwc = set()
    for n in graph.nodes:
        if n.op == "transpose":
            if list(n.attrs["perm"]) == list(TO_NHWC):
                nhwc.update(n.outputs)
        elif n.attrs.get("layout") == "NHWC" or any(i in nhwc for i in n.inputs):
            nhwc.update(n.outputs)
    return nhwc


def _transposes(graph):
    return [n for n in graph.nodes if n.op == "transpose"]


def _assert_transposes_only_at_edges(planned):
    nhwc = _nhwc_values(planned)
    consumers = planned.consumer_map()
    producers = planned.producer_map()
    nhwc_capable = set(LAYOUT_OPS) | ELEMENTWISE | AXIS_OPS
    for t in _transposes(planned):
        (src,), (dst,) = t.inputs, t.outputs
        perm = list(t.attrs["perm"])
        users = consumers.get(dst, [])
        # never a transpose of a transpose (a round trip)
        assert src not in producers or producers[src].op != "transpose", t.name
        if perm == list(TO_NHWC):
            # converts into the region: reads an NCHW value no NHWC node produced
            assert src not in nhwc, f"{t.name}: re-transposes an NHWC value"
            assert users, f"{t.name}: unused"
        else:
            assert perm == list(TO_NCHW), t.name
            assert src in nhwc, t.name
            # leaves the region: feeds only ops that cannot take NHWC, or is a graph output
            assert users or dst in planned.outputs, t.name
            for u in users:
                assert u.op not in nhwc_capable, f"{t.name} feeds {u.op} '{u.name}', which could run NHWC"


def _qconv(g, x, out_channels, name, k=1, group=1, bias=True, **attrs):
    """qconv2d on an NCHW value keeping H, W (odd k, 'same' padding)."""
    C = g.values[x].shape[1]
    inputs = [x, g.add_constant(f"{name}_w", codes((out_channels, C // group, k, k)))]
    if bias:
        inputs.append(g.add_constant(f"{name}_b", RNG.integers(-300, 300, out_channels).astype(np.int32)))
    a = dict(pads=[k // 2] * 4, group=group, **requant_attrs(out_channels, zx=int(attrs.pop("zx", -3))))
    a.update(attrs)
    return g.add_node("qconv2d", inputs, a, outputs=[name], name=name).outputs[0]


def _node_producing(graph, name):
    return graph.producer_map()[name]


# ------------------------------------------------------------------ int8 zoo models
ZOO_MODELS = ["small_cnn", "resnet18", "mobilenet_v2", "shufflenet_v2", "shufflenet_v1"]


@pytest.fixture(scope="module")
def zoo():
    """zoo(name) -> (optimized integer graph, planned graph), built once per module."""
    from yuan.frontend.tensor import Tensor
    from yuan.frontend.trace import trace
    from yuan.compiler.build import optimize
    cache = {}

    def get(name):
        if name not in cache:
            size = ZOO[name][1]
            graph = trace(int8_zoo_model(name), Tensor(zoo_input(size, 0)))
            optimized = optimize(graph)
            cache[name] = (optimized, _plan(optimized))
        return cache[name]

    return get


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_planned_graph_is_bit_identical(name, zoo):
    src, planned = zoo(name)
    _assert_equivalent(src, planned, seeds=(21, 22))


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_every_qconv2d_is_nhwc_and_transposes_only_at_edges(name, zoo):
    src, planned = zoo(name)
    assert not _transposes(src)
    convs = [n for n in planned.nodes if n.op == "qconv2d"]
    assert len(convs) == sum(n.op == "qconv2d" for n in src.nodes) > 0
    assert all(n.attrs.get("layout") == "NHWC" for n in convs)
    _assert_transposes_only_at_edges(planned)
    # one way in (after quantizing the image), one way out (before flatten): nothing in between
    assert len(_transposes(planned)) <= 2, \
        collections.Counter((n.op, n.attrs.get("layout")) for n in planned.nodes)
    # the followers came along: no pool / shuffle of a 4-D activation left NCHW
    for n in planned.nodes:
        if n.op in LAYOUT_OPS:
            assert n.attrs.get("layout") == "NHWC", n.name


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_names_and_quant_params(name, zoo):
    src, planned = zoo(name)
    for vname, v in planned.values.items():
        if vname in src.values:
            s = src.values[vname]
            assert (v.shape, v.dtype) == (s.shape, s.dtype), vname
            assert _quant_dict(v.quant) == _quant_dict(s.quant), vname
        elif vname.endswith("_nhwc") and vname[:-5] in src.values and v.rank == 4:
            s = src.values[vname[:-5]]
            assert v.shape == permute(s.shape, TO_NHWC) and v.dtype == s.dtype, vname
            expected = s.quant
            if expected is not None and expected.axis is not None:
                expected = QuantParams(s.quant.scale, s.quant.zero_point, TO_NHWC.index(s.quant.axis % 4),
                                       s.quant.bits, s.quant.signed, s.quant.narrow_range)
            assert _quant_dict(v.quant) == _quant_dict(expected), vname


def _quant_dict(q):
    return None if q is None else q.to_dict()


# ------------------------------------------------------------------ hand-built cases
def _input(g, shape=(1, 4, 5, 6), dtype="int8", name="x", quant=None):
    return g.add_input(name, shape, dtype, quant)


@pytest.mark.parametrize("axis,expected", [(1, 3), (-3, 3), (2, 1), (-2, 1), (0, 0), (3, 2), (-1, 2)])
def test_concat_axis_is_remapped(axis, expected):
    g = Graph("concat")
    x = _input(g)
    same_c = axis % 4 != 1
    a = _qconv(g, x, 4, "a", k=3)
    b = _qconv(g, x, 4 if same_c else 6, "b")
    cat = g.add_node("concat", [a, b], dict(axis=axis), outputs=["cat"], name="cat").outputs[0]
    g.mark_output(_qconv(g, cat, 5, "y"))
    planned = _plan(g)
    _assert_equivalent(g, planned)
    node = next(n for n in planned.nodes if n.op == "concat")
    assert node.attrs["axis"] == expected
    assert node.inputs == ["a_nhwc", "b_nhwc"] and node.outputs == ["cat_nhwc"]
    assert planned.values["cat_nhwc"].shape == permute(g.values["cat"].shape, TO_NHWC)
    assert "cat" not in planned.values   # never needed in NCHW
    _assert_transposes_only_at_edges(planned)


@pytest.mark.parametrize("axis,expected", [(1, 3), (-3, 3), (3, 2)])
def test_split_axis_is_remapped(axis, expected):
    g = Graph("split")
    x = _input(g)
    c = _qconv(g, x, 6, "c", k=3)
    sizes = [2, 4] if axis % 4 == 1 else [1, 5]
    p, q = g.add_node("split", [c], dict(axis=axis, sizes=sizes), outputs=["p", "q"], name="split").outputs
    g.mark_output(_qconv(g, p, 3, "yp"), _qconv(g, q, 4, "yq"), q)
    planned = _plan(g)
    _assert_equivalent(g, planned)
    node = next(n for n in planned.nodes if n.op == "split")
    assert node.attrs["axis"] == expected and node.attrs["sizes"] == sizes
    assert node.inputs == ["c_nhwc"] and node.outputs == ["p_nhwc", "q_nhwc"]
    # `q` is also a graph output: its NCHW form comes back under its own name through a transpose
    t = _node_producing(planned, "q")
    assert t.op == "transpose" and t.inputs == ["q_nhwc"] and list(t.attrs["perm"]) == list(TO_NCHW)
    _assert_transposes_only_at_edges(planned)


def test_per_channel_requantize_stays_nchw_per_tensor_follows():
    g = Graph("requant")
    x = _input(g)
    c = _qconv(g, x, 4, "c", k=3)
    per_ch = g.add_node("requantize", [c], requant_attrs(4, 0.5, 1.5), outputs=["r_ch"], name="r_ch").outputs[0]
    per_t = g.add_node("requantize", [c], requant_attrs(1, 0.5, 1.5), outputs=["r_t"], name="r_t").outputs[0]
    g.mark_output(_qconv(g, per_ch, 3, "y_ch"), _qconv(g, per_t, 3, "y_t"))
    planned = _plan(g)
    _assert_equivalent(g, planned)
    nodes = {n.name: n for n in planned.nodes}
    # per-channel multipliers run along axis 1: the node gets the NCHW form of c (one transpose)
    assert nodes["r_ch"].inputs == ["c"] and nodes["r_ch"].outputs == ["r_ch"]
    t = _node_producing(planned, "c")
    assert t.op == "transpose" and t.inputs == ["c_nhwc"] and list(t.attrs["perm"]) == list(TO_NCHW)
    assert planned.values["r_ch"].shape == g.values["r_ch"].shape
    # ... and its consumer (a leader) converts back
    assert nodes["y_ch"].inputs[0] == "r_ch_nhwc"
    # per-tensor requantize is layout-free: it stays in the region
    assert nodes["r_t"].inputs == ["c_nhwc"] and nodes["r_t"].outputs == ["r_t_nhwc"]


def _qadd(g, a, b, name):
    m_a, m_b, n = ispec.add_multipliers(0.05, 0.08, 0.1)
    return g.add_node("qadd", [a, b], dict(a_zero_point=-3, b_zero_point=7, a_multiplier=m_a, b_multiplier=m_b,
                                           shift=n, y_zero_point=2, out_min=-128, out_max=127, out_dtype="int8"),
                      outputs=[name], name=name).outputs[0]


@pytest.mark.parametrize("b_shape", [(6,), (5, 6), (4, 1, 1)])
def test_qadd_broadcasting_a_lower_rank_operand_stays_nchw(b_shape):
    g = Graph("qadd")
    x = _input(g)
    b = _input(g, b_shape, name="b")
    a = _qconv(g, x, 4, "a", k=3)
    s = _qadd(g, a, b, "s")
    g.mark_output(_qconv(g, s, 3, "y"))
    planned = _plan(g)
    _assert_equivalent(g, planned)
    node = next(n for n in planned.nodes if n.op == "qadd")
    assert node.inputs == ["a", "b"] and node.outputs == ["s"]
    assert _node_producing(planned, "a").op == "transpose"


@pytest.mark.parametrize("b_shape", [(1, 4, 5, 6), (1, 4, 1, 1), (1, 1, 5, 1), (1,)])
def test_qadd_of_rank4_or_scalar_operands_is_exact(b_shape):
    """Equal shapes run NHWC; 4-D broadcasts and single elements may (transposing every operand the
    same way commutes with broadcasting): either way the outputs must not change."""
    g = Graph("qadd")
    x = _input(g)
    a = _qconv(g, x, 4, "a", k=3)
    b = _input(g, b_shape, name="b")
    g.mark_output(_qconv(g, _qadd(g, a, b, "s"), 3, "y"), _qadd(g, a, _qconv(g, x, 4, "a2"), "s2"))
    planned = _plan(g)
    _assert_equivalent(g, planned)
    nodes = {n.name: n for n in planned.nodes}
    assert nodes["s2"].inputs == ["a_nhwc", "a2_nhwc"]   # equal shapes: in the region
    _assert_transposes_only_at_edges(planned)


def test_output_produced_nhwc_gets_its_name_back():
    g = Graph("out")
    x = _input(g)
    c = _qconv(g, x, 8, "c", k=3)
    p = g.add_node("max_pool2d", [c], dict(kernel=[2, 2], strides=[2, 2]), outputs=["pool"], name="pool").outputs[0]
    g.mark_output(p, c)
    planned = _plan(g)
    _assert_equivalent(g, planned)
    for name in ("pool", "c"):
        t = _node_producing(planned, name)
        assert t.op == "transpose" and t.inputs == [f"{name}_nhwc"] and list(t.attrs["perm"]) == list(TO_NCHW)
        assert planned.values[name].shape == g.values[name].shape
    assert _node_producing(planned, "pool_nhwc").attrs["layout"] == "NHWC"
    assert _node_producing(planned, "c_nhwc").attrs["layout"] == "NHWC"
    # the input goes in through one transpose
    t = _node_producing(planned, "x_nhwc")
    assert t.op == "transpose" and t.inputs == ["x"] and list(t.attrs["perm"]) == list(TO_NHWC)
    assert len(_transposes(planned)) == 3


def test_one_transpose_per_value_for_several_nchw_consumers():
    g = Graph("fanout")
    x = _input(g)
    c = _qconv(g, x, 4, "c", k=3)
    f = g.add_node("flatten", [c], dict(axis=1), name="flat").outputs[0]
    r = g.add_node("reshape", [c], dict(shape=[1, 4, 30]), name="resh").outputs[0]
    d = g.add_node("max_pool2d", [c], dict(kernel=[2, 2]), outputs=["d"], name="pool").outputs[0]
    g.mark_output(f, r, d, c)
    planned = _plan(g)
    _assert_equivalent(g, planned)
    to_nchw = [t for t in _transposes(planned) if t.inputs == ["c_nhwc"]]
    assert len(to_nchw) == 1 and to_nchw[0].outputs == ["c"]
    _assert_transposes_only_at_edges(planned)


def test_followers_lut_clip_shuffle_and_pools_stay_in_region():
    g = Graph("followers")
    x = _input(g, (2, 6, 7, 6))
    c = _qconv(g, x, 6, "c", k=3)
    t = g.add_node("lut", [c, g.add_constant("table", codes(256))], name="lut").outputs[0]
    s = g.add_node("channel_shuffle", [t], dict(groups=3), name="shuf").outputs[0]
    p = g.add_node("max_pool2d", [s], dict(kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), name="mp").outputs[0]
    oh, ow = 2, 1   # max_pool2d: [2, 6, 4, 3]; 2x2 windows, stride 2
    m, n = ispec.average_multipliers(0.04, 0.03, RNG.integers(2, 7, (oh, ow)))
    a = g.add_node("qavg_pool2d", [p, g.add_constant("mm", m.reshape(oh, ow).astype(np.int32)),
                                   g.add_constant("sm", n.reshape(oh, ow).astype(np.int32))],
                   dict(kernel=[2, 2], strides=[2, 2], x_zero_point=1, y_zero_point=0, out_min=-128, out_max=127,
                        out_dtype="int8"), name="ap").outputs[0]
    gap = g.add_node("qglobal_avg_pool2d", [s], requant_attrs(1, 0.02, 0.05), name="gap").outputs[0]
    g.mark_output(a, gap)
    planned = _plan(g)
    _assert_equivalent(g, planned)
    layouts = {n.name: n.attrs.get("layout") for n in planned.nodes}
    assert layouts["shuf"] == layouts["mp"] == layouts["ap"] == layouts["gap"] == layouts["c"] == "NHWC"
    lut = next(n for n in planned.nodes if n.op == "lut")
    assert lut.inputs == ["c_nhwc", "table"]   # the table is looked up, not transposed
    _assert_transposes_only_at_edges(planned)


def test_followers_without_a_leader_upstream_stay_nchw():
    g = Graph("no_region")
    x = _input(g)
    p = g.add_node("max_pool2d", [x], dict(kernel=[2, 2]), name="mp").outputs[0]
    c = _qconv(g, p, 4, "c")
    g.mark_output(c)
    planned = _plan(g)
    _assert_equivalent(g, planned)
    nodes = {n.name: n for n in planned.nodes}
    assert nodes["mp"].attrs.get("layout", "NCHW") == "NCHW" and nodes["mp"].inputs == ["x"]
    assert nodes["c"].attrs["layout"] == "NHWC"


def test_quant_params_are_preserved_and_per_channel_axis_follows():
    g = Graph("quant")
    x = _input(g, quant=QuantParams(0.05, -3))
    c = _qconv(g, x, 4, "c", k=3)
    d = _qconv(g, c, 4, "d", k=1)
    e = _qconv(g, d, 4, "e", k=1)
    g.values[c].quant = QuantParams([0.1, 0.2, 0.3, 0.4], [0, 1, -1, 2], axis=1)
    g.values[d].quant = QuantParams(0.07, 5)
    g.values[e].quant = QuantParams([0.1, 0.2, 0.3, 0.4], 1, axis=-3, bits=7, signed=False,
                                   narrow_range=True)
    g.mark_output(e, c)
    planned = _plan(g)
    _assert_equivalent(g, planned)
    q = planned.values
    assert _quant_dict(q["x"].quant) == _quant_dict(g.values["x"].quant)
    assert q["x_nhwc"].quant.to_dict() == g.values["x"].quant.to_dict()   # per-tensor: unchanged
    assert q["c_nhwc"].quant.axis == 3
    np.testing.assert_array_equal(q["c_nhwc"].quant.scale, g.values[c].quant.scale)
    np.testing.assert_array_equal(q["c_nhwc"].quant.zero_point, g.values[c].quant.zero_point)
    assert q["d_nhwc"].quant.to_dict() == g.values[d].quant.to_dict()
    e_q = q["e_nhwc"].quant
    assert (e_q.axis, e_q.bits, e_q.signed, e_q.narrow_range) == (3, 7, False, True)
    # the NCHW forms (graph outputs, through transposes) keep the original params, axis included
    assert q["e"].quant.to_dict() == g.values[e].quant.to_dict()
    assert q["c"].quant.to_dict() == g.values[c].quant.to_dict()


@pytest.mark.parametrize("leaders", [set(), frozenset(), {"qlinear"}, {"max_pool2d_nonexistent"}])
def test_no_leader_in_graph_leaves_it_unchanged(leaders):
    g = Graph("untouched")
    x = _input(g)
    c = _qconv(g, x, 4, "c", k=3)
    p = g.add_node("max_pool2d", [c], dict(kernel=[2, 2]), name="mp").outputs[0]
    g.mark_output(p)
    planned = plan_layout(g, leaders)
    assert planned is not g
    assert [(n.op, n.inputs, n.outputs, n.attrs, n.name) for n in planned.nodes] == \
        [(n.op, n.inputs, n.outputs, n.attrs, n.name) for n in g.nodes]
    assert {k: (v.shape, v.dtype) for k, v in planned.values.items()} == \
        {k: (v.shape, v.dtype) for k, v in g.values.items()}
    assert planned.constants.keys() == g.constants.keys()
    _assert_equivalent(g, planned)
    # a copy: editing it leaves the source alone
    planned.nodes[0].attrs["layout"] = "NHWC"
    planned.constants["c_w"][...] = 0
    assert g.nodes[0].attrs.get("layout", "NCHW") == "NCHW" and g.constants["c_w"].any()


def test_other_leaders_max_pool2d():
    """Leaders are a parameter: a pool can lead a region too."""
    g = Graph("pool_leads")
    x = _input(g)
    p = g.add_node("max_pool2d", [x], dict(kernel=[2, 2], strides=[1, 1]), outputs=["p"], name="mp").outputs[0]
    s = g.add_node("channel_shuffle", [p], dict(groups=2), outputs=["s"], name="shuf").outputs[0]
    g.mark_output(g.add_node("flatten", [s], dict(axis=1), name="flat").outputs[0])
    planned = _plan(g, {"max_pool2d"})
    _assert_equivalent(g, planned)
    layouts = {n.name: n.attrs.get("layout") for n in planned.nodes}
    assert layouts["mp"] == layouts["shuf"] == "NHWC"
    _assert_transposes_only_at_edges(planned)


def _small_region_graph():
    g = Graph("twice")
    x = _input(g, (2, 3, 6, 5))
    c = _qconv(g, x, 6, "c", k=3)
    d = _qconv(g, c, 6, "d", k=3, group=6)
    s = g.add_node("channel_shuffle", [d], dict(groups=2), name="shuf").outputs[0]
    a = _qadd(g, s, c, "sum")
    g.mark_output(g.add_node("flatten", [a], dict(axis=1), name="flat").outputs[0], a)
    return g


def test_planning_a_planned_graph_keeps_outputs():
    g = _small_region_graph()
    once = _plan(g)
    _assert_equivalent(g, once)
    twice = _plan(once)
    _assert_equivalent(g, twice)
    assert all(n.attrs.get("layout") == "NHWC" for n in twice.nodes if n.op == "qconv2d")


def test_planning_a_graph_with_an_nhwc_leader_already():
    """A user-built NHWC qconv2d (input already channels-last) must not be transposed again."""
    g = Graph("pre_nhwc")
    x = _input(g, (1, 5, 6, 4))   # NHWC data
    w = g.add_constant("w", codes((8, 4, 3, 3)))
    c = g.add_node("qconv2d", [x, w], dict(pads=[1, 1, 1, 1], layout="NHWC", **requant_attrs(8)),
                   outputs=["c"], name="c").outputs[0]
    g.mark_output(c)
    planned = _plan(g)
    _assert_equivalent(g, planned)


def test_a_computed_weight_of_a_planned_conv_stays_nchw():
    """A qconv2d's weight may be another node's (NHWC-planned) output: only input 0 is channels-last,
    the weight gets its NCHW/OIHW form back."""
    rng = np.random.default_rng(0)

    def req(count):
        m, n = ispec.requant_multiplier(rng.uniform(0.002, 0.01, count))
        return dict(x_zero_point=0, multiplier=[int(v) for v in m], shift=[int(v) for v in n],
                    y_zero_point=0, out_min=-128, out_max=127, out_dtype="int8")

    g = Graph("computed_weight")
    x = g.add_input("x", (2, 4, 3, 3), "int8")
    x2 = g.add_input("x2", (1, 2, 6, 6), "int8")
    w0 = g.add_constant("w0", rng.integers(-5, 5, (2, 4, 1, 1)).astype(np.int8))
    y1 = g.add_node("qconv2d", [x, w0], req(2), name="c1").outputs[0]   # [2, 2, 3, 3]: c2's weight
    g.mark_output(g.add_node("qconv2d", [x2, y1], req(2), name="c2").outputs[0])
    feed = {"x": rng.integers(-128, 128, (2, 4, 3, 3)).astype(np.int8),
            "x2": rng.integers(-128, 128, (1, 2, 6, 6)).astype(np.int8)}
    planned = plan_layout(g, {"qconv2d"})
    c2 = next(n for n in planned.nodes if n.name == "c2")
    assert c2.attrs["layout"] == "NHWC" and c2.inputs[1] == y1
    ref, got = run_graph(g, feed), run_graph(planned, feed)
    assert all(np.array_equal(got[k], ref[k]) for k in ref)
