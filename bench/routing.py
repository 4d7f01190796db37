"""Benchmark the router: accuracy, confusion and misses on the labelled sets, time per decision.

Targets: at least 95% of each set routed right (category and route), and a decision's p99 under
1 ms.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from _harness import verdict

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "imagegen" / "tests" / "data"
DATA_FILES = ("routing-dev-set.csv", "routing-holdout.csv")
CATEGORIES = ("realistic", "artistic", "text")
ACCURACY_TARGET = 0.95
P99_TARGET_US = 1000.0


def _setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def report_accuracy(name: str, rows: list[dict[str, str]]) -> float:
    """Print category and route accuracy, the confusion table and every miss with its signals;
    return the lower of the two accuracies."""
    from imagegen.routing import route

    confusion: Counter[tuple[str, str]] = Counter()
    route_hits = 0
    misses = []
    for row in rows:
        decision = route(row["visual_prompt"], row["art_style"])
        confusion[row["category"], decision.category] += 1
        route_hits += decision.route == row["expected_model"]
        if decision.category != row["category"] or decision.route != row["expected_model"]:
            misses.append((row, decision))

    category_hits = sum(count for (expected, got), count in confusion.items() if expected == got)
    print(f"\n== {name}: {len(rows)} prompts")
    print(f"category accuracy {category_hits / len(rows):7.1%}  ({category_hits}/{len(rows)})")
    print(f"route accuracy    {route_hits / len(rows):7.1%}  ({route_hits}/{len(rows)})")
    print("\nexpected \\ predicted " + "".join(f"{category:>11}" for category in CATEGORIES))
    for expected in CATEGORIES:
        cells = "".join(f"{confusion[expected, got]:>11}" for got in CATEGORIES)
        print(f"{expected:<20} {cells}")
    print(f"\nmisses: {len(misses)}")
    for row, decision in misses:
        print(f"- {row['visual_prompt']!r} / {row['art_style']!r}")
        print(
            f"  expected {row['category']} ({row['expected_model']}), got {decision.category} "
            f"({decision.route}, confidence {decision.confidence})"
        )
        for signal in decision.signals:
            print(f"    {signal}")
    return min(category_hits, route_hits) / len(rows)


def report_timing(rows: list[dict[str, str]], repetitions: int) -> float:
    """Print the median and p99 time of one decision over every row, `repetitions` times;
    return the p99 in microseconds."""
    from imagegen.routing import route

    for row in rows:  # warm the word cache and settings, as a running worker would be
        route(row["visual_prompt"], row["art_style"])
    samples = []
    for _ in range(repetitions):
        for row in rows:
            started = time.perf_counter_ns()
            route(row["visual_prompt"], row["art_style"])
            samples.append(time.perf_counter_ns() - started)
    samples.sort()
    median = statistics.median(samples) / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    print(f"\n== time per decision over {len(samples)} decisions")
    print(f"median {median:8.1f} µs")
    print(f"p99    {p99:8.1f} µs")
    print(f"max    {samples[-1] / 1000:8.1f} µs")

    long_prompt, long_style = "a quiet street at dusk " * 100, "watercolor, soft light " * 100
    started = time.perf_counter_ns()
    for _ in range(100):
        route(long_prompt, long_style)
    per_call = (time.perf_counter_ns() - started) / 100 / 1000
    print(
        f"longest analysed input ({len(long_prompt)} + {len(long_style)} chars) {per_call:.1f} µs"
    )
    return p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=200, help="passes over all rows")
    args = parser.parse_args()
    _setup_django()
    from imagegen.routing import ROUTER_VERSION

    print(f"router {ROUTER_VERSION}")
    all_rows = []
    accuracies = []
    for name in DATA_FILES:
        rows = _rows(name)
        all_rows.extend(rows)
        accuracies.append(report_accuracy(name, rows))
    p99 = report_timing(all_rows, args.repetitions)
    accurate, fast = min(accuracies) >= ACCURACY_TARGET, p99 < P99_TARGET_US
    print(
        f"\nworst set {min(accuracies):.1%} (target >= {ACCURACY_TARGET:.0%}): {verdict(accurate)}"
    )
    print(f"p99 {p99:.1f} µs (target < {P99_TARGET_US:.0f} µs): {verdict(fast)}")
    print(f"RESULT routing: {verdict(accurate and fast)}")


if __name__ == "__main__":
    main()
