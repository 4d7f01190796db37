"""Benchmark the router: accuracy, confusion and misses on the labelled sets, time per decision."""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "imagegen" / "tests" / "data"
DATA_FILES = ("routing-dev-set.csv", "routing-holdout.csv")
CATEGORIES = ("realistic", "artistic", "text")


def _setup_django() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def report_accuracy(name: str, rows: list[dict[str, str]]) -> None:
    """Print category and route accuracy, the confusion table and every miss with its signals."""
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


def report_timing(rows: list[dict[str, str]], repetitions: int) -> None:
    """Print the median and p99 time of one decision over every row, `repetitions` times."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repetitions", type=int, default=200, help="passes over all rows")
    args = parser.parse_args()
    _setup_django()
    from imagegen.routing import ROUTER_VERSION

    print(f"router {ROUTER_VERSION}")
    all_rows = []
    for name in DATA_FILES:
        rows = _rows(name)
        all_rows.extend(rows)
        report_accuracy(name, rows)
    report_timing(all_rows, args.repetitions)


if __name__ == "__main__":
    main()
