"""Promote: a new version becomes ``challenger``; a gate decides whether it takes ``champion``.

Consumers load ``models:/<name>@champion``, so the gate is the only door to production. It
compares like with like: both versions' *backtest* scorers (fitted only on labels observable at
their own test cutoff) on this run's test customers. The decision is tagged on the version
either way, so the registry says why each champion is one.
"""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np

from ml.core import registry
from ml.core.settings import Settings
from ml.model.metrics import auc, expected_calibration_error

log = logging.getLogger(__name__)


def register_and_gate(settings: Settings, version: str, tags: dict, test_frame, y_test: np.ndarray,
                      metrics: dict[str, float], test_cutoff: dt.date) -> tuple[bool, str]:
    """Tag the new version, make it ``challenger``, and run the gate on its test metrics."""
    registry.tag_version(settings, version, tags)
    registry.set_alias(settings, registry.CHALLENGER, version)
    return promote_if_better(settings, version, test_frame, y_test, metrics, test_cutoff)


def promote_if_better(settings: Settings, version: str, test_frame, y_test: np.ndarray,
                      metrics: dict[str, float], test_cutoff: dt.date) -> tuple[bool, str]:
    """Move ``champion`` to ``version`` when, on the same test cutoff, AUC gains enough and
    calibration holds; tag the decision either way.

    ``test_frame``: the test cutoff's rows, or a function returning them (read only when a champion
    is re-scored). Both versions are judged by their backtest scorers (fitted only on labels observable at their
    own test cutoff), re-scored here on this run's test customers, so a champion whose production
    booster has seen these labels gets no unfair advantage.
    """
    champion = registry.alias_version(settings, registry.CHAMPION)
    if champion is None:
        promoted, decision, basis = True, "first model: promoted to champion", "none"
    else:
        reference, basis = champion_on_test_cutoff(settings, champion.version, test_frame, y_test, test_cutoff)
        if reference is None:
            promoted, decision = False, f"kept champion v{champion.version}: {basis}"
        else:
            gain = metrics["auc"] - reference["auc"]
            ece_increase = metrics["ece"] - reference["ece"]
            promoted = gain >= settings.promotion_min_auc_gain and ece_increase <= settings.promotion_max_ece_increase
            decision = (
                f"{'promoted over v' + champion.version if promoted else 'kept champion v' + champion.version}: "
                f"auc {metrics['auc']:.4f} vs {reference['auc']:.4f} (gain {gain:+.4f}, min {settings.promotion_min_auc_gain}), "
                f"ece {metrics['ece']:.4f} vs {reference['ece']:.4f} (change {ece_increase:+.4f}, max {settings.promotion_max_ece_increase}) "
                f"on test cutoff {test_cutoff}"
            )
    if promoted:
        registry.promote(settings, version, decision)
    registry.tag_version(settings, version, {"promotion_decision": decision, "gate_basis": basis,
                                             "promoted": str(promoted).lower()})
    log.info("promotion gate: %s", decision)
    return promoted, decision


def champion_on_test_cutoff(settings: Settings, version: str, test_frame, y_test: np.ndarray,
                            test_cutoff: dt.date) -> tuple[dict | None, str]:
    """The champion's AUC and ECE on this test cutoff's customers, and how they were obtained."""
    tags = registry.version_tags(settings, version)
    own_test = tags.get("test_cutoff")
    if own_test and dt.date.fromisoformat(own_test) > test_cutoff:
        return None, f"its backtest already saw labels after this test cutoff ({own_test} > {test_cutoff}); not comparable"
    try:
        champion = registry.load_version(settings, version)
    except Exception as exc:  # noqa: BLE001 - an unloadable champion is judged by its logged metrics
        logged = registry.version_metrics(settings, version)
        if own_test == str(test_cutoff) and "auc" in logged and "ece" in logged:
            return {"auc": logged["auc"], "ece": logged["ece"]}, f"logged metrics (model not loadable: {exc})"
        return None, f"champion not loadable and not comparable: {exc}"
    proba = champion.backtest_proba if hasattr(champion, "backtest_proba") else champion.predict_proba
    p = proba(test_frame() if callable(test_frame) else test_frame)
    return {"auc": auc(y_test, p), "ece": expected_calibration_error(y_test, p)}, "rescored backtest scorer"
