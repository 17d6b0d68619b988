"""The Azurite launcher: starts on a free port, serves queues, restarts on the same port, stops clean."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from azure.storage.queue import QueueServiceClient

from localdev.azurite import Azurite, AzuriteError


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_session_azurite_serves_queues(azurite: Azurite, queue_names):
    assert "QueueEndpoint=http://127.0.0.1:" in azurite.connection_string
    name = next(queue_names)
    with QueueServiceClient.from_connection_string(azurite.connection_string) as service:
        queue = service.create_queue(name)
        queue.send_message("hi")
        assert [m.content for m in queue.receive_messages()] == ["hi"]


def test_restart_keeps_port_and_stop_leaves_nothing_running(queue_names):
    azurite = Azurite()
    with azurite:
        port = azurite.port
        process = azurite._proc
        assert process is not None and _listening(port)
        with QueueServiceClient.from_connection_string(azurite.connection_string) as service:
            service.create_queue(next(queue_names))
            azurite.restart()
            assert azurite.port == port and azurite._proc is not process
            assert process.poll() is not None  # the old node process is gone
            assert list(service.list_queues()) == []  # in memory: a restart starts empty
        process = azurite._proc
    assert process is not None and process.poll() is not None
    assert not azurite.running and not _listening(port)


def test_missing_node_modules_says_run_npm_ci(tmp_path: Path):
    with pytest.raises(AzuriteError, match="npm ci"):
        Azurite(project_root=tmp_path).start()


def test_port_must_be_known_before_start():
    with pytest.raises(AzuriteError, match="start"):
        _ = Azurite().connection_string
