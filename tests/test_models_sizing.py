"""The depth policy of models/sizing.py: accuracy, monotonicity, policy invariants, errors."""

from __future__ import annotations

import math

import pytest

from models import GPTShape, LSTMShape, make_shape, param_counts, solve_shape
from models.sizing import MAX_SOLVE_RATIO

TARGETS = [10 ** (3.5 + 0.02 * i) for i in range(176)]  # log-spaced 3.2e3 .. 1e7
# Achieved N / target (or its inverse) stays below these, per range of the target (vocab 256):
# the policy's resolution, stated in models/sizing.py.
TOLERANCE = [(3e3, 1.35), (1e4, 1.4), (1e5, 1.33)]


def _solve(arch: str, target: float, tied: bool = False) -> GPTShape | LSTMShape:
    return solve_shape(arch, n_params=target, vocab_size=256, context=256, tied=tied)


def _tolerance(target: float) -> float:
    return [tol for start, tol in TOLERANCE if target >= start][-1]


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
@pytest.mark.parametrize("tied", [False, True])
def test_achieved_n_is_close_and_monotone(arch: str, tied: bool) -> None:
    achieved = []
    for target in TARGETS:
        n = param_counts(_solve(arch, target, tied))["matmul"]
        assert max(n / target, target / n) <= _tolerance(target), (arch, target, n)
        achieved.append(n)
    assert achieved == sorted(achieved)
    assert len(set(achieved)) > 20  # the range is really resolved, not a few sizes


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_choice_is_the_closest_policy_shape_in_log_space(arch: str) -> None:
    for target in [4e3, 2.5e4, 3e5, 7e6]:
        chosen = param_counts(_solve(arch, target))["matmul"]
        for d_model in _policy_widths(arch):
            other = _solve_like(arch, d_model)
            gap = abs(math.log(param_counts(other)["matmul"] / target))
            assert abs(math.log(chosen / target)) <= gap + 1e-12


def _policy_widths(arch: str) -> list[int]:
    # restated from the models/sizing.py docstring: multiples of 8; GPT heads of 16 must divide
    widths = [*range(8, 32, 4), *range(32, 800, 8)]
    return [d for d in widths if arch == "lstm" or d % max(1, d // 16) == 0]


def _solve_like(arch: str, d_model: int) -> GPTShape | LSTMShape:
    # the policy's candidate of this width (same rule as models/sizing.py, default aspect)
    aspect = {"gpt": 32, "lstm": 128}[arch]
    n_layer = max(2, math.floor(d_model / aspect + 0.5))
    return make_shape(arch, n_layer=n_layer, d_model=d_model, vocab_size=256, context=256)


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_policy_invariants(arch: str) -> None:
    for target in TARGETS:
        shape = _solve(arch, target)
        assert shape.d_model % 8 == 0 or (shape.d_model < 32 and shape.d_model % 4 == 0)
        assert shape.n_layer >= 2
        assert shape.context == 256 and shape.vocab_size == 256
        if isinstance(shape, GPTShape):
            assert shape.n_head >= 1 and shape.d_model % shape.n_head == 0
            assert shape.n_head == max(1, shape.d_model // 16)
            assert 16 <= shape.d_model // shape.n_head < 32 or shape.d_model < 16


def test_tiny_targets_give_narrow_two_layer_models() -> None:
    shape = _solve("gpt", 1e4)
    assert (shape.n_layer, shape.d_model) == (2, 16)
    assert _solve("gpt", 1e4) == shape  # deterministic


def test_min_layers_and_aspect_are_honoured() -> None:
    deep = solve_shape("gpt", n_params=1e5, vocab_size=256, context=256, min_layers=4)
    assert deep.n_layer >= 4
    wide = solve_shape("gpt", n_params=1e7, vocab_size=256, context=256, aspect=128.0)
    narrow = solve_shape("gpt", n_params=1e7, vocab_size=256, context=256, aspect=16.0)
    assert wide.n_layer < narrow.n_layer and wide.d_model > narrow.d_model


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_too_small_target_names_the_field_and_the_fix(arch: str) -> None:
    smallest = param_counts(_solve(arch, 1.0e3 * 3))["matmul"]
    assert _solve(arch, smallest / MAX_SOLVE_RATIO)  # still reachable
    with pytest.raises(ValueError, match=r"model\.n_params=1000 is too small") as err:
        _solve(arch, 1e3)
    message = str(err.value)
    assert f"N={smallest}" in message and "set model.n_params >=" in message


@pytest.mark.parametrize("bad", [0, -5.0, math.inf, math.nan, "1e5", True])
def test_non_positive_or_non_numeric_targets_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"model\.n_params"):
        solve_shape("gpt", n_params=bad, vocab_size=256, context=256)  # type: ignore[arg-type]


def test_unknown_arch_and_bad_explicit_shapes() -> None:
    with pytest.raises(ValueError, match=r"model\.arch='rnn'"):
        solve_shape("rnn", n_params=1e5, vocab_size=256, context=256)
    with pytest.raises(ValueError, match=r"model\.d_model=30 is not divisible by model\.n_head=4"):
        make_shape("gpt", n_layer=2, d_model=30, n_head=4, vocab_size=256, context=256)
    with pytest.raises(ValueError, match=r"model\.n_layer=0"):
        make_shape("gpt", n_layer=0, d_model=32, vocab_size=256, context=256)
    with pytest.raises(ValueError, match=r"model\.n_head applies to the GPT only"):
        make_shape("lstm", n_layer=2, d_model=32, n_head=2, vocab_size=256, context=256)


def test_make_shape_defaults_the_head_count() -> None:
    shape = make_shape("gpt", n_layer=2, d_model=56, vocab_size=256, context=256)
    assert isinstance(shape, GPTShape) and shape.n_head == 2  # 56 // 16 = 3 does not divide 56
    assert make_shape("lstm", n_layer=1, d_model=30, vocab_size=10, context=4, tied=True) == (
        LSTMShape(vocab_size=10, context=4, n_layer=1, d_model=30, tied=True)
    )


@pytest.mark.parametrize("n_head", [1, 2, 4])
def test_a_fixed_head_count_is_kept_at_every_target(n_head: int) -> None:
    # model.n_head with model.n_params: the head count of every solved shape, only widths it
    # divides (all of the ladder's for 1, 2, 4 heads: the resolution stays that of the default).
    for target in (4e3, 1e4, 3e4, 1e5, 1e6):
        shape = solve_shape("gpt", n_params=target, vocab_size=256, context=256, n_head=n_head)
        assert isinstance(shape, GPTShape) and shape.n_head == n_head
        assert shape.d_model % n_head == 0
        n = param_counts(shape)["matmul"]
        assert 1 / 1.5 < n / target < 1.5, (n_head, target, shape)
    # where the default already has that head count, the shape is the default's
    assert solve_shape("gpt", n_params=1e4, vocab_size=256, context=256, n_head=1) == _solve(
        "gpt", 1e4
    )


def test_a_fixed_head_count_changes_the_model_not_only_its_name() -> None:
    # Before the fix model.n_head was dropped when solving n_params: a 1-head model for every value.
    default = _solve("gpt", 1e4)
    assert isinstance(default, GPTShape) and default.n_head == 1
    two = solve_shape("gpt", n_params=1e4, vocab_size=256, context=256, n_head=2)
    assert isinstance(two, GPTShape) and (two.n_head, two.d_model) == (2, 16)
    # 3 heads: only widths divisible by 3 (12, 24, 48, ...), the closest in log N
    three = solve_shape("gpt", n_params=1e4, vocab_size=256, context=256, n_head=3)
    assert isinstance(three, GPTShape) and (three.n_head, three.d_model) == (3, 12)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_fixed_head_counts_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"model\.n_head=.* must be an integer >= 1"):
        solve_shape("gpt", n_params=1e4, vocab_size=256, context=256, n_head=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"model\.n_head applies to the GPT only"):
        solve_shape("lstm", n_params=1e4, vocab_size=256, context=256, n_head=2)


def test_smallest_n_params_is_the_floor_solve_shape_rounds_up_to() -> None:
    from models.counting import param_counts
    from models.sizing import smallest_n_params, solve_shape

    for arch, vocab, context in [("gpt", 256, 256), ("gpt", 64, 32), ("lstm", 256, 64)]:
        n_min = smallest_n_params(arch, vocab_size=vocab, context=context)
        shape = solve_shape(arch, n_params=n_min * 0.6, vocab_size=vocab, context=context)
        assert param_counts(shape)["matmul"] == n_min
