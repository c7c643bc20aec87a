"""The exercises of notebooks/lstm_language_model_forward_reverse.ipynb."""

import itertools
import math
import numbers
from collections.abc import Mapping, Sequence

import torch

from dlclassics.exercises import missing, verdict
from dlclassics.lm.batches import encode
from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.generate import next_words, sentence_probability
from dlclassics.lm.model import LanguageModel
from dlclassics.lm.words import words

# Relative: the learner's product of float32 probabilities against the package's sum of logs.
TOLERANCE = 1e-3


def _is_finite(answer: object) -> bool:
    """A finite real number, Python's or NumPy's, but not a bool (nor an int no float holds)."""
    if not isinstance(answer, numbers.Real) or isinstance(answer, bool):
        return False
    try:
        return math.isfinite(answer)
    except OverflowError:
        return False


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE)


def check_perplexity(
    answer: object, model: LanguageModel, vocab: Vocabulary, sentence: list[str]
) -> bool:
    """Exercise 2: the sentence's perplexity under the model, computed from `next_words`:
    exp of the mean negative log-likelihood of its words and of <EOS> after them."""
    hint = (
        "for each prefix (the empty one first) look up the probability `next_words` gives the "
        "word that follows, then <EOS> after the last word; perplexity = exp(-mean(log p))"
    )
    if missing(answer, "`ppl`, a number", hint):
        return False
    if not _is_finite(answer):
        return verdict([f"{answer!r} is not a finite number"], hint)
    scored = sentence_probability(model, vocab, sentence)
    if scored.unknown:
        return verdict(
            [f"{', '.join(scored.unknown)} not in the vocabulary: pick a sentence without them"],
            hint,
        )
    n = len(sentence) + 1  # every word, then <EOS>
    want = math.exp(-scored.log_probability_with_eos / n)
    wrong = {
        "that is the sentence's probability, not its perplexity": (
            scored.probability_with_eos,
            scored.probability,
        ),
        "<EOS> is left out: the model also predicts where the sentence ends": (
            math.exp(-scored.log_probability / (n - 1)),
        ),
        f"divided by {n - 1} words: there are {n} predictions, <EOS> the last": (
            math.exp(-scored.log_probability_with_eos / (n - 1)),
        ),
        "that is 2 to the mean bits: use natural logarithms and exp": (
            2 ** (-scored.log_probability_with_eos / n / math.log(2)),
        ),
    }
    problems = []
    if not _close(answer, want):
        said = [why for why, values in wrong.items() if any(_close(answer, v) for v in values)]
        problems = said[:1] or [f"{answer:.4g} is not the sentence's perplexity"]
    return verdict(problems, hint)


def entropies(
    model: LanguageModel, vocab: Vocabulary, given: list[str], temperatures: Sequence[float]
) -> dict[float, float]:
    """The entropy (nats) of the next word's distribution at each temperature T: the model's
    probabilities over the words `next_words` lists, raised to 1/T and renormalised."""
    probs = torch.tensor([p for _, p in next_words(model, vocab, given, len(vocab))])
    log_p = probs.double().log()
    result = {}
    for t in temperatures:
        q = torch.softmax(log_p / t, dim=0)
        result[t] = float(-torch.special.xlogy(q, q).sum())
    return result


def check_entropies(
    answer: object,
    model: LanguageModel,
    vocab: Vocabulary,
    given: list[str],
    temperatures: Sequence[float] = (0.5, 1.0, 2.0),
) -> bool:
    """Exercise 3: {T: entropy in nats} of the next word after `given`, at each temperature."""
    hint = (
        "q(w) is p(w) ** (1 / T) divided by its sum over the words; its entropy is "
        "-sum(q * log(q)), with natural logarithms"
    )
    if missing(answer, "`entropy`, a dict {temperature: entropy}", hint):
        return False
    if not (isinstance(answer, Mapping) and set(answer) == set(temperatures)):
        return verdict(
            [f"want a dict with one entropy per temperature in {list(temperatures)}"], hint
        )
    if not all(_is_finite(h) for h in answer.values()):
        return verdict(["every entropy must be a finite number"], hint)
    want = entropies(model, vocab, given, temperatures)
    inverse = entropies(model, vocab, given, [1 / t for t in temperatures])
    problems = []
    for t in temperatures:
        if _close(answer[t], want[t]):
            continue
        if _close(answer[t], inverse[1 / t]):
            problems.append(f"at T={t}: that is p ** T; the temperature divides, p ** (1 / T)")
        elif _close(answer[t], want[t] / math.log(2)):
            problems.append(f"at T={t}: that is in bits; use natural logarithms")
        else:
            problems.append(f"at T={t}: {answer[t]:.4g} is not the entropy")
    return verdict(problems, hint)


def pairs(sentence: str, direction: str) -> list[tuple[str, str]]:
    """The (input, target) word pairs a model of `direction` trains on for `sentence`, as
    `encode` makes its row: input <START> and the words, target the words and <EOS>."""
    ws = words(sentence)
    vocab = Vocabulary.build([ws], len(ws))  # the sentence's own words: none is <UNK>
    row = [vocab.words[i] for i in encode([ws], vocab, direction)[0]]
    return list(itertools.pairwise(row))


def check_reverse_pairs(answer: object, sentence: str) -> bool:
    """Exercise 1: the (input, target) pairs the reverse model trains on, in the order it reads."""
    hint = (
        "the reverse model reads the sentence last word first: reverse the words, then put "
        "<START> before them and <EOS> after, and pair each token with the next"
    )
    if missing(answer, "`reverse_pairs`, a list of (input, target) pairs", hint):
        return False
    if not (
        isinstance(answer, Sequence)
        and all(isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2 for p in answer)
    ):
        return verdict(["want a list of (input, target) pairs of words"], hint)
    got = [tuple(p) for p in answer]
    want = pairs(sentence, "reverse")
    problems = []
    if got == pairs(sentence, "forward"):
        problems.append("these are the forward model's pairs")
    elif len(got) != len(want):
        problems.append(f"{len(got)} pairs: one per word and one for <EOS> make {len(want)}")
    elif got != want:
        i = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        read = [a for a, _ in want[: i + 1]]
        problems.append(f"pair {i + 1}: after reading {' '.join(read)} it predicts {want[i][1]}")
        if got[i][1] in read[1:]:
            problems.append(f"its target {got[i][1]} is a word it has already read: a leak")
    return verdict(problems, hint)
