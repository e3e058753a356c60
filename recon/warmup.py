"""The cpu backend's first run on a new install: compile its numba kernels in the background.

numba compiles the kernels on their first call and caches the machine code on disk (cache=True),
so only the first run of an install (a new venv, a CI run) pays for it: 9-10 s on 2 cores after
the serial kernels (instead of parfors; it was 30-50 s). `recon run` starts this module as a
child process when ingest begins (`start`), so the compilation runs while ingest and poses do
and says so; the first kernel call of the run waits for the child (`wait`) and then loads the
cache instead of compiling again. Measured choices (docs/experiments.md, Speed): a thread in
the same process would hold the GIL through numba's Python-heavy typing passes; numba's cache
prepared at install needs numba and torch in pip's isolated build environment, and a C++
extension a compiler at install time.

    python -m recon.warmup     # compile (or load) every float32 kernel a run uses
"""

from __future__ import annotations

from recon.compile_child import launch, wait  # noqa: F401  (wait: for callers of this module)


def _dispatchers() -> list:
    from recon import l1_ssim
    from recon.render import cpu_binning as B
    from recon.render import cpu_kernels as K
    from recon.render import cpu_projection as P

    return [K._fwd_tiles, K._bwd_tiles, K.pack, K.scatter_isects, P._project_range, P._project_bwd_range,
            B.sorted_tile_rects, B.touched_flags, B.tile_lists, l1_ssim._h_pass, l1_ssim._ht_pass]


def kernels_cached() -> bool:
    """Whether numba's disk cache holds float32 machine code of the current kernels for this CPU
    (numba's own index: the source's time stamp, the bytecode and the CPU's name and features).
    False where that cannot be told, which only costs a redundant background load."""
    try:
        for disp in _dispatchers():
            cache = disp._cache
            codegen = disp.targetctx.codegen()
            index = cache._cache_file._load_index()
            if not any(_float32_or_int(str(key[0])) and key == cache._index_key(key[0], codegen) for key in index):
                return False
        return True
    except Exception:  # numba's internals moved: assume not cached
        return False


def _float32_or_int(signature: str) -> bool:
    return "float32" in signature or "float" not in signature  # (a binning kernel takes no floats)


def start(log=print) -> bool:
    """Compile the kernels in a child process unless they are cached; → whether it started."""
    if kernels_cached() or not launch("recon.warmup"):
        return False
    log("compiling the CPU rasterizer in the background (the first run of this install only, ~10 s of one core)")
    return True


def compile_all() -> None:
    """One float32 render of every mode the pipeline uses, forward and backward, and the fused loss."""
    import torch

    from recon import l1_ssim
    from recon.render import rasterize

    g = torch.Generator().manual_seed(0)
    n = 64
    means = torch.randn(n, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.full((n, 3), 0.1)
    opac = torch.full((n,), 0.5)
    colors = torch.rand(n, 16, 3, generator=g)
    viewmat = torch.eye(4)[None]
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]])[None]
    for mode in ("RGB", "RGB+D"):
        leaves = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, colors)]
        out, alpha, _ = rasterize(*leaves, viewmat, K, 32, 32, sh_degree=3, render_mode=mode, backend="cpu")
        loss = l1_ssim.l1_ssim_loss(out[..., :3], torch.rand(1, 32, 32, 3, generator=g), 0.2)
        (loss + alpha.mean()).backward()


if __name__ == "__main__":
    compile_all()
