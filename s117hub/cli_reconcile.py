"""``s117hub reconcile``: match identities, then sweep the whole register once.

First compares every person without a valid NHS number with the people sharing a blocking key
and, as the write path would, merges a match at or above the link threshold (reversibly) or
opens identity-uncertain in the review band (``--no-matching`` skips it). Then recomputes
the S117 position of every person whose facts changed or whose next due date came since
their last check (``--full``: everyone) as of today, and
brings their exceptions in step with the detectors: new findings open, findings that no longer
hold are resolved by ``system``, dismissed ones stay dismissed while the facts are the same.
A progress bar goes to stderr; what changed is printed to stdout. Run it nightly (cron, a
systemd timer or a Kubernetes CronJob); it is safe to run while the hub is serving.

Kept apart from ``cli.py`` (which imports ``add_reconcile``), so it imports nothing from there.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from register_core.ports import Clock
from register_core.services.bulk_matching import MatchingReport, apply_matches, plan_matches
from register_core.services.outbound import enqueue_on_change
from register_core.services.reconcile import PAGE, SweepReport, count_people, sweep

from .config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _by_kind(label: str, counts: Counter[str]) -> list[str]:
    total = sum(counts.values())
    lines = [f"{label}\t{total}"]
    lines += [f"{label}\t{kind}\t{n}" for kind, n in sorted(counts.items())]
    return lines


def matching_lines(report: MatchingReport) -> list[str]:
    """What the identity pass did, tab-separated like ``report_lines``."""
    lines = [f"people compared\t{report.compared}", f"pairs scored\t{report.pairs}",
             f"people linked (merged)\t{report.linked}",
             f"people sent to review\t{report.reviews_opened}",
             f"pairs already raised or decided\t{report.known}",
             f"links deferred to the next run\t{report.deferred}"]
    lines += _by_kind("exceptions opened by merges", report.opened)
    lines += _by_kind("exceptions auto-resolved by merges", report.auto_resolved)
    if report.failed:
        lines.append(f"matching failed\t{len(report.failed)}")
        lines += [f"matching failed\t{person_id}" for person_id in report.failed]
    return lines


def report_lines(report: SweepReport) -> list[str]:
    """Tab-separated, one fact a line, for people and for scripts."""
    lines = [f"people swept\t{report.people}", f"people recomputed\t{report.recomputed}",
             f"positions changed\t{report.positions_changed}"]
    lines += [f"field changed\t{name}\t{n}" for name, n in sorted(report.fields_changed.items())]
    lines += _by_kind("exceptions opened", report.opened)
    lines += _by_kind("exceptions auto-resolved", report.auto_resolved)
    if report.failed:
        lines.append(f"failed\t{len(report.failed)}")
        lines += [f"failed\t{person_id}" for person_id in report.failed]
    return lines


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .bootstrap import bootstrap

    if args.page < 1:
        print("s117hub: --page must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.workers < 1:
        print("s117hub: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    hub = bootstrap(settings, clock=args.clock)
    matching: MatchingReport | None = None
    try:
        show = sys.stderr.isatty() if args.progress is None else args.progress
        # Merges and positions that move with time alone (a CTO's end passing) are status
        # changes too: queued for partners with the person's own transaction.
        on_change = enqueue_on_change(hub.clock.now)
        if args.matching:
            # Before the sweep, so it recomputes and syncs the merged people with the rest.
            plan = plan_matches(hub.engine, hub.policy, workers=args.workers)
            with tqdm(total=len(plan.proposals), unit="decisions", desc="matching",
                      file=sys.stderr, disable=not show) as bar:
                matching = apply_matches(hub.engine, plan, hub.clock, hub.policy,
                                         progress=bar.update, on_merge=on_change,
                                         page=args.page, workers=args.workers)
        total = count_people(hub.engine) if show else None
        with tqdm(total=total, unit="people", desc="reconcile", file=sys.stderr,
                  disable=not show) as bar:
            report = sweep(hub.engine, hub.clock, hub.policy, progress=bar.update,
                           page=args.page, on_change=on_change, workers=args.workers,
                           full=args.full)
    finally:
        hub.close()
    lines = matching_lines(matching) if matching is not None else []
    for line in lines + report_lines(report):
        print(line)
    failed = report.failed or (matching is not None and matching.failed)
    return EXIT_FAILED if failed else EXIT_OK


def add_reconcile(subparsers: Any) -> argparse.ArgumentParser:
    """Declare ``reconcile`` on the ``s117hub`` sub-command parser."""
    reconcile = subparsers.add_parser(
        "reconcile", help="match identities, recompute positions, sync exceptions (nightly)",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
        epilog="Exit status: 0 done, 1 some people could not be matched or swept (listed).")
    reconcile.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                           help="show a progress bar on stderr (default: when it is a "
                           "terminal)")
    reconcile.add_argument("--page", type=int, default=PAGE, metavar="N",
                           help=f"people read, and written, per transaction (default {PAGE})")
    reconcile.add_argument("--full", action="store_true",
                           help="recompute every person, even those whose last check still "
                           "holds (after restoring a backup, or to audit)")
    reconcile.add_argument("--matching", action=argparse.BooleanOptionalAction, default=True,
                           help="compare people without an NHS number with the register "
                           "first (default); --no-matching skips it")
    reconcile.add_argument("--workers", type=int, default=1, metavar="N",
                           help="processes that score identity pairs and sweep ranges of "
                           "people (default 1)")
    reconcile.set_defaults(handler=cmd_reconcile, clock=None)
    return reconcile


def run(argv: Sequence[str], settings: Settings | None = None,
        clock: Clock | None = None) -> int:
    """``s117hub reconcile ARGS`` on its own (tests, and scripts that import it), optionally
    as of another clock's today."""
    parser = argparse.ArgumentParser(prog="s117hub")
    add_reconcile(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(["reconcile", *argv])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.clock = clock
    return int(args.handler(settings or Settings(), args))
