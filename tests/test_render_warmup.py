"""recon.warmup: the background compilation of a new install's first run."""

from __future__ import annotations

from recon import warmup


def test_cached_after_the_kernels_ran_and_no_child_then():
    warmup.compile_all()  # loads (or compiles) every float32 kernel a run uses
    assert warmup.kernels_cached()
    logs: list[str] = []
    assert warmup.start(logs.append) is False and logs == []  # nothing to compile: no child
    assert warmup.wait() == 0.0
