"""A small class-conditioned UNet written with torch.nn only (the ``scratch`` model family).

The design starts from seed 004's UNet, where time and class are injected by small fully-connected
blocks, and grows it with what seeds 001-003 found helps: a sinusoidal time embedding, GroupNorm
residual blocks that take the embedding as a per-channel scale and shift (FiLM), and optional
self-attention at chosen resolutions. Sizes are configurable; 28x28 and 32x32 inputs are the target.

It is a diffusers ``ModelMixin`` + ``ConfigMixin``: ``@register_to_config`` records the ``__init__``
arguments, so ``save_pretrained(folder)`` writes ``config.json`` + ``diffusion_pytorch_model.safetensors``
and ``ScratchUNet.from_pretrained(folder)`` rebuilds it, as for any diffusers model.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


def _check_sizes(image_size: int, base_channels: int, channel_mults: tuple[int, ...], attention: tuple[bool, ...],
                 groups: int) -> None:
    if len(attention) != len(channel_mults):
        raise ValueError("attention needs one flag per level in channel_mults")
    factor = 2 ** (len(channel_mults) - 1)
    if image_size % factor:
        raise ValueError(f"image_size {image_size} must be divisible by {factor} for {len(channel_mults)} levels")
    for mult in channel_mults:
        if (base_channels * mult) % groups:
            raise ValueError(f"channels {base_channels * mult} not divisible by groups {groups}")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps t (B,) -> (B, dim), as in the Transformer."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class FCBlock(nn.Module):
    """Seed 004's fully-connected block: Linear -> GELU -> Linear."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))

    def forward(self, x):
        return self.net(x)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> Conv, twice, with the embedding as a FiLM scale/shift in between."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stabler early training
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head-per-32-channels self-attention over the H*W positions, with a residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.heads = max(1, channels // 32)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        B, C, H, W = x.shape
        # (B, heads, H*W, C/heads) made contiguous: strided q/k/v send SDPA down its math path, contiguous ones to
        # flash attention for CPU (mnist's 5 attention layers on the guided 16-grid's 32 rows: 1.29x faster in
        # bfloat16, 1.07x in float32, in one interleaved A/B of 60 rounds)
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).contiguous()
        h = F.scaled_dot_product_attention(*qkv.unbind(1))
        return x + self.out(h.transpose(-1, -2).reshape(B, C, H, W))


class ScratchUNet(ModelMixin, ConfigMixin):
    """eps_theta(x_t, t, y): (B, C, H, W) in [-1,1], (B,) int timesteps, (B,) int labels -> (B, C, H, W).

    Labels run 0..num_classes-1, and ``num_classes`` itself means "no class" (the null label that
    classifier-free guidance trains with and samples against). ``num_classes=None``: unconditional.
    ``channel_mults`` gives one level each (every level but the last halves H and W), ``attention`` one
    flag per level (self-attention after that level's res blocks); channels are ``base_channels * mult``.
    """

    @register_to_config
    def __init__(self, image_size: int = 28, in_channels: int = 1, num_classes: int | None = 10,
                 base_channels: int = 32, channel_mults: tuple[int, ...] = (1, 2, 2), num_res_blocks: int = 2,
                 attention: tuple[bool, ...] = (False, True, True), dropout: float = 0.0, groups: int = 8):
        super().__init__()
        channel_mults, attention = tuple(channel_mults), tuple(attention)  # from_pretrained gives JSON lists
        _check_sizes(image_size, base_channels, channel_mults, attention, groups)
        config = self.config
        ch0 = config.base_channels
        emb_dim = 4 * ch0
        self.time_mlp = FCBlock(ch0, emb_dim)
        self.class_mlp = FCBlock(config.num_classes + 1, emb_dim) if config.num_classes else None
        self.stem = nn.Conv2d(config.in_channels, ch0, 3, padding=1)

        def level_blocks(c_in, c_out, attn, n):
            blocks = nn.ModuleList()
            for i in range(n):
                blocks.append(ResBlock(c_in if i == 0 else c_out, c_out, emb_dim, config.groups, config.dropout))
                if attn:
                    blocks.append(SelfAttention(c_out, config.groups))
            return blocks

        chans = [ch0 * m for m in channel_mults]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c = ch0
        for i, (c_out, attn) in enumerate(zip(chans, attention)):
            self.down.append(level_blocks(c, c_out, attn, config.num_res_blocks))
            last = i == len(chans) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c_out, c_out, 3, stride=2, padding=1))
            c = c_out
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, config.groups, config.dropout),
                                  SelfAttention(c, config.groups),
                                  ResBlock(c, c, emb_dim, config.groups, config.dropout)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, (c_skip, attn) in reversed(list(enumerate(zip(chans, attention)))):
            self.up.append(level_blocks(c + c_skip, c_skip, attn, config.num_res_blocks))
            self.upsample.append(nn.Identity() if i == 0 else
                                 nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                               nn.Conv2d(c_skip, c_skip, 3, padding=1)))
            c = c_skip
        self.head = nn.Sequential(nn.GroupNorm(config.groups, c), nn.SiLU(), nn.Conv2d(c, config.in_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def embed(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        if self.class_mlp is not None:
            if labels is None:
                labels = torch.full_like(t, self.config.num_classes)
            emb = emb + self.class_mlp(F.one_hot(labels, self.config.num_classes + 1).to(emb.dtype))
        return emb

    @staticmethod
    def _run(blocks, h, emb):
        for block in blocks:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(t, labels)
        h = self.stem(x)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            h = self._run(blocks, h, emb)
            skips.append(h)
            h = down(h)
        h = self._run(self.mid, h, emb)
        for blocks, up in zip(self.up, self.upsample):
            h = self._run(blocks, torch.cat([h, skips.pop()], dim=1), emb)
            h = up(h)
        return self.head(h)
