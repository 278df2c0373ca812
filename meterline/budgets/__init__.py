"""Budget rules (pure): calendar periods and rolling windows, thresholds, forecast, the book.

May import: the core (messages, money, settings) only; pure, no I/O.
"""

from meterline.budgets.book import BookChanges, BudgetBook, Charge
from meterline.budgets.cells import SpendCell
from meterline.budgets.periods import Period, calendar_period, is_late, minute_of, rolling_key
from meterline.budgets.rules import crossed_thresholds, forecast_exceeds, percent_of, top_models

__all__ = [
    "BookChanges",
    "BudgetBook",
    "Charge",
    "Period",
    "SpendCell",
    "calendar_period",
    "crossed_thresholds",
    "forecast_exceeds",
    "is_late",
    "minute_of",
    "percent_of",
    "rolling_key",
    "top_models",
]
