"""What CPU a number was measured on, and that CPU's theoretical peak.

:func:`cpu_info` gathers the facts that decide CPU speed (model, vendor, cores, clock, the vector /
matrix ISA extensions, the torch / oneDNN / MKL builds, the threads in use) so that every benchmark
result says where it was measured (issue 20: a speed-up measured on an AMD EPYC is not what an Intel
Xeon gives). :func:`cpu_peak_gflops` turns them into a peak FLOP/s for a dtype, the denominator of the
CPU utilisation that ``videoformers bench`` prints.

Peak = cores x clock x FLOP per cycle per core, counting a fused multiply-add as 2 FLOP (the hardware
convention; the papers' "GFLOPs" of a model are multiply-adds, see :func:`videoformers.count_flops`).
FLOP per cycle per core, by ISA (``flops_per_cycle``; every figure is an assumption about the core's
execution units, written next to it):

* fp32, AVX-512 (``avx512f``): 64 = 2 FMA units x 16 lanes x 2, the Xeon Scalable Gold/Platinum
  layout (Xeons with one 512-bit FMA unit reach half). AMD Zen 4 (family 0x19 with AVX-512) executes
  512-bit FMAs on two 256-bit pipes: 32.
* fp32, AVX2 + FMA: 32 = 2 FMA units x 8 lanes x 2 (Haswell and later, Zen 2 / Zen 3); Zen 1 / Zen+
  (family 0x17, model < 0x30) have 128-bit FMA pipes: 16. AVX without FMA: 16; SSE only: 8.
* bf16 with AMX (``amx_bf16``): 1024 -- Intel's figure for a 4th-gen Xeon Scalable core ("2048 INT8 or
  1024 BF16 operations per cycle", operations = 2 per multiply-add; Intel AMX overview, quoted in
  Wikipedia "Advanced Matrix Extensions"). A GEMM-heavy model reaches a small fraction of it: the
  element-wise work around the GEMMs runs on the AVX-512 units.
* bf16 with ``avx512_bf16`` (no AMX): 2x the fp32 figure (VDPBF16PS: two bf16 products per fp32 lane).
* bf16 without either: the fp32 figure -- bf16 is converted and computed in fp32 (emulated).
* fp16: ``amx_fp16`` 1024, ``avx512_fp16`` 2x fp32, else the fp32 figure (PyTorch's CPU fp16 GEMM is in
  fact far slower than fp32 there; the peak is an upper bound, not a prediction).
* int8: ``amx_int8`` 2048 (Intel, as above); VNNI (``avx512_vnni`` / ``avx_vnni``) 4x the fp32 figure
  (VPDPBUSD: four 8-bit products per 32-bit lane); without VNNI: unknown (``None``).

Clock: the maximum (boost) clock where the OS exposes it (``cpufreq/cpuinfo_max_freq``, ``lscpu``'s
"CPU max MHz"), else the nominal clock (``@ 2.00GHz`` in the model name, else ``cpu MHz`` of
/proc/cpuinfo -- under a hypervisor that is the TSC frequency, and turbo can run above it, so a
fraction computed from it can exceed what the true clock would give). ``VIDEOFORMERS_CPU_GHZ`` sets
the clock by hand. No clock at all -> no peak (``None``): no fraction is printed rather than a made-up one.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess

import torch

__all__ = ["cpu_info", "cpu_peak_gflops", "flops_per_cycle", "ISA_FLAGS", "cpu_summary"]

# The flags that decide the CPU GEMM speed of fp32 / bf16 / fp16 / int8 (names as /proc/cpuinfo spells them).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _cpuinfo_fields() -> tuple[dict[str, str], int | None]:
    """The first processor's ``key: value`` lines of /proc/cpuinfo and the number of physical cores."""
    text = _read("/proc/cpuinfo") or ""
    first: dict[str, str] = {}
    cores: set[tuple[str, str]] = set()
    block: dict[str, str] = {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if block:
                if not first:
                    first = dict(block)
                if "core id" in block:
                    cores.add((block.get("physical id", "0"), block["core id"]))
                block = {}
            continue
        if ":" in line:
            k, v = line.split(":", 1)
            block[k.strip()] = v.strip()
    return first, (len(cores) or None)


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def _build_versions() -> dict[str, str | None]:
    """oneDNN and MKL versions from ``torch.__config__.show()`` (the only place torch states them)."""
    try:
        cfg = torch.__config__.show()
    except Exception:  # a build without the config string
        cfg = ""
    onednn = re.search(r"(?:MKL-DNN|oneDNN)\s+v?([\d.]+)(?:\s*\(Git Hash (\w+)\))?", cfg)
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", cfg)
    cap = re.search(r"CPU capability usage:\s*(\w+)", cfg)
    return {"onednn_version": onednn.group(1) if onednn else None,
            "onednn_git": onednn.group(2) if onednn and onednn.group(2) else None,
            "mkl_version": mkl.group(1) if mkl else None,
            "torch_cpu_capability": cap.group(1) if cap else None}


@functools.lru_cache(maxsize=1)
def _static_info() -> dict:
    fields, physical = _cpuinfo_fields()
    ls = _lscpu()
    flags = set((fields.get("flags") or ls.get("Flags", "")).split())
    model_name = fields.get("model name") or ls.get("Model name") or platform.processor() or platform.machine()
    vendor = fields.get("vendor_id") or ls.get("Vendor ID") or ""

    max_ghz = None
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if khz and khz.strip().isdigit():
        max_ghz, max_src = int(khz) / 1e6, "cpufreq cpuinfo_max_freq"
    elif ls.get("CPU max MHz"):
        try:
            max_ghz, max_src = float(ls["CPU max MHz"]) / 1e3, "lscpu CPU max MHz"
        except ValueError:
            pass
    base_ghz, base_src = None, None
    m = re.search(r"@\s*([\d.]+)\s*GHz", model_name)
    if m:
        base_ghz, base_src = float(m.group(1)), "model name"
    elif fields.get("cpu MHz"):
        try:
            base_ghz, base_src = float(fields["cpu MHz"]) / 1e3, "/proc/cpuinfo cpu MHz"
        except ValueError:
            pass

    def num(key: str) -> int | None:
        try:
            return int(fields[key])
        except (KeyError, ValueError):
            return None

    info = {
        "model_name": model_name,
        "vendor": vendor,
        "cpu_family": num("cpu family"),
        "cpu_model": num("model"),
        "physical_cores": physical or (int(ls["Core(s) per socket"]) * int(ls.get("Socket(s)", "1"))
                                       if ls.get("Core(s) per socket", "").isdigit() else None),
        "logical_cpus": os.cpu_count(),
        "hypervisor": "hypervisor" in flags or bool(ls.get("Hypervisor vendor")),
        "max_ghz": round(max_ghz, 3) if max_ghz else None,
        "base_ghz": round(base_ghz, 3) if base_ghz else None,
        "clock_source": (max_src if max_ghz else base_src) or None,
        "flags": {f: f in flags for f in ISA_FLAGS},
        "torch_version": torch.__version__,
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "mkl_available": bool(torch.backends.mkl.is_available()),
        **_build_versions(),
    }
    return info


def cpu_info() -> dict:
    """Facts about this CPU and the torch build (a fresh dict; JSON-serialisable).

    Keys: ``model_name``, ``vendor``, ``cpu_family``, ``cpu_model``, ``physical_cores``,
    ``logical_cpus``, ``hypervisor``, ``max_ghz`` / ``base_ghz`` (``None`` where not readable),
    ``clock_source``, ``clock_ghz`` (what the peak uses: ``VIDEOFORMERS_CPU_GHZ``, else max, else base),
    ``flags`` (``{flag: bool}`` for :data:`ISA_FLAGS`), ``isa`` (the widest fp32 vector ISA),
    ``torch_version``, ``mkldnn_available``, ``onednn_version``, ``mkl_available``, ``mkl_version``,
    ``torch_cpu_capability`` and ``torch_threads`` (``torch.get_num_threads()`` now).
    """
    info = dict(_static_info())
    info["flags"] = dict(info["flags"])
    env = os.environ.get("VIDEOFORMERS_CPU_GHZ", "").strip()
    if env:
        try:
            info["clock_ghz"], info["clock_source"] = float(env), "VIDEOFORMERS_CPU_GHZ"
        except ValueError as e:
            raise ValueError(f"VIDEOFORMERS_CPU_GHZ must be a number of GHz, got {env!r}") from e
    else:
        info["clock_ghz"] = info["max_ghz"] or info["base_ghz"]
    f = info["flags"]
    info["isa"] = ("avx512" if f.get("avx512f") else "avx2" if f.get("avx2") else "avx" if f.get("avx")
                   else "sse" if f.get("sse4_2") else "unknown")
    info["torch_threads"] = torch.get_num_threads()
    return info


def _fp32_per_cycle(flags: dict, vendor: str, family: int | None, model: int | None) -> tuple[float | None, str]:
    amd = "AMD" in (vendor or "").upper()
    if flags.get("avx512f"):
        if amd and family == 0x19:
            return 32.0, "AMD Zen 4: 512-bit FMAs on 2 x 256-bit pipes (8 lanes x 2 x 2)"
        return 64.0, "AVX-512, 2 FMA units x 16 lanes x 2 (1-FMA-unit Xeons: half)"
    if flags.get("avx2") and flags.get("fma"):
        if amd and family == 0x17 and model is not None and model < 0x30:
            return 16.0, "AMD Zen 1/Zen+: 2 x 128-bit FMA pipes"
        return 32.0, "AVX2, 2 FMA units x 8 lanes x 2"
    if flags.get("avx"):
        return 16.0, "AVX without FMA: 1 add + 1 mul x 8 lanes"
    if flags.get("sse4_2"):
        return 8.0, "SSE: 1 add + 1 mul x 4 lanes"
    return None, "unknown vector ISA"


def flops_per_cycle(dtype: str | torch.dtype, flags: dict, vendor: str = "", family: int | None = None,
                    model: int | None = None) -> tuple[float | None, str]:
    """(FLOP per cycle per core for ``dtype``, the assumption behind it); see the module docstring.

    ``dtype``: ``fp32|bf16|fp16|int8`` or a torch dtype; ``flags``: ``{flag: bool}`` (/proc/cpuinfo names).
    """
    from videoformers.ops.precision import parse_precision

    p = parse_precision(dtype)
    fp32, why = _fp32_per_cycle(flags, vendor, family, model)
    if p == "fp32":
        return fp32, why
    if p == "bf16":
        if flags.get("amx_bf16"):
            return 1024.0, "AMX-BF16 TMUL: Intel's 1024 BF16 operations per cycle per core"
        if flags.get("avx512_bf16") and fp32 is not None:
            return 2 * fp32, f"AVX512-BF16 (VDPBF16PS): 2 x fp32 ({why})"
        return fp32, f"no bf16 instructions: bf16 computed in fp32 ({why})"
    if p == "fp16":
        if flags.get("amx_fp16"):
            return 1024.0, "AMX-FP16 TMUL: 1024 FP16 operations per cycle per core"
        if flags.get("avx512_fp16") and fp32 is not None:
            return 2 * fp32, f"AVX512-FP16: 2 x fp32 ({why})"
        return fp32, f"no fp16 arithmetic: fp32 bound, PyTorch's CPU fp16 GEMM is far below it ({why})"
    # int8
    if flags.get("amx_int8"):
        return 2048.0, "AMX-INT8 TMUL: Intel's 2048 INT8 operations per cycle per core"
    if (flags.get("avx512_vnni") or flags.get("avx_vnni")) and fp32 is not None:
        return 4 * fp32, f"VNNI (VPDPBUSD): 4 x fp32 ({why})"
    return None, "int8 without VNNI: peak not modelled"


def cpu_peak_gflops(dtype: str | torch.dtype = "fp32", threads: int | None = None, info: dict | None = None
                    ) -> float | None:
    """Theoretical peak GFLOP/s (2 FLOP per multiply-add) of ``threads`` cores for ``dtype``.

    ``threads`` defaults to ``torch.get_num_threads()`` and is capped at the physical cores (SMT
    siblings share the FMA units). ``info`` defaults to :func:`cpu_info` (pass a dict to compute the
    peak of another machine: ``flags``, ``vendor``, ``cpu_family``, ``cpu_model``, ``clock_ghz``,
    ``physical_cores``). ``None`` when the clock or the ISA's rate is unknown.
    """
    info = cpu_info() if info is None else info
    ghz = info.get("clock_ghz", info.get("max_ghz") or info.get("base_ghz"))
    if not ghz:
        return None
    per_cycle, _ = flops_per_cycle(dtype, info.get("flags") or {}, info.get("vendor", ""),
                                   info.get("cpu_family"), info.get("cpu_model"))
    if per_cycle is None:
        return None
    n = torch.get_num_threads() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    cores = info.get("physical_cores")
    if cores:
        n = min(n, int(cores))
    return n * float(ghz) * per_cycle


def cpu_summary(info: dict | None = None) -> str:
    """One line naming the CPU, its ISA and the library versions: what every benchmark prints first."""
    c = info or cpu_info()
    f = c.get("flags") or {}
    isa = ", ".join(k for k in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f.get(k))
    return (f"{c.get('vendor')} {c.get('model_name')}, {c.get('physical_cores')} cores, {c.get('torch_threads')} "
            f"thread(s), ISA {isa or c.get('isa')}; torch {c.get('torch_version')}, oneDNN {c.get('onednn_version')}, "
            f"MKL {c.get('mkl_version')}")
