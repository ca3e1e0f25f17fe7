"""Windows of the week that recur: days as replicates, chosen on some weeks, judged on others.

Requests in one hour of one day share that hour's load, so they are not independent repeats
of "Thursday 04:00". The unit of replication here is the *occurrence* (one hour of one
calendar day) and, above it, the day:

1. each occurrence's value is the median log latency ratio of its requests, centred on the
   median of its *period* (its week for ``period="week"``, its day for ``period="day"``), so
   slow weeks or slow days do not masquerade as slow hours;
2. a window is a set of consecutive weekdays (Mon-Fri, Tue-Thu, Sat, ...) times consecutive
   hours (1-6 or 8); its value on one day is the mean of that day's occurrences in it;
3. **sample splitting, both ways**: periods are split in two halves (even and odd weeks, or
   days). On each half the fastest and the slowest window are *chosen* (largest standardised
   mean over at least 2 days: a moderated t, its own day-to-day variance shrunk towards the
   pooled one, so one incident day cannot choose a window) and *judged* on the other half
   only, by its values there;
4. each judgement is a one-sided moderated t-test over the held-out days in the window (the
   window's own day-to-day variance shrunk towards the held-out half's pooled spread, with
   ``PRIOR_DF`` days' weight and as many more degrees of freedom), in the direction the other
   half chose (days are the replicates, so the interval comes from day-to-day variation), with Holm across all four (two kinds x two halves). Pooling the two
   halves' held-out values would not be valid: when both halves choose the same window, each
   half's values helped choose the window the other is judged on. Each kind reports its most
   significant half; a claim also needs a change of at least
   ``min_change_pct`` (5 %) to be worth acting on. The gain and its interval are those held-out
   means, never the ones that chose the window.

With fewer than ``min_periods`` distinct periods nothing is claimed: one week cannot tell a
recurring window from a passing one.

>>> import numpy as np
>>> occ = Occurrences(day=np.arange(28).repeat(24), hour=np.tile(np.arange(24), 28),
...                   value=np.zeros(28 * 24), n=np.ones(28 * 24, int))
>>> find_windows(occ, period="week", min_periods=3).claims
[]
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WINDOW_HOURS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8)
MIN_TRAIN_DAYS = 2
PRIOR_DF = 8
_MONDAY0 = 4  # day number of Monday 1970-01-05


@dataclasses.dataclass(frozen=True, slots=True)
class Occurrences:
    """One row per (local calendar day number, local hour) holding requests."""

    day: np.ndarray  # local day number since 1970-01-01
    hour: np.ndarray
    value: np.ndarray  # median log latency ratio of the occurrence's requests
    n: np.ndarray  # requests in it

    @property
    def weekday(self) -> np.ndarray:
        return (self.day + 3) % 7  # 1970-01-01 was a Thursday

    @property
    def week(self) -> np.ndarray:
        return np.floor_divide(self.day - _MONDAY0, 7)


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """Days ``first_day..last_day`` (0 = Monday; both -1 for every day of ``period='day'``)
    and hours ``start_hour..start_hour + hours``."""

    first_day: int
    last_day: int
    start_hour: int
    hours: int

    def label(self, tz: str) -> str:
        end = self.start_hour + self.hours
        hours = f"{self.start_hour:02d}:00-{end:02d}:00 {tz}"
        if self.first_day < 0:
            return hours
        if self.first_day == self.last_day:
            days = DAY_NAMES[self.first_day]
        elif self.first_day == 0 and self.last_day == 6:
            days = "every day"
        else:
            days = f"{DAY_NAMES[self.first_day]}-{DAY_NAMES[self.last_day]}"
        return f"{days} {hours}"


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Claim:
    """A window judged on held-out periods: mean log ratio with a day-level t interval."""

    kind: str  # "off-peak" | "peak"
    windows: tuple[Window, ...]  # the window judged
    mean_log: float
    lo_log: float
    hi_log: float
    p_value: float
    p_adjusted: float
    n_days: int
    n_requests: int
    held_out: np.ndarray  # (day, hour) occurrence mask of the judged cells, for error rates
    folds: int = 0  # how many halves chose this window (of ``n_folds``)
    n_folds: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class WindowSearch:
    """What :func:`find_windows` found, with the reason when it could not judge."""

    claims: list[Claim]
    candidates: list[Claim]  # judged but not significant (for the record)
    periods: int
    note: str


def centre_by_period(occ: Occurrences, period: str) -> np.ndarray:
    """Occurrence values minus the median of their period (week or day)."""
    key = occ.week if period == "week" else occ.day
    uniq, inv = np.unique(key, return_inverse=True)
    med = np.array([np.median(occ.value[inv == k]) for k in range(len(uniq))])
    return occ.value - med[inv]


def _day_sets(period: str) -> list[tuple[int, int]]:
    if period == "day":
        return [(-1, -1)]
    return [(a, b) for a in range(7) for b in range(a, 7)]


def _window_means(days: np.ndarray, occ: Occurrences, y: np.ndarray) -> dict[int, np.ndarray]:
    """Per window length L: array (n_days, 24 - L + 1) of per-day window means (NaN if empty)."""
    row = np.searchsorted(days, occ.day)
    grid = np.full((len(days), 24), np.nan)
    grid[row, occ.hour] = y
    out = {}
    filled = np.isfinite(grid)
    vals = np.where(filled, grid, 0.0)
    csum = np.concatenate([np.zeros((len(days), 1)), np.cumsum(vals, axis=1)], axis=1)
    ccnt = np.concatenate([np.zeros((len(days), 1)), np.cumsum(filled, axis=1)], axis=1)
    for L in WINDOW_HOURS:
        s = csum[:, L:] - csum[:, :-L]
        c = ccnt[:, L:] - ccnt[:, :-L]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[L] = np.where(c > 0, s / np.maximum(c, 1), np.nan)
    return out


def _spread(m: np.ndarray) -> float:
    """Pooled robust spread (1.4826 x MAD) of one day's window means, over all days and starts."""
    finite = m[np.isfinite(m)]
    return 1.4826 * float(np.median(np.abs(finite - np.median(finite)))) if len(finite) >= 2 else 0.0


def _choose(
    days: np.ndarray, weekday: np.ndarray, means: dict[int, np.ndarray], period: str
) -> dict[str, Window | None]:
    """The fastest and the slowest window on these days (largest standardised mean)."""
    best: dict[str, tuple[float, Window | None]] = {"off-peak": (0.0, None), "peak": (0.0, None)}
    for L, m in means.items():
        finite = m[np.isfinite(m)]
        if len(finite) < 2:
            continue
        # pooled, robust spread of one day's window mean: a window that is quiet by chance on
        # three days does not win on a tiny standard deviation of its own
        sd = _spread(m)
        if sd <= 0:
            continue
        for first, last in _day_sets(period):
            rows = np.ones(len(days), bool) if first < 0 else (weekday >= first) & (weekday <= last)
            sub = m[rows]
            if not sub.size:
                continue
            # moderated t (own day-to-day variance shrunk towards the pooled one, PRIOR_DF days'
            # worth): one incident day inflates its candidate's variance instead of choosing it,
            # and a window that is quiet by chance on two days does not win on a tiny variance
            ok = np.isfinite(sub)
            n = ok.sum(axis=0)
            vals = np.where(ok, sub, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = vals.sum(axis=0) / n
                ss = np.where(ok, (sub - mean) ** 2, 0.0).sum(axis=0)
                var = (PRIOR_DF * sd**2 + ss) / (PRIOR_DF + np.maximum(n - 1, 0))
                score = np.where(n >= MIN_TRAIN_DAYS, mean * np.sqrt(n / var), np.nan)
            if not np.isfinite(score).any():
                continue
            lo, hi = int(np.nanargmin(score)), int(np.nanargmax(score))
            if score[lo] < best["off-peak"][0]:
                best["off-peak"] = (float(score[lo]), Window(first, last, lo, L))
            if score[hi] > best["peak"][0]:
                best["peak"] = (float(score[hi]), Window(first, last, hi, L))
    return {k: v[1] for k, v in best.items()}


def _held_out(
    days: np.ndarray, weekday: np.ndarray, means: dict[int, np.ndarray], w: Window
) -> tuple[np.ndarray, np.ndarray]:
    """(days, values) of window ``w`` on these days."""
    m = means[w.hours][:, w.start_hour]
    rows = np.ones(len(days), bool) if w.first_day < 0 else (weekday >= w.first_day) & (weekday <= w.last_day)
    keep = rows & np.isfinite(m)
    return days[keep], m[keep]


def find_windows(
    occ: Occurrences,
    *,
    period: str = "week",
    min_periods: int = 3,
    alpha: float = 0.05,
    ci: float = 0.95,
    min_change_pct: float = 5.0,
) -> WindowSearch:
    """Cross-fitted search for one off-peak and one peak window (see the module docstring)."""
    from scipy import stats  # heavy import, only where windows are judged

    key = occ.week if period == "week" else occ.day
    periods = np.unique(key)
    unit = "week" if period == "week" else "day"
    if len(periods) < max(min_periods, 2):
        note = (
            f"{len(periods)} {unit}{'s' if len(periods) != 1 else ''} of data: "
            + (
                "one week cannot tell a recurring window from a passing one"
                if period == "week" and len(periods) <= 1
                else f"fewer than {max(min_periods, 2)} {unit}s cannot tell a recurring window from a passing one"
            )
            + f"; collect at least {max(min_periods, 2)} {unit}s"
        )
        return WindowSearch([], [], len(periods), note)
    # within-day contrasts: a day's own load level (day-to-day noise) cancels out
    y = centre_by_period(occ, "day")
    # two halves (even and odd weeks, or days); each judges the windows the other chose
    fold = np.array([int(np.searchsorted(periods, k)) % 2 for k in key]) if len(key) else np.zeros(0, int)

    def block(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        days = np.unique(occ.day[sel])
        sub = Occurrences(occ.day[sel], occ.hour[sel], occ.value[sel], occ.n[sel])
        return days, (days + 3) % 7, _window_means(days, sub, y[sel])

    halves = [block(fold == f) for f in (0, 1)]
    judged: list[Claim] = []
    for kind in ("off-peak", "peak"):
        sign = -1.0 if kind == "off-peak" else 1.0
        for f in (0, 1):  # choose on half 1 - f, judge on half f
            w = _choose(*halves[1 - f], period)[kind]
            if w is None:
                continue
            d, x = _held_out(*halves[f], w)
            if len(x) < 2 or not np.isfinite(x).all():
                continue
            cells = (fold == f) & np.isin(occ.day, d) & (occ.hour >= w.start_hour) & (occ.hour < w.start_hour + w.hours)
            mean = float(x.mean())
            # moderated t, as for choosing: the window's own day-to-day variance shrunk towards
            # the held-out half's pooled spread of windows that long (PRIOR_DF days' worth)
            pooled = _spread(halves[f][2][w.hours])
            var = (PRIOR_DF * pooled**2 + float(((x - mean) ** 2).sum())) / (PRIOR_DF + len(x) - 1)
            se = math.sqrt(var / len(x))
            t = stats.t(PRIOR_DF + len(x) - 1)
            # one-sided in the direction the other half chose: that direction was fixed
            # before these values were looked at
            p = float(t.sf(sign * mean / se)) if se > 0 else (0.0 if sign * mean > 0 else 1.0)
            half = float(t.ppf(0.5 + ci / 2) * se)
            judged.append(
                Claim(
                    kind,
                    (w,),
                    mean,
                    mean - half,
                    mean + half,
                    p,
                    math.nan,
                    len(x),
                    int(occ.n[cells].sum()),
                    cells,
                    1,
                    2,
                )
            )
    # Holm across every test made (two kinds x two halves)
    ps = np.array([c.p_value for c in judged])
    order = np.argsort(ps, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(ps[order] * (len(ps) - np.arange(len(ps))))) if len(ps) else ps
    p_adj = np.empty(len(ps))
    p_adj[order] = adj
    judged = [dataclasses.replace(c, p_adjusted=float(pa)) for c, pa in zip(judged, p_adj, strict=True)]
    # one row per kind: its most significant half; a window both halves chose is said so
    best: dict[str, Claim] = {}
    for c in judged:
        if c.kind not in best or c.p_adjusted < best[c.kind].p_adjusted:
            best[c.kind] = c
    for kind, c in best.items():
        same = [o for o in judged if o.kind == kind and o.windows == c.windows]
        best[kind] = dataclasses.replace(c, folds=len(same))
    judged = list(best.values())
    # the right direction, and a change worth acting on (centring on the day's median moves
    # every other hour by a hair when a long window is slow: real, but no advice)
    floor = math.log1p(min_change_pct / 100)
    right_way = [(c.mean_log < 0) == (c.kind == "off-peak") and abs(c.mean_log) >= floor for c in judged]
    claims = [c for c, ok in zip(judged, right_way, strict=True) if ok and c.p_adjusted < alpha]
    others = [c for c in judged if all(c is not k for k in claims)]
    note = f"{len(periods)} {unit}s, windows chosen on half of them and judged on the other half; " + (
        f"{len(claims)} window(s) recur" if claims else "no window recurs beyond day-to-day variation"
    )
    return WindowSearch(claims, others, len(periods), note)
