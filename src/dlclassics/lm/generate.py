"""Sampling sentences, sentence probabilities and next-word predictions.

The probabilities reported (`sentence_probability`, `next_words`) are the model's own: the softmax
over the whole vocabulary, the one perplexity measures. Only sampling restricts what may be said
(never <PAD>, <START> or, unless asked, <UNK>; <EOS> only where a sentence may end) and
renormalises over the rest.

Every function takes and returns words in natural reading order; a reverse model reads them last
word first, so for it the given words are the end of the sentence and it extends them leftwards.
"""

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from dlclassics.core.errors import InputError
from dlclassics.lm.batches import model_order
from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.model import LanguageModel
from dlclassics.lm.words import EOS, PAD, START, UNK


def _prefix_ids(model: LanguageModel, vocab: Vocabulary, given: list[str]) -> torch.Tensor:
    ids = [START, *vocab.encode(model_order(given, model.config.direction))]
    return torch.tensor([ids], device=next(model.parameters()).device)


NOT_WORDS = [PAD, START, UNK]  # not listed by `next_words`: never targets, or not a word


def _sampling_log_probs(logits: torch.Tensor, eos: bool, unk: bool) -> torch.Tensor:
    """Log-probabilities over what sampling may say next: the model's, renormalised without
    <PAD> and <START> (never targets), <UNK> unless `unk`, and <EOS> unless `eos`."""
    banned = [PAD, START]
    if not unk:
        banned.append(UNK)
    if not eos:
        banned.append(EOS)
    logits = logits.float().clone()
    logits[..., banned] = -math.inf
    return F.log_softmax(logits, dim=-1)


@torch.no_grad()
def generate(
    model: LanguageModel,
    vocab: Vocabulary,
    given: list[str],
    length: int,
    temperature: float,
    generator: torch.Generator | None = None,
    *,
    stop_at_eos: bool = False,
    allow_unk: bool = False,
) -> list[str]:
    """A sentence of `length` words that contains `given`, sampled from softmax(logits / T).

    T = 0 is greedy. As in the original, words are drawn until the length is reached: <EOS> is
    not drawn before. With `stop_at_eos`, <EOS> may be drawn and ends the sentence early. <UNK>
    is drawn only with `allow_unk`.
    """
    if not (0 <= temperature < math.inf):
        raise InputError(f"temperature must be a finite number >= 0, got {temperature}")
    if len(given) > length:
        raise InputError(f"the start has {len(given)} words, more than the length {length}")
    model.eval()
    produced = model_order(given, model.config.direction)
    logits, state = model(_prefix_ids(model, vocab, given))
    while len(produced) < length:
        scores = _sampling_log_probs(logits[0, -1], eos=stop_at_eos, unk=allow_unk)
        if temperature == 0:
            token = int(scores.argmax())
        else:
            # Shifted so the likeliest word scores 0, and in float64 so that T stays nonzero: a
            # tiny T then sends the others to -inf (the greedy limit) instead of making NaNs.
            probs = F.softmax((scores.double() - scores.max()) / temperature, dim=-1)
            token = int(torch.multinomial(probs.cpu(), 1, generator=generator))
        if token == EOS:
            break
        produced.append(vocab.words[token])
        logits, state = model(torch.tensor([[token]], device=logits.device), state)
    return model_order(produced, model.config.direction)


@dataclass
class SentenceProbability:
    sentence: str
    log_probability: float  # log p(w1..wn | <START>)
    log_probability_with_eos: float  # the same, times p(<EOS> | w1..wn)
    unknown: list[str]

    @property
    def probability(self) -> float:
        return math.exp(self.log_probability)

    @property
    def probability_with_eos(self) -> float:
        return math.exp(self.log_probability_with_eos)


@torch.no_grad()
def sentence_probability(
    model: LanguageModel, vocab: Vocabulary, words: list[str]
) -> SentenceProbability:
    model.eval()
    inputs = _prefix_ids(model, vocab, words)
    targets = [*inputs[0, 1:].tolist(), EOS]
    logits, _ = model(inputs)
    scores = F.log_softmax(logits[0].float(), dim=-1)
    per_word = scores[torch.arange(len(targets)), torch.tensor(targets)].tolist()
    return SentenceProbability(
        " ".join(words), sum(per_word[:-1]), sum(per_word), vocab.unknown(words)
    )


@torch.no_grad()
def next_words(
    model: LanguageModel, vocab: Vocabulary, words: list[str], k: int
) -> list[tuple[str, float]]:
    """The k likeliest next words (for a reverse model: the words just before), <EOS> among
    them, with the model's probabilities (not renormalised: those of `sentence_probability`)."""
    model.eval()
    logits, _ = model(_prefix_ids(model, vocab, words))
    probs = F.softmax(logits[0, -1].float(), dim=-1)
    probs[NOT_WORDS] = -1  # below every probability: never among the top k
    top = torch.topk(probs, min(k, len(vocab) - len(NOT_WORDS)))
    return [(vocab.words[i], float(p)) for p, i in zip(top.values, top.indices, strict=True)]
