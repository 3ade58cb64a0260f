"""The model the service answers with, and how a new champion replaces it without a failed request.

Hot swap: a new Predictor is built completely, then assigned to one attribute; each request reads that
attribute once, so it is answered by one model from start to end. A poll (every
`serving.reload_poll_seconds`, 0: off) follows the `champion` alias and the snapshot its version points
to (`sendtime refresh` gives the same version newer profiles); `POST /reload` swaps at once.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from typing import TYPE_CHECKING

from sendtime.configs.settings import Settings
from sendtime.serving.api_errors import NO_MODEL, OK, SERVER_ERROR

if TYPE_CHECKING:
    from sendtime.serving.predictor import Predictor

log = logging.getLogger(__name__)
# answered by each model before it is served: the first subscriber would otherwise pay ~200 ms of lazy
# loading (phone metadata, timezone data, LightGBM's first predict)
WARM_UP = json.dumps(
    {"subscribers": [{"email": "warm-up@example.com", "phone": "+12125550123"}], "include_scores": True}
)


class ChampionWatch:
    def __init__(self, settings: Settings) -> None:
        from sendtime.serving.predictor import Predictor  # LightGBM loads in the worker, not at import

        self.settings = settings
        self.serving = _target(settings)  # (version, snapshot run) read before the load, see `reload`
        version = None if self.serving is None else self.serving[0]
        self.predictor: Predictor = _warm(Predictor.from_registry(settings, version), settings)  # pinned
        self._swap = threading.Lock()
        self._stop = threading.Event()
        _freeze()
        log.info(
            "sendtime: serving model version %s, profiles as of %s",
            self.predictor.model_version,
            self.predictor.meta.get("profiles_as_of"),
        )

    def start_polling(self) -> None:
        if self.settings.serving.reload_poll_seconds > 0:
            threading.Thread(target=self._poll, name="sendtime-champion-poll", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def reload(self) -> tuple[str, str]:
        """Swap in the version `champion` points to now with its newest snapshot, built completely
        first; (previous, current) version. LookupError when there is no champion alias.

        What is being served is read before the load: a refresh registered during the load is loaded
        once more at the next poll, never missed."""
        from sendtime.serving.predictor import Predictor
        from sendtime.training import registry

        with self._swap:
            previous = self.predictor.model_version
            target = _target(self.settings)
            if target is None:
                raise LookupError(f"no '{registry.CHAMPION}' alias: still serving version {previous}")
            if target != self.serving:
                # built completely (and warmed up) first, then swapped in with one (atomic) assignment
                loaded = _warm(Predictor.from_registry(self.settings, version=target[0]), self.settings)
                self.predictor = loaded
                self.serving = target
                _freeze()
                log.info(
                    "sendtime: now serving model version %s, profiles as of %s (was version %s)",
                    target[0],
                    loaded.meta.get("profiles_as_of"),
                    previous,
                )
            return previous, self.predictor.model_version

    def reload_answer(self) -> tuple[int, dict]:
        """`POST /reload`: (status, body); a failed load keeps the model being served. `changed` is true
        for a new version and for a new snapshot of the same version alike."""
        before = self.predictor
        try:
            previous, current = self.reload()
        except LookupError as exc:
            return NO_MODEL, {"error": str(exc), "details": []}
        except Exception as exc:  # e.g. a version trained by an incompatible sendtime: keep the old one
            log.exception("sendtime: reload failed")
            problem = f"reload failed ({exc}); still serving version {self.predictor.model_version}"
            return SERVER_ERROR, {"error": problem, "details": []}
        return OK, {
            "model_version": current,
            "previous_version": previous,
            "changed": self.predictor is not before,
            "profiles_as_of": self.predictor.meta.get("profiles_as_of"),
            "previous_profiles_as_of": before.meta.get("profiles_as_of"),
        }

    def _poll(self) -> None:
        every = self.settings.serving.reload_poll_seconds
        while not self._stop.wait(every):
            try:
                self.reload()
            except Exception:  # a registry hiccup must not stop serving or polling
                log.exception(
                    "sendtime: champion poll failed; still serving %s", self.predictor.model_version
                )


def _warm(predictor: Predictor, settings: Settings) -> Predictor:
    """The predictor, once it has answered `WARM_UP` (a failure there is only logged: real requests
    will report their own)."""
    import numpy as np

    from sendtime.serving import api

    status, body = api.handle("predict", WARM_UP, predictor, settings, np.random.default_rng(0))
    if status != OK:
        log.warning("sendtime: the warm-up request got %s: %s", status, body)
    return predictor


def _target(settings: Settings) -> tuple[str, str] | None:
    """(version, snapshot run) that `champion` points to now; None without the alias."""
    from sendtime.training import registry

    registry.configure_mlflow(settings.training.experiment)
    name = settings.training.registered_model
    version = registry.champion_version(name)
    if version is None:
        return None
    version = str(version)  # MLflow may give the version as a number
    return version, registry.snapshot_run(name, version)


def _freeze() -> None:
    """Keep the loaded model out of the cyclic garbage collector's scans: they cost tens of ms a request."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
