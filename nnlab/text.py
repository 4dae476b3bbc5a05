"""Review cleaning (report 000 §2) and the TF-IDF features (§3).

Every cleaning step is a switch of :class:`CleaningConfig`; :class:`Cleaner`
applies them in a fixed order:

1. ``strip_html``: tags such as ``<br />`` become spaces, entities are unescaped;
2. ``lowercase``;
3. ``numbers_to_words``: ``1,500`` -> ``one thousand five hundred``;
4. ``remove_punctuation``: punctuation and escape characters (``\\n``, ``\\t``,
   literal backslash escapes) become spaces; apostrophes are dropped so that
   ``don't`` stays one token, ``dont``;
5. ``stop_words``: ``none``, ``sklearn`` (scikit-learn's built-in list, offline)
   or ``nltk`` (needs nltk's ``stopwords`` corpus). Both lists hold negations
   (not, no, never, don't...), which carry sentiment; ``keep_negations`` keeps them;
6. ``normalise``: ``none``, ``porter`` or ``snowball`` stemming (offline), or
   ``wordnet`` lemmatisation (needs nltk's ``wordnet`` corpus).

A step whose nltk corpus is missing raises :class:`~nnlab.errors.DataError`
saying how to get it; it never falls back to something else.
"""
from __future__ import annotations

import dataclasses
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nnlab.errors import DataError

STOP_WORD_SOURCES = ("none", "sklearn", "nltk")
NORMALISERS = ("none", "porter", "snowball", "wordnet")

# Negations as they look after punctuation removal ("don't" -> "dont"), plus the
# clipped forms nltk's list holds ("don", "didn", ...).
NEGATIONS = frozenset(
    "no not nor never none nobody nothing neither nowhere cannot cant without "
    "dont doesnt didnt isnt arent wasnt werent wont wouldnt shouldnt couldnt "
    "hasnt havent hadnt mustnt neednt mightnt shant aint "
    "don doesn didn isn aren wasn weren won wouldn shouldn couldn hasn haven hadn "
    "mustn needn mightn shan ain".split()
)

_TAG = re.compile(r"<[^>]*>")
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+")
_ESCAPES = re.compile(r"\\[ntr]|[\n\t\r]")
_APOSTROPHE = re.compile(r"['\u2019]")
_NON_WORD = re.compile(r"[^\w\s]|_")

_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
          "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))


def number_to_words(n: int) -> str:
    """English words for a non-negative integer: 1999 -> 'one thousand nine hundred ninety nine'."""
    if n < 20:
        return _SMALL[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] if ones == 0 else f"{_TENS[tens]} {_SMALL[ones]}"
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            words = f"{number_to_words(head)} {name}"
            return words if rest == 0 else f"{words} {number_to_words(rest)}"
    raise AssertionError("unreachable")


def _spell_number(match: re.Match) -> str:
    digits = match.group().replace(",", "")
    if len(digits) > 12:  # an id or a phone number: spell it digit by digit
        return " " + " ".join(_SMALL[int(d)] for d in digits) + " "
    return f" {number_to_words(int(digits))} "


@dataclass(frozen=True)
class CleaningConfig:
    lowercase: bool = True
    strip_html: bool = True
    remove_punctuation: bool = True
    numbers_to_words: bool = True
    stop_words: str = "none"
    keep_negations: bool = True
    normalise: str = "none"
    nltk_data: str | None = None   # an extra folder searched for nltk corpora


def _use_nltk_data(config: CleaningConfig) -> None:
    import nltk

    if config.nltk_data and config.nltk_data not in nltk.data.path:
        nltk.data.path.insert(0, config.nltk_data)


def _missing_corpus(name: str, why: str) -> DataError:
    return DataError(
        f"{why} needs nltk's '{name}' corpus, which is not installed: get it with "
        f"`python -m nltk.downloader {name}` (or set preprocess.nltk_data to a folder "
        f"holding corpora/{name}.zip), or choose another option"
    )


def nltk_stop_words(config: CleaningConfig) -> list[str]:
    from nltk.corpus.reader import WordListCorpusReader
    from nltk.corpus.util import LazyCorpusLoader

    _use_nltk_data(config)
    # A fresh loader, not nltk.corpus.stopwords, which keeps whatever it found first.
    loader = LazyCorpusLoader("stopwords", WordListCorpusReader, r"(?!README|\.).*", encoding="utf8")
    try:
        return loader.words("english")
    except LookupError:
        raise _missing_corpus("stopwords", "preprocess.stop_words = nltk") from None


def stop_word_list(config: CleaningConfig) -> frozenset[str]:
    """The configured stop words, normalised like the text (case, apostrophes)."""
    if config.stop_words == "none":
        return frozenset()
    if config.stop_words == "sklearn":
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
        words = ENGLISH_STOP_WORDS
    elif config.stop_words == "nltk":
        words = nltk_stop_words(config)
    else:
        raise ValueError(f"unknown stop-word source {config.stop_words!r}")
    normalised = {_APOSTROPHE.sub("", w.lower()) for w in words}
    if config.keep_negations:
        normalised -= NEGATIONS
    return frozenset(normalised)


def _word_normaliser(config: CleaningConfig) -> Callable[[str], str] | None:
    if config.normalise == "none":
        return None
    if config.normalise == "porter":
        from nltk.stem import PorterStemmer
        return PorterStemmer().stem
    if config.normalise == "snowball":
        from nltk.stem import SnowballStemmer
        return SnowballStemmer("english").stem
    if config.normalise == "wordnet":
        from nltk.stem import WordNetLemmatizer

        _use_nltk_data(config)
        lemmatise = WordNetLemmatizer().lemmatize
        try:
            lemmatise("reviews")
        except LookupError:
            raise _missing_corpus("wordnet", "preprocess.normalise = wordnet") from None
        return lemmatise
    raise ValueError(f"unknown normaliser {config.normalise!r}")


class Cleaner:
    """Applies a :class:`CleaningConfig` to one review at a time."""

    def __init__(self, config: CleaningConfig):
        self.config = config
        self.stop_words = stop_word_list(config)
        self._normalise = _word_normaliser(config)
        # Stemming is the slow step; a review corpus repeats a small vocabulary.
        self._normalised: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        c = self.config
        if c.strip_html:
            text = html.unescape(_TAG.sub(" ", text))
        if c.lowercase:
            text = text.lower()
        if c.numbers_to_words:
            text = _NUMBER.sub(_spell_number, text)
        if c.remove_punctuation:
            text = _NON_WORD.sub(" ", _APOSTROPHE.sub("", _ESCAPES.sub(" ", text)))
        tokens = text.split()
        if self.stop_words:
            tokens = [t for t in tokens if t.lower() not in self.stop_words]
        if self._normalise is not None:
            tokens = [self._normalise_word(t) for t in tokens]
        return " ".join(tokens)

    def _normalise_word(self, word: str) -> str:
        try:
            return self._normalised[word]
        except KeyError:
            result = self._normalised[word] = self._normalise(word)
            return result


def _clean_chunk(config: CleaningConfig, texts: Sequence[str]) -> list[str]:
    cleaner = Cleaner(config)
    return [cleaner(t) for t in texts]


def clean_texts(texts: Sequence[str], config: CleaningConfig, *, n_jobs: int = 1,
                chunk_size: int = 2000) -> list[str]:
    """Clean every text, in ``n_jobs`` processes when there is enough work to share."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    Cleaner(config)  # fail here, in one line, if a corpus is missing
    chunks = [texts[i:i + chunk_size] for i in range(0, len(texts), chunk_size)]
    progress = tqdm(total=len(texts), desc="cleaning", unit="review", disable=None)
    if n_jobs == 1 or len(chunks) == 1:
        results = (_clean_chunk(config, chunk) for chunk in chunks)
    else:
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_clean_chunk)(config, chunk) for chunk in chunks)
    cleaned: list[str] = []
    for chunk in results:
        cleaned.extend(chunk)
        progress.update(len(chunk))
    progress.close()
    return cleaned


def _vectorizer(**options):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(lowercase=False, dtype=np.float32, **options)


def tfidf_features(train_texts: Sequence[str], test_texts: Sequence[str], max_features: int, *,
                   ngram_max: int = 1, sublinear_tf: bool = False):
    """TF-IDF fitted on the training texts only, applied to both splits: terms of 1 to ``ngram_max``
    adjacent words, each counted as is or, with ``sublinear_tf``, as 1 + log(count).

    Returns ``(X_train, X_test, vectorizer)``: sparse float32 CSR matrices and the fitted
    scikit-learn ``TfidfVectorizer``.
    """
    vectorizer = _vectorizer(max_features=max_features, ngram_range=(1, ngram_max), sublinear_tf=sublinear_tf)
    try:
        X_train = vectorizer.fit_transform(train_texts)
    except ValueError as exc:  # e.g. every word was a stop word
        raise DataError(f"TF-IDF: cannot build a vocabulary from the cleaned training reviews ({exc})") from None
    X_test = vectorizer.transform(test_texts)
    return X_train.tocsr(), X_test.tocsr(), vectorizer


TFIDF_KIND = "imdb_tfidf"


@dataclass
class TextFeatures:
    """Raw review text to the classifier's features, exactly as the preprocess stage made them:
    the cleaning, then the TF-IDF fitted on the training split."""

    cleaning: CleaningConfig
    vectorizer: object   # a fitted scikit-learn TfidfVectorizer

    def __call__(self, texts: Sequence[str]):
        return self.vectorizer.transform(clean_texts(texts, self.cleaning)).tocsr()

    def save(self, directory: Path, source: str) -> None:
        from nnlab import artifacts

        artifacts.save_arrays(directory, {"vocabulary": self.vectorizer.get_feature_names_out().astype(str),
                                          "idf": self.vectorizer.idf_})
        artifacts.write_spec(directory, TFIDF_KIND, cleaning=dataclasses.asdict(self.cleaning), source=source,
                             terms={"ngram_range": list(self.vectorizer.ngram_range),
                                    "sublinear_tf": self.vectorizer.sublinear_tf})

    @classmethod
    def load(cls, directory: str | Path) -> "TextFeatures":
        from nnlab import artifacts

        spec = artifacts.read_spec(directory, TFIDF_KIND, "preprocess")
        arrays = artifacts.load_arrays(directory)
        terms = spec.get("terms", {})   # a model saved before word pairs were an option: single words
        vectorizer = _vectorizer(vocabulary=list(arrays["vocabulary"]),
                                 ngram_range=tuple(terms.get("ngram_range", (1, 1))),
                                 sublinear_tf=terms.get("sublinear_tf", False))
        vectorizer.idf_ = arrays["idf"]
        return cls(CleaningConfig(**spec["cleaning"]), vectorizer)


def feature_range_check(*matrices) -> dict:
    """Whether every feature lies in [0, 1], with the observed extremes."""
    low = min(float(m.min()) for m in matrices)   # sparse min() counts the implicit zeros
    high = max(float(m.max()) for m in matrices)
    return {"min": low, "max": high, "in_unit_interval": bool(low >= 0.0 and high <= 1.0)}
