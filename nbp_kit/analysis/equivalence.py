"""Three verdicts for "does this knob change latency?": an effect, no effect beyond a stated
margin, or not enough data (and about how much more would settle it).

For one level against the baseline, on the median:

- the **test** is the Mann-Whitney rank-sum test (scipy; exact for small groups, valid for
  any latency distribution when the knob does nothing), corrected by Holm across every row of
  one answer, so a knob with no effect is called slower or faster in at most ``alpha`` of
  answers, however many levels and strata it has;
- the **interval** of the median difference is a seeded percentile bootstrap;
- **equivalence** (two one-sided tests, TOST, at ``(1 - ci) / 2`` each): the whole interval
  lies inside ``+/- margin``. Only then is the verdict "no effect larger than the margin".

Otherwise the answer is "inconclusive", with the calls per level that would shrink the
interval enough to settle it one way or the other (half-widths scale as ``1 / sqrt(n)``):

    n_needed = n * (half_width / max(|d|, margin - |d|))^2

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(30, 3, 400), rng.normal(30, 3, 400)
>>> r = median_shift(a, b, margin_s=1.5)
>>> classify(r, p_adjusted=r.p_value, alpha=0.05, level="b", baseline="a").startswith("no effect larger")
True
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .quantile_ci import interval_shown, order_statistic_ci


@dataclasses.dataclass(frozen=True, slots=True)
class ShiftResult:
    """Median difference ``b - a`` with its interval, rank test and margin."""

    n_a: int
    n_b: int
    diff_s: float
    lo_s: float
    hi_s: float
    p_value: float  # Mann-Whitney two-sided, uncorrected
    margin_s: float

    @property
    def inside_margin(self) -> bool:
        """TOST: the interval lies within +/- margin."""
        return math.isfinite(self.lo_s) and -self.margin_s < self.lo_s and self.hi_s < self.margin_s

    def calls_to_settle(self) -> int | None:
        """About how many more calls per level would settle an inconclusive comparison."""
        half = (self.hi_s - self.lo_s) / 2
        d = abs(self.diff_s)
        target = max(d, self.margin_s - d)
        n = min(self.n_a, self.n_b)
        if not (math.isfinite(half) and target > 0 and n > 0):
            return None
        return max(1, math.ceil(n * (half / target) ** 2) - n)


def median_shift(
    a: np.ndarray, b: np.ndarray, *, margin_s: float, ci: float = 0.95, n_boot: int = 1000, seed: int = 0
) -> ShiftResult:
    """Median of ``b`` minus median of ``a``: bootstrap interval and rank-test p-value."""
    from scipy.stats import mannwhitneyu  # heavy import, only where a test is run

    a = np.sort(np.asarray(a, dtype=float))
    b = np.sort(np.asarray(b, dtype=float))
    if len(a) == 0 or len(b) == 0:
        return ShiftResult(len(a), len(b), math.nan, math.nan, math.nan, math.nan, margin_s)
    diff = float(np.median(b) - np.median(a))
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, len(a), (n_boot, len(a)))], axis=1)
    mb = np.median(b[rng.integers(0, len(b), (n_boot, len(b)))], axis=1)
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(mb - ma, [alpha, 1 - alpha])
    p = float(mannwhitneyu(b, a, alternative="two-sided").pvalue)
    return ShiftResult(len(a), len(b), diff, float(min(lo, diff)), float(max(hi, diff)), p, float(margin_s))


def quantile_diff_bounds(a: np.ndarray, b: np.ndarray, q: float, ci: float = 0.95) -> tuple[float, float]:
    """A conservative interval of ``quantile(b) - quantile(a)`` from the two exact intervals
    (each at ``1 - (1 - ci) / 2``, Bonferroni); NaNs when either group is too small."""
    each = 1 - (1 - ci) / 2
    if not (interval_shown(len(a), q, each)[0] and interval_shown(len(b), q, each)[0]):
        return math.nan, math.nan
    a_lo, a_hi = order_statistic_ci(a, q, each)
    b_lo, b_hi = order_statistic_ci(b, q, each)
    return b_lo - a_hi, b_hi - a_lo


def _places(*values: float) -> int:
    # two significant digits below a second: a scaled emulator run differs by milliseconds
    big = max((abs(v) for v in values if math.isfinite(v)), default=1.0)
    return 1 if big >= 1 or big == 0 else min(6, 1 - math.floor(math.log10(big)))


def classify(r: ShiftResult, *, p_adjusted: float, alpha: float, level: str, baseline: str) -> str:
    """The verdict sentence for one row (see the module docstring)."""
    k = _places(r.diff_s, r.lo_s, r.hi_s, r.margin_s)
    ci = f"CI {r.lo_s:+.{k}f} to {r.hi_s:+.{k}f} s"
    margin = f"+/-{r.margin_s:.{k}f} s"
    if math.isfinite(p_adjusted) and p_adjusted < alpha:
        word = "slower" if r.diff_s > 0 else "faster"
        text = f"{level} is {word} than {baseline} by {abs(r.diff_s):.{k}f} s at the median ({ci})"
        return text + (f", within the {margin} margin" if r.inside_margin else "")
    if r.inside_margin:
        return f"no effect larger than the {margin} margin ({ci})"
    more = r.calls_to_settle()
    hint = f"; about {more:,} more calls per level would settle it" if more is not None else ""
    return f"inconclusive: {ci}, margin {margin}{hint}"
