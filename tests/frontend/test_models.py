"""Model zoo: every model builds, runs forward and backward, switches mode, and
full-size parameter counts match torchvision's published numbers."""
import numpy as np
import pytest

from yuan.frontend import nn
from yuan.frontend.errors import ShapeError
from yuan.frontend.models import MODELS, ModelConfigError, get_model, list_models, model_arguments
from yuan.frontend.models.mobilenet_v2 import kept_downsamplings
from yuan.frontend.models.resnet import BasicBlock, Bottleneck
from yuan.frontend.models.small_cnn import pool_count
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor

NUM_CLASSES = 5

# (name, tiny kwargs, input shape): small widths and images keep the whole file to seconds.
TINY = [
    ("mlp", dict(in_features=1 * 8 * 8, hidden=(16,)), (2, 1, 8, 8)),
    ("small_cnn", dict(in_channels=1, width=0.5, input_size=28), (2, 1, 28, 28)),
    ("small_cnn", dict(in_channels=1, width=0.5, input_size=8), (2, 1, 8, 8)),
    ("resnet_small", dict(depth=8, in_channels=1, width=0.5), (2, 1, 28, 28)),
    ("resnet_small", dict(depth=14, in_channels=3, width=0.25, zero_init_residual=False), (2, 3, 32, 32)),
    ("resnet18", dict(width=0.25), (2, 3, 32, 32)),
    ("resnet34", dict(width=0.125, in_channels=1), (2, 1, 32, 32)),
    ("resnet50", dict(width=0.125), (2, 3, 32, 32)),
    ("mobilenet_v2", dict(width=0.25, input_size=32), (2, 3, 32, 32)),
    ("shufflenet_v2", dict(width=0.25), (2, 3, 32, 32)),
    ("shufflenet_v2", dict(width=0.5, in_channels=1), (2, 1, 32, 32)),
    ("shufflenet_v1", dict(groups=3, width=0.25), (2, 3, 32, 32)),
    ("shufflenet_v1", dict(groups=8, width=0.25), (2, 3, 32, 32)),
]
TINY_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(TINY)]


def build_tiny(name, kwargs):
    manual_seed(0)
    return get_model(name, num_classes=NUM_CLASSES, **kwargs)


def random_input(shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def count_parameters(model):
    return sum(int(np.prod(p.shape)) for p in model.parameters())


# ------------------------------------------------------------------ registry

def test_registry_names():
    expected = {"mlp", "small_cnn", "resnet_small", "resnet18", "resnet34", "resnet50",
                "mobilenet_v2", "shufflenet_v2", "shufflenet_v1"}
    assert set(list_models()) == expected == set(MODELS)
    assert list_models() == sorted(list_models())


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError) as err:
        get_model("resnet19")
    message = str(err.value)
    assert "resnet19" in message
    for name in list_models():
        assert name in message


def test_unknown_argument_names_model_and_argument():
    with pytest.raises(ModelConfigError) as err:
        get_model("resnet18", depth=18)
    message = str(err.value)
    assert "resnet18" in message and "depth" in message and "num_classes" in message
    # Catchable both as a config error (ValueError) and as a bad keyword (TypeError).
    assert isinstance(err.value, ValueError) and isinstance(err.value, TypeError)


def test_name_lookup_is_forgiving_about_case_and_dashes():
    assert isinstance(get_model("Small-CNN", input_size=8), nn.Module)


@pytest.mark.parametrize("name, kwargs, pattern", [
    ("resnet_small", dict(depth=9), "6n\\+2"),
    ("shufflenet_v1", dict(groups=5), "groups"),
    ("resnet18", dict(width=0), "width"),
    ("mobilenet_v2", dict(num_classes=-1), "num_classes"),
    ("small_cnn", dict(input_size=0), "input_size"),
    ("shufflenet_v1", dict(groups=1, width=0.1), "too small"),
])
def test_bad_argument_values(name, kwargs, pattern):
    with pytest.raises(ModelConfigError, match=pattern):
        get_model(name, **kwargs)


def test_every_factory_takes_num_classes():
    for name in list_models():
        assert "num_classes" in model_arguments(name)


# ------------------------------------------------------------------ shapes and parameter counts

@pytest.mark.parametrize("name, expected", [
    ("resnet18", 11_689_512),
    ("resnet34", 21_797_672),
    ("resnet50", 25_557_032),
    ("mobilenet_v2", 3_504_872),
    ("shufflenet_v2", 2_278_604),
])
def test_full_size_parameter_counts_match_torchvision(name, expected):
    assert count_parameters(get_model(name)) == expected


@pytest.mark.parametrize("width, expected", [(0.5, 1_366_792), (1.5, 3_503_624), (2.0, 7_393_996)])
def test_shufflenet_v2_width_tables_match_torchvision(width, expected):
    assert count_parameters(get_model("shufflenet_v2", width=width)) == expected


@pytest.mark.parametrize("name, keys", [
    ("resnet18", ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                  "layer2.0.downsample.1.bias", "layer4.1.bn2.weight", "fc.weight", "fc.bias"]),
    ("resnet50", ["layer1.0.conv3.weight", "layer1.0.downsample.0.weight", "layer4.2.bn3.weight"]),
    ("mobilenet_v2", ["features.0.0.weight", "features.0.1.running_mean", "features.1.conv.0.0.weight",
                      "features.1.conv.1.weight", "features.2.conv.0.0.weight", "features.2.conv.3.weight",
                      "features.18.0.weight", "classifier.1.weight"]),
    ("shufflenet_v2", ["conv1.0.weight", "stage2.0.branch1.0.weight", "stage2.0.branch2.6.bias",
                       "stage2.1.branch2.0.weight", "stage4.3.branch2.5.weight", "conv5.1.weight", "fc.weight"]),
])
def test_state_dict_keys_follow_torchvision(name, keys):
    state = get_model(name, width=0.5 if name != "shufflenet_v2" else 1.0).state_dict()
    missing = [k for k in keys if k not in state]
    assert not missing, missing


@pytest.mark.parametrize("name, kwargs, shape", TINY, ids=TINY_IDS)
def test_tiny_models_forward(name, kwargs, shape):
    model = build_tiny(name, kwargs)
    out = model(random_input(shape))
    assert out.shape == (shape[0], NUM_CLASSES)
    assert np.all(np.isfinite(out.data))


def test_small_cnn_pools_by_input_size():
    assert pool_count(28) == 2 and pool_count(32) == 2 and pool_count(8) == 1 and pool_count(4) == 0


def test_small_cnn_rejects_other_image_sizes():
    model = get_model("small_cnn", input_size=28)
    with pytest.raises(ShapeError, match="input_size=28"):
        model(random_input((1, 1, 32, 32)))


def test_mobilenet_v2_input_size_changes_strides_not_parameters():
    assert kept_downsamplings(224) == 5 and kept_downsamplings(32) == 3
    big = get_model("mobilenet_v2", width=0.25, input_size=224).state_dict()
    small = get_model("mobilenet_v2", width=0.25, input_size=32).state_dict()
    assert {k: v.shape for k, v in big.items()} == {k: v.shape for k, v in small.items()}


def test_resnet_small_depths():
    # depth 6n+2 -> n BasicBlocks per stage, three stages
    for depth in (8, 14, 20):
        model = get_model("resnet_small", depth=depth)
        blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
        assert len(blocks) == 3 * (depth - 2) // 6


# ------------------------------------------------------------------ structure quantization relies on

def test_no_module_instance_is_shared():
    for name, kwargs, _ in TINY:
        modules = [m for _, m in build_tiny(name, kwargs).named_modules()]
        assert len({id(m) for m in modules}) == len(modules), name


@pytest.mark.parametrize("name, kwargs, joins", [
    ("resnet18", dict(width=0.25), 8),
    ("resnet50", dict(width=0.125), 16),
    ("resnet_small", dict(depth=20), 9),
    ("mobilenet_v2", dict(width=1.0), 10),    # stride-1 blocks whose width does not change
    ("shufflenet_v1", dict(width=0.25), 13),  # 16 blocks less the 3 that downsample (those concat)
])
def test_each_residual_join_is_its_own_add_module(name, kwargs, joins):
    adds = [m for m in get_model(name, **kwargs).modules() if isinstance(m, nn.Add)]
    assert len(adds) == joins


def test_residual_blocks_end_in_add_then_their_own_relu():
    for block in get_model("resnet50", width=0.125).modules():
        if isinstance(block, (BasicBlock, Bottleneck)):
            relus = [m for m in block.children() if isinstance(m, nn.ReLU)]
            assert isinstance(block.add, nn.Add) and block.relu_out is relus[-1]
            assert len(relus) == (2 if isinstance(block, BasicBlock) else 3)


def test_shufflenet_v2_uses_concat_and_shuffle_modules():
    model = get_model("shufflenet_v2", width=0.5)
    concats = [m for m in model.modules() if isinstance(m, nn.Concat)]
    shuffles = [m for m in model.modules() if isinstance(m, nn.ChannelShuffle)]
    assert len(concats) == len(shuffles) == 16


def test_mobilenet_v2_depthwise_convs_have_one_group_per_channel():
    depthwise = [m for m in get_model("mobilenet_v2").modules()
                 if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17
    assert all(m.groups == m.in_channels == m.out_channels for m in depthwise)


# ------------------------------------------------------------------ init

def test_resnet_init_is_he_fan_out_and_unit_bn():
    model = get_model("resnet18")
    w = model.layer3[0].conv1.weight.data  # 256 x 128 x 3 x 3
    assert abs(w.std() - np.sqrt(2.0 / (256 * 9))) < 0.05 * np.sqrt(2.0 / (256 * 9))
    assert np.all(model.bn1.weight.data == 1) and np.all(model.bn1.bias.data == 0)


def test_zero_init_residual_zeroes_each_block_last_bn():
    model = get_model("resnet_small", depth=8)  # on by default for the small ResNets
    assert np.all(model.layer1[0].bn2.weight.data == 0)
    assert np.all(get_model("resnet18").layer1[0].bn2.weight.data == 1)
    assert np.all(get_model("resnet50", width=0.125, zero_init_residual=True).layer1[0].bn3.weight.data == 0)


def test_seeded_builds_are_identical():
    a, b = build_tiny("mobilenet_v2", dict(width=0.25)), build_tiny("mobilenet_v2", dict(width=0.25))
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=key)


# ------------------------------------------------------------------ modes and state

def test_train_eval_switches_every_module():
    model = build_tiny("shufflenet_v2", dict(width=0.25))
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_eval_mode_is_deterministic_and_keeps_running_stats():
    model = build_tiny("mobilenet_v2", dict(width=0.25, input_size=32))  # has dropout and BN
    x = random_input((2, 3, 32, 32))
    bn = model.features[0][1]
    model.train()
    before = bn.running_mean.data.copy()
    model(x)
    assert not np.allclose(bn.running_mean.data, before), "training forward should update BN statistics"
    model.eval()
    stats = bn.running_mean.data.copy()
    first, second = model(x).data, model(x).data
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(bn.running_mean.data, stats)


def test_state_dict_round_trip_reproduces_outputs():
    source = build_tiny("resnet_small", dict(depth=8, in_channels=1, width=0.5))
    manual_seed(123)
    target = get_model("resnet_small", depth=8, in_channels=1, width=0.5, num_classes=NUM_CLASSES)
    x = random_input((2, 1, 28, 28))
    source.train()
    source(x)  # move the running statistics off their defaults
    target.load_state_dict(source.state_dict())
    source.eval()
    target.eval()
    np.testing.assert_allclose(source(x).data, target(x).data, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ backward

@pytest.mark.parametrize("name, kwargs, shape", TINY, ids=TINY_IDS)
def test_backward_reaches_every_parameter(name, kwargs, shape):
    model = build_tiny(name, kwargs)
    out = model(random_input(shape))
    # A random projection (not a plain sum) so no gradient vanishes by symmetry.
    weights = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    (out * Tensor(weights)).sum().backward()
    for key, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {key}"
        assert param.grad.shape == param.shape, key
        assert np.all(np.isfinite(param.grad)), key
    assert any(np.any(p.grad != 0) for p in model.parameters())


def zero_biases(model):
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)) and module.bias is not None:
            module.bias.data[...] = 0.0


@pytest.mark.parametrize("name, kwargs, shape", TINY, ids=TINY_IDS)
def test_input_gradient_satisfies_euler_identity(name, kwargs, shape):
    """Without biases and with fresh BN statistics, an eval-mode ReLU net is positively
    homogeneous, f(a*x) = a*f(x), so Euler's theorem gives <df/dx, x> = f(x) exactly.
    Unlike finite differences this has no ReLU-kink noise, and it fails whenever backward
    drops or double-counts a path (e.g. a residual skip or a split branch)."""
    model = build_tiny(name, kwargs)
    model.eval()
    zero_biases(model)
    # small inputs keep ReLU6 below its cap, where it is homogeneous too
    x_data = (np.random.default_rng(0).standard_normal(shape) * 0.1).astype(np.float32)
    projection = Tensor(np.random.default_rng(1).standard_normal((shape[0], NUM_CLASSES)).astype(np.float32))
    x = Tensor(x_data, requires_grad=True)
    loss = (model(x) * projection).sum()
    loss.backward()
    euler = float((x.grad.astype(np.float64) * x_data).sum())
    np.testing.assert_allclose(euler, float(loss.data), rtol=1e-4, atol=1e-12)
