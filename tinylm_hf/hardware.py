"""What the machine can do: bf16 support (AMX / AVX512-BF16 on CPUs), a measured matrix-multiply peak, and the
choices that follow from them (precision, attention). Training and inference both read it; it imports no Trainer."""

import functools
import time

import torch

from . import attention
from .errors import UserError

PRECISIONS = ("auto", "bf16", "fp32")  # what --precision takes, for training and for the demo


@functools.cache
def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    """True on CPUs that multiply bf16 in hardware (AMX or AVX512-BF16 units)."""
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: use auto, bf16 or fp32")


def bf16_is_fast() -> bool:
    """True where bf16 autocast pays: a CUDA GPU with bf16, or a CPU with AMX or AVX512-BF16 units."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "CPU")
    except OSError:
        model = "CPU"
    flags = cpu_flags()  # the units that set its speed: two "AMD EPYC"s differ 2x by them
    units = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx2", "AVX2"))
                  if flag in flags), None)
    return f"{model} ({torch.get_num_threads()} threads{', ' + units if units else ''})"


@functools.cache
def matmul_peak_flops(dtype: torch.dtype = torch.float32, n: int = 1024, seconds: float = 0.5) -> float:
    """The FLOP/s of square matrix multiplies on this device, measured (the denominator of MFU)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        n = 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b  # warm up
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def default_attention(compiled: bool) -> str:
    """The attention implementation that trains fastest here: on a CPU under torch.compile, the blocked causal
    attention of `tinylm_hf/attention.py`, which inductor fuses, beats the SDPA flash kernel (its CPU backward is
    slow); SDPA otherwise."""
    return attention.NAME if compiled and not torch.cuda.is_available() else "sdpa"
