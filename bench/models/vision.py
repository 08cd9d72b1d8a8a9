"""Vision-language policies (the Qwen2-VL family: Qwen2-VL, Qwen2.5-VL): prompts with images, and
the pixel inputs that travel with a rollout into every forward pass.

A chat prompt's user turn may be a transformers content list, ``[{"type": "image", "image": <PIL
image>}, {"type": "text", "text": ...}]`` (tasks/mathvista.py, tasks/dots.py). ``encode`` renders
it through the tokenizer's chat template, which writes ``<|vision_start|><|image_pad|><|vision_end|>``
per image, runs the model's image processor over the prompt's images (resized to multiples of
``patch_size x merge_size`` and cut into flattened patches) and repeats each ``<|image_pad|>`` once
per merged patch, ``prod(grid_thw) / merge_size^2`` times: what ``Qwen2VLProcessor`` does. The
processor class itself is not used: in transformers 5 it insists on a video processor, which needs
torchvision, and torchvision cannot be installed beside the CPU build of torch (nor is it needed
for images).

A rollout keeps its prompt's ``Images`` (flattened patches and each image's (t, h, w) grid); the
log-prob pass recomputes the vision features from them in every forward pass (``forward_kwargs``),
so gradients reach the vision tower when it is trainable. It is frozen by default
(``model.freeze_vision``), as verl's and the reference code's Qwen2.5-VL recipes train it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

IMAGE_TOKEN = "<|image_pad|>"  # the Qwen2-VL family's image placeholder, one per merged patch
VISION_FAMILIES = ("qwen2_vl", "qwen2_5_vl")  # model_type values whose inputs this module builds

__all__ = ["IMAGE_TOKEN", "Images", "check_reads_images", "encode", "forward_kwargs", "freeze_vision", "is_multimodal",
           "image_processor_at", "vision_token_ids", "vision_tower"]


@dataclass(frozen=True)
class Images:
    """The pixel inputs of one prompt's images (or of several prompts', concatenated in order)."""

    pixel_values: Tensor  # [patches, channels x temporal_patch x patch x patch] float32
    grid_thw: Tensor  # [images, 3] long: each image's (frames, rows, columns) in patches

    @staticmethod
    def cat(parts: Sequence[Optional[Images]]) -> Optional[Images]:
        """The images of several rows in row order (the order the model reads their placeholders);
        None when no row has any."""
        present = [p for p in parts if p is not None]
        if not present:
            return None
        return Images(pixel_values=torch.cat([p.pixel_values for p in present]),
                      grid_thw=torch.cat([p.grid_thw for p in present]))

    def to(self, device: torch.device | str) -> Images:
        return Images(pixel_values=self.pixel_values.to(device), grid_thw=self.grid_thw.to(device))


def is_multimodal(model: Any) -> bool:
    """Whether ``model`` reads images (its config has a vision tower)."""
    return getattr(model.config, "vision_config", None) is not None


def vision_tower(model: Any) -> Any:
    """The vision encoder module of a Qwen2-VL-family model (``model.model.visual``)."""
    inner = getattr(model, "model", model)
    tower = getattr(inner, "visual", None)
    if tower is None:
        raise NotImplementedError(f"{type(model).__name__} has no .model.visual: only the Qwen2-VL family "
                                  f"({', '.join(VISION_FAMILIES)}) is supported as a vision-language policy")
    return tower


def freeze_vision(model: Any) -> int:
    """Stop gradients into the vision tower; the number of parameters frozen."""
    params = list(vision_tower(model).parameters())
    for p in params:
        p.requires_grad_(False)
    return sum(p.numel() for p in params)


def image_processor_at(path: str, model: Any, local_files_only: bool = False) -> Any:
    """The image processor saved with the vision-language ``model`` at ``path``. Without
    torchvision transformers falls back to its PIL implementation of the same processor."""
    family = getattr(model.config, "model_type", "")
    if family not in VISION_FAMILIES:
        raise NotImplementedError(f"model type {family!r} is a vision-language model this harness cannot feed yet; "
                                  f"supported: {', '.join(VISION_FAMILIES)}")
    import warnings

    from transformers import AutoImageProcessor

    with warnings.catch_warnings():  # "falling back to the PIL backend" without torchvision: expected here
        warnings.simplefilter("ignore")
        try:
            return AutoImageProcessor.from_pretrained(path, local_files_only=local_files_only)
        except OSError as err:
            where = Path(path) / "preprocessor_config.json" if Path(path).is_dir() else path
            raise FileNotFoundError(f"no image processor for the vision-language model at {path} ({where} missing "
                                    f"or unreachable); save it beside the weights") from err


def prompt_images(chat: Sequence[dict]) -> list[Any]:
    """The images of a chat prompt, in the order they appear."""
    return [part["image"] for message in chat if not isinstance(message["content"], str)
            for part in message["content"] if part.get("type") == "image"]


def vision_token_ids(model: Any) -> list[int]:
    """The ids a vision-language policy must never sample (image and video placeholders and their
    brackets): a response holding one would be read as an image slot by the next forward pass. The
    engines suppress them, which moves no measurable probability for a trained model."""
    if not is_multimodal(model):
        return []
    names = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    return sorted({getattr(model.config, n) for n in names if getattr(model.config, n, None) is not None})


def check_reads_images(chats: Sequence[Sequence[dict]], image_processor: Optional[Any]) -> None:
    """One clear error when a prompt has an image and the policy has no image processor."""
    if image_processor is None and any(prompt_images(chat) for chat in chats):
        raise ValueError("a prompt has an image but the policy is a text model; use a vision-language model "
                         "(model=tiny_dots, or model.path=<a Qwen2-VL-family model>) or a text-only task")


def encode(tokenizer: Any, image_processor: Any, texts: list[str],
           chats: list[list[dict]]) -> tuple[list[str], list[Optional[Images]]]:
    """(texts with each image placeholder repeated once per merged patch, each prompt's Images or
    None). ``texts`` are the chat-template renderings of ``chats``."""
    out_texts, out_images = [], []
    for text, chat in zip(texts, chats):
        images = prompt_images(chat)
        if not images:
            out_texts.append(text)
            out_images.append(None)
            continue
        pieces = text.split(IMAGE_TOKEN)
        if len(pieces) - 1 != len(images):
            raise ValueError(f"the chat template wrote {len(pieces) - 1} {IMAGE_TOKEN} for {len(images)} images; "
                             "the tokenizer's chat_template must render each image part")
        batch = image_processor(images=images, return_tensors="pt")
        grid_thw = batch["image_grid_thw"].long()
        merged = (grid_thw.prod(-1) // image_processor.merge_size**2).tolist()
        expanded = pieces[0] + "".join(IMAGE_TOKEN * k + piece for k, piece in zip(merged, pieces[1:]))
        out_texts.append(expanded)
        out_images.append(Images(pixel_values=batch["pixel_values"].float(), grid_thw=grid_thw))
    return out_texts, out_images


def forward_kwargs(model: Any, input_ids_bt: Tensor, images: Optional[Images]) -> dict[str, Tensor]:
    """The pixel inputs of a Qwen2-VL-family forward pass over ``input_ids_bt`` (empty without
    images): patches in the model's dtype, grids, and the token types M-RoPE needs (1 on image
    placeholders)."""
    if images is None:
        return {}
    dtype = next(vision_tower(model).parameters()).dtype
    images = images.to(input_ids_bt.device)
    return {"pixel_values": images.pixel_values.to(dtype), "image_grid_thw": images.grid_thw,
            "mm_token_type_ids": (input_ids_bt == model.config.image_token_id).long()}
