"""Every way a pipeline author can make a pod reference a Secret, as plugin configs.

Shared by the per-pipeline secrets example and the controller-identity policy: both promise that a
Secret is reachable only as the admin allows, so both are attacked through each of these routes.
"""

from __future__ import annotations

from typing import Any

from tests.attacks.harness import ALLOWED_IMAGE, step_container


def secret_routes(secret: str, key: str = "password") -> dict[str, dict[str, Any]]:
    """Technique name -> plugin config referencing Secret ``secret`` (``key`` where one is named)."""
    key_ref = {"secretKeyRef": {"name": secret, "key": key}}
    env = [{"name": "STOLEN", "valueFrom": key_ref}]
    env_from = [{"secretRef": {"name": secret}}]
    prefixed_env_from = [{"prefix": "X_", "secretRef": {"name": secret}}]
    volume = {"name": "stolen", "secret": {"secretName": secret}}
    mount = {"name": "stolen", "mountPath": "/stolen"}
    return {
        "podSpec-env-valueFrom": {"podSpec": {"containers": [step_container(env=env)]}},
        "podSpec-envFrom": {"podSpec": {"containers": [step_container(envFrom=env_from)]}},
        "podSpec-envFrom-with-prefix": {
            "podSpec": {"containers": [step_container(envFrom=prefixed_env_from)]}
        },
        "podSpec-secret-volume": {
            "podSpec": {"containers": [step_container(volumeMounts=[mount])], "volumes": [volume]}
        },
        "podSpec-projected-volume": {
            "podSpec": {
                "containers": [step_container(volumeMounts=[mount])],
                "volumes": [
                    {
                        "name": "stolen",
                        "projected": {
                            "sources": [
                                {"configMap": {"name": "harmless"}},
                                {"secret": {"name": secret, "items": [{"key": key, "path": "k"}]}},
                            ]
                        },
                    }
                ],
            }
        },
        "podSpec-csi-nodePublishSecretRef": {
            "podSpec": {
                "containers": [step_container()],
                "volumes": [
                    {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": secret}}}
                ],
            }
        },
        "podSpec-imagePullSecrets": {
            "podSpec": {"containers": [step_container()], "imagePullSecrets": [{"name": secret}]}
        },
        "podSpec-init-env": {
            "podSpec": {"initContainers": [{"name": "prep", "image": ALLOWED_IMAGE, "env": env}]}
        },
        "podSpec-ephemeral-envFrom": {
            "podSpec": {"ephemeralContainers": [{"name": "dbg", "image": ALLOWED_IMAGE, "envFrom": env_from}]}
        },
        "sidecar-envFrom": {"sidecars": [{"name": "db", "image": ALLOWED_IMAGE, "envFrom": env_from}]},
        "sidecar-env-valueFrom": {"sidecars": [{"name": "db", "image": ALLOWED_IMAGE, "env": env}]},
        "podSpecPatch-volume": {"podSpecPatch": {"volumes": [volume]}},
        "podSpecPatch-agent-envFrom": {
            "podSpecPatch": {"containers": [{"name": "agent", "envFrom": env_from}]}
        },
        "podSpecPatch-checkout-env": {"podSpecPatch": {"containers": [{"name": "checkout", "env": env}]}},
        "podSpecPatch-new-container-env": {
            "podSpecPatch": {"containers": [{"name": "extra", "image": ALLOWED_IMAGE, "env": env}]}
        },
        "podSpecPatch-imagePullSecrets": {"podSpecPatch": {"imagePullSecrets": [{"name": secret}]}},
        "gitEnvFrom": {"gitEnvFrom": env_from},
        "checkout-envFrom": {"checkout": {"envFrom": env_from}},
        "checkout-gitCredentialsSecret": {"checkout": {"gitCredentialsSecret": {"secretName": secret}}},
        "checkout-gitMirrors-secret-volume": {
            "checkout": {"gitMirrors": {"volume": {"name": "mirrors", "secret": {"secretName": secret}}}}
        },
        "commandParams-envFrom": {"commandParams": {"envFrom": env_from}},
        "sidecarParams-envFrom": {
            "sidecars": [{"name": "db", "image": ALLOWED_IMAGE}],
            "sidecarParams": {"envFrom": env_from},
        },
    }
