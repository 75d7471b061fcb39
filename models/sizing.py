"""From a target N (matmul convention) or an explicit (n_layer, d_model) to a model shape.

Depth policy (one dial, so that every size of a sweep has the same kind of shape):
- d_model runs over multiples of 4 below 32 and of 8 above (8, 12, 16, ..., 28, 32, 40, 48, ...:
  tiny models are where compute-optimal sizes sit on small corpora, and width 8 -> 16 alone is
  a 2.9x step in N); for the GPT only widths where n_head = max(1, d_model // head_dim) divides
  d_model, so every head is between head_dim and 2 * head_dim wide (or d_model wide, below
  head_dim): 8, 12, ..., 28, 32, 40, 48, 64, 72, 80, 96, ... (multiples of 16 above 136);
- n_layer = max(min_layers, round(d_model / aspect)) (halves round up): width sets depth at the
  aspect ratio d_model / n_layer ~= aspect, except that tiny models keep `min_layers` layers and
  shrink in width only (a pure width-follows-depth rule made every compute-optimal model here a
  1-layer model; see shared/DESIGN.md);
- `model.n_head` (GPT) replaces the head width by a head count fixed at every size: only widths
  it divides are candidates (a sweep over heads at a given N; head count is a shape effect at
  widths of 8-64);
- Default aspect: 32 for GPT (2 x 64, 4 x 128, 9 x 288 at N ~ 1e7 with vocab 256), 128 for the
  LSTM (2 layers up to width ~300, 4 layers near N ~ 1e7), since LSTM LMs gain little from more
  than a few layers. Default head_dim 16, for tiny widths (1-8 heads up to width 128).

`solve_shape` picks, among these candidates, the one whose `matmul` count is closest to the target
in log space (ties go to the smaller model). matmul grows strictly with d_model along the family,
so the achieved N is monotone in the target. Resolution (vocab 256, measured by the tests): the
achieved N is within 1.35x of the target for 3e3..1e4 (width steps of 4 there), 1.4x for
1e4..1e5 and 1.33x for 1e5..1e7 (the depth steps 2 -> 3 -> 4 layers are the coarsest). The achieved
N is `param_counts(shape)["matmul"]`; the caller records it.
A target more than 2x below the smallest candidate raises ValueError naming `model.n_params`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from models.counting import param_counts
from models.gpt import GPTShape
from models.lstm import LSTMShape

__all__ = [
    "ARCHS",
    "DEFAULT_ASPECT",
    "DEFAULT_HEAD_DIM",
    "MAX_SOLVE_RATIO",
    "default_n_head",
    "make_shape",
    "smallest_n_params",
    "solve_shape",
]

ARCHS = ("gpt", "lstm")
DEFAULT_ASPECT = {"gpt": 32.0, "lstm": 128.0}  # d_model / n_layer
DEFAULT_HEAD_DIM = 16  # GPT attention head width the head count aims at
WIDTH_STEP = 8  # d_model is a multiple of this from FINE_WIDTH_BELOW up
FINE_WIDTH_BELOW = 32  # below this width, steps of 4
MAX_SOLVE_RATIO = 2.0  # solve_shape refuses targets further than this from every candidate


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"model.arch={arch!r} is unknown; use one of {list(ARCHS)}")


def default_n_head(d_model: int, head_dim: int = DEFAULT_HEAD_DIM) -> int:
    """max(1, d_model // head_dim), lowered to the nearest count that divides d_model (only
    explicit shapes need the lowering: the solver's widths are divisible already)."""
    n_head = max(1, d_model // head_dim)
    while d_model % n_head:
        n_head -= 1
    return n_head


def make_shape(
    arch: str,
    *,
    n_layer: int,
    d_model: int,
    vocab_size: int,
    context: int,
    tied: bool = False,
    n_head: int | None = None,
) -> GPTShape | LSTMShape:
    """An explicit shape. GPT: n_head defaults to `default_n_head(d_model)`; LSTM: no heads."""
    _check_arch(arch)
    if arch == "lstm":
        if n_head is not None:
            raise ValueError("model.n_head applies to the GPT only; unset it for model.arch=lstm")
        return LSTMShape(vocab_size, context, n_layer, d_model, tied)
    if n_head is None:
        n_head = default_n_head(d_model) if isinstance(d_model, int) and d_model > 0 else 1
    return GPTShape(vocab_size, context, n_layer, n_head, d_model, tied)


def _widths(arch: str, head_dim: int, n_head: int | None = None) -> Iterator[int]:
    """The policy's widths in increasing order (GPT: the head count must divide the width; a
    fixed `n_head` keeps only the widths it divides)."""
    d_model = 0
    while True:
        d_model += 4 if 8 <= d_model < FINE_WIDTH_BELOW else WIDTH_STEP
        heads = n_head if n_head is not None else max(1, d_model // head_dim)
        if arch == "lstm" or d_model % heads == 0:
            yield d_model


def _candidate(
    arch: str,
    d_model: int,
    *,
    vocab_size: int,
    context: int,
    tied: bool,
    min_layers: int,
    aspect: float,
    head_dim: int,
    n_head: int | None,
) -> GPTShape | LSTMShape:
    n_layer = max(min_layers, math.floor(d_model / aspect + 0.5))
    if arch == "gpt" and n_head is None:
        n_head = default_n_head(d_model, head_dim)
    return make_shape(
        arch,
        n_layer=n_layer,
        d_model=d_model,
        vocab_size=vocab_size,
        context=context,
        tied=tied,
        n_head=n_head,
    )


def solve_shape(
    arch: str,
    *,
    n_params: float,
    vocab_size: int,
    context: int,
    tied: bool = False,
    min_layers: int = 2,
    aspect: float | None = None,
    head_dim: int = DEFAULT_HEAD_DIM,
    n_head: int | None = None,
) -> GPTShape | LSTMShape:
    """The policy's shape whose matmul N (see models/counting.py) is closest to `n_params` in log
    space. `aspect=None` takes DEFAULT_ASPECT[arch]; `n_head` (GPT only) fixes the head count at
    every size instead of the head width, and only widths it divides are candidates. Raises
    ValueError, naming `model.n_params`, when the target is more than MAX_SOLVE_RATIO below the
    smallest shape the policy allows."""
    _check_arch(arch)
    if n_head is not None:
        if arch != "gpt":
            raise ValueError("model.n_head applies to the GPT only; unset it for model.arch=lstm")
        if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
            raise ValueError(
                f"model.n_head={n_head!r} must be an integer >= 1; e.g. model.n_head=2"
            )
    if (
        isinstance(n_params, bool)
        or not isinstance(n_params, (int, float))
        or not (math.isfinite(n_params) and n_params > 0)
    ):
        raise ValueError(f"model.n_params={n_params!r} must be a positive number, e.g. 1e5")
    if isinstance(min_layers, bool) or not isinstance(min_layers, int) or min_layers < 1:
        raise ValueError(f"model.min_layers={min_layers!r} must be an integer >= 1, e.g. 2")
    aspect = DEFAULT_ASPECT[arch] if aspect is None else aspect
    if not aspect > 0:
        raise ValueError(f"aspect={aspect!r} must be > 0 (d_model / n_layer), e.g. 32")
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 1:
        raise ValueError(f"head_dim={head_dim!r} must be an integer >= 1, e.g. 16")

    def build(d_model: int) -> GPTShape | LSTMShape:
        return _candidate(
            arch,
            d_model,
            vocab_size=vocab_size,
            context=context,
            tied=tied,
            min_layers=min_layers,
            aspect=aspect,
            head_dim=head_dim,
            n_head=n_head,
        )

    smallest = build(next(_widths(arch, head_dim, n_head)))
    n_min = param_counts(smallest)["matmul"]  # smallest_n_params, without its checks again
    if n_params < n_min / MAX_SOLVE_RATIO:
        raise ValueError(
            f"model.n_params={n_params:g} is too small: the smallest {arch} shape of the depth "
            f"policy (n_layer={smallest.n_layer}, d_model={smallest.d_model}, "
            f"vocab_size={vocab_size}) has N={n_min} matmul parameters (output head included); "
            f"set model.n_params >= {math.ceil(n_min / MAX_SOLVE_RATIO)}, lower model.min_layers, "
            "or use a smaller vocabulary"
        )
    # matmul grows strictly with d_model, so walk up until the target is bracketed.
    below = smallest
    widths = _widths(arch, head_dim, n_head)
    while param_counts(below)["matmul"] < n_params:
        above = build(next(widths))
        if param_counts(above)["matmul"] >= n_params:
            gap_below = math.log(n_params / param_counts(below)["matmul"])
            gap_above = math.log(param_counts(above)["matmul"] / n_params)
            return above if gap_above < gap_below else below
        below = above
    return below  # target at or below the smallest shape (within MAX_SOLVE_RATIO)


def smallest_n_params(
    arch: str,
    *,
    vocab_size: int,
    context: int,
    tied: bool = False,
    min_layers: int = 2,
    head_dim: int = DEFAULT_HEAD_DIM,
    n_head: int | None = None,
) -> int:
    """The matmul N of the smallest shape the depth policy builds (`solve_shape` rounds every
    target below it up to it): the floor of a sweep's sizes, for planners that propose them."""
    _check_arch(arch)
    shape = _candidate(arch, next(_widths(arch, head_dim, n_head)), vocab_size=vocab_size,
                       context=context, tied=tied, min_layers=min_layers,
                       aspect=DEFAULT_ASPECT[arch], head_dim=head_dim, n_head=n_head)  # fmt: skip
    return int(param_counts(shape)["matmul"])
