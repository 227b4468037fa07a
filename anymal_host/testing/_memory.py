"""Resident memory of this process from Linux's ``/proc/self/status``, for the memory benchmark and tests:
the current resident set (``VmRSS``) and its peak (``VmHWM``), which :func:`reset_peak` restarts from now."""

from __future__ import annotations

__all__ = ["resident_mib", "peak_mib", "reset_peak"]


def _status_mib(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024  # reported in kB
    raise RuntimeError(f"/proc/self/status has no {field} line: these measurements need Linux")


def resident_mib() -> float:
    """The resident set now, in MiB."""
    return _status_mib("VmRSS:")


def peak_mib() -> float:
    """The largest resident set since the process started or since :func:`reset_peak`, in MiB."""
    return _status_mib("VmHWM:")


def reset_peak() -> None:
    """Restart the peak from the current resident set (``echo 5 > /proc/self/clear_refs``)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")
