"""Buy-till-you-die models: BG/NBD purchases and Gamma-Gamma spend (a leaf: numpy and scipy only).

BG/NBD (Fader, Hardie & Lee 2005): while alive a customer buys at a Poisson rate λ ~ Gamma(r, α)
and drops out right after each purchase with probability p ~ Beta(a, b). Per customer it needs
only ``x`` (repeat purchases), ``t_x`` (time of the last purchase since the first) and ``T`` (time
since the first purchase), all in days here. Gamma-Gamma (Fader, Hardie & Lee 2005b) models the
average order value of ``n`` orders given the customer's mean spend; with BG/NBD it gives the
expected spend over a future window.

Both are fitted by maximum likelihood on log-parameters with L-BFGS from a fixed start, so the
same data always gives the same parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

_EPS = 1e-12


def _as_float(*arrays) -> list[np.ndarray]:
    return [np.asarray(a, dtype=float) for a in arrays]


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters (time unit: days)."""

    r: float
    alpha: float
    a: float
    b: float

    # ---- fit ---------------------------------------------------------------------------------

    @staticmethod
    def log_likelihood(params, x, t_x, T) -> np.ndarray:
        """Per-customer log-likelihood for ``params = (r, alpha, a, b)``."""
        r, alpha, a, b = params
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
        a3 = -(r + x) * np.log(alpha + T)
        with np.errstate(divide="ignore", invalid="ignore"):
            a4 = np.where(
                x > 0,
                np.log(a) - np.log(np.maximum(b + x - 1, _EPS)) - (r + x) * np.log(alpha + t_x),
                -np.inf,
            )
        return a1 + a2 + np.logaddexp(a3, a4)

    @classmethod
    def fit(cls, x, t_x, T, penalty: float = 1e-4) -> "BGNBD":
        """Maximum likelihood on (x, t_x, T); a tiny L2 penalty on log-params keeps it finite."""
        x, t_x, T = _as_float(x, t_x, T)
        scale = max(float(np.median(T)), 1.0)  # fit in units of the typical age, for conditioning

        def nll(log_params):
            r, alpha, a, b = np.exp(log_params)
            ll = cls.log_likelihood((r, alpha, a, b), x, t_x / scale, T / scale)
            return -ll.mean() + penalty * float(np.sum(log_params**2))

        start = np.log([1.0, 1.0, 1.0, 1.0])
        res = optimize.minimize(nll, start, method="L-BFGS-B", bounds=[(-9.0, 9.0)] * 4)
        r, alpha, a, b = np.exp(res.x)
        return cls(float(r), float(alpha * scale), float(a), float(b))

    # ---- predictions ---------------------------------------------------------------------------

    def _odds_dead(self, x, t_x, T) -> np.ndarray:
        """a/(b+x-1) · ((α+T)/(α+t_x))^(r+x) for x > 0, else 0: P(dead)/P(alive)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_odds = (
                np.log(self.a)
                - np.log(np.maximum(self.b + x - 1, _EPS))
                + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x))
            )
        return np.where(x > 0, np.exp(np.minimum(log_odds, 700.0)), 0.0)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        x, t_x, T = _as_float(x, t_x, T)
        return 1.0 / (1.0 + self._odds_dead(x, t_x, T))

    def p_no_purchase(self, t: float, x, t_x, T) -> np.ndarray:
        """P(no purchase in (T, T + t]): dropped out, or alive and the Poisson stays silent."""
        x, t_x, T = _as_float(x, t_x, T)
        alive = self.p_alive(x, t_x, T)
        silent = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + T + t)))
        return (1.0 - alive) + alive * silent

    def expected_purchases(self, t: float, x, t_x, T) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (the conditional expectation of the paper, eq. 10)."""
        x, t_x, T = _as_float(x, t_x, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1) if abs(a - 1) > 1e-9 else np.full_like(x, np.nan)
        body = 1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp
        out = head * body / (1.0 + self._odds_dead(x, t_x, T))
        # far outside the data the series can lose precision; the expectation is never negative
        return np.clip(np.nan_to_num(out, nan=0.0, posinf=0.0), 0.0, None)

    def to_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend parameters: order values ~ Gamma(p, ν), ν ~ Gamma(q, γ)."""

    p: float
    q: float
    gamma: float

    @staticmethod
    def log_likelihood(params, n, mean_value) -> np.ndarray:
        p, q, g = params
        return (
            special.gammaln(p * n + q)
            - special.gammaln(p * n)
            - special.gammaln(q)
            + q * np.log(g)
            + (p * n - 1) * np.log(mean_value)
            + p * n * np.log(n)
            - (p * n + q) * np.log(n * mean_value + g)
        )

    @classmethod
    def fit(cls, n, mean_value, penalty: float = 1e-4) -> "GammaGamma":
        """Maximum likelihood on customers with at least one order of positive value."""
        n, m = _as_float(n, mean_value)
        keep = (n > 0) & (m > 0) & np.isfinite(m)
        n, m = n[keep], m[keep]
        scale = max(float(np.median(m)), 1e-6)

        def nll(log_params):
            return -cls.log_likelihood(np.exp(log_params), n, m / scale).mean() + penalty * float(np.sum(log_params**2))

        res = optimize.minimize(nll, np.log([2.0, 3.0, 1.0]), method="L-BFGS-B", bounds=[(-9.0, 9.0)] * 3)
        p, q, g = np.exp(res.x)
        return cls(float(p), float(q), float(g * scale))

    def expected_order_value(self, n, mean_value) -> np.ndarray:
        """E[value of a future order | n orders averaging mean_value]; the population mean for n = 0."""
        n, m = _as_float(n, mean_value)
        m = np.where(np.isfinite(m) & (m > 0), m, 0.0)
        population = self.p * self.gamma / (self.q - 1) if self.q > 1 else np.nan
        weight = self.p * n / (self.p * n + self.q - 1)
        individual = np.where(n > 0, m, 0.0)
        return np.where(n > 0, (1 - weight) * population + weight * individual, population)

    def to_dict(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}
