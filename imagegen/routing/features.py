"""Reads a prompt and its art style into weighted, explainable routing features."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from imagegen.routing.lexicon import ARTISTIC, LEXICON, NEUTRAL, REALISTIC, TEXT, Entry

# Past this many characters a prompt says nothing new about its style, and bounding the input
# keeps a decision well under a millisecond whatever a client sends.
MAX_FIELD_CHARS = 1000

# The art_style field is where a writer states the look they want, so its cues count for more
# than words in the prompt, which mostly describe the subject.
STYLE_FIELD_FACTOR = 1.5
STYLE_SOURCE = "art_style"
PROMPT_SOURCE = "prompt"
# A medium named as the object of another medium ("photo of a watercolor painting") is
# something in the scene, not the look of the image.
DEPICTED_FACTOR = 0.3
# "A child drawing with crayons" describes what someone does, not how the image looks.
ACTIVITY_FACTOR = 0.25
# A quoted name ("a dog named 'Rex'") is rarely lettering in the picture.
NAMED_QUOTE_WEIGHT = 1.0
QUOTE_WEIGHT = 3.0
CAPITALS_WEIGHT = 1.5


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD = re.compile(r"\w+")
_BREAK = re.compile(r"[,;:.!?()\[\]|/\"«»“”„]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Quoted strings in the quote styles of English, French, Spanish and German (and CJK). A
# single quote opens or closes only with nothing alphanumeric outside it, and inside it may
# hold apostrophes between letters: "'Today's Special'" is a quotation, "children's book" not.
_QUOTED = re.compile(
    r'"(?P<straight>[^"\n]{2,120})"'
    r"|“(?P<curly>[^”“\n]{2,120})[”“]"
    r"|„(?P<low>[^“”\n]{2,120})[“”]"
    r"|«\s?(?P<guillemet>[^»\n]{2,120}?)\s?»"
    r"|‹(?P<single_guillemet>[^›\n]{2,120})›"
    r"|[「『](?P<cjk>[^」』\n]{1,120})[」』]"
    r"|(?<!\w)‘(?P<curly_single>(?:[^’\n]|(?<=\w)’(?=\w)){2,120}?)’(?!\w)"
    r"|(?<!\w)'(?P<single>(?:[^'\n]|(?<=\w)'(?=\w)){2,120}?)'(?!\w)"
)
_NAMING_WORDS = _words(
    "named called nicknamed nomme nommee appele appelee llamado llamada namens genannt"
)

# Numbers that only a camera or a sprite sheet produces.
_PATTERNS: tuple[tuple[re.Pattern[str], str, float, str], ...] = (
    (re.compile(r"\b\d{2,3}\s?mm\b"), REALISTIC, 2.0, "focal length or film gauge"),
    (re.compile(r"\bf\s?/\s?\d{1,2}(?:[.,]\d)?\b"), REALISTIC, 2.0, "aperture"),
    (re.compile(r"\biso\s?\d{2,5}\b"), REALISTIC, 2.0, "ISO"),
    (re.compile(r"\b1/\d{2,5}\s?s?\b"), REALISTIC, 2.0, "shutter speed"),
    (re.compile(r"\b(?:4|8|16)\s?k\b"), REALISTIC, 1.0, "resolution"),
    (re.compile(r"\b(?:8|16|32|64)\s?-?\s?bits?\b"), ARTISTIC, 2.5, "bit depth"),
    (re.compile(r"[$€£¥]\s?\d|\b\d+(?:[.,]\d+)?\s?(?:[$€£¥%]|euros?\b)"), TEXT, 1.0, "price"),
)

# Words after which an "of" introduces what a medium depicts, and words that end that phrase.
_OF_WORDS = _words("of de d du des del von vom eines einer einem")
_PHRASE_ENDS = _words(
    "in on at with under near by against beside behind next while and sur sous avec dans "
    "pres en con sobre bajo junto y auf mit unter neben bei im am und"
)
_DEPICTED_SPAN = 5
# A text object named right before one of these is a genre of photograph ("menu photography").
_GENRE_HEADS = _words("photography fotografia photographie fotografie")
_ACTIVITY_WORDS = _words(
    "painting paints drawing draws sketching sketches doodling peint peignant dessine "
    "dessinant pinta pintando dibuja dibujando malt zeichnet skizziert"
)
_PEOPLE = _words(
    "child children kid kids boy girl boys girls man men woman women person people artist "
    "artists painter student students toddler family teen teenager grandma grandpa enfant "
    "enfants garcon fille homme femme artiste peintre eleve nino nina ninos hombre mujer "
    "artista pintor pintora estudiante kind kinder junge madchen mann frau kunstler "
    "kunstlerin maler malerin schuler"
)
# A cue right after one of these is excluded, not asserted ("no text", "sans texte").
_NEGATORS = _words("no not without sans sin ohne kein keine keinen keiner ni nor")
_NEGATION_SPAN = 3
_RELATIVE_WORDS = _words("who is are was which that qui que der die das el la le")
# Modifiers of a German compound that name a style ("Comicstil", "Aquarelloptik").
_STYLE_SUFFIXES = ("stils", "stil", "optik", "look")
_MIN_COMPOUND_MODIFIER = 2
# Capitalised words that are initialisms, not lettering to render.
_ACRONYMS = _words(
    "nasa usa uk eu un dslr hdr uhd led lcd cgi suv atm dna ufo ceo cfo nyc la bmw ibm "
    "nba nfl fifa lego ikea rgb cmyk gps vhs dvd usb api pdf imax arri raw iso bbq diy "
    "lgbt lgbtq unesco nato wwi wwii hiv covid mri icu ai vr ar ui ux tv pc cpu gpu ps5 "
    "nyc sf dj mc uhd fbi cia mit ucla bbc cnn ok"
)
_ROMAN_NUMERAL = re.compile(r"^[ivxlcdm]+$")


@dataclass(frozen=True)
class Feature:
    """One piece of evidence: the category it suggests, its weight and where it was read."""

    category: str
    weight: float
    cue: str  # where and what, e.g. "art_style 'watercolor'" or "quoted text 'SALE'"
    note: str = ""  # why the weight was lowered, if it was

    @property
    def signal(self) -> str:
        """The readable reason: "art_style 'watercolor' -> artistic"."""
        note = f" ({self.note})" if self.note else ""
        return f"{self.cue} -> {self.category}{note}"


class _Token(NamedTuple):
    key: str  # folded, singular where the lexicon knows the singular
    start: int
    end: int
    after_break: bool  # punctuation stands between this word and the one before


def fold(text: str) -> str:
    """Lower-case, strip accents and control characters: 'Fotografía' -> 'fotografia'."""
    text = _CONTROL.sub(" ", text)
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _tokens(text: str) -> list[_Token]:
    tokens = []
    previous_end = 0
    for match in _WORD.finditer(text):
        word = match.group()
        # Folding a word can lengthen it ("ß" -> "ss") or split it (ligatures); the lexicon
        # sees it as one token either way.
        word = word.lower() if word.isascii() else "".join(fold(word).split())
        if word not in LEXICON.words and word.endswith("s") and word[:-1] in LEXICON.words:
            word = word[:-1]
        start = match.start()
        gap = text[previous_end:start]
        after_break = gap != " " and _BREAK.search(gap) is not None
        tokens.append(_Token(word, start, match.end(), after_break))
        previous_end = match.end()
    return tokens


# Prompts reuse a small vocabulary, so the stem and compound search runs once per word.
@functools.lru_cache(maxsize=8192)
def _single_word_entry(word: str) -> Entry | None:
    """The entry a word not listed as such belongs to: by stem, compound head or style suffix."""
    for stem, entry in LEXICON.stems:
        if word.startswith(stem):
            return entry
    for head, entry in LEXICON.compound_heads:
        if word.endswith(head) and len(word) - len(head) >= _MIN_COMPOUND_MODIFIER:
            return entry
    for suffix in _STYLE_SUFFIXES:
        modifier = word[: -len(suffix)]
        if word.endswith(suffix) and len(modifier) >= _MIN_COMPOUND_MODIFIER:
            for words, entry in LEXICON.phrases.get(modifier, ()):
                if len(words) == 1:
                    return entry
    return None


def _match(tokens: list[_Token], position: int) -> tuple[int, Entry] | None:
    """The longest lexicon entry starting at `position`, as (number of tokens, entry)."""
    for words, entry in LEXICON.phrases.get(tokens[position].key, ()):
        end = position + len(words)
        # A phrase never spans punctuation: "poster, style" is two thoughts.
        if end <= len(tokens) and all(
            tokens[position + offset].key == word
            and (offset == 0 or not tokens[position + offset].after_break)
            for offset, word in enumerate(words)
        ):
            return len(words), entry
    entry = _single_word_entry(tokens[position].key)
    return (1, entry) if entry else None


def _is_activity(tokens: list[_Token], position: int) -> bool:
    """Whether the word at `position` is something a person in the scene is doing."""
    if tokens[position].key not in _ACTIVITY_WORDS:
        return False
    before = position - 1
    while before >= 0 and tokens[before].key in _RELATIVE_WORDS and position - before <= 2:
        before -= 1
    return before >= 0 and tokens[before].key in _PEOPLE


def _is_negated(tokens: list[_Token], position: int, phrase_words: set[int]) -> bool:
    """Whether a negator ("no", "sans", "ohne") stands shortly before, in the same clause."""
    for before in range(position - 1, max(-1, position - 1 - _NEGATION_SPAN), -1):
        # A negator inside a matched phrase ("sans serif") is part of a name, not a negation.
        if tokens[before].key in _NEGATORS and before not in phrase_words:
            return True
        if tokens[before].after_break:
            return False
    return False


def _lexicon_features(text: str, source: str, factor: float) -> list[Feature]:
    tokens = _tokens(text)
    matches: list[tuple[int, int, Entry]] = []
    position = 0
    while position < len(tokens):
        found = _match(tokens, position)
        if found is None:
            position += 1
            continue
        length, entry = found
        matches.append((position, position + length, entry))
        position += length

    # Where a photographic or artistic medium is followed by "of", the next few words name
    # what it depicts; a medium of the other kind named there is part of the scene.
    depicted: dict[int, tuple[str, str]] = {}
    for start, end, entry in matches:
        if entry.category not in (REALISTIC, ARTISTIC) or end >= len(tokens):
            continue
        if tokens[end].key not in _OF_WORDS or tokens[end].after_break:
            continue
        head = text[tokens[start].start : tokens[end].end]
        for offset in range(end + 1, min(end + 1 + _DEPICTED_SPAN, len(tokens))):
            if tokens[offset].after_break or tokens[offset].key in _PHRASE_ENDS:
                break
            depicted[offset] = (entry.category, head)

    phrase_words = {offset for start, end, _ in matches for offset in range(start, end)}
    features = []
    for start, end, entry in matches:
        if entry.category == NEUTRAL or _is_negated(tokens, start, phrase_words):
            continue
        if entry.style_only and source != STYLE_SOURCE:
            continue
        if entry.category == TEXT and end < len(tokens) and tokens[end].key in _GENRE_HEADS:
            continue
        cue = f"{source} {text[tokens[start].start : tokens[end - 1].end]!r}"
        weight = entry.weight * factor
        note = ""
        head_category, head = depicted.get(start, (entry.category, ""))
        if head_category != entry.category and entry.category != TEXT:
            weight *= DEPICTED_FACTOR
            note = f"depicted in {head!r}, discounted"
        elif _is_activity(tokens, start):
            weight *= ACTIVITY_FACTOR
            note = "an activity in the scene, discounted"
        features.append(Feature(entry.category, weight, cue, note))
    return features


def _quote_features(text: str, factor: float, *, on_text_object: bool) -> list[Feature]:
    """Quoted words are the surest sign of lettering; count the first one once."""
    for match in _QUOTED.finditer(text):
        content = next(group for group in match.groups() if group is not None).strip()
        if not any(char.isalnum() for char in content):
            continue
        preceding = fold(text[max(0, match.start() - 20) : match.start()]).split()
        # A quoted name is lettering only when something in the prompt carries words
        # ("a cookbook cover called 'Simple Suppers'"), not on its own ("a dog named 'Rex'").
        if preceding and preceding[-1] in _NAMING_WORDS and not on_text_object:
            return [Feature(TEXT, NAMED_QUOTE_WEIGHT * factor, f"quoted name {content!r}", "weak")]
        return [Feature(TEXT, QUOTE_WEIGHT * factor, f"quoted text {content!r}")]
    return []


def _capitals_feature(text: str) -> list[Feature]:
    """Unquoted words in capitals inside an ordinary sentence ('a banner with SALE')."""
    words = [match.group() for match in _WORD.finditer(text) if match.group().isalpha()]
    capitals = [word for word in words if len(word) >= 3 and word.isupper()]
    # A prompt typed in capitals throughout is shouting, not lettering.
    if not capitals or len(capitals) * 2 > len(words):
        return []
    lettering = [
        word
        for word in capitals
        if fold(word) not in _ACRONYMS and not _ROMAN_NUMERAL.match(fold(word))
    ]
    if not lettering:
        return []
    return [Feature(TEXT, CAPITALS_WEIGHT, f"capitalised words {' '.join(lettering[:4])!r}")]


def _pattern_features(text: str, source: str, factor: float) -> list[Feature]:
    folded = fold(text)
    features = []
    for pattern, category, weight, label in _PATTERNS:
        if match := pattern.search(folded):
            features.append(
                Feature(category, weight * factor, f"{source} {label} {match.group()!r}")
            )
    return features


def _printable(text: str) -> str:
    """Blank out control, format and surrogate characters, which signals must never carry."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else " " for char in text)


def extract_features(visual_prompt: str, art_style: str) -> list[Feature]:
    """Every cue found in the prompt and the art style, weighted, each with a readable reason.

    Never raises on odd input: empty, very long, control characters and any script are read
    as far as they carry meaning. Input past MAX_FIELD_CHARS is ignored.
    """
    prompt = _printable((visual_prompt or "")[:MAX_FIELD_CHARS])
    style = _printable((art_style or "")[:MAX_FIELD_CHARS])
    features = [
        *_lexicon_features(prompt, PROMPT_SOURCE, 1.0),
        *_lexicon_features(style, STYLE_SOURCE, STYLE_FIELD_FACTOR),
        *_pattern_features(prompt, PROMPT_SOURCE, 1.0),
        *_pattern_features(style, STYLE_SOURCE, STYLE_FIELD_FACTOR),
    ]
    on_text_object = any(feature.category == TEXT for feature in features)
    quotes = _quote_features(prompt, 1.0, on_text_object=on_text_object) or _quote_features(
        style, STYLE_FIELD_FACTOR, on_text_object=on_text_object
    )
    features.extend(quotes or _capitals_feature(prompt))
    return features
