"""Diffusion repairers through diffusers, from weights already on disk (a local folder, or a hub id
already in the local Hugging Face cache): never downloaded (`local_files_only=True`).

- img2img: SD 1.5's image-to-image pipeline on the pseudo view's render (noise to `strength`,
  then denoised), optionally with a LoRA.
- controlnet-tile: GaussianObject's recipe, SD 1.5 + ControlNet-tile (`control_v11f1e_sd15_tile`)
  conditioned on the render itself, img2img from the render; GaussianObject's LoRA (fine-tuned on
  its leave-one-out renders) only if one is given.

Prompts come as text (with the model's tokenizer and text encoder) or as precomputed embeddings
in a .pt file (then the model folder needs neither). Diffusion gives no per-pixel confidence:
the repaired view is a target everywhere (confidence 1), as GaussianObject trains on it. These
models want a GPU; on a CPU they run, slowly: about 190 CPU-seconds a 512-pixel view for img2img
with the defaults, estimated from SD 1.5-sized passes timed here (docs/benchmarks.md); their
effect on a splat is unmeasured (no weights on this disk).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recon.errors import ReconError
from recon.repair.views import RenderedView, Repair, SourceView

NEVER_DOWNLOADS = "recon never downloads weights: give a local folder, or a hub id already in the local cache"


@dataclass
class DiffusionConfig:
    model: str | None = None
    """SD 1.5 (a diffusers folder, or a hub id in the local cache, e.g.
    stable-diffusion-v1-5/stable-diffusion-v1-5): methods img2img and controlnet-tile."""
    controlnet: str | None = None
    """ControlNet-tile (e.g. lllyasviel/control_v11f1e_sd15_tile), folder or cached hub id: method
    controlnet-tile."""
    lora: str | None = None
    """Optional LoRA weights (a folder or .safetensors file), e.g. GaussianObject's (needs peft)."""
    prompt: str = ""
    """Text prompt (needs the model's tokenizer and text encoder)."""
    prompt_embeds: str | None = None
    """A .pt file with precomputed prompt embeddings [1,77,D] (instead of `prompt`)."""
    strength: float = 0.5
    """How much noise the render gets before it is denoised (0 = none, 1 = all)."""
    steps: int = 20
    """Denoising steps (img2img runs about steps × strength of them)."""
    guidance: float = 1.0
    """Classifier-free guidance scale (≤ 1: none, one UNet pass per step)."""
    size: int = 512
    """The render is resized to this many pixels on its longer side (a multiple of 8) for the model."""
    half: bool = False
    """float16 weights (on CUDA)."""
    seed: int = 0


def load_error(what: str, where: str, e: BaseException) -> ReconError:
    """One line: which weights could not be loaded from where, and why (first line of the cause)."""
    kind = "folder" if Path(where).exists() else "hub id (not in the local cache)"
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return ReconError(f"cannot load the {what} from {kind} '{where}': {first}. {NEVER_DOWNLOADS}")


def load_prompt_embeds(path: str, device: str, dtype: torch.dtype) -> torch.Tensor:
    """[1,T,D] prompt embeddings from a .pt file (a tensor, or {"prompt_embeds": tensor})."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise ReconError(f"cannot read prompt embeddings ({str(e).splitlines()[0][:160]})", Path(path)) from None
    t = data.get("prompt_embeds") if isinstance(data, dict) else data
    if not isinstance(t, torch.Tensor) or t.ndim not in (2, 3):
        raise ReconError("prompt embeddings must be a tensor [T,D] or [1,T,D] (or {'prompt_embeds': ...})", Path(path))
    return (t[None] if t.ndim == 2 else t).to(device, dtype)


def model_size(width: int, height: int, longer: int) -> tuple[int, int]:
    """(w, h) with the longer side `longer`, both multiples of 8 (the VAE's factor), at least 8."""
    s = longer / max(width, height)
    return max(8, int(round(width * s / 8)) * 8), max(8, int(round(height * s / 8)) * 8)


def to_pil(image: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).resize(size, Image.BICUBIC)


def from_pil(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize(size, Image.BICUBIC), dtype=np.float32) / 255


def dtype_for(half: bool, device: str) -> torch.dtype:
    if half and not device.startswith("cuda"):
        raise ReconError("--config.repair.diffusion.half needs a CUDA device (float16 on a CPU is not supported)")
    return torch.float16 if half else torch.float32


class StableDiffusionRepairer:
    """SD 1.5 img2img, with ControlNet-tile conditioned on the render for method controlnet-tile."""

    def __init__(self, cfg: DiffusionConfig, method: str, device: str = "cpu") -> None:
        from diffusers import ControlNetModel, StableDiffusionControlNetImg2ImgPipeline, StableDiffusionImg2ImgPipeline

        if cfg.model is None:
            raise ReconError(f"--config.repair.method {method} needs --config.repair.diffusion.model "
                             "(SD 1.5: a local folder or a hub id in the local cache)")
        self.cfg, self.method, self.device = cfg, method, device
        self.dtype = dtype_for(cfg.half, device)
        kwargs: dict = dict(local_files_only=True, torch_dtype=self.dtype, safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False)
        self.embeds = None
        if cfg.prompt_embeds is not None:
            self.embeds = load_prompt_embeds(cfg.prompt_embeds, device, self.dtype)
            kwargs.update(text_encoder=None, tokenizer=None)  # the folder need not have them
        if method == "controlnet-tile":
            if cfg.controlnet is None:
                raise ReconError("--config.repair.method controlnet-tile needs --config.repair.diffusion.controlnet "
                                 "(ControlNet-tile: a local folder or a hub id in the local cache)")
            try:
                kwargs["controlnet"] = ControlNetModel.from_pretrained(cfg.controlnet, local_files_only=True,
                                                                       torch_dtype=self.dtype)
            except (OSError, ValueError, EnvironmentError) as e:
                raise load_error("ControlNet", cfg.controlnet, e) from None
        cls = StableDiffusionControlNetImg2ImgPipeline if method == "controlnet-tile" else StableDiffusionImg2ImgPipeline
        try:
            self.pipe = cls.from_pretrained(cfg.model, **kwargs)
        except (OSError, ValueError, EnvironmentError, TypeError) as e:
            raise load_error("SD 1.5 pipeline", cfg.model, e) from None
        if cfg.lora is not None:
            try:
                self.pipe.load_lora_weights(cfg.lora, local_files_only=True)
            except (OSError, ValueError, ImportError) as e:
                raise load_error("LoRA", cfg.lora, e) from None
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.name = f"{'SD 1.5 + ControlNet-tile' if method == 'controlnet-tile' else 'SD 1.5 img2img'} ({cfg.model})"

    def repair(self, view: RenderedView, sources: list[SourceView]) -> Repair:
        cfg = self.cfg
        h, w = view.render.shape[:2]
        size = model_size(w, h, cfg.size)
        image = to_pil(view.render, size)
        args: dict = dict(image=image, strength=cfg.strength, num_inference_steps=cfg.steps,
                          guidance_scale=cfg.guidance, output_type="pil",
                          generator=torch.Generator(device="cpu").manual_seed(cfg.seed))
        if self.method == "controlnet-tile":
            args["control_image"] = image  # tile: the render conditions its own repair
        if self.embeds is not None:
            args["prompt_embeds"] = self.embeds
            if cfg.guidance > 1:
                args["negative_prompt_embeds"] = torch.zeros_like(self.embeds)
        else:
            args["prompt"] = cfg.prompt
        with torch.no_grad():
            out = self.pipe(**args).images[0]
        return Repair(from_pil(out, (w, h)), np.ones((h, w), np.float32))
