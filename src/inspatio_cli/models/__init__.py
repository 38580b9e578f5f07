"""The networks, plain PyTorch with the official checkpoint key names: text encoder (umT5) and its
tokenizer, autoencoders, the causal DiT."""

from .dit import CausalWanDiT, DiTConfig, load_generator
from .t5 import T5Config, T5Encoder, load_t5
from .tae import TAEHV, TAEConfig, load_tae
from .tokenizer import PromptTokenizer, TokenizedPrompts, clean_prompt
from .vae import (StreamDecoder, StreamEncoder, StreamingAutoencoder, VAEConfig, WanVAE, frame_count, latent_count,
                  load_vae)

__all__ = ["CausalWanDiT", "DiTConfig", "PromptTokenizer", "T5Config", "T5Encoder", "TokenizedPrompts", "clean_prompt",
           "load_generator", "load_t5",
           "StreamDecoder", "StreamEncoder", "StreamingAutoencoder", "TAEConfig", "TAEHV", "VAEConfig", "WanVAE",
           "frame_count", "latent_count", "load_tae", "load_vae"]
