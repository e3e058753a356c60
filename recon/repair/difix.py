"""Difix3D+'s single-step fixer (nvidia/difix_ref: SD-Turbo fine-tuned to remove splatting
artefacts, with a reference view as condition), from a local folder or a hub id already in the
local cache, never downloaded.

Difix ships its own pipeline class (pipeline_difix.py beside model_index.json: a UNet whose
attention spans the input and the reference, a VAE with skip connections), so it loads with
trust_remote_code from that folder: run only a folder you trust. It is called as its authors do:
prompt "remove degradation", one step at timestep 199, no guidance, the reference being the
nearest training photo. Like the other diffusion repairers it gives no per-pixel confidence
(confidence 1 everywhere).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch

from recon.errors import ReconError
from recon.repair.diffusion import dtype_for, from_pil, load_error, load_prompt_embeds, model_size, to_pil
from recon.repair.views import RenderedView, Repair, SourceView


@dataclass
class DifixConfig:
    model: str | None = None
    """The Difix pipeline (nvidia/difix_ref): a local folder or a hub id in the local cache."""
    prompt: str = "remove degradation"
    """The prompt Difix was trained with."""
    prompt_embeds: str | None = None
    """A .pt file with precomputed prompt embeddings [1,77,D] (instead of `prompt`)."""
    timestep: int = 199
    """The single denoising step's timestep (Difix's 199)."""
    size: int = 512
    """The render (and reference) are resized to this many pixels on the longer side (multiple of 8)."""
    half: bool = False
    """float16 weights (on CUDA)."""


class DifixRepairer:
    """Difix3D+ single step with the nearest training photo as the reference view."""

    def __init__(self, cfg: DifixConfig, device: str = "cpu") -> None:
        from diffusers import DiffusionPipeline

        if cfg.model is None:
            raise ReconError("--config.repair.method difix needs --config.repair.difix.model "
                             "(nvidia/difix_ref: a local folder or a hub id in the local cache)")
        self.cfg, self.device = cfg, device
        self.dtype = dtype_for(cfg.half, device)
        try:
            self.pipe = DiffusionPipeline.from_pretrained(cfg.model, trust_remote_code=True, local_files_only=True,
                                                          torch_dtype=self.dtype)
        except (OSError, ValueError, EnvironmentError, ImportError, TypeError) as e:
            raise load_error("Difix pipeline", cfg.model, e) from None
        if "ref_image" not in inspect.signature(self.pipe.__call__).parameters:
            raise ReconError(f"'{cfg.model}' is not a Difix pipeline with a reference view (its pipeline "
                             f"{type(self.pipe).__name__} takes no ref_image): use nvidia/difix_ref")
        self.embeds = None if cfg.prompt_embeds is None else load_prompt_embeds(cfg.prompt_embeds, device, self.dtype)
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.name = f"Difix3D+ single step with a reference view ({cfg.model})"

    def repair(self, view: RenderedView, sources: list[SourceView]) -> Repair:
        if not sources:
            raise ValueError("Difix needs a reference view")
        h, w = view.render.shape[:2]
        size = model_size(w, h, self.cfg.size)
        args: dict = dict(image=to_pil(view.render, size), ref_image=to_pil(sources[0].photo, size),
                          num_inference_steps=1, timesteps=[self.cfg.timestep], guidance_scale=0.0, output_type="pil")
        if self.embeds is not None:
            args["prompt_embeds"] = self.embeds
        else:
            args["prompt"] = self.cfg.prompt
        with torch.no_grad():
            out = self.pipe(**args).images[0]
        return Repair(from_pil(out, (w, h)), np.ones((h, w), np.float32))
