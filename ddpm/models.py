"""One denoiser interface in front of every model family.

Every family is a ``Denoiser``: ``eps = denoiser(x_t, t, labels)`` with x_t (B, C, H, W) in [-1, 1],
t an int or (B,) int timesteps in [0, T-1], labels (B,) ints in [0, num_classes] where
``num_classes`` is the null ("no class") label, or None. Unconditional families have
``num_classes = None`` and ignore labels, so the sampling loop never asks which family it has.

Families (``FAMILIES``):
- ``scratch``: our torch.nn-only UNet (``ddpm.unet``).
- ``unet2d-class``: diffusers ``UNet2DModel`` with its native class embedding (an extra null class).
- ``unet2d-concat``: a learned class embedding broadcast over the image and concatenated to the
  input as extra channels of a ``UNet2DModel`` (seed 000's "ClassConditionedUnet").
- ``unet2d``: any unconditional ``UNet2DModel``, e.g. loaded with ``from_pretrained``.

A denoiser is made of *parts*, each a diffusers model (``ModelMixin`` + ``ConfigMixin``) that a checkpoint
keeps in a subfolder of its own (``Denoiser.part_classes``): ``unet/`` for every family, and
``class_embedding/`` for ``unet2d-concat``, whose class embedding lives outside its UNet.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin, UNet2DModel
from diffusers.configuration_utils import register_to_config
from torch import nn

from .unet import ScratchUNet


class Denoiser(nn.Module):
    """Base class: subclasses set ``family`` and ``part_classes`` (subfolder -> the diffusers model class
    kept there), and implement ``predict`` and ``new`` (a fresh model of a size); those with more parts
    than a ``unet`` also ``parts`` and ``from_parts``."""

    family: ClassVar[str]
    part_classes: ClassVar[dict[str, type[ModelMixin]]] = {"unet": UNet2DModel}
    # the state-dict key and axis of the per-class weights: one slice per class, the null class last
    # (``transfer_weights`` maps a trained model's classes onto another's through it)
    class_table: ClassVar[tuple[str, int] | None] = None
    num_classes: int | None
    image_size: int
    channels: int

    def forward(self, x: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not (isinstance(t, torch.Tensor) and t.shape == (x.shape[0],)):
            t = torch.as_tensor(t, device=x.device, dtype=torch.long).expand(x.shape[0])
        if self.num_classes is None:
            labels = None
        elif labels is None:
            labels = torch.full((x.shape[0],), self.num_classes, device=x.device, dtype=torch.long)
        else:
            labels = torch.as_tensor(labels, device=x.device, dtype=torch.long)
        return self.predict(x, t, labels)

    def predict(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def parts(self) -> dict[str, ModelMixin]:
        """The parts by subfolder name (the keys of ``part_classes``), each a diffusers model."""
        return {"unet": self.unet}

    @classmethod
    def from_parts(cls, parts: dict[str, ModelMixin]) -> Denoiser:
        return cls(parts["unet"])

    @classmethod
    def from_config(cls, config: dict) -> Denoiser:
        """Rebuild (random weights) from the ``"model"`` entry of a ``ddpm-checkpoint/1`` config.json."""
        return cls(UNet2DModel.from_config(config["unet"]))

    @classmethod
    def new(cls, *, image_size: int, channels: int, num_classes: int | None, widths: tuple[int, ...],
            attention: tuple[bool, ...], layers_per_block: int, class_emb_size: int, dropout: float) -> Denoiser:
        raise NotImplementedError

    @property
    def null_label(self) -> int | None:
        return self.num_classes

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ScratchDenoiser(Denoiser):
    family = "scratch"
    part_classes = {"unet": ScratchUNet}
    class_table = ("unet.class_mlp.net.0.weight", 1)  # the one-hot's Linear: a column per class

    def __init__(self, unet: ScratchUNet):
        super().__init__()
        self.unet = unet
        self.num_classes = unet.config.num_classes
        self.image_size = unet.config.image_size
        self.channels = unet.config.in_channels

    def predict(self, x, t, labels):
        return self.unet(x, t, labels)

    @classmethod
    def from_config(cls, config: dict) -> ScratchDenoiser:
        return cls(ScratchUNet(**config))

    @classmethod
    def new(cls, *, image_size, channels, num_classes, widths, attention, layers_per_block, class_emb_size,
            dropout) -> ScratchDenoiser:
        widths = _levels(image_size, tuple(widths))
        base = widths[0]
        if any(w % base for w in widths):
            raise ValueError(f"scratch family: widths must be multiples of the first, got {widths}")
        return cls(ScratchUNet(image_size=image_size, in_channels=channels, num_classes=num_classes,
                               base_channels=base, channel_mults=tuple(w // base for w in widths),
                               num_res_blocks=layers_per_block, attention=tuple(attention)[:len(widths)],
                               dropout=dropout, groups=min(8, base)))


class ClassEmbedDenoiser(Denoiser):
    family = "unet2d-class"
    class_table = ("unet.class_embedding.weight", 0)

    def __init__(self, unet: UNet2DModel):
        super().__init__()
        if not unet.config.num_class_embeds or unet.config.num_class_embeds < 2:
            raise ValueError("unet2d-class needs a UNet2DModel with num_class_embeds = classes + 1")
        self.unet = unet
        self.num_classes = unet.config.num_class_embeds - 1
        self.image_size = unet.config.sample_size
        self.channels = unet.config.in_channels

    def predict(self, x, t, labels):
        return self.unet(x, t, class_labels=labels).sample

    @classmethod
    def new(cls, *, image_size, channels, num_classes, widths, attention, layers_per_block, class_emb_size,
            dropout) -> ClassEmbedDenoiser:
        _need_classes(cls.family, num_classes)
        return cls(_diffusers_unet(image_size, channels, channels, widths, attention, layers_per_block,
                                   num_class_embeds=num_classes + 1))


class ClassEmbedding(ModelMixin, ConfigMixin):
    """A learned vector per class, labels (B,) ints in [0, num_classes] -> (B, embedding_dim); index
    ``num_classes`` is the null class. ``unet2d-concat``'s embedding, a part of its own (``class_embedding/``)."""

    @register_to_config
    def __init__(self, num_classes: int, embedding_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes + 1, embedding_dim))
        nn.init.normal_(self.weight)  # as nn.Embedding starts

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return F.embedding(labels, self.weight)


class ConcatEmbedDenoiser(Denoiser):
    family = "unet2d-concat"
    part_classes = {"unet": UNet2DModel, "class_embedding": ClassEmbedding}
    class_table = ("class_emb.weight", 0)

    def __init__(self, unet: UNet2DModel, class_emb: ClassEmbedding):
        super().__init__()
        self.class_emb_size = class_emb.config.embedding_dim
        self.channels = unet.config.in_channels - self.class_emb_size
        if self.channels < 1:
            raise ValueError("unet2d-concat: the UNet's in_channels must be image channels + class_emb_size")
        self.class_emb = class_emb
        self.unet = unet
        self.num_classes = class_emb.config.num_classes
        self.image_size = unet.config.sample_size

    def predict(self, x, t, labels):
        B, _, H, W = x.shape
        cond = self.class_emb(labels).to(x.dtype)[:, :, None, None].expand(B, self.class_emb_size, H, W)
        return self.unet(torch.cat([x, cond], dim=1), t).sample

    def parts(self) -> dict[str, ModelMixin]:
        return {"unet": self.unet, "class_embedding": self.class_emb}

    @classmethod
    def from_parts(cls, parts: dict[str, ModelMixin]) -> ConcatEmbedDenoiser:
        return cls(parts["unet"], parts["class_embedding"])

    @classmethod
    def from_config(cls, config: dict) -> ConcatEmbedDenoiser:
        return cls(UNet2DModel.from_config(config["unet"]), ClassEmbedding(config["num_classes"],
                                                                           config["class_emb_size"]))

    @classmethod
    def new(cls, *, image_size, channels, num_classes, widths, attention, layers_per_block, class_emb_size,
            dropout) -> ConcatEmbedDenoiser:
        _need_classes(cls.family, num_classes)
        unet = _diffusers_unet(image_size, channels + class_emb_size, channels, widths, attention, layers_per_block)
        return cls(unet, ClassEmbedding(num_classes, class_emb_size))


class UnconditionalDenoiser(Denoiser):
    family = "unet2d"
    num_classes = None

    def __init__(self, unet: UNet2DModel):
        super().__init__()
        if unet.config.num_class_embeds:
            raise ValueError("this UNet2DModel has a class embedding: load it as family unet2d-class")
        self.unet = unet
        self.image_size = unet.config.sample_size
        self.channels = unet.config.in_channels

    def predict(self, x, t, labels):
        return self.unet(x, t).sample

    @classmethod
    def new(cls, *, image_size, channels, num_classes, widths, attention, layers_per_block, class_emb_size,
            dropout) -> UnconditionalDenoiser:
        return cls(_diffusers_unet(image_size, channels, channels, widths, attention, layers_per_block))


def transfer_weights(source: Denoiser, target: Denoiser, parents: list[list[int]]) -> None:
    """Load ``source``'s weights into ``target``, a model of the same family and shape but other classes:
    target class i starts as the mean of source classes ``parents[i]`` (e.g. a subgroup from its
    category), the null class from the null class. Every other weight is copied as is."""
    if source.family != target.family or target.class_table is None:
        raise ValueError(f"cannot map classes from family {source.family!r} onto {target.family!r}")
    if len(parents) != target.num_classes or not all(parents):
        raise ValueError(f"need one non-empty list of source classes for each of the {target.num_classes} classes")
    if any(not 0 <= j < source.num_classes for js in parents for j in js):
        raise ValueError(f"source classes are 0..{source.num_classes - 1}, got {parents}")
    key, axis = target.class_table
    mine, theirs = target.state_dict(), source.state_dict()
    differ = [k for k in mine if k != key and (k not in theirs or theirs[k].shape != mine[k].shape)]
    if differ or set(theirs) != set(mine):
        raise ValueError(f"weights of other shapes (widths, attention or layers differ), e.g. {(differ or ['keys'])[0]}")
    table = theirs[key]
    rows = [table.index_select(axis, torch.tensor(js)).mean(axis, keepdim=True) for js in parents]
    rows.append(table.narrow(axis, source.num_classes, 1))  # the null class
    theirs = dict(theirs, **{key: torch.cat(rows, axis)})
    target.load_state_dict(theirs)


FAMILIES: dict[str, type[Denoiser]] = {c.family: c for c in
                                       (ScratchDenoiser, ClassEmbedDenoiser, ConcatEmbedDenoiser, UnconditionalDenoiser)}


def family_class(name: str) -> type[Denoiser]:
    """The denoiser class of a family name; ValueError naming the known ones."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}") from None


def from_config(family: str, config: dict) -> Denoiser:
    """Rebuild a denoiser (random weights) from its family name and a ``ddpm-checkpoint/1`` model config."""
    return family_class(family).from_config(config)


# -- building new models with sensible sizes ------------------------------------------------------
def _levels(image_size: int, widths: tuple[int, ...]) -> tuple[int, ...]:
    """Drop the deepest levels until every downsampling halves the image exactly."""
    while len(widths) > 1 and image_size % (2 ** (len(widths) - 1)):
        widths = widths[:-1]
    return widths


def _need_classes(family: str, num_classes: int | None) -> None:
    if not num_classes:
        raise ValueError(f"family {family} is class-conditional: give num_classes")


def _diffusers_unet(image_size, in_channels, out_channels, widths, attention, layers_per_block,
                    num_class_embeds=None) -> UNet2DModel:
    widths = _levels(image_size, tuple(widths))
    attention = tuple(attention)[:len(widths)]
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention))
    return UNet2DModel(sample_size=image_size, in_channels=in_channels, out_channels=out_channels,
                       block_out_channels=widths, down_block_types=down, up_block_types=up,
                       layers_per_block=layers_per_block, num_class_embeds=num_class_embeds,
                       norm_num_groups=min(8, widths[0]), attention_head_dim=min(32, widths[0]))


def build(family: str, *, image_size: int, channels: int, num_classes: int | None,
          widths: tuple[int, ...] = (32, 64, 64), attention: tuple[bool, ...] = (False, True, True),
          layers_per_block: int = 2, class_emb_size: int = 4, dropout: float = 0.0) -> Denoiser:
    """A new, randomly initialised denoiser of ``family`` sized by ``widths`` (channels per level)."""
    return family_class(family).new(image_size=image_size, channels=channels, num_classes=num_classes,
                                    widths=widths, attention=attention, layers_per_block=layers_per_block,
                                    class_emb_size=class_emb_size, dropout=dropout)
