"""The language model's pieces, in process, on tiny data."""

import math

import pytest
import torch

from dlclassics.core.errors import InputError
from dlclassics.lm.batches import bucket_batches, collate, encode
from dlclassics.lm.config import LmTrainConfig
from dlclassics.lm.corpus import Vocabulary, read_sentences, split
from dlclassics.lm.evaluate import perplexity
from dlclassics.lm.experiment import LmTrial, load_data, run_trial
from dlclassics.lm.generate import generate, next_words, sentence_probability
from dlclassics.lm.model import LanguageModel, ModelConfig, load_language_model, save_model
from dlclassics.lm.words import EOS, PAD, START, UNK, words


def test_tokenisation_follows_keras_text_to_word_sequence():
    assert words("Hello, World!  It's a-b\tc.") == ["hello", "world", "it's", "a", "b", "c"]
    assert words("...!?") == []


def test_vocabulary_specials_and_frequency_order():
    vocab = Vocabulary.build([["b", "a", "b"], ["c", "b", "a"]], size=2)
    assert vocab.words[:4] == ["<PAD>", "<START>", "<UNK>", "<EOS>"]
    assert (PAD, START, UNK, EOS) == (0, 1, 2, 3)
    assert vocab.words[4:] == ["b", "a"]
    assert vocab.encode(["a", "c"]) == [5, UNK]
    assert vocab.unknown(["a", "c"]) == ["c"]


def test_split_is_80_10_10_disjoint_and_seeded():
    sentences = [[f"w{i}"] for i in range(100)]
    s = split(sentences, seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (80, 10, 10)
    assert sorted(s.train + s.val + s.test) == sorted(sentences)
    assert split(sentences, seed=3) == s
    assert split(sentences, seed=4) != s


def test_reverse_reads_each_sentence_backwards_then_adds_start_and_eos():
    vocab = Vocabulary.build([["a", "b", "c"]], 10)
    a, b, c = vocab.encode(["a", "b", "c"])
    assert encode([["a", "b", "c"]], vocab, "forward") == [[START, a, b, c, EOS]]
    assert encode([["a", "b", "c"]], vocab, "reverse") == [[START, c, b, a, EOS]]
    batch = collate(encode([["a", "b", "c"]], vocab, "reverse"))
    # Targets are the inputs shifted by one: no position sees the word it predicts.
    assert batch.inputs[0, 1:].tolist() == batch.targets[0, :-1].tolist()


def test_buckets_pad_only_to_each_batch_longest_row():
    g = torch.Generator().manual_seed(0)
    rows = [
        [START] + [5] * int(torch.randint(1, 30, (1,), generator=g)) + [EOS] for _ in range(300)
    ]
    batches = bucket_batches(rows, 16, torch.Generator().manual_seed(1))
    assert sum(len(b.inputs) for b in batches) == len(rows)
    assert sum(b.tokens for b in batches) == sum(len(r) - 1 for r in rows)
    for b in batches:
        assert b.inputs.shape[1] == int(b.mask.sum(1).max())
    padded = sum(b.mask.numel() - b.tokens for b in batches)
    assert padded < 0.1 * sum(b.tokens for b in batches)


def tiny_model(vocab_size: int, direction: str = "forward") -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(ModelConfig(vocab_size, 1, direction, 8, 8))


def test_loss_counts_real_target_tokens_only():
    rows = [[START, 4, 5, 6, EOS], [START, 7, EOS], [START, 4, EOS]]
    model = tiny_model(8)
    batch = collate(rows)
    together = model.loss_sum(batch.inputs, batch.targets, batch.mask)
    alone = sum(
        model.loss_sum(b.inputs, b.targets, b.mask) for b in map(collate, ([r] for r in rows))
    )
    assert torch.allclose(together, alone, atol=1e-5)


def test_a_uniform_model_has_perplexity_equal_to_the_vocabulary_size():
    model = tiny_model(13)
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.zero_()
    rows = [[START, 5, 6, EOS], [START, 7, 8, 9, 10, EOS]]
    assert perplexity(model, rows, torch.device("cpu")) == pytest.approx(13)


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary.build([["love", "i", "cake", "tea", "you"]], 10)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_greedy_generation_is_deterministic_and_keeps_the_given_words(vocab, direction):
    model = tiny_model(len(vocab), direction)
    first = generate(model, vocab, ["love", "i"], 7, 0.0)
    assert first == generate(model, vocab, ["love", "i"], 7, 0.0)
    assert len(first) == 7
    given_at = first[:2] if direction == "forward" else first[-2:]
    assert given_at == ["love", "i"]
    with pytest.raises(InputError):
        generate(model, vocab, ["love"], 7, -1.0)
    with pytest.raises(InputError, match="more than the length 1"):
        generate(model, vocab, ["love", "i"], 1, 0.0)


def eager_to_end(vocab: Vocabulary) -> LanguageModel:
    """A model that almost always says <EOS>, and <UNK> next likeliest."""
    model = tiny_model(len(vocab))
    with torch.no_grad():
        model.out.bias[EOS] += 30
        model.out.bias[UNK] += 20
    return model


@pytest.mark.parametrize("temperature", [0.0, 1.0, 10.0])
def test_sentences_have_the_asked_length_and_no_special_tokens(vocab, temperature):
    model, g = eager_to_end(vocab), torch.Generator().manual_seed(0)
    for length in (1, 2, 7, 12):
        sentence = generate(model, vocab, ["love"], length, temperature, g)
        assert len(sentence) == length and sentence[0] == "love"
        assert not set(sentence) & {"<PAD>", "<START>", "<UNK>", "<EOS>"}


def test_the_natural_stop_and_unk_are_options(vocab):
    model = eager_to_end(vocab)
    assert generate(model, vocab, ["love"], 7, 0.0, stop_at_eos=True) == ["love"]
    unk = generate(model, vocab, ["love"], 4, 0.0, allow_unk=True)
    assert unk == ["love", "<UNK>", "<UNK>", "<UNK>"]


def test_sentence_probability_is_the_product_of_word_probabilities(vocab):
    model = tiny_model(len(vocab))
    p = sentence_probability(model, vocab, ["love", "i", "cupcakes"])
    assert p.unknown == ["cupcakes"]
    assert 0 < p.probability <= 1 and p.probability_with_eos < p.probability
    ids = [START, *vocab.encode(["love", "i", "cupcakes"])]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids]))[0][0], -1)
    expected = sum(float(logp[t, ids[t + 1]]) for t in range(3))
    assert p.log_probability == pytest.approx(expected, abs=1e-5)
    assert p.probability == pytest.approx(math.exp(expected))


def test_next_words_are_ranked_probabilities(vocab):
    ranked = next_words(tiny_model(len(vocab)), vocab, ["love"], 3)
    assert len(ranked) == 3
    assert [p for _, p in ranked] == sorted((p for _, p in ranked), reverse=True)
    everything = next_words(eager_to_end(vocab), vocab, ["love"], 100)
    # Every real word and <EOS>, likeliest first; never <PAD>, <START> or <UNK>.
    assert len(everything) == len(vocab) - 3 and everything[0][0] == "<EOS>"
    assert {w for w, _ in everything} == set(vocab.words) - {"<PAD>", "<START>", "<UNK>"}


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_a_sentence_probability_is_the_product_of_what_next_shows(vocab, direction):
    # One distribution: the model's softmax over the whole vocabulary, in `prob` and in `next`.
    model = tiny_model(len(vocab), direction)
    sentence = ["love", "i", "tea", "you"]
    reading = sentence if direction == "forward" else sentence[::-1]
    product, given = 1.0, []
    for word in reading:
        shown = dict(next_words(model, vocab, given if direction == "forward" else given[::-1], 99))
        product *= shown[word]
        given.append(word)
    end = dict(next_words(model, vocab, sentence, 99))["<EOS>"]
    p = sentence_probability(model, vocab, sentence)
    assert p.probability == pytest.approx(product, rel=1e-5)
    assert p.probability_with_eos == pytest.approx(product * end, rel=1e-5)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"abc\x00def\n", "binary"),
        (b"caf\xe9 au lait\n", "not UTF-8"),
        (b"!!!\n...\n", "no usable sentence"),
    ],
)
def test_bad_corpora_are_input_errors(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_sentences(path)


def test_max_length_drops_longer_sentences(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("one two\none two three four\n")
    assert read_sentences(path, max_length=3) == [["one", "two"]]


def test_a_saved_model_loads_from_its_file_or_folder_with_its_vocabulary(tmp_path, vocab):
    model = tiny_model(len(vocab), "reverse")
    path = save_model(tmp_path / "trial" / "checkpoint.pt", model, vocab, {"lr": 0.1})
    for where in (path, path.parent):
        loaded, loaded_vocab = load_language_model(where)
        assert loaded.config == model.config and not loaded.training
        assert loaded_vocab.words == vocab.words
        for name, weights in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], weights)


def test_loading_refuses_what_is_not_a_safe_language_model_checkpoint(tmp_path, vocab):
    pickled = tmp_path / "pickled.pt"
    # An arbitrary object needs the unpickler to run code: weights_only refuses it.
    torch.save(
        {"model": {}, "model_args": {}, "config": {}, "version": "0", "x": Vocabulary}, pickled
    )
    with pytest.raises(InputError, match="cannot load a checkpoint"):
        load_language_model(pickled)
    other = tmp_path / "other.pt"
    torch.save({"model": {}, "model_args": {"arch": "mlp"}, "config": {}, "version": "0"}, other)
    with pytest.raises(InputError, match="not a language model"):
        load_language_model(other)
    with pytest.raises(InputError, match="no model"):
        load_language_model(tmp_path / "empty")


PATTERNS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "my bird sang a song today",
    "your fish swam round and round",
]


@pytest.mark.slow
def test_the_model_learns_a_small_learnable_corpus(tmp_path):
    # Four fixed sentences: once the first word is drawn the rest is certain, so a model that
    # learns ends near 4 ** (1 / 7) ~ 1.2, far below the 24 tokens of its vocabulary.
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(PATTERNS * 50) + "\n")
    config = LmTrainConfig(
        corpus=str(corpus), embedding_size=16, hidden_size=32, epochs=6, batch_size=16, lr=0.01
    )
    result = run_trial(config, LmTrial(1, "forward"), tmp_path / "trial", quiet=True)
    assert len(load_data(config).vocab) == 24
    assert result.perplexity["test"] < 1.5
    assert result.perplexity["train"] < 1.5
    model, vocab = load_language_model(tmp_path / "trial")
    pattern = PATTERNS[2].split()
    assert generate(model, vocab, ["my"], len(pattern), 0.0) == pattern
    # Left to stop, it ends the sentence where the corpus does.
    assert generate(model, vocab, ["my"], 10, 0.0, stop_at_eos=True) == pattern
