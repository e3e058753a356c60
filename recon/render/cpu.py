"""cpu backend (temporary: dense reference until the numba kernels land)."""

from .reference import rasterize_to_pixels_dense as rasterize_to_pixels_cpu  # noqa: F401
