"""Which provider route a prompt goes to, and why: realistic, artistic or text, from its words."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from imagegen.routing.features import Feature, extract_features
from imagegen.routing.lexicon import ARTISTIC, REALISTIC, TEXT, WEAK

ROUTER_VERSION = "features-1"

CATEGORIES = (REALISTIC, ARTISTIC, TEXT)
# Rendered text outranks any style once there is one strong cue for it (or two weaker ones):
# a sign in a street photograph still needs a model that spells.
TEXT_THRESHOLD = 2.5
# Below this, realistic and artistic cues are too faint to act on and the default applies.
EVIDENCE_THRESHOLD = 1.5
# Each further cue of a category adds half as much as the one before, so ten photographic
# buzzwords cannot outvote one clear medium.
DIMINISHING = 0.5
# Confidence is 1 - exp(-margin / scale): one strong art_style cue and nothing against it
# (margin 4.5) gives about 0.9, a close call near 0.
CONFIDENCE_SCALE = 2.0
FALLBACK_CONFIDENCE_CAP = 0.3
MAX_SIGNALS = 4
# Opposing evidence this strong is named in the signals, so a reader sees what lost.
OPPOSITION_SHOWN = 1.0


@dataclass(frozen=True)
class RoutingDecision:
    """Where a prompt goes and why; stored beside each generated image."""

    route: str
    category: str
    confidence: float
    signals: tuple[str, ...]
    version: str = ROUTER_VERSION

    def as_dict(self) -> dict:
        """JSON-ready fields, signals as a list."""
        return {**asdict(self), "signals": list(self.signals)}


def _score(features: list[Feature]) -> float:
    weights = sorted((feature.weight for feature in features), reverse=True)
    return sum(weight * DIMINISHING**rank for rank, weight in enumerate(weights))


def _confidence(margin: float) -> float:
    return round(min(1.0, max(0.0, 1.0 - math.exp(-margin / CONFIDENCE_SCALE))), 3)


def _strongest(features: list[Feature]) -> list[str]:
    ranked = sorted(features, key=lambda feature: -feature.weight)
    return [feature.signal for feature in ranked[:MAX_SIGNALS]]


def _route_for(category: str) -> str:
    routes = settings.IMAGEGEN_ROUTES
    if category not in routes:
        raise ImproperlyConfigured(f"IMAGEGEN_ROUTES has no route for category {category!r}.")
    return routes[category]


def route(visual_prompt: str, art_style: str = "") -> RoutingDecision:
    """Classify a prompt as realistic, artistic or text and map the category to its route.

    Rules, in order: text to be rendered in the image wins over any style; otherwise the
    stronger of artistic and photographic cues wins (art_style counts more than the prompt, and
    an artistic style wins a tie); with no clear cue, settings.IMAGEGEN_DEFAULT_CATEGORY is
    used with a confidence of at most 0.3. The route comes from settings.IMAGEGEN_ROUTES, read
    on each call. Never raises on odd text; raises ImproperlyConfigured if the chosen category
    has no route.
    """
    unique = {feature.signal: feature for feature in extract_features(visual_prompt, art_style)}
    by_category = {
        category: [feature for feature in unique.values() if feature.category == category]
        for category in CATEGORIES
    }
    scores = {category: _score(features) for category, features in by_category.items()}

    if scores[TEXT] >= TEXT_THRESHOLD:
        category = TEXT
        # Counted from one weak cue, which alone would never decide.
        confidence = _confidence(scores[TEXT] - WEAK)
        signals = _strongest(by_category[TEXT])
        overridden = [
            by_category[other]
            for other in (REALISTIC, ARTISTIC)
            if scores[other] >= EVIDENCE_THRESHOLD
        ]
        if overridden:
            beaten = max(
                (feature for group in overridden for feature in group),
                key=lambda feature: feature.weight,
            )
            signals.append(f"rendered text takes precedence over {beaten.cue} -> {beaten.category}")
    elif max(scores[REALISTIC], scores[ARTISTIC]) >= EVIDENCE_THRESHOLD:
        # An artistic style beats a photographic subject, so artistic wins a tie.
        category = ARTISTIC if scores[ARTISTIC] >= scores[REALISTIC] else REALISTIC
        other = REALISTIC if category == ARTISTIC else ARTISTIC
        confidence = _confidence(scores[category] - max(scores[other], scores[TEXT]))
        signals = _strongest(by_category[category])
        if scores[other] >= OPPOSITION_SHOWN:
            beaten = max(by_category[other], key=lambda feature: feature.weight)
            signals.append(f"outweighs {beaten.signal}")
    else:
        category = settings.IMAGEGEN_DEFAULT_CATEGORY
        margin = scores.get(category, 0.0) - max(
            score for name, score in scores.items() if name != category
        )
        confidence = min(FALLBACK_CONFIDENCE_CAP, _confidence(margin))
        weak = _strongest([feature for group in by_category.values() for feature in group])
        signals = [f"no clear cue -> default category {category!r}", *weak[:2]]

    return RoutingDecision(
        route=_route_for(category),
        category=category,
        confidence=confidence,
        signals=tuple(signals),
    )
