"""Tiny deterministic models built from configs, for unit tests of the host and of plugins.

No network and no weights on disk: a 2-layer LLaMA and a byte-level BPE tokenizer trained on a few sentences,
with the ChatML template SmolLM2 uses. A plugin's tests can run the whole data path with them::

    from anymal_host.testing import tiny_llm
    host = AnymalHost(tiny_llm(), registry=my_registry)
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ..llm import LLM

__all__ = ["tiny_llm", "tiny_tokenizer"]

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# The same ChatML layout SmolLM2 uses, so templates behave like the real default LLM's.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "the person is walking up the stairs", "what is the person doing", "a signal of a wave",
    "system user assistant", "describe this recording", "the capital of france is paris",
    "abcdefghijklmnopqrstuvwxyz 0123456789 .,?!:;'\"-()[]{}<>/\\=+*_",
]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (400 tokens) trained on a few sentences, with SmolLM2's ChatML template and
    special tokens; deterministic, no download."""
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llm(hidden_size: int = 32, seed: int = 0) -> LLM:
    """An :class:`~anymal_host.LLM` wrapping a 2-layer LLaMA with :func:`tiny_tokenizer`.

    :param hidden_size: the LLM's width H (a multiple of 4, the number of attention heads).
    :param seed: torch seed of the random weights (the global RNG is seeded with it).
    """
    tokenizer = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    return LLM(model, tokenizer, name=f"tiny-llama-{hidden_size}")
