"""A tiny randomly initialised CLIP for tests and demos: real checkpoints cannot be downloaded.

`make_tiny_clip` saves a small CLIP (with its own byte-level BPE tokenizer, in which the
product words of `TINY_WORDS` are single tokens) that `ClipImageEncoder` and
`export_clip_text_onnx` load offline. Needs torch and transformers (the `[ml]` extra).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from shoprank.indexing.encoders.clip_model import image_processor_class, import_ml

__all__ = ["TINY_WORDS", "make_tiny_clip"]

# Words the tiny tokenizer keeps whole; anything else falls back to byte-level pieces.
_TINY_VOCABULARY = """
a an the of and with for in on to by photo picture image product red blue green black
white grey gray yellow orange pink purple brown silver gold running shoes shoe sneakers
boots shirt t dress jacket jeans hat bag backpack watch laptop phone mouse keyboard
monitor printer toner cartridge cable charger headphones camera tablet speaker wireless
usb leather cotton men women kids small large
"""
TINY_WORDS = tuple(_TINY_VOCABULARY.split())


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes, in GPT-2/CLIP order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\xa1"), ord("\xac") + 1),
        *range(ord("\xae"), ord("\xff") + 1),
    ]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Greedy BPE: repeatedly merge the adjacent pair with the lowest rank."""
    while len(symbols) > 1:
        best: tuple[int, int] | None = None
        for i in range(len(symbols) - 1):
            rank = ranks.get((symbols[i], symbols[i + 1]))
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            break
        i = best[1]
        symbols = [*symbols[:i], symbols[i] + symbols[i + 1], *symbols[i + 2 :]]
    return symbols


def _tiny_bpe(words: Sequence[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style byte-level BPE vocabulary in which every word of `words` is one token.

    Layout as in CLIP: 256 byte symbols, the same with `</w>`, merge results, then
    `<|startoftext|>` and `<|endoftext|>`. Each word's merges are appended after all earlier
    ones and always join the leftmost pair left, so later words cannot split earlier ones.
    """
    alphabet = _byte_alphabet()
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    for symbol in alphabet:
        vocab[symbol + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols := _apply_merges(symbols, ranks)) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return vocab, merges


def make_tiny_clip(out_dir: Path, *, seed: int = 0) -> Path:
    """Save a small randomly initialised CLIP that loads offline; returns `out_dir`.

    Vision: 32x32 images, 8x8 patches, width 32, 2 layers, 2 heads. Text: a byte-level BPE
    tokenizer of about 600 tokens (common product words are single tokens), width 32,
    2 layers, 2 heads, 32 positions. Projection: 16 dims. The same seed gives the same weights.
    """
    torch, transformers = import_ml("building a tiny CLIP")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab, merges = _tiny_bpe(TINY_WORDS)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merge_lines = "".join(f"{left} {right}\n" for left, right in merges)
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + merge_lines, encoding="utf-8")
    positions = 32
    tokenizer = transformers.CLIPTokenizerFast.from_pretrained(
        str(out_dir), local_files_only=True, model_max_length=positions
    )
    tokenizer.save_pretrained(str(out_dir))

    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": positions,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "num_channels": 3,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.CLIPModel(config).eval()
    model.save_pretrained(str(out_dir))

    image_processor_class(transformers)(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(str(out_dir))
    return out_dir
