"""The environment's docker network as testcontainers' ``Network``, for a service repository's own
containers (the API under test): ``DockerContainer("my-api").with_network(env.docker_network())`` joins
it, and the values ``env --network`` prints (``env_vars(network=True)``) reach the stores by their names
there.  The network is the environment's: joining it creates nothing, and leaving it removes nothing.
"""

from __future__ import annotations

from typing import Any, Self

from testcontainers.core.network import Network

from driveops_env.backends import docker_engine
from driveops_env.errors import UsageError
from driveops_env.state import EnvState


class EnvironmentNetwork(Network):
    """A network that exists already (``network``, the docker SDK's): ``create`` and ``remove`` (and the
    ``with`` block) leave it be.  Not made through ``Network.__init__``, which would make a client of its
    own from ``DOCKER_HOST`` and a random name."""

    def __init__(self, name: str, network: Any) -> None:
        self.name = name
        self._docker_network_kw: dict[str, Any] = {}
        self._network = network

    def create(self) -> Self:
        return self

    def remove(self) -> None:
        """The environment's ``down`` removes it."""


def of(state: EnvState) -> EnvironmentNetwork:
    """The network of a running environment of the docker backend (on its engine, local or remote)."""
    names = sorted({r.container.network for r in state.services.values() if r.container is not None})
    if state.backend != "docker" or not names:
        raise UsageError(
            f"environment {state.name!r} runs on the {state.backend} backend: it has no docker network",
            hint="start it with --backend docker",
        )
    client = docker_engine.connect(url=state.engine or None)
    return EnvironmentNetwork(names[0], client.networks.get(names[0]))
