"""How much memory one training run needs, from its shape alone, and how much the device has.

The estimate is an upper bound on the training process's peak, in bytes, all in fp32 (bf16
autocast keeps some activations in half the bytes, so it only lowers the real figure):

    static       = 4 * P * 4          parameters, gradients, AdamW's exp_avg and exp_avg_sq
    activations  = B * T * (L * a + 4) * d * 4
                   per layer and token, a floats per unit of width: the GPT saves 17 for backward
                   (ln_1 input 1, qkv output 3, attention output 1, proj input 1, ln_2 input and
                   output 2, fc output 4, GELU output 4, residual 1; causal SDPA keeps no T x T
                   matrix) and backward's transient gradients add about 3: a = 20; the LSTM, its
                   4 gates, cell state, hidden output and layer input plus gradients: a = 10.
                   Both measured (peak RSS growth per token, tests/test_hardening_cli.py); the 4 d
                   are the embedding output and the final norm and head inputs
    logits       = 3 * B * T * V * 4  the logits, the log-softmax cross_entropy saves, and their
                   gradient during backward
    eval         = E * T * (3 V + 4 d) * 4   an evaluation batch of E = 32 sequences (no grad),
                   while the static state is held
    peak         = static + max(activations + logits, eval) + overhead

`overhead` is the framework's own footprint (torch's libraries, thread pools and allocator slack
on the CPU, the CUDA context on a GPU): 0.5 GiB. Checked against real runs on the CPU
(tests/test_hardening_cli.py, a fresh process per shape): the estimate was 1.04-1.6x the
process's whole peak RSS for GPTs of 2 x 32 to 4 x 256 at batch 8-32 (vocab 256 and 8192) and
LSTMs of 2 x 256, never below it; the part above the overhead was 0.6-0.9x the peak's growth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.errors import UserError

__all__ = [
    "EVAL_BATCH_SIZE",
    "MemoryEstimate",
    "estimate_memory",
    "available_memory",
    "check_memory",
    "fmt_bytes",
]

EVAL_BATCH_SIZE = 32  # sequences per evaluation forward (sweeps/run/evaluate.py reads it here)
OVERHEAD_BYTES = 512 * 2**20
_FLOAT = 4  # bytes: fp32, the upper bound under bf16 autocast too
_SAVED_PER_WIDTH = {"gpt": 20, "lstm": 10}  # floats saved for backward per layer, token, unit of d


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs at its peak, by part (see the module docstring for each formula)."""

    static: int  # parameters + gradients + AdamW's two moments
    activations: int  # saved for backward at the training batch and context
    logits: int  # B x T x V, fp32, three copies
    eval: int  # one evaluation batch's logits and activations (no grad)
    overhead: int

    @property
    def total(self) -> int:
        return self.static + max(self.activations + self.logits, self.eval) + self.overhead


def estimate_memory(shape: Any, *, n_params_total: int, batch_size: int) -> MemoryEstimate:
    """The peak memory of training `shape` (models.GPTShape or LSTMShape) at `batch_size`."""
    arch = "gpt" if hasattr(shape, "n_head") else "lstm"
    t, d, v, n_layer = shape.context, shape.d_model, shape.vocab_size, shape.n_layer
    per_token = (_SAVED_PER_WIDTH[arch] * n_layer + 4) * d
    return MemoryEstimate(
        static=4 * n_params_total * _FLOAT,
        activations=batch_size * t * per_token * _FLOAT,
        logits=3 * batch_size * t * v * _FLOAT,
        eval=EVAL_BATCH_SIZE * t * (3 * v + 4 * d) * _FLOAT,
        overhead=OVERHEAD_BYTES,
    )


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other Unixes: free pages (less than what could be reclaimed: errs on refusing)
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory(device: str) -> tuple[int | None, str]:
    """(bytes available now, where): free device memory on CUDA, MemAvailable on the CPU."""
    if device in ("cuda", "auto"):
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info()
            return int(free), f"free on {torch.cuda.get_device_name()}"
    return _meminfo_available(), "available RAM (MemAvailable)"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_memory(est: MemoryEstimate, *, device: str, what: str = "this run") -> None:
    """UserError naming what to lower when `est` exceeds the memory available right now."""
    available, where = available_memory(device)
    if available is None or est.total <= available:
        return
    biggest = max(
        ("model.n_params (parameters and AdamW state)", est.static),
        ("optim.batch_size or model.context (activations)", est.activations),
        ("optim.batch_size, model.context or data.vocab_size (logits)", est.logits),
        ("model.context or data.vocab_size (evaluation batch)", est.eval),
        key=lambda kv: kv[1],
    )
    raise UserError(
        "memory",
        f"{what} needs about {fmt_bytes(est.total)} at its peak (parameters and optimizer "
        f"{fmt_bytes(est.static)}, activations {fmt_bytes(est.activations)}, logits "
        f"{fmt_bytes(est.logits)}), more than the {fmt_bytes(available)} {where}",
        f"lower {biggest[0]}, the largest part",
    )
