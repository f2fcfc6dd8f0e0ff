"""`cdshooks serve --reload`: a change to a data file reloads through the master's SIGHUP reload,
which validates first and keeps the last good configuration when a file is broken."""

from __future__ import annotations

import json
import shutil
import time

from cdshooks.serve import watch


def test_a_poll_reports_an_added_changed_or_removed_data_file_once(tmp_path):
    (tmp_path / "policies").mkdir()
    policy = tmp_path / "policies" / "a.yaml"
    policy.write_text("id: a\n")
    calls = []
    watcher = watch.Watcher([tmp_path / "policies", None, tmp_path / "absent"], lambda: calls.append(1))
    assert not watcher.poll()
    policy.write_text("id: a\nversion: 2\n")
    assert watcher.poll() and not watcher.poll()
    (tmp_path / "policies" / "notes.txt").write_text("not a data file")
    assert not watcher.poll()
    (tmp_path / "policies" / "testdata").mkdir()
    (tmp_path / "policies" / "testdata" / "x.json").write_text("{}")
    assert watcher.poll()
    policy.unlink()
    assert watcher.poll()
    assert len(calls) == 3


def test_the_folders_watched_are_those_the_app_loads_from(tmp_path):
    from cdshooks import settings

    config = settings.load({"DATABASE_URL": "sqlite://", "POLICIES": "p", "MAPPINGS": "m", "SITE": "s"})
    assert [str(f) for f in watch.folders_of(config)] == ["p", "m", "valuesets", "s"]


def test_serve_reload_swaps_on_a_good_change_and_keeps_serving_on_a_broken_one(tmp_path):
    from served import ROOT
    from served import Served
    from test_server import _wait_for

    for name in ("policies", "mappings", "valuesets"):
        shutil.copytree(ROOT / name, tmp_path / name)
    server = Served(tmp_path, args=("--reload",), CDSHOOKS_POLICIES=str(tmp_path / "policies"),
                    CDSHOOKS_MAPPINGS=str(tmp_path / "mappings"))
    try:
        _wait_for(lambda: "watching" in server.log.read_text(), 30)
        policy = tmp_path / "policies" / "prenatal-cfdna-screening.yaml"
        good = policy.read_text()
        time.sleep(1.1)  # a new modification time even on coarse file systems
        policy.write_text(good.replace("default: met\n", "default: maybe\n", 1))
        _wait_for(lambda: "reload refused" in server.log.read_text(), 30)
        assert "prenatal-cfdna-screening.yaml:" in server.log.read_text()
        assert server.hook_call(timeout=5) == 200
        assert json.loads(server.request("GET", "/healthz")[2])["policies"] == 5
        policy.unlink()   # a good change: one policy fewer
        _wait_for(lambda: "reloaded: 4 policies" in server.log.read_text(), 30)
        _wait_for(lambda: json.loads(server.request("GET", "/healthz")[2])["policies"] == 4, 30)
    finally:
        server.stop()
