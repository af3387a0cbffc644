"""Choosing onnxruntime execution providers, and saying plainly when a choice cannot be honoured.

onnxruntime falls back to CPU silently when a provider fails to load; edgerun checks the
providers the session really uses and reports them.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from functools import cache

logger = logging.getLogger(__name__)

CHOICES = ("auto", "cpu", "cuda", "tensorrt", "openvino")
PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
#: How to get the onnxruntime build that has a provider.
INSTALL_HINTS = {
    "cuda": "Install the GPU build: pip uninstall -y onnxruntime && pip install 'edgerun[gpu]', on a machine "
    "with an NVIDIA driver and CUDA/cuDNN libraries.",
    "openvino": "It comes with onnxruntime's OpenVINO build, which replaces the plain one: pip uninstall -y "
    "onnxruntime && pip install onnxruntime-openvino (x86-64 Linux or Windows).",
}
INSTALL_HINTS["tensorrt"] = INSTALL_HINTS["cuda"]
ORT_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


class ProviderError(RuntimeError):
    """A provider that was asked for cannot run here; the message names the cause."""


@dataclass(frozen=True)
class ProviderPlan:
    """What to ask onnxruntime for, and whether falling back to CPU is acceptable."""

    requested: str
    providers: list
    strict: bool  # True: an explicit GPU choice that must not fall back


def _ort_dist_folders() -> list[str]:
    """The ``onnxruntime*.dist-info``/``.egg-info`` folder names on ``sys.path``.

    A directory listing per path entry, not ``importlib.metadata``: that module parses every
    distribution's METADATA with the email package and cost 30-270 ms of each ``edgerun run``.
    """
    found = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found.extend(
            n for n in names if n.lower().startswith("onnxruntime") and n.endswith((".dist-info", ".egg-info"))
        )
    return found


def installed_ort_packages() -> list[str]:
    """The onnxruntime distributions installed in this environment, as ``"name version"``."""
    found = []
    for folder in _ort_dist_folders():
        stem = folder.rsplit(".", 1)[0]  # onnxruntime_gpu-1.18.0
        name, _, version = stem.partition("-")
        name = name.lower().replace("_", "-")
        if name in ORT_PACKAGES and f"{name} {version}" not in found:
            found.append(f"{name} {version}")
    return sorted(found, key=lambda item: ORT_PACKAGES.index(item.split()[0]))


@cache
def check_ort_install() -> list[str]:
    """Warn once when several onnxruntime packages share one environment: they install into the
    same ``onnxruntime`` module and shadow each other, so which one runs is an accident."""
    found = installed_ort_packages()
    if len(found) > 1:
        logger.warning(
            "several onnxruntime packages are installed side by side (%s); they overwrite each "
            "other's files, so the providers you get are unpredictable. Keep one: "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'edgerun[gpu]' (or [cpu])",
            ", ".join(found),
        )
    return found


@cache
def _note_cpu_fallback(reason: str) -> None:
    logger.debug("provider auto: %s; running on CPU", reason)


def plan_providers(
    choice: str, available: list[str], cuda_options: dict | None = None, threads: int | None = None
) -> ProviderPlan:
    """Turn ``auto|cpu|cuda|tensorrt|openvino`` into an onnxruntime provider list.

    ``openvino`` is OpenVINO's execution provider on the CPU (f32, ``threads`` threads): its
    kernels beat onnxruntime's on some networks (ResNet50 on a Zen 3: 0.93x the time) and lose on
    others (mnist_cnn: 1.6x). It comes with the ``onnxruntime-openvino`` build, which replaces
    the ``onnxruntime`` package.

    Raises:
        ProviderError: an unknown choice, or an explicit provider this onnxruntime lacks.
    """
    if choice not in CHOICES:
        raise ProviderError(f"unknown provider {choice!r}; choose one of: {', '.join(CHOICES)}")
    cuda = ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC", **(cuda_options or {})})
    if choice == "cpu":
        return ProviderPlan(choice, ["CPUExecutionProvider"], strict=False)
    if choice == "auto":
        if "CUDAExecutionProvider" in available:
            return ProviderPlan(choice, [cuda, "CPUExecutionProvider"], strict=False)
        _note_cpu_fallback(f"this onnxruntime has no CUDA provider (it has {', '.join(available)})")
        return ProviderPlan(choice, ["CPUExecutionProvider"], strict=False)
    wanted = PROVIDER_NAMES[choice]
    if wanted not in available:
        packages = ", ".join(installed_ort_packages()) or "no onnxruntime package"
        raise ProviderError(
            f"--provider {choice} needs {wanted}, but the installed onnxruntime ({packages}) offers "
            f"only {', '.join(available)}. {INSTALL_HINTS[choice]}"
        )
    if choice == "openvino":
        options = {"device_type": "CPU", "precision": "FP32"}
        if threads:
            options["num_of_threads"] = str(threads)
        return ProviderPlan(choice, [(wanted, options), "CPUExecutionProvider"], strict=True)
    providers = [wanted, cuda, "CPUExecutionProvider"] if choice == "tensorrt" else [cuda, "CPUExecutionProvider"]
    return ProviderPlan(choice, providers, strict=True)


def verify_providers(plan: ProviderPlan, in_use: list[str]) -> None:
    """Raise when an explicit choice silently fell back to CPU (libraries failed to load)."""
    wanted = PROVIDER_NAMES.get(plan.requested)
    if plan.strict and wanted not in in_use and plan.requested == "openvino":
        raise ProviderError(
            f"--provider openvino: onnxruntime has {wanted} but could not start it on the CPU and fell back "
            f"to {', '.join(in_use)}; check that the onnxruntime-openvino build matches this CPU and OS"
        )
    if plan.strict and wanted not in in_use:
        hint = os.environ.get("LD_LIBRARY_PATH", "(unset)")
        raise ProviderError(
            f"--provider {plan.requested}: onnxruntime has {wanted} but could not initialise it and "
            f"fell back to {', '.join(in_use)}. The CUDA or cuDNN libraries it needs are missing or "
            f"of the wrong version (LD_LIBRARY_PATH={hint}); see onnxruntime's CUDA requirements."
        )
