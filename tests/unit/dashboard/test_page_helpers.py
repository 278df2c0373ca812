"""The page's pure helpers (dashboard.js), run by node: money is rounded on the decimal string
exactly as Python's Decimal rounds half up, never through a float; the period presets."""

from __future__ import annotations

import json
import shutil
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from importlib.resources import files

import pytest

SCRIPT = files("meterline.dashboard") / "static" / "dashboard.js"
AMOUNTS = [
    "0",
    "0E-12",
    "0.000000000000",
    "1.00005",
    "1.00004999999",
    "2.46266215500",
    "123456789012345678.999950000000",
    "0.00005",
    "-0.00005",
    "-1.23456",
    "9.99995",
    "0.1",
    "17",
    "1.5E-3",
    "2.5E+2",
    ".5",
]


def node_eval(expression: str) -> object:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the page's helpers are tested with it (apt-get install nodejs)")
    code = f"const page = require({json.dumps(str(SCRIPT))}); process.stdout.write(JSON.stringify({expression}));"
    done = subprocess.run([node, "-e", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_round_decimal_matches_python_half_up_on_every_digit() -> None:
    rounded = node_eval(f"{json.dumps(AMOUNTS)}.map((a) => [page.roundDecimal(a, 4), page.roundDecimal(a, 0)])")
    expected = [
        [
            str(Decimal(a).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)).replace("-0.0000", "0.0000"),
            str(Decimal(a).quantize(Decimal("1"), rounding=ROUND_HALF_UP)).replace("-0", "0"),
        ]
        for a in AMOUNTS
    ]
    assert rounded == expected


def test_period_presets_are_utc_days_with_to_inclusive() -> None:
    today = "new Date(Date.UTC(2026, 2, 15, 13))"  # 2026-03-15
    got = node_eval(
        f'["7d", "30d", "month", "last-month", ""].map((p) => {{ const r = page.presetRange(p, {today}); '
        f"return r && r.map((d) => d.toISOString().slice(0, 10)); }})"
    )
    assert got == [
        ["2026-03-09", "2026-03-15"],
        ["2026-02-14", "2026-03-15"],
        ["2026-03-01", "2026-03-31"],
        ["2026-02-01", "2026-02-28"],
        None,
    ]


def test_a_value_that_is_not_a_decimal_is_refused_not_shown_as_a_number() -> None:
    assert node_eval(
        '(() => { try { page.roundDecimal("1,5", 4); return "shown"; } catch (e) { return e.message; } })()'
    ) == ("not a decimal number: 1,5")
