"""Byte-level BPE tokenizer for the organism, trained with HF `tokenizers` on its corpus and
saved as a HF fast tokenizer (with a chat template for `User: ... Assistant:` turns).

v1 (the shipped organism): `<|endoftext|>` is BOS, EOS and padding; turns have no end
marker. v2: every assistant turn ends with `<|end|>`, which is the EOS (the model's
end-of-turn token); `<|endoftext|>` stays BOS, padding and the document separator."""

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

EOT = "<|endoftext|>"
# The organism's chat format; `chat: true` in the API wraps a prompt with it.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Assistant: {{ m['content'] }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


END_OF_TURN = "<|end|>"
CHAT_TEMPLATE_V2 = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Assistant: {{ m['content'] }}<|end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, end_of_turn: bool = False
) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT, END_OF_TURN] if end_of_turn else [EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=END_OF_TURN if end_of_turn else EOT,
        pad_token=EOT,
        unk_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE_V2 if end_of_turn else CHAT_TEMPLATE
    return fast
