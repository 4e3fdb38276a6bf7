"""Where training's time goes: wall time per phase, and LightGBM's own share of it.

Every booster of a run (search, cross-fits, refits, rolling origins, value model) is trained
through ``Timer.fit``, so the run's metrics can say how much of a slow training is LightGBM and how
much is everything around it (benchmarks/bench_model.py reads these).
"""
from __future__ import annotations

import time
from contextlib import contextmanager


class Timer:
    """Wall time per phase, and wall and CPU time spent inside LightGBM's own training."""

    def __init__(self):
        self.phases: dict[str, float] = {}
        self.lightgbm = 0.0
        self.lightgbm_cpu = 0.0
        self.fits = 0

    @contextmanager
    def phase(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started

    def fit(self, *args, **kwargs):
        import lightgbm as lgb

        started, cpu = time.perf_counter(), time.process_time()
        try:
            return lgb.train(*args, **kwargs)
        finally:
            self.lightgbm += time.perf_counter() - started
            self.lightgbm_cpu += time.process_time() - cpu
            self.fits += 1

    def construct(self, dataset):
        """LightGBM's binning of a Dataset counts as LightGBM's own time."""
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return dataset.construct()
        finally:
            self.lightgbm += time.perf_counter() - started
            self.lightgbm_cpu += time.process_time() - cpu

    def summary(self) -> dict[str, float]:
        return {**self.phases, "lightgbm_fit": self.lightgbm, "lightgbm_fit_cpu": self.lightgbm_cpu,
                "lightgbm_fits": float(self.fits)}
