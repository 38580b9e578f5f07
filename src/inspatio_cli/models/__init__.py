"""The networks, plain PyTorch with the official checkpoint key names: text encoder (umT5) and its
tokenizer, autoencoders (and the chunked interface both implement), the causal DiT, and the blocks they
share."""

from ..lazy import lazy_exports

_EXPORTS = {
    "CausalWanDiT": "dit", "DiTConfig": "dit", "load_generator": "dit",
    "T5Config": "t5", "T5Encoder": "t5", "load_t5": "t5",
    "TAEConfig": "tae", "TAEHV": "tae", "load_tae": "tae",
    "PromptTokenizer": "tokenizer", "TokenizedPrompts": "tokenizer", "clean_prompt": "tokenizer",
    "RMSNorm": "layers",
    "StreamDecoder": "streaming", "StreamEncoder": "streaming", "StreamingAutoencoder": "streaming",
    "frame_count": "streaming", "latent_count": "streaming",
    "VAEConfig": "vae", "WanVAE": "vae", "load_vae": "vae",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
