"""Observers and fake quants by name, so a QConfig (or a YAML config) can name them.

`register_observer(name)` / `register_fake_quant(name)` work as decorators or as
`register_observer(name, cls)`. A registered class is then usable anywhere a
name is accepted (`make_qconfig(act="my_observer")`, `FakeQuantize("my_observer")`)
without editing Yuan. Re-registering a name to another class needs override=True.
"""
from .errors import QuantError

_OBSERVERS = {}
_FAKE_QUANTS = {}


def _register(table, kind, name, cls, override):
    if not isinstance(name, str) or not name:
        raise QuantError(f"{kind} name must be a non-empty string, got {name!r}")
    if not callable(cls):
        raise QuantError(f"cannot register {kind} '{name}': {cls!r} is not a class or factory")
    existing = table.get(name)
    if existing is not None and existing is not cls and not override:
        raise QuantError(f"{kind} name '{name}' is already registered to "
                         f"{getattr(existing, '__qualname__', existing)!s}; pass override=True to replace it")
    table[name] = cls
    return cls


def _lookup(table, kind, name):
    try:
        return table[name]
    except (KeyError, TypeError):
        raise QuantError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}") from None


def register_observer(name, cls=None, override=False):
    """Register an Observer class (or factory) under `name`; usable as a decorator."""
    if cls is None:
        return lambda c: _register(_OBSERVERS, "observer", name, c, override)
    return _register(_OBSERVERS, "observer", name, cls, override)


def register_fake_quant(name, cls=None, override=False):
    """Register a fake-quant module class (or factory) under `name`; usable as a decorator."""
    if cls is None:
        return lambda c: _register(_FAKE_QUANTS, "fake quant", name, c, override)
    return _register(_FAKE_QUANTS, "fake quant", name, cls, override)


def get_observer(name):
    return _lookup(_OBSERVERS, "observer", name)


def get_fake_quant(name):
    return _lookup(_FAKE_QUANTS, "fake quant", name)


def list_observers():
    return sorted(_OBSERVERS)


def list_fake_quants():
    return sorted(_FAKE_QUANTS)


def _register_builtins():
    from . import fake_quant, observers
    for name, cls in [("minmax", observers.MinMaxObserver),
                      ("ema", observers.MovingAverageMinMaxObserver),
                      ("histogram", observers.HistogramObserver),
                      ("percentile", observers.PercentileObserver),
                      ("passive", observers.PassiveObserver)]:
        register_observer(name, cls)
    for name, cls in [("fake_quant", fake_quant.FakeQuantize),
                      ("lsq", fake_quant.LSQFakeQuantize),
                      ("tqt", fake_quant.TQTFakeQuantize)]:
        register_fake_quant(name, cls)


_register_builtins()
