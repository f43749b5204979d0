"""Identity-linkage benchmark (issue 4): two noisy sources of N synthetic people, linked.

Generates the labelled set (``reconciliation.linkage_data``), links source A to source B with
``reconciliation.blocking.link_batch`` — NHS number first, Fellegi–Sunter otherwise — and
prints wall and CPU time, peak RSS, and precision / recall / F1 of the probabilistic links:
every true pair that does not share a valid NHS number (either side lacks one, or mistyped it).
NHS-number links are checked separately (any wrong one fails the run).

    python benchmarks/linkage.py --people 100000
    python benchmarks/linkage.py --people 1000000 --workers 2
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from collections import Counter

from reconciliation.blocking import link_batch
from reconciliation.comparisons import valid_nhs_number
from reconciliation.identity import IdentityMatcher
from reconciliation.linkage_data import LinkageSet, generate_linkage_set

F1_TARGET = 0.98


def peak_rss_mib() -> tuple[float, float]:
    """(this process, largest child) peak RSS in MiB; Linux reports KiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def evaluate(data: LinkageSet, links: list[tuple[str, str, str, float]],
             reviews: list[tuple[str, str | None, str, float]]) -> dict[str, float]:
    truth = data.true_pairs()
    nhs_a = {r.id: valid_nhs_number(r.nhs_number) for r in data.source_a}
    nhs_b = {r.id: valid_nhs_number(r.nhs_number) for r in data.source_b}
    # The pairs the probabilistic matcher must find: no shared valid NHS number.
    needed = {a: b for a, b in truth.items() if nhs_a[a] is None or nhs_a[a] != nhs_b[b]}
    prob = [(a, b) for a, b, how, _ in links if how == "probabilistic"]
    nhs_links = [(a, b) for a, b, how, _ in links if how == "nhs-number"]
    true_pos = sum(needed.get(a) == b for a, b in prob)
    precision = true_pos / len(prob) if prob else 1.0
    recall = true_pos / len(needed) if needed else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "records A": len(data.source_a), "records B": len(data.source_b),
        "true pairs": len(truth), "true pairs without a shared NHS number": len(needed),
        "NHS-number links": len(nhs_links),
        "NHS-number links wrong": sum(truth.get(a) != b for a, b in nhs_links),
        "probabilistic links": len(prob), "probabilistic links correct": true_pos,
        "reviews (identity-uncertain)": len(reviews),
        "reviews that were true pairs": sum(needed.get(a) == b for a, b, _, _ in reviews),
        "precision": precision, "recall": recall, "F1": f1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=117)
    parser.add_argument("--workers", type=int, default=2, help="processes for the A side")
    parser.add_argument("--threshold-link", type=float, default=None)
    parser.add_argument("--threshold-review", type=float, default=None)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    gc.disable()  # millions of acyclic objects: the cyclic collector only slows generation
    data = generate_linkage_set(args.people, seed=args.seed)
    gc.enable()
    gc.freeze()  # and keep it from rescanning them for the rest of the run
    generated = time.perf_counter() - started
    rss_generated, _ = peak_rss_mib()
    print(f"generated {args.people:,} people -> A {len(data.source_a):,} / "
          f"B {len(data.source_b):,} records in {generated:.1f} s "
          f"(peak RSS {rss_generated:,.0f} MiB)", flush=True)

    default = IdentityMatcher()
    matcher = IdentityMatcher(args.threshold_link or default.threshold_link,
                              args.threshold_review or default.threshold_review)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = link_batch(data.source_a, data.source_b, matcher, workers=args.workers)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_rss, child_rss = peak_rss_mib()

    figures = evaluate(data, result.links, result.reviews)
    print(f"linked in {wall:.1f} s wall ({cpu:.1f} s CPU here + "
          f"{kids.ru_utime + kids.ru_stime:.1f} s in {args.workers} worker(s)); "
          f"thresholds link {matcher.threshold_link} review {matcher.threshold_review}")
    print(f"peak RSS {own_rss:,.0f} MiB (largest worker {child_rss:,.0f} MiB)")
    for name, value in figures.items():
        shown = f"{value:.4f}" if isinstance(value, float) else f"{value:,}"
        print(f"  {name:<42} {shown}")
    reasons = Counter(reason for _, _, reason, _ in result.reviews)
    print("  review reasons:", ", ".join(f"{k} {v:,}" for k, v in reasons.most_common()))
    met = figures["F1"] >= F1_TARGET and figures["NHS-number links wrong"] == 0
    print(f"F1 {figures['F1']:.4f} (target >= {F1_TARGET}); NHS-number links wrong: "
          f"{figures['NHS-number links wrong']} -> {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
