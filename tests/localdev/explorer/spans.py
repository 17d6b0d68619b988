"""Generated spans shaped like the ones the bot writes (see shared/trace_file.py and a real
``.localdev/traces.jsonl``): a listener root and send, then the function's process span with
queue.wait, cold_start, feature_flags, the command (with its external call) and the reply."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from pathlib import Path
from typing import Any

LISTENER, FUNCTIONS = "discord-bot-listener", "discord-bot-functions"
MS = 1_000_000
_ids = itertools.count(1)
EXTERNAL = {"catfact": "GET", "mtg": "GET", "relationships": "GET"}


def _id(width: int) -> str:
    return f"{next(_ids):0{width}x}"


def _span(trace_id: str, parent: str | None, name: str, service: str, start: float, end: float, *,
          kind: str = "INTERNAL", attrs: dict[str, Any] | None = None, events: list[dict[str, Any]] | None = None,
          error: str | None = None, version: str = "0.1.0", instance: str = "inst-a") -> dict[str, Any]:
    return {
        "trace_id": trace_id, "span_id": _id(16), "parent_span_id": parent, "name": name, "kind": kind,
        "service.name": service, "service.version": version, "service.instance.id": instance,
        "start_ns": int(start), "end_ns": int(end),
        "status": {"code": "ERROR" if error else "UNSET", "description": error},
        "attributes": attrs or {}, "events": events or [],
    }


def make_trace(command: str, start_ns: int, *, wait_ms: float = 120.0, work_ms: float = 5.0,
               discord_ms: float = 25.0, coldstart: bool = False, rate_limited: bool = False,
               error: bool = False, user: str = "alice", user_id: str = "1001", guild: str = "2001",
               trigger: str = "prefix", version: str = "0.1.0", instance: str = "inst-a") -> list[dict[str, Any]]:
    """One trace's spans; end-to-end = wait + flags + work + discord (+ the 429 wait when rate limited)."""
    tid = uuid.uuid4().hex
    base = {"app.command": command, "discord.author.id": user_id, "discord.guild.id": guild,
            "discord.channel.id": "3001", "SampleRate": "1"}
    common: dict[str, Any] = {"version": version, "instance": instance}
    root = _span(tid, None, "discord.command", LISTENER, start_ns, start_ns + 0.3 * MS, kind="CONSUMER",
                 attrs={**base, "discord.message.id": _id(18), "discord.author.name": user, "app.trigger": trigger,
                        "app.args": ""}, version=version)
    send = _span(tid, root["span_id"], f"cmd-{command} send", LISTENER, start_ns + 0.3 * MS, start_ns + 4 * MS,
                 kind="PRODUCER", version=version)
    t = start_ns + wait_ms * MS
    spans = [root, send]
    children = [_span(tid, None, "queue.wait", FUNCTIONS, start_ns + 4 * MS, t, attrs=dict(base), **common)]
    if coldstart:
        children.append(_span(tid, None, "cold_start", FUNCTIONS, start_ns + 40 * MS, t - 30 * MS,
                              attrs=dict(base), **common))
    flags = [{"name": "feature_flag.evaluation", "time_ns": int(t + 0.1 * MS),
              "attributes": {"feature_flag.key": "roll", "feature_flag.result.value": True}}]
    children.append(_span(tid, None, "feature_flags", FUNCTIONS, t, t + 0.3 * MS, attrs=dict(base),
                          events=flags, **common))
    t += 0.3 * MS
    work = _span(tid, None, command, FUNCTIONS, t, t + work_ms * MS, attrs=dict(base),
                 error="ExternalApiError" if error else None, **common)
    children.append(work)
    if command in EXTERNAL:
        children.append(_span(tid, work["span_id"], EXTERNAL[command], FUNCTIONS, t + 0.2 * MS,
                              t + (work_ms - 0.2) * MS, kind="CLIENT",
                              attrs={**base, "http.response.status_code": 503 if error else 200}, **common))
    t += work_ms * MS
    reply = _span(tid, None, "discord.send_response", FUNCTIONS, t, t, attrs={**base, "app.response": "ok"}, **common)
    children.append(reply)
    rest = {**base, "url.template": "/channels/{channel_id}/messages", "http.request.method": "POST"}
    if rate_limited:
        retry = 1500.0
        children.append(_span(tid, reply["span_id"], "POST /channels/{channel_id}/messages", FUNCTIONS,
                              t + 0.1 * MS, t + 15 * MS, kind="CLIENT", error="HTTP 429",
                              attrs={**rest, "http.response.status_code": 429, "error.type": "429"},
                              events=[{"name": "discord.rate_limited", "time_ns": int(t + 15 * MS),
                                       "attributes": {"retry_after": retry / 1000, "global": False, "scope": "user"}}],
                              **common))
        t += (15 + retry) * MS
    children.append(_span(tid, reply["span_id"], "POST /channels/{channel_id}/messages", FUNCTIONS,
                          t + 0.1 * MS, t + discord_ms * MS, kind="CLIENT",
                          attrs={**rest, "http.response.status_code": 200}, **common))
    t += discord_ms * MS
    reply["end_ns"] = int(t)
    e2e = (t - start_ns) / MS
    process_attrs = {**base, "faas.coldstart": coldstart, "faas.trigger": "pubsub", "app.trigger": trigger,
                     "discord.author.name": user, "messaging.message.id": _id(20),
                     "messaging.message.delivery_count": 1, "app.end_to_end_ms": round(e2e, 1)}
    if error:
        process_attrs["app.error"] = "ExternalApiError: catfact.ninja answered 503"
    process = _span(tid, send["span_id"], f"cmd-{command} process", FUNCTIONS, start_ns + wait_ms * MS, t,
                    kind="CONSUMER", attrs=process_attrs, error="ExternalApiError" if error else None, **common)
    for child in children:
        child["parent_span_id"] = child["parent_span_id"] or process["span_id"]
    return [*spans, process, *children]


def scenario(now_ns: int, seed: int = 7) -> list[dict[str, Any]]:
    """About 50 minutes of a busy bot: a release 25 minutes ago, cold starts after idle gaps,
    a burst of !catfact that Discord rate-limited, and a few external API errors."""
    rng = random.Random(seed)
    work = {"ping": (0.1, 0.1), "help": (0.3, 0.3), "roll": (0.5, 1.0), "catfact": (60, 120),
            "mtg": (90, 200), "relationships": (700, 900)}
    users = [("alice", "1001"), ("bob", "1002"), ("carol", "1003"), ("dave", "1004")]
    spans: list[dict[str, Any]] = []
    t = now_ns - 50 * 60 * 10**9
    last = t
    while t < now_ns - 20 * 10**9:
        command = rng.choice(["ping", "catfact", "catfact", "help", "mtg", "roll", "relationships", "ping"])
        user, uid = rng.choice(users)
        minutes_ago = (now_ns - t) / 60e9
        version = "0.1.0" if minutes_ago > 25 else "0.2.0"
        cold = t - last > 4 * 60 * 10**9 or rng.random() < 0.04
        burst = 12 < minutes_ago < 16 and command == "catfact"
        lo, hi = work[command]
        spans += make_trace(
            command, int(t), wait_ms=rng.uniform(60, 260) + (rng.uniform(2500, 4500) if cold else 0),
            work_ms=rng.uniform(lo, hi), discord_ms=rng.uniform(15, 60), coldstart=cold,
            rate_limited=burst and rng.random() < 0.8, error=command == "catfact" and rng.random() < 0.06,
            user=user, user_id=uid, guild=rng.choice(["2001", "2001", "2002"]),
            trigger=rng.choice(["prefix", "prefix", "slash"]), version=version,
            instance=f"{version}-{'ab'[rng.random() < 0.5]}",
        )
        last = t
        gap = rng.expovariate(1 / 12) if not 12 < minutes_ago < 16 else rng.uniform(2, 6)
        if rng.random() < 0.01:
            gap += 270  # idle long enough to scale to zero
        t += int(gap * 10**9)
    return spans


def write_spans(path: Path, spans: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(s) + "\n" for s in spans)
