# -*- coding: utf-8 -*-
"""Maintenance silences (stack_maintenance_silences): while a service restarts, the stack's
Alertmanager silences the alerts about that service's own targets on this host, and lets the
silence end shortly after the service is ready again, or failed.

Alertmanager API v2 (prometheus/alertmanager api/v2/openapi.yaml): POST /api/v2/silences with
{matchers, startsAt, endsAt, createdBy, comment} answers {silenceID}; POSTing it again with its
id and a new endsAt updates the active silence in place. The silence goes to the first member
that takes it (the others learn it through gossip): the members of other hosts are listed first,
so a restarting Alertmanager never holds the only copy.
"""
from __future__ import annotations

import base64
import datetime
import json

CREATED_BY = "monstack (ansible)"


def after(seconds):
    """The time `seconds` from now (UTC) as Alertmanager's API takes it (RFC 3339, milliseconds)."""
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=max(0.0, float(seconds or 0)))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _call(url, body, spec, password, timeout=5):
    """POST body as JSON to url (an Alertmanager; GET when body is None), verifying its
    certificate with the stack's CA (ca_file) when it serves HTTPS, logging in when a user is
    given. Returns the parsed answer; errors are OSErrors."""
    import ssl
    import urllib.request

    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST", headers={"Content-Type": "application/json"})
    if spec.get("username"):
        token = base64.b64encode(f"{spec['username']}:{password or ''}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    handlers = [urllib.request.ProxyHandler({})]
    if url.startswith("https"):
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=spec.get("ca_file") or None)))
    with urllib.request.build_opener(*handlers).open(req, timeout=timeout) as response:
        text = response.read().decode("utf-8", "replace")
    return json.loads(text) if text.strip() else {}


def silence_body(spec, starts, ends, silence_id=None, comment=None):
    """The silence as the API takes it. An update keeps startsAt: Alertmanager updates an active
    silence in place only when its matchers and start are unchanged (silence/silence.go, canUpdate)."""
    body = {"matchers": [dict({"isRegex": False, "isEqual": True}, **m) for m in spec["matchers"]],
            "startsAt": starts, "endsAt": ends, "createdBy": CREATED_BY,
            "comment": comment or spec.get("comment") or "maintenance"}
    if silence_id:
        body["id"] = silence_id
    return body


def begin(spec, password, seconds, call=_call):
    """Silence spec's matchers for `seconds` on the first Alertmanager of spec['urls'] that takes
    it: ({id, url}, None), or (None, why none did)."""
    errors = []
    for url in spec.get("urls") or []:
        try:
            answer = call(url.rstrip("/") + "/api/v2/silences",
                          silence_body(spec, after(0), after(seconds)), spec, password)
            made = {"id": answer["silenceID"], "url": url}
            # the start Alertmanager stored (it moves a start in the past to its own now)
            made["starts"] = call(f"{url.rstrip('/')}/api/v2/silence/{made['id']}", None, spec, password)["startsAt"]
            return made, None
        except (OSError, ValueError, KeyError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
    return None, "; ".join(errors) or "no Alertmanager in the inventory"


def end(spec, password, silence, grace, outcome, call=_call):
    """Let the silence end `grace` seconds from now (the next scrapes see the service again before
    it does): updated on the member that holds it, else any other. None, or why it could not."""
    ends = after(grace)
    errors = []
    urls = [silence["url"]] + [u for u in spec.get("urls") or [] if u != silence["url"]]
    for url in urls:
        try:
            call(url.rstrip("/") + "/api/v2/silences",
                 silence_body(spec, silence["starts"], ends, silence["id"],
                              f"{spec.get('comment') or 'maintenance'} ({outcome})"),
                 spec, password)
            return None
        except (OSError, ValueError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
    return "; ".join(errors)
