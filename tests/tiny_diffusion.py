"""Tiny random diffusers models written to disk by the tests (nothing is downloaded): an SD 1.5
layout without tokenizer or text encoder (prompts come as precomputed embeddings), a
ControlNet-tile beside it, and a Difix stand-in (its own pipeline class in pipeline_difix.py,
loaded with trust_remote_code like nvidia/difix_ref). Their outputs are noise: plumbing only."""

from __future__ import annotations

from pathlib import Path

import torch

CROSS = 32  # the text embeddings' width


def _unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=CROSS,
                                norm_num_groups=2, attention_head_dim=2)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(4, 8), in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         norm_num_groups=2)


def write_sd15(folder: Path) -> Path:
    """A tiny SD 1.5 img2img folder (vae, unet, scheduler; no text encoder)."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    torch.manual_seed(0)
    pipe = StableDiffusionImg2ImgPipeline(vae=_vae(), text_encoder=None, tokenizer=None, unet=_unet(),
                                          scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def write_controlnet(folder: Path) -> Path:
    from diffusers import ControlNetModel

    torch.manual_seed(1)
    ControlNetModel(block_out_channels=(4, 8), layers_per_block=1, in_channels=4, cross_attention_dim=CROSS,
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), norm_num_groups=2,
                    attention_head_dim=2, conditioning_embedding_out_channels=(8, 16)).save_pretrained(folder)
    return folder


def write_embeds(path: Path) -> Path:
    torch.save({"prompt_embeds": torch.randn(1, 77, CROSS, generator=torch.Generator().manual_seed(2))}, path)
    return path


DIFIX_PIPELINE = '''
import numpy as np
import torch
from PIL import Image
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput


class DifixPipeline(DiffusionPipeline):
    """A stand-in with Difix's call signature: the input and the reference through a tiny VAE."""

    def __init__(self, vae):
        super().__init__()
        self.register_modules(vae=vae)

    def __call__(self, prompt=None, image=None, ref_image=None, num_inference_steps=1, timesteps=None,
                 guidance_scale=0.0, output_type="pil", prompt_embeds=None):
        assert num_inference_steps == 1 and timesteps == [199] and guidance_scale == 0.0
        assert (prompt is None) != (prompt_embeds is None)
        x = torch.stack([torch.from_numpy(np.asarray(i, np.float32) / 127.5 - 1).permute(2, 0, 1)
                         for i in (image, ref_image)])
        y = self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample[:1]
        y = ((y[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
        return ImagePipelineOutput(images=[Image.fromarray(y)])
'''


def write_difix(folder: Path) -> Path:
    """A folder laid out as nvidia/difix_ref is loaded: model_index.json naming the pipeline class
    in pipeline_difix.py beside it, and its models."""
    import json

    torch.manual_seed(3)
    _vae().save_pretrained(folder / "vae")
    (folder / "pipeline_difix.py").write_text(DIFIX_PIPELINE)
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": ["pipeline_difix", "DifixPipeline"], "_diffusers_version": "0.42.1",
        "vae": ["diffusers", "AutoencoderKL"]}))
    return folder
