"""The controller ID (``buildkite.com/controller-id``): see :mod:`engine.model.controller_id`.

The derivation lives in the model so the engine's finishing step, ``engine test`` and the controller
compute the same ID from the same config; this module keeps the controller's import path.
"""

from __future__ import annotations

from engine.model.controller_id import (
    LABEL_VALUE_MAX,
    ControllerIdError,
    controller_id,
    default_controller_id,
    is_label_value,
)

__all__ = ["LABEL_VALUE_MAX", "ControllerIdError", "controller_id", "default_controller_id", "is_label_value"]
