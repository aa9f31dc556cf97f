"""A derivation: an image made from another by running it once as a builder container, doing what its
recipe says once the builder answers, and committing it with the configuration of the image it ran
(its secrets replaced by values nobody keeps).  The builder carries its maker's labels: one whose
maker died is removed by the next ``up`` or ``gc`` (:mod:`driveops_env.builders`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Exec = Callable[[list[str], bytes | None], tuple[int, str]]  # argv, stdin -> exit code, output


@dataclass(frozen=True)
class Builder:
    """A running builder as its recipe's steps reach it: where this machine reaches its published ports
    (by name), and a command run inside it (a secret on its stdin)."""

    host: str
    ports: Mapping[str, int]
    exec: Exec

    def url(self, port: str) -> str:
        return f"http://{self.host}:{self.ports[port]}"


@dataclass(frozen=True)
class Derivation:
    """What to run and commit.  ``ready`` raises until the builder answers (given it); ``work`` then does
    what the image must hold (a login, realms); ``what`` and ``service`` name it in errors."""

    base: str  # the image the builder runs
    tag: str  # what it is committed as
    what: str
    service: str
    ready: Callable[[Builder], object]
    labels: Mapping[str, str] = field(default_factory=dict)  # the committed image's
    builder_labels: Mapping[str, str] = field(default_factory=dict)  # the builder's own besides
    environment: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()  # committed with fresh random values nobody keeps
    reset_env: tuple[str, ...] = ()  # committed with the base image's values (the builder's own places)
    ports: Mapping[str, int] = field(default_factory=dict)  # the container ports to publish, by name
    command: Sequence[str] | None = None  # the builder's (None: the base image's)
    wrap_builder: Sequence[str] = ()  # run before the base image's entry point, in the builder
    wrap_image: Sequence[str] = ()  # run before the base image's entry point, in the committed image
    work: Callable[[Builder], object] | None = None
    hint: str = "`driveops-env gc` removes what a failed derivation left"
