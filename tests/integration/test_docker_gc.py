"""`gc` beside `up` on one cache: the cached images an `up` is about to start containers of are not
pruned under it, however recently other images were used; once no `up` uses the cache, `gc` keeps only
the most recently used again.  A cache of the test's own (other tests' `up` hold the shared one)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from driveops_env import builders, gc
from tests.helpers import docker_client, make_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.docker]
OTHERS = 3  # images used more recently than this environment's, as other environments' ups would


def _quiet(_: str) -> None:
    pass


def _use_the_others(cache: Path, image: str, image_id: str) -> None:
    """Three other tags of the cache's first initialised image, each used just now."""
    repository = image.split(":")[0]
    for number in range(OTHERS):
        docker_client().images.get(image_id).tag(repository, f"other{number}")
        (cache / "docker" / f"postgres-ready-other{number}.json").touch()


def test_gc_in_a_loop_prunes_no_image_an_up_is_about_to_use(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with make_sandbox(tmp_path, services="postgres", backend="docker") as box:
        box.extra_env["DRIVEOPS_ENV_CACHE_DIR"] = str(cache)
        settings = box.settings(cache_dir=str(cache))
        client = docker_client()
        try:
            first = box.cli("up", "--tenants", "acme")
            assert first.returncode == 0, first.stderr
            image, image_id = box.containers()[0].image.tags[0], box.containers()[0].image.id
            assert image.startswith("driveops-env/postgres-ready:")
            assert box.cli("down").returncode == 0
            _use_the_others(cache, image, image_id)
            with builders.using(cache):  # as an up holds it from its preparation to its servers' start
                gc.collect(settings, progress=_quiet)
                assert builders.image_present(client, image), "gc pruned an image an up was about to use"
            rounds: list[list[str]] = []
            stop = threading.Event()

            def collect_in_a_loop() -> None:
                while not stop.is_set():
                    _use_the_others(cache, image, image_id)
                    rounds.append(gc.collect(settings, progress=_quiet))

            collector = threading.Thread(target=collect_in_a_loop)
            collector.start()
            try:
                for _ in range(3):
                    up = box.cli("up", "--tenants", "acme")
                    assert up.returncode == 0, up.stderr
                    assert box.cli("down").returncode == 0
            finally:
                stop.set()
                collector.join(120)
            assert len(rounds) >= 3 and any(rounds)  # it ran beside the ups, and pruned between them
            _use_the_others(cache, image, image_id)
            gc.collect(settings, progress=_quiet)  # nobody uses the cache: the least recently used goes
            assert not builders.image_present(client, image)
        finally:
            box.cli("down")
            label = f"org.driveops-env.cache={cache.resolve()}"
            for found in client.images.list(filters={"label": label}):
                client.images.remove(found.id, force=True)
