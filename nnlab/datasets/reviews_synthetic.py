"""Synthetic movie reviews: the offline stand-in for aclImdb (report 000 §2-§5).

Not real reviews and not comparable with real-data figures. Each review is a
few paragraphs of sentences of four kinds:

- opinions, ``The acting was really wonderful!``, mostly of the review's own
  polarity but sometimes of the other one (mixed reviews);
- negated opinions of the other polarity, ``The plot was not bad.``, so that a
  bag of words sees the "wrong" word and negation matters;
- ratings and facts with numbers, ``I give it 8/10.``, ``It runs 2 hours.``;
- neutral filler drawn from a Zipf-distributed invented vocabulary, so that
  TF-IDF has thousands of uninformative words to weigh.

Paragraphs are joined with ``<br /><br />`` as in aclImdb, punctuation is
varied, and a fraction ``label_noise`` of labels is flipped, so a good model
scores high but not 100%. Classes are balanced.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# Few sentiment words, each frequent, as in real reviews ("great", "bad"...):
# that gives the TF-IDF features a class signal the 10-epoch network can pick up.
POSITIVE = "good great excellent wonderful brilliant superb amazing enjoyable beautiful fun".split()
NEGATIVE = "bad terrible awful boring poor dull horrible weak stupid lame".split()
ASPECTS = ("acting plot story script cast direction ending soundtrack music dialogue "
           "cinematography pacing editing villain hero film movie performance "
           "screenplay effects score").split()
INTENSIFIERS = ("", "", "", "really ", "very ", "quite ", "truly ", "incredibly ", "so ")
OPENERS = ("", "", "Honestly, ", "I think ", "Overall ", "In my opinion ", "Sadly ", "Frankly, ")
ENDINGS = (".", ".", ".", "!", "!!!", "...", " :)", "?!")
FUNCTION_WORDS = ("the a and of to in is it that this was with for as on his her he she "
                  "they at by from but an be one who all their there what so out about "
                  "up just more when some which into like time them".split())
SYLLABLES = ("ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu "
             "na ne ni no nu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo vu "
             "bar ken dor mil tas ron vel sar tem lin").split()


def _invented_words(rng: np.random.Generator, n: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES, size=rng.integers(2, 4))))
    return sorted(words)


class _ReviewWriter:
    def __init__(self, rng: np.random.Generator, vocabulary_size: int):
        self.rng = rng
        self.filler = list(FUNCTION_WORDS) + _invented_words(rng, vocabulary_size)
        weights = 1.0 / (np.arange(1, len(self.filler) + 1) + 2.7)
        self.filler_cdf = np.cumsum(weights) / weights.sum()

    def pick(self, options):
        return options[self.rng.integers(len(options))]

    def opinion(self, positive: bool) -> str:
        adjective = self.pick(POSITIVE if positive else NEGATIVE)
        return (f"{self.pick(OPENERS)}the {self.pick(ASPECTS)} was "
                f"{self.pick(INTENSIFIERS)}{adjective}{self.pick(ENDINGS)}")

    def negated(self, positive: bool) -> str:
        # "not bad" speaks for the review although "bad" is a negative word
        adjective = self.pick(NEGATIVE if positive else POSITIVE)
        negation = self.pick(("was not", "wasn't", "was never", "is not", "isn't"))
        return f"{self.pick(OPENERS)}the {self.pick(ASPECTS)} {negation} {adjective}{self.pick(ENDINGS)}"

    def with_number(self, positive: bool) -> str:
        kind = self.rng.integers(4)
        if kind == 0:
            stars = self.rng.integers(7, 11) if positive else self.rng.integers(1, 5)
            return self.pick((f"I give it {stars}/10.", f"{stars} out of 10.", f"Rating: {stars}/10!"))
        if kind == 1:
            return f"I saw it in {self.rng.integers(1950, 2011)} with {self.rng.integers(2, 6)} friends."
        if kind == 2:
            return f"It runs {self.rng.integers(1, 4)} hours and {self.rng.integers(1, 60)} minutes."
        return f"It cost ${self.rng.integers(1, 200)},{self.rng.integers(100, 1000)},000 to make."

    def filler_sentence(self) -> str:
        ranks = np.searchsorted(self.filler_cdf, self.rng.random(self.rng.integers(5, 16)))
        text = " ".join(self.filler[min(r, len(self.filler) - 1)] for r in ranks)
        return text[0].upper() + text[1:] + self.pick(ENDINGS)

    def review(self, positive: bool, n_sentences: int, p_opinion: float, p_mixed: float,
               p_negated: float, p_number: float) -> str:
        sentences = []
        for _ in range(n_sentences):
            u = self.rng.random()
            if u < p_opinion:
                if self.rng.random() < p_negated:
                    sentences.append(self.negated(positive))
                else:
                    sentences.append(self.opinion(positive != (self.rng.random() < p_mixed)))
            elif u < p_opinion + p_number:
                sentences.append(self.with_number(positive))
            else:
                sentences.append(self.filler_sentence())
        sentences = [s[0].upper() + s[1:] for s in sentences]
        paragraphs, start = [], 0
        while start < len(sentences):
            stop = start + int(self.rng.integers(2, 7))
            paragraphs.append(" ".join(sentences[start:stop]))
            start = stop
        return "<br /><br />".join(paragraphs)


def synthetic_reviews(n_reviews: int, *, seed: int, label_noise: float = 0.03,
                      min_sentences: int = 4, max_sentences: int = 24,
                      vocabulary_size: int = 6000, p_opinion: float = 0.85,
                      p_mixed: float = 0.05, p_negated: float = 0.05,
                      p_number: float = 0.1) -> pd.DataFrame:
    """``n_reviews`` synthetic reviews (half positive) as a frame ``review, sentiment``."""
    rng = np.random.default_rng(seed)
    writer = _ReviewWriter(rng, vocabulary_size)
    positive = np.arange(n_reviews) % 2 == 0
    rng.shuffle(positive)
    reviews = [writer.review(bool(p), int(rng.integers(min_sentences, max_sentences + 1)),
                             p_opinion, p_mixed, p_negated, p_number) for p in positive]
    flipped = rng.random(n_reviews) < label_noise
    labels = np.where(positive != flipped, "positive", "negative")
    return pd.DataFrame({"review": reviews, "sentiment": labels})
