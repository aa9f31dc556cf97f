"""`gc` beside `up` on one cache: the cached images an `up` is about to start containers of are not
pruned under it, however recently other images were used (gc waits for the up to start its servers,
and the engine keeps an image a container runs); once no `up` uses the cache, `gc` keeps only the most
recently used again.  A cache of the test's own (other tests' `up` hold the shared one)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from driveops_env import builders, gc
from driveops_env.settings import Settings
from tests.helpers import Sandbox, docker_client, make_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.docker]
OTHERS = 3  # images used more recently than this environment's, as other environments' ups would


def _quiet(_: str) -> None:
    pass


def _other_images(cache: Path, repository: str) -> list[str]:
    """Three other initialised images of the cache (small ones, each its own)."""
    made = []
    for number in range(OTHERS):
        recipe = f"FROM driveops-env/debian:bookworm\nLABEL org.driveops-env.cache={cache.resolve()} other={number}\n"
        docker_client().images.build(fileobj=io.BytesIO(recipe.encode()), tag=f"{repository}:other{number}", rm=True)
        made.append(f"{repository}:other{number}")
    return made


def _use_the_others(cache: Path) -> None:
    for number in range(OTHERS):
        (cache / "docker" / f"postgres-ready-other{number}.json").touch()


def test_gc_in_a_loop_prunes_no_image_an_up_is_about_to_use(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with make_sandbox(tmp_path, services="postgres", backend="docker") as box:
        box.extra_env["DRIVEOPS_ENV_CACHE_DIR"] = str(cache)
        settings = box.settings(cache_dir=str(cache))
        try:
            first = box.cli("up", "--tenants", "acme")
            assert first.returncode == 0, first.stderr
            image = box.containers()[0].image.tags[0]
            assert image.startswith("driveops-env/postgres-ready:")
            assert box.cli("down").returncode == 0
            _other_images(cache, image.split(":")[0])
            _use_the_others(cache)  # this environment's image is now the least recently used
            _gc_waits_for_an_up(box, settings, cache, image)
            _gc_in_a_loop_beside_ups(box, settings, cache)
            _other_images(cache, image.split(":")[0])  # those the loop's gc removed while this one ran
            _use_the_others(cache)
            gc.collect(settings, progress=_quiet)  # nobody uses the cache: the least recently used goes
            assert not builders.image_present(docker_client(), image)
        finally:
            box.cli("down")
            for found in docker_client().images.list(filters={"label": f"org.driveops-env.cache={cache.resolve()}"}):
                docker_client().images.remove(found.id, force=True)


def _gc_waits_for_an_up(box: Sandbox, settings: Settings, cache: Path, image: str) -> None:
    """A gc while an up holds the cache waits; the up starts its container of the image meanwhile, and
    the engine keeps the image that container runs when gc prunes."""
    with builders.using(cache):  # as an up holds it from its preparation to its servers' start
        pruning = threading.Thread(target=gc.collect, args=(settings,), kwargs={"progress": _quiet})
        pruning.start()
        pruning.join(3)
        assert pruning.is_alive() and builders.image_present(docker_client(), image), "gc pruned under an up"
        up = box.cli("up", "--tenants", "acme")
        assert up.returncode == 0, up.stderr
    pruning.join(120)
    assert not pruning.is_alive()
    assert builders.image_present(docker_client(), image)
    assert box.cli("down").returncode == 0


def _gc_in_a_loop_beside_ups(box: Sandbox, settings: Settings, cache: Path) -> None:
    rounds: list[list[str]] = []
    stop = threading.Event()

    def collect_in_a_loop() -> None:
        while not stop.is_set():
            _use_the_others(cache)
            rounds.append(gc.collect(settings, progress=_quiet))

    collector = threading.Thread(target=collect_in_a_loop)
    collector.start()
    try:
        for _ in range(3):
            again = box.cli("up", "--tenants", "acme")
            assert again.returncode == 0, again.stderr
            assert box.cli("down").returncode == 0
    finally:
        stop.set()
        collector.join(120)
    assert len(rounds) >= 3  # it ran beside the ups
