"""Optimizers and LR schedules against independent float64 re-implementations of the
PyTorch update formulas and closed forms. Params are SimpleNamespace stand-ins."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from yuan.frontend.optim import SGD, Adam, AdamW, CosineAnnealingLR, LinearWarmup, MultiStepLR, StepLR

# f(x) = 0.5 * sum(A * x**2)  ->  grad = A * x
A = np.array([1.0, 3.0, 0.5, 2.0])
X0 = np.array([1.0, -2.0, 0.5, 3.0])


def make_param(x=X0):
    return SimpleNamespace(data=np.array(x, dtype=np.float32), grad=None)


def set_quadratic_grad(p):
    p.grad = (A * p.data).astype(np.float32)


def run(opt, p, steps):
    """Trajectory of p.data over `steps` optimizer steps (float64 copies)."""
    out = []
    for _ in range(steps):
        set_quadratic_grad(p)
        opt.step()
        out.append(p.data.astype(np.float64).copy())
    return np.array(out)


# ---- float64 references, written from the PyTorch docs' pseudo-code -------------------

def ref_sgd(steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    x, buf, out = X0.copy(), None, []
    for t in range(steps):
        g = A * x + weight_decay * x
        if momentum:
            buf = g.copy() if t == 0 else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        x = x - lr * g
        out.append(x.copy())
    return np.array(out)


def ref_adam(steps, lr, b1, b2, eps, weight_decay=0.0, amsgrad=False, decoupled=False):
    x = X0.copy()
    m, v, vmax, out = np.zeros(4), np.zeros(4), np.zeros(4), []
    for t in range(1, steps + 1):
        g = A * x
        if decoupled:
            x = x * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        if amsgrad:
            vmax = np.maximum(vmax, v)
            v_hat = vmax / (1 - b2 ** t)
        else:
            v_hat = v / (1 - b2 ** t)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(x.copy())
    return np.array(out)


# ---- SGD --------------------------------------------------------------------------------

def test_plain_sgd_matches_closed_form():
    p = make_param()
    traj = run(SGD([p], lr=0.1), p, 6)
    t = np.arange(1, 7)[:, None]
    np.testing.assert_allclose(traj, X0 * (1 - 0.1 * A) ** t, rtol=1e-6)


def test_sgd_weight_decay_matches_closed_form():
    p = make_param()
    traj = run(SGD([p], lr=0.1, weight_decay=0.2), p, 5)
    t = np.arange(1, 6)[:, None]
    np.testing.assert_allclose(traj, X0 * (1 - 0.1 * (A + 0.2)) ** t, rtol=1e-6)


@pytest.mark.parametrize("kw", [
    dict(momentum=0.9),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.8, dampening=0.3),
    dict(momentum=0.9, weight_decay=0.05, nesterov=True),
])
def test_sgd_momentum_matches_reference(kw):
    p = make_param()
    traj = run(SGD([p], lr=0.05, **kw), p, 8)
    np.testing.assert_allclose(traj, ref_sgd(8, 0.05, **kw), rtol=1e-5, atol=1e-6)


def test_nesterov_differs_from_plain_momentum():
    p1, p2 = make_param(), make_param()
    plain = run(SGD([p1], lr=0.05, momentum=0.9), p1, 3)
    nesterov = run(SGD([p2], lr=0.05, momentum=0.9, nesterov=True), p2, 3)
    # Nesterov's first step already uses g + m*g, so trajectories split immediately.
    assert np.abs(plain[0] - nesterov[0]).max() > 1e-3


def test_sgd_validates_options():
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([make_param()], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        SGD([make_param()], lr=-1.0)
    with pytest.raises(ValueError, match="required"):
        SGD([make_param()])
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)


# ---- Adam / AdamW -----------------------------------------------------------------------

def test_adam_first_step_moves_each_coordinate_by_lr():
    # m_hat = g and v_hat = g**2 on step 1, so the update is lr * g / (|g| + eps).
    p = make_param()
    run(Adam([p], lr=0.01), p, 1)
    np.testing.assert_allclose(p.data, X0 - 0.01 * np.sign(X0), rtol=1e-6)


@pytest.mark.parametrize("cls,kw,ref_kw", [
    (Adam, dict(), dict()),
    (Adam, dict(weight_decay=0.1), dict(weight_decay=0.1)),
    (Adam, dict(amsgrad=True, betas=(0.5, 0.9)), dict(amsgrad=True, b1=0.5, b2=0.9)),
    (AdamW, dict(weight_decay=0.1), dict(weight_decay=0.1, decoupled=True)),
    (AdamW, dict(weight_decay=0.1, amsgrad=True), dict(weight_decay=0.1, decoupled=True,
                                                       amsgrad=True)),
])
def test_adam_family_matches_reference(cls, kw, ref_kw):
    p = make_param()
    traj = run(cls([p], lr=0.05, **kw), p, 10)
    ref_kw = {"b1": 0.9, "b2": 0.999, **ref_kw}
    expected = ref_adam(10, 0.05, eps=1e-8, **ref_kw)
    np.testing.assert_allclose(traj, expected, rtol=1e-5, atol=1e-6)


def test_adamw_decay_differs_from_adam_l2():
    p1, p2 = make_param(), make_param()
    a = run(Adam([p1], lr=0.05, weight_decay=0.5), p1, 5)
    w = run(AdamW([p2], lr=0.05, weight_decay=0.5), p2, 5)
    assert np.abs(a[-1] - w[-1]).max() > 1e-3


def test_adamw_default_weight_decay():
    assert AdamW([make_param()]).param_groups[0]["weight_decay"] == 0.01


def test_adam_validates_betas():
    with pytest.raises(ValueError, match="betas"):
        Adam([make_param()], betas=(1.0, 0.999))


# ---- shared behaviour -------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda ps: SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: SGD(ps, lr=0.05, momentum=0.9),
    "sgd_nesterov": lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda ps: Adam(ps, lr=0.05),
    "adam_amsgrad": lambda ps: Adam(ps, lr=0.05, amsgrad=True),
    "adamw": lambda ps: AdamW(ps, lr=0.05, weight_decay=0.01),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_minimises_quadratic(name):
    p = make_param()
    opt = OPTIMIZERS[name]([p])
    sched = CosineAnnealingLR(opt, T_max=400)  # annealing lets Adam settle, not orbit
    for _ in range(400):
        set_quadratic_grad(p)
        opt.step()
        sched.step()
    assert np.abs(p.data).max() < 1e-3, p.data


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_updates_float32_in_place(name):
    p = make_param()
    buffer = p.data
    opt = OPTIMIZERS[name]([p])
    run(opt, p, 3)
    assert p.data is buffer and p.data.dtype == np.float32
    for state in opt.state.values():
        for v in state.values():
            if isinstance(v, np.ndarray):
                assert v.dtype == np.float32


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trip_resumes_identically(name):
    p = make_param()
    opt = OPTIMIZERS[name]([p])
    run(opt, p, 3)
    saved_state, saved_x = opt.state_dict(), p.data.copy()
    continued = run(opt, p, 4)

    p2 = make_param(saved_x)
    opt2 = OPTIMIZERS[name]([p2])
    opt2.load_state_dict(saved_state)
    resumed = run(opt2, p2, 4)
    np.testing.assert_array_equal(continued, resumed)


def test_state_dict_is_a_copy():
    p = make_param()
    opt = SGD([p], lr=0.1, momentum=0.9)
    run(opt, p, 2)
    sd = opt.state_dict()
    buf = sd["state"][0]["momentum_buffer"].copy()
    run(opt, p, 2)
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"], buf)
    assert sd["param_groups"][0]["params"] == [0]


def test_load_state_dict_rejects_mismatched_groups():
    opt = SGD([make_param(), make_param()], lr=0.1)
    other = SGD([make_param()], lr=0.1)
    with pytest.raises(ValueError, match="params"):
        other.load_state_dict(opt.state_dict())


def test_param_groups_have_their_own_options():
    p1, p2 = make_param(), make_param()
    opt = SGD([{"params": [p1]}, {"params": [p2], "lr": 0.01}], lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    set_quadratic_grad(p1)
    set_quadratic_grad(p2)
    opt.step()
    np.testing.assert_allclose(p1.data, X0 * (1 - 0.1 * A), rtol=1e-6)
    np.testing.assert_allclose(p2.data, X0 * (1 - 0.01 * A), rtol=1e-6)


def test_duplicate_params_rejected():
    p = make_param()
    with pytest.raises(ValueError, match="more than one"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


def test_zero_grad_and_params_without_grad_are_skipped():
    p, frozen = make_param(), make_param()
    opt = Adam([p, frozen], lr=0.1)
    set_quadratic_grad(p)
    opt.step()
    np.testing.assert_array_equal(frozen.data, X0.astype(np.float32))
    opt.zero_grad()
    assert p.grad is None and frozen.grad is None


def test_step_returns_closure_loss():
    p = make_param()
    opt = SGD([p], lr=0.1)

    def closure():
        set_quadratic_grad(p)
        return 42.0

    assert opt.step(closure) == 42.0
    np.testing.assert_allclose(p.data, X0 * (1 - 0.1 * A), rtol=1e-6)


def test_float64_grad_does_not_upcast_param():
    p = make_param()
    p.grad = A * X0  # float64 grad
    SGD([p], lr=0.1).step()
    assert p.data.dtype == np.float32


# ---- LR schedules -----------------------------------------------------------------------

def lr_sequence(sched, opt, steps):
    lrs = []
    for _ in range(steps):
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    return lrs


def two_group_sgd(lr=0.5):
    return SGD([{"params": [make_param()]}, {"params": [make_param()], "lr": lr / 10}], lr=lr)


def test_step_lr_sequence():
    opt = SGD([make_param()], lr=0.5)
    lrs = lr_sequence(StepLR(opt, step_size=3, gamma=0.1), opt, 10)
    assert lrs == pytest.approx([0.5 * 0.1 ** (t // 3) for t in range(10)], rel=1e-12)


def test_multistep_lr_sequence_per_group():
    opt = two_group_sgd()
    sched = MultiStepLR(opt, milestones=[5, 2], gamma=0.5)
    seen = []
    for _ in range(8):
        seen.extend(sched.get_last_lr())
        sched.step()
    factors = [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    assert seen == pytest.approx([lr * f for f in factors for lr in (0.5, 0.05)], rel=1e-12)


def test_cosine_sequence_matches_closed_form():
    opt = SGD([make_param()], lr=0.1)
    lrs = lr_sequence(CosineAnnealingLR(opt, T_max=10, eta_min=0.001), opt, 11)
    expected = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert lrs[-1] == pytest.approx(0.001)


def test_linear_warmup_then_constant():
    opt = SGD([make_param()], lr=0.2)
    lrs = lr_sequence(LinearWarmup(opt, warmup_steps=4, start_factor=0.25), opt, 7)
    assert lrs == pytest.approx([0.05, 0.0875, 0.125, 0.1625, 0.2, 0.2, 0.2], rel=1e-12)


def test_linear_warmup_wraps_cosine():
    opt = SGD([make_param()], lr=0.2)
    after = CosineAnnealingLR(opt, T_max=6)
    sched = LinearWarmup(opt, warmup_steps=3, start_factor=0.1, after=after)
    lrs = lr_sequence(sched, opt, 10)
    warm = [0.2 * (0.1 + 0.9 * t / 3) for t in range(3)]
    cosine = [0.2 * (1 + math.cos(math.pi * t / 6)) / 2 for t in range(7)]
    assert lrs == pytest.approx(warm + cosine, rel=1e-12, abs=1e-15)
    assert sched.last_epoch == 10 and after.last_epoch == 7


def test_linear_warmup_rejects_foreign_after():
    after = StepLR(SGD([make_param()], lr=0.1), step_size=2)
    with pytest.raises(ValueError, match="same optimizer"):
        LinearWarmup(SGD([make_param()], lr=0.1), 3, 0.1, after=after)


@pytest.mark.parametrize("build", [
    lambda opt: StepLR(opt, 2, 0.5),
    lambda opt: MultiStepLR(opt, [1, 4], 0.3),
    lambda opt: CosineAnnealingLR(opt, 7, 0.01),
    lambda opt: LinearWarmup(opt, 3, 0.1, after=CosineAnnealingLR(opt, 5)),
])
def test_schedule_state_dict_resumes(build):
    opt = two_group_sgd()
    sched = build(opt)
    for _ in range(2):
        sched.step()
    state = sched.state_dict()
    expected = lr_sequence(sched, opt, 6)

    opt2 = two_group_sgd()
    sched2 = build(opt2)
    sched2.load_state_dict(state)
    assert lr_sequence(sched2, opt2, 6) == expected


def test_schedule_drives_optimizer_update():
    p = make_param()
    opt = SGD([p], lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.1)
    sched.step()  # lr = 0.1
    set_quadratic_grad(p)
    opt.step()
    np.testing.assert_allclose(p.data, X0 * (1 - 0.1 * A), rtol=1e-6)
