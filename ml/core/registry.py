"""MLflow tracking and registry access: one experiment, one registered model, two aliases.

Every training run registers a version and gives it alias ``challenger``; the promotion gate
moves ``champion``. Scoring always resolves ``models:/<name>@champion`` at run time, so moving the
alias by hand in the MLflow UI is honoured by the next scoring run, and rollback is moving it back
(``rollback`` does that to the champion before the current one, as recorded by ``promote``).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass

from ml.core.settings import Settings

log = logging.getLogger(__name__)

EXPERIMENT = "churnwatch"
CHAMPION, CHALLENGER = "champion", "challenger"


def configure(settings: Settings):
    """Point MLflow at the warehouse store and make sure the experiment exists."""
    import mlflow

    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=settings.artifact_root)
    mlflow.set_experiment(EXPERIMENT)
    return mlflow.MlflowClient()


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def alias_version(settings: Settings, alias: str) -> ModelRef | None:
    """The version behind ``alias``, or None when the alias is not set (or no model exists)."""
    from mlflow.exceptions import MlflowException

    client = configure(settings)
    try:
        mv = client.get_model_version_by_alias(settings.registered_model_name, alias)
    except MlflowException:
        return None
    return ModelRef(settings.registered_model_name, str(mv.version), mv.run_id)


def set_alias(settings: Settings, alias: str, version: str) -> None:
    client = configure(settings)
    client.set_registered_model_alias(settings.registered_model_name, alias, str(version))
    log.info("alias %s -> %s v%s", alias, settings.registered_model_name, version)


def tag_version(settings: Settings, version: str, tags: dict[str, str]) -> None:
    client = configure(settings)
    for k, v in tags.items():
        client.set_model_version_tag(settings.registered_model_name, str(version), k, str(v))


def version_tags(settings: Settings, version: str) -> dict[str, str]:
    client = configure(settings)
    return dict(client.get_model_version(settings.registered_model_name, str(version)).tags)


def promote(settings: Settings, version: str, reason: str, remember_previous: bool = True) -> None:
    """Move ``champion`` to ``version`` and record when, why and from which version (for rollback)."""
    tags = {"champion_since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "champion_reason": reason}
    previous = alias_version(settings, CHAMPION)
    if remember_previous and previous is not None and previous.version != str(version):
        tags["previous_champion"] = previous.version
    tag_version(settings, version, tags)
    set_alias(settings, CHAMPION, version)


def rollback(settings: Settings) -> ModelRef:
    """Move ``champion`` back to the version that held it before the current one."""
    current = alias_version(settings, CHAMPION)
    if current is None:
        raise RuntimeError(f"no '{CHAMPION}' to roll back for model '{settings.registered_model_name}'")
    previous = version_tags(settings, current.version).get("previous_champion", "")
    if not previous:
        raise RuntimeError(f"{settings.registered_model_name} v{current.version} has no previous champion to roll back to")
    promote(settings, previous, f"rollback from v{current.version}", remember_previous=False)
    return alias_version(settings, CHAMPION)


def load_version(settings: Settings, version: str):
    """The python model of one registered version."""
    import mlflow.pyfunc

    configure(settings)
    loaded = mlflow.pyfunc.load_model(f"models:/{settings.registered_model_name}/{version}")
    return loaded.unwrap_python_model()


def version_metrics(settings: Settings, version: str) -> dict[str, float]:
    """Test-cutoff metrics logged by the run that produced ``version``."""
    client = configure(settings)
    mv = client.get_model_version(settings.registered_model_name, str(version))
    run = client.get_run(mv.run_id)
    return {k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")}


def load_champion(settings: Settings):
    """Load the champion pyfunc; returns (python model, ModelRef). Fails clearly without one."""
    import mlflow.pyfunc

    ref = alias_version(settings, CHAMPION)
    if ref is None:
        raise RuntimeError(
            f"no '{CHAMPION}' version of model '{settings.registered_model_name}' in {settings.tracking_uri}; "
            "run training first (churnwatch train, or the pipeline with retrain=true)"
        )
    # by version, not by alias: the alias may move between the two calls (a promotion, or a hand
    # move in the UI), and the scores must carry the version that produced them
    loaded = mlflow.pyfunc.load_model(ref.uri)
    return loaded.unwrap_python_model(), ref
