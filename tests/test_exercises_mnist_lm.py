"""The MNIST and language-model notebooks' exercises: each solution passes, an unfilled answer
(None) fails without raising, and a typical wrong answer fails with a reason."""

import math

import numpy as np
import pytest
import torch

from dlclassics.exercises import lm, mnist
from dlclassics.lm.corpus import Vocabulary
from dlclassics.lm.generate import next_words
from dlclassics.lm.model import LanguageModel, ModelConfig
from dlclassics.lm.words import words


def said(capsys) -> str:
    return capsys.readouterr().out


# MNIST


def test_mlp_parameters(capsys):
    assert mnist.check_mlp_parameters(784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10)
    assert said(capsys) == "pass\n"
    assert not mnist.check_mlp_parameters(None)
    assert "fill in" in said(capsys)
    assert not mnist.check_mlp_parameters(784 * 200 + 200 * 200 + 200 * 10)  # no biases
    assert "not the biases" in said(capsys)
    assert not mnist.check_mlp_parameters("199210")
    assert "not an integer" in said(capsys)


def test_features_of_three_stages(capsys):
    assert mnist.check_features(5 * 3 * 3)  # 28 -> 14 -> 7 -> 3, 5 channels
    assert said(capsys) == "pass\n"
    assert mnist.check_features(245, stages=2)
    said(capsys)
    assert not mnist.check_features(None)
    assert "fill in" in said(capsys)
    assert not mnist.check_features(5 * 4 * 4)  # 3.5 rounded up
    assert "rounds a half up" in said(capsys)
    assert not mnist.check_features(9)  # one channel
    assert "5 channels" in said(capsys)


# Rows: the true class. Cell (0, 1) is the largest single cell, but 2 and 3 swap more images
# either way round: 4 + 4 against 5 + 0.
CONFUSION = [
    [50, 5, 0, 0],
    [0, 40, 1, 0],
    [0, 1, 45, 4],
    [1, 0, 4, 48],
]


def test_most_confused(capsys):
    assert mnist.check_most_confused((3, 2), CONFUSION)
    assert mnist.check_most_confused([2, 3], CONFUSION)
    assert mnist.check_most_confused(np.unravel_index(11, (4, 4)), CONFUSION)  # NumPy's (2, 3)
    assert said(capsys) == "pass\npass\npass\n"
    assert not mnist.check_most_confused(None, CONFUSION)
    assert "fill in" in said(capsys)
    assert not mnist.check_most_confused((0, 1), CONFUSION)  # the largest one-way cell
    assert "another pair swaps 8" in said(capsys)
    assert not mnist.check_most_confused((0, 0), CONFUSION)
    assert "diagonal" in said(capsys)
    assert not mnist.check_most_confused((0, 7), CONFUSION)
    assert "not two class indices" in said(capsys)


def test_most_confused_accepts_any_of_tied_pairs():
    tied = [[9, 2, 0], [0, 9, 0], [0, 2, 9]]  # {0, 1} and {1, 2} both swap 2
    assert mnist.check_most_confused((0, 1), tied)
    assert mnist.check_most_confused((2, 1), tied)
    assert not mnist.check_most_confused((0, 2), tied)


# Language model: an untrained tiny model is enough, its probabilities are the answer key.

SENTENCE = words("the dog eats a cake")


@pytest.fixture(scope="module")
def tiny():
    vocab = Vocabulary.build([words("the dog eats a cake"), words("a cat sees the ball")], 100)
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(len(vocab), 1, "forward", 8, 16)).eval()
    return model, vocab


def by_hand(model, vocab, sentence):
    """The solution: each next word's probability from `next_words`, <EOS> last."""
    log_p = 0.0
    for i, target in enumerate([*sentence, "<EOS>"]):
        log_p += math.log(dict(next_words(model, vocab, sentence[:i], len(vocab)))[target])
    return math.exp(-log_p / (len(sentence) + 1))


def test_perplexity(tiny, capsys):
    model, vocab = tiny
    ppl = by_hand(model, vocab, SENTENCE)
    assert 1 < ppl < 2 * len(vocab)  # untrained: near the uniform guesser's len(vocab)
    assert lm.check_perplexity(ppl, model, vocab, SENTENCE)
    assert said(capsys) == "pass\n"
    assert not lm.check_perplexity(None, model, vocab, SENTENCE)
    assert "fill in" in said(capsys)
    log_p = math.log(ppl) * -(len(SENTENCE) + 1)
    assert not lm.check_perplexity(math.exp(-log_p / len(SENTENCE)), model, vocab, SENTENCE)
    assert "divided by 5 words" in said(capsys)
    assert not lm.check_perplexity(math.exp(log_p), model, vocab, SENTENCE)
    assert "probability, not its perplexity" in said(capsys)
    for not_finite in (float("nan"), 10**400):  # the int is a Real no float holds
        assert not lm.check_perplexity(not_finite, model, vocab, SENTENCE)
        assert "finite" in said(capsys)


def test_perplexity_refuses_unknown_words(tiny, capsys):
    model, vocab = tiny
    assert not lm.check_perplexity(3.0, model, vocab, words("the zebra eats"))
    assert "zebra not in the vocabulary" in said(capsys)


def test_entropies(tiny, capsys):
    model, vocab = tiny
    given = words("the dog")
    probs = torch.tensor([p for _, p in next_words(model, vocab, given, len(vocab))]).double()

    def entropy(power):
        q = probs**power / (probs**power).sum()
        return float(-(q * q.log()).sum())

    solution = {t: entropy(1 / t) for t in (0.5, 1.0, 2.0)}
    assert solution[0.5] < solution[1.0] < solution[2.0] < math.log(len(probs))
    assert lm.check_entropies(solution, model, vocab, given)
    assert said(capsys) == "pass\n"
    assert not lm.check_entropies(None, model, vocab, given)
    assert "fill in" in said(capsys)
    assert not lm.check_entropies({t: entropy(t) for t in (0.5, 1.0, 2.0)}, model, vocab, given)
    assert "p ** (1 / T)" in said(capsys)
    bits = {t: h / math.log(2) for t, h in solution.items()}
    assert not lm.check_entropies(bits, model, vocab, given)
    assert "bits" in said(capsys)
    assert not lm.check_entropies({1.0: solution[1.0]}, model, vocab, given)
    assert "one entropy per temperature" in said(capsys)


def test_reverse_pairs(capsys):
    solution = [("<START>", "eats"), ("eats", "dog"), ("dog", "the"), ("the", "<EOS>")]
    assert lm.check_reverse_pairs(solution, "the dog eats")
    assert said(capsys) == "pass\n"
    assert not lm.check_reverse_pairs(None, "the dog eats")
    assert "fill in" in said(capsys)
    forward = [("<START>", "the"), ("the", "dog"), ("dog", "eats"), ("eats", "<EOS>")]
    assert not lm.check_reverse_pairs(forward, "the dog eats")
    assert "forward model's pairs" in said(capsys)
    # Each target the word just read: a model shown its target, as the original's reverse was.
    leak = [("<START>", "eats"), ("eats", "eats"), ("dog", "dog"), ("the", "the")]
    assert not lm.check_reverse_pairs(leak, "the dog eats")
    out = said(capsys)
    assert "pair 2: after reading <START> eats it predicts dog" in out
    assert "already read" in out
    assert not lm.check_reverse_pairs(solution[:3], "the dog eats")
    assert "make 4" in said(capsys)
