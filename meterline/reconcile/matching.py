"""Match the provider's lines with meterline's, and say what agrees (pure).

Each (UTC day, model, scope) on either side is one of:

- `matched`: on both sides, every figure both sides have within the tolerance;
- `over_tolerance`: on both sides, some figure differs by more than the tolerance;
- `missing_ours`: the provider billed it, meterline has no events for it;
- `missing_provider`: meterline has events the provider does not report.

A figure is within the tolerance when |ours - theirs| <= tolerance x max(|ours|, |theirs|),
and a cost also when the difference is at most `min_usd` (cents of rounding are not a gap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from meterline.reconcile.reports import MEASURES, LineKey, Measures, ProviderReport, ReportFormatError

Status = Literal["matched", "over_tolerance", "missing_ours", "missing_provider"]
STATUSES: tuple[Status, ...] = ("matched", "over_tolerance", "missing_ours", "missing_provider")


@dataclass(frozen=True)
class Tolerance:
    """How far apart two figures may be and still agree."""

    relative: Decimal = Decimal("0.01")
    """Fraction of the larger figure (0.01 = 1 %)."""
    min_usd: Decimal = Decimal("0.01")
    """A cost difference up to this many USD always agrees."""

    def agrees(self, name: str, ours: int | Decimal, theirs: int | Decimal) -> bool:
        gap = abs(Decimal(ours) - Decimal(theirs))
        if name == "cost_usd" and gap <= self.min_usd:
            return True
        return gap <= self.relative * max(abs(Decimal(ours)), abs(Decimal(theirs)))


@dataclass(frozen=True)
class LineResult:
    key: LineKey
    status: Status
    ours: Measures
    theirs: Measures
    differing: tuple[str, ...] = ()
    """The figures over the tolerance (over_tolerance only)."""


@dataclass(frozen=True)
class Reconciliation:
    provider: str
    scope_kind: str
    lines: list[LineResult] = field(default_factory=list)
    unattributed_cost_usd: Decimal = Decimal(0)

    def count(self, status: Status) -> int:
        return sum(1 for line in self.lines if line.status == status)

    @property
    def has_gap(self) -> bool:
        """True when anything is missing on a side or over the tolerance."""
        return any(line.status != "matched" for line in self.lines)


def merge_reports(reports: Sequence[ProviderReport]) -> ProviderReport:
    """One report from a provider's usage and cost files. When their scopes differ (usage by
    project, cost without), lines are summed over scopes so the two can meet."""
    if not reports:
        raise ValueError("no reports to merge")
    providers = {report.provider for report in reports}
    if len(providers) > 1:
        raise ReportFormatError(
            f"the files mix providers ({', '.join(sorted(providers))}): reconcile one provider at a time"
        )
    scope_kinds = {report.scope_kind for report in reports}
    keep_scope = len(scope_kinds) == 1
    lines: dict[LineKey, Measures] = {}
    for report in reports:
        for key, measures in report.lines.items():
            target = key if keep_scope else replace(key, scope="")
            lines.setdefault(target, Measures()).add(measures)
    first = reports[0]
    return ProviderReport(
        first.provider,
        first.kind if len({r.kind for r in reports}) == 1 else "usage",
        lines,
        first.scope_kind if keep_scope else "",
        sum((r.unattributed_cost_usd for r in reports), Decimal(0)),
    )


def without_scope(report: ProviderReport) -> ProviderReport:
    """The report summed over its scopes (project, workspace, API key)."""
    lines: dict[LineKey, Measures] = {}
    for key, measures in report.lines.items():
        lines.setdefault(replace(key, scope=""), Measures()).add(measures)
    return replace(report, lines=lines, scope_kind="")


def reconcile(report: ProviderReport, ours: dict[LineKey, Measures], tolerance: Tolerance) -> Reconciliation:
    """Compare the provider's lines with meterline's (keyed the same way), line by line."""
    results: list[LineResult] = []
    for key in sorted(set(report.lines) | set(ours), key=lambda k: (k.day, k.model, k.scope)):
        theirs = report.lines.get(key)
        mine = ours.get(key)
        if theirs is None:
            results.append(LineResult(key, "missing_provider", mine or Measures(), Measures()))
            continue
        if mine is None:
            results.append(LineResult(key, "missing_ours", Measures(), theirs))
            continue
        differing = tuple(
            name
            for name in MEASURES
            if getattr(theirs, name) is not None
            and getattr(mine, name) is not None
            and not tolerance.agrees(name, getattr(mine, name), getattr(theirs, name))
        )
        results.append(LineResult(key, "over_tolerance" if differing else "matched", mine, theirs, differing))
    return Reconciliation(report.provider, report.scope_kind, results, report.unattributed_cost_usd)
