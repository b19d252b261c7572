"""The published store: exported once, served over HTTP on 127.0.0.1, fetched by sha256, used only for its key."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
import torch

from course import __version__
from course.checkpoints import model_records, train_or_load
from course.config import repo_root
from course.store import MANIFEST, forget_manifests
from course.tools.cli import main
from course.tools.models import export_store
from course.training import L1Penalty

from test_checkpoints import SETTINGS, small  # noqa: F401 (small is a fixture)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args):  # no access log in the test output
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def serve(tmp_path):
    """serve(folder) -> its http://127.0.0.1:<port>/ URL, served from a thread until the test ends."""
    servers = []

    def start(folder):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        server.requests = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """These tests use the network of 127.0.0.1 only; manifests are read afresh in every test."""
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.delenv("COURSE_MODELS_URL", raising=False)
    forget_manifests()
    yield
    forget_manifests()


def train(data, cache, **changes):
    return train_or_load(data=data, cache=cache, **{**SETTINGS, **changes})


@pytest.fixture
def published(small, tmp_path, monkeypatch):
    """Two models trained into one cache and exported as a store: (store folder, the trained models)."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")  # training them must not look for a store
    trained = [train(small, tmp_path / "teacher"), train(small, tmp_path / "teacher", penalty=L1Penalty(1e-3))]
    monkeypatch.delenv("COURSE_OFFLINE")
    export_store(tmp_path / "store", cache=tmp_path / "teacher")
    return tmp_path / "store", trained


def test_export_writes_each_model_and_a_manifest(published):
    store, trained = published
    manifest = json.loads((store / MANIFEST).read_text())
    assert manifest["course_version"] == __version__
    assert sorted(m["file"] for m in manifest["models"]) == sorted(t.path.name for t in trained)
    for entry in manifest["models"]:
        data = (store / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
        assert entry["file"].endswith(f"-{entry['key']}.pt")
        assert entry["settings"]["model"] == "shallow" and entry["settings"]["model_args"] == {"hidden_dim": 8}
        assert entry["settings"]["epochs"] == 1 and entry["settings"]["dataset"] == "mnist"


def test_export_refuses_a_folder_that_is_not_empty_or_is_the_cache(published, tmp_path, capsys):
    store, _ = published
    assert main(["models", "export", "--cache", str(tmp_path / "teacher"), "--out", str(store)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["models", "export", "--cache", str(tmp_path / "teacher"), "--out", str(tmp_path / "teacher")]) == 2
    assert main(["models", "export", "--cache", str(tmp_path / "teacher"), "--out", str(store), "--force"]) == 0


def test_an_empty_cache_gets_the_published_models(published, small, tmp_path, serve, monkeypatch, same_weights):
    store, trained = published
    url, server = serve(store)
    monkeypatch.setenv("COURSE_MODELS_URL", url)
    fetched = [train(small, tmp_path / "student"), train(small, tmp_path / "student", penalty=L1Penalty(1e-3))]
    assert [f.source for f in fetched] == ["published"] * 2 and all(f.from_cache for f in fetched)
    for new, old in zip(fetched, trained):
        assert same_weights(new.model, old.model) and new.history == old.history
        assert new.path == tmp_path / "student" / old.path.name
    assert train(small, tmp_path / "student").source == "cache"  # now in the local cache: no second download
    assert len([r for r in server.requests if r.endswith(".pt")]) == 2
    records = {r["file"]: r for r in model_records()}
    assert records[trained[0].path.name]["source"] == "cache"
    assert records[trained[1].path.name]["source"] == "published"


@pytest.mark.parametrize("kind", ["folder", "file-url"])
def test_a_store_in_a_folder_or_file_url_is_used_too(published, small, tmp_path, monkeypatch, kind):
    store, _ = published
    monkeypatch.setenv("COURSE_MODELS_URL", str(store) if kind == "folder" else store.as_uri())
    assert train(small, tmp_path / "student").source == "published"


def test_a_tampered_file_is_refused_and_the_model_trained(published, small, tmp_path, serve, monkeypatch, capsys):
    store, trained = published
    path = store / trained[0].path.name
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    url, _ = serve(store)
    monkeypatch.setenv("COURSE_MODELS_URL", url)
    got = train(small, tmp_path / "student")
    assert got.source == "trained" and not got.from_cache
    assert "refused" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "student").iterdir()) == [trained[0].path.name]  # the trained one
    assert torch.load(got.path, weights_only=True)["history"] == got.history.to_dict()


def test_a_manifest_of_another_key_is_not_a_model_of_this_code(published, small, tmp_path, serve, monkeypatch,
                                                               capsys):
    """A file published under this key but holding other settings is never loaded as this model."""
    store, trained = published
    other = store / trained[1].path.name
    (store / trained[0].path.name).write_bytes(other.read_bytes())  # the sparse model under the plain one's name
    manifest = json.loads((store / MANIFEST).read_text())
    for entry in manifest["models"]:
        entry["sha256"] = hashlib.sha256((store / entry["file"]).read_bytes()).hexdigest()
    (store / MANIFEST).write_text(json.dumps(manifest))
    url, _ = serve(store)
    monkeypatch.setenv("COURSE_MODELS_URL", url)
    with pytest.warns(UserWarning, match="could not be used"):
        got = train(small, tmp_path / "student")
    assert got.source == "trained"
    assert torch.load(got.path, weights_only=True)["config"]["training"]["objective"]["fields"]["penalty"] is None


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.mark.parametrize("case", ["dead server", "offline", "no store here"])
def test_no_store_to_use_says_so_once_and_trains(small, tmp_path, monkeypatch, capsys, serve, case):
    if case == "dead server":
        monkeypatch.setenv("COURSE_MODELS_URL", _dead_url())
    elif case == "offline":
        url, server = serve(tmp_path)
        monkeypatch.setenv("COURSE_MODELS_URL", url)
        monkeypatch.setenv("COURSE_OFFLINE", "1")
    else:
        url, _ = serve(tmp_path)  # a server with no manifest.json: 404
        monkeypatch.setenv("COURSE_MODELS_URL", url)
    got = [train(small, tmp_path / "student"), train(small, tmp_path / "student", penalty=L1Penalty(1e-3))]
    assert [g.source for g in got] == ["trained"] * 2
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: no published models to load")]
    assert len(lines) == 1, lines  # one line, not one per model
    expected = {"dead server": "unreachable", "offline": "COURSE_OFFLINE=1", "no store here": "404"}[case]
    assert expected in lines[0]
    if case == "offline":
        assert server.requests == []


def test_a_store_of_another_course_version_is_ignored_with_a_line(published, small, tmp_path, serve, monkeypatch,
                                                                  capsys):
    store, _ = published
    manifest = json.loads((store / MANIFEST).read_text())
    manifest["course_version"] = "0.0.1"
    (store / MANIFEST).write_text(json.dumps(manifest))
    url, server = serve(store)
    monkeypatch.setenv("COURSE_MODELS_URL", url)
    assert train(small, tmp_path / "student").source == "trained"
    out = capsys.readouterr().out
    assert "course version 0.0.1" in out and __version__ in out
    assert not [r for r in server.requests if r.endswith(".pt")]


def test_a_model_missing_from_the_store_is_trained_with_a_line(published, small, tmp_path, serve, monkeypatch,
                                                               capsys):
    store, _ = published
    url, _ = serve(store)
    monkeypatch.setenv("COURSE_MODELS_URL", url)
    assert train(small, tmp_path / "student", seed=5).source == "trained"
    assert "is not in the published store" in capsys.readouterr().out


def test_metrics_record_where_each_model_came_from(small, tmp_path, monkeypatch):
    from course.notebook import Setup, write_metrics

    monkeypatch.setenv("COURSE_OFFLINE", "1")
    trained = train(small, tmp_path / "cache", seed=7)
    run = Setup(torch.device("cpu"), small, 0, True, 0.0, 0.0)
    record = json.loads(write_metrics(tmp_path / "out", "00_test", run).read_text())
    entry = next(m for m in record["models"] if m["file"] == trained.path.name)
    assert entry["source"] == "trained" and entry["key"] in trained.path.name
    assert entry["settings"]["seed"] == 7


def test_an_empty_cache_gets_every_model_of_a_notebook_from_the_store(tmp_path, serve):
    """Smoke run of 05 twice: the first trains into one cache, exported; the second, with an empty cache
    and the store on a local server, trains nothing."""
    env = {**os.environ, "COURSE_OFFLINE": "1", "COURSE_CACHE": str(tmp_path / "teacher"), "PYTHONPATH": str(repo_root())}
    command = [sys.executable, "-m", "course", "run", "--smoke", "--notebooks", "5"]
    first = subprocess.run([*command, "--out", str(tmp_path / "run1")], env=env, capture_output=True, text=True,
                           timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    export_store(tmp_path / "store", cache=tmp_path / "teacher")
    url, server = serve(tmp_path / "store")
    env.update(COURSE_CACHE=str(tmp_path / "student"), COURSE_MODELS_URL=url)
    del env["COURSE_OFFLINE"]
    second = subprocess.run([*command, "--out", str(tmp_path / "run2")], env=env, capture_output=True, text=True,
                            timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    (metrics,) = (tmp_path / "run2").glob("05_*.metrics.json")
    models = json.loads(metrics.read_text())["models"]
    lines = [line for nb in (tmp_path / "run2").glob("*.ipynb") for line in nb.read_text().splitlines()
             if "published" in line or "images" in line]
    assert models and {m["source"] for m in models} == {"published"}, (models, lines[:8])
    assert sorted(p.name for p in (tmp_path / "student").glob("*.pt")) == sorted(m["file"] for m in models)
