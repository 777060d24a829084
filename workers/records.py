"""Turn a Celery task message into a ``JobRecord`` holding everything needed to publish it again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maintenance.store.jobs import KIND_DEFERRED, JobRecord

from .headers import published_time

#: Kept in a record's options for the recovery's ordering; not a ``send_task`` option.
PUBLISHED_AT = "published_at"
#: Kept in a record's options: the broker it came from (``workers.routing``).
BROKER = "broker"
#: Record options a republish leaves out (``exchange`` and ``routing_key``: the
#: republish routes by them through ``route_check.Route``; ``broker``: the recovery
#: checks it publishes there).
RECORD_ONLY_OPTIONS = frozenset({PUBLISHED_AT, "exchange", "routing_key", BROKER})

#: Message headers that Celery's protocol 2 defines; anything else is a custom header we keep.
PROTOCOL_HEADERS = frozenset(
    {
        "lang",
        "task",
        "id",
        "shadow",
        "eta",
        "expires",
        "group",
        "group_index",
        "retries",
        "timelimit",
        "root_id",
        "parent_id",
        "argsrepr",
        "kwargsrepr",
        "origin",
        "ignore_result",
        "replaced_task_nesting",
        "stamped_headers",
        "stamps",
        # Filled in by the worker's Request (``worker/request.py``), not headers at all.
        "properties",
        "reply_to",
        "correlation_id",
        "hostname",
        "delivery_info",
        "args",
        "kwargs",
    }
)


def split_payload(payload: Any) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """``(args, kwargs, embed)`` of a decoded protocol-2 body (protocol 1: a dict)."""
    if isinstance(payload, list | tuple) and len(payload) == 3:
        args, kwargs, embed = payload
        return list(args or ()), dict(kwargs or {}), dict(embed or {})
    if isinstance(payload, Mapping):  # protocol 1
        embed = {k: payload.get(k) for k in ("callbacks", "errbacks", "chord")}
        return list(payload.get("args") or ()), dict(payload.get("kwargs") or {}), embed
    return [], {}, {}


def publish_options(
    headers: Mapping[str, Any],
    embed: Mapping[str, Any],
    delivery_info: Mapping[str, Any] | None,
    properties: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``send_task`` options that reproduce the message (links, chain, chord, eta, group...)."""
    delivery_info = delivery_info or {}
    properties = properties or {}
    timelimit = headers.get("timelimit") or (None, None)
    hard, soft = ([*list(timelimit), None, None])[:2]
    options: dict[str, Any] = {
        "link": embed.get("callbacks"),
        "link_error": embed.get("errbacks"),
        "chain": embed.get("chain"),
        "chord": embed.get("chord"),
        "eta": headers.get("eta"),
        "expires": headers.get("expires"),
        "group_id": headers.get("group"),
        "group_index": headers.get("group_index"),
        "root_id": headers.get("root_id"),
        "parent_id": headers.get("parent_id"),
        "retries": headers.get("retries") or None,
        "time_limit": hard,
        "soft_time_limit": soft,
        "shadow": headers.get("shadow"),
        "ignore_result": headers.get("ignore_result") or None,
        # What logs and Flower show for the arguments, as its publisher chose it (a
        # masked secret stays masked), and not computed again for each requeue.
        "argsrepr": headers.get("argsrepr"),
        "kwargsrepr": headers.get("kwargsrepr"),
        "priority": properties.get("priority", delivery_info.get("priority")),
        "exchange": delivery_info.get("exchange") or None,
        "routing_key": delivery_info.get("routing_key"),
    }
    custom = {
        k: v
        for k, v in headers.items()
        if k not in PROTOCOL_HEADERS and not str(k).startswith("maintenance_")
    }
    if custom:
        options["headers"] = custom
    options[PUBLISHED_AT] = published_time(headers)
    return {k: v for k, v in options.items() if v is not None}


def original_order(record: JobRecord) -> tuple[float, int]:
    """Sort key restoring publish order (stamped by the gate; else when it was recorded)."""
    published = record.options.get(PUBLISHED_AT)
    if not isinstance(published, int | float):
        published = record.created_at.timestamp() if record.created_at else 0.0
    return float(published), record.id or 0


def record_from_message(
    *,
    task_name: str,
    task_id: str,
    headers: Mapping[str, Any],
    payload: Any,
    delivery_info: Mapping[str, Any] | None,
    properties: Mapping[str, Any] | None,
    operation: str,
    reason: str,
    worker: str | None,
    activation_id: str | None,
    kind: str = KIND_DEFERRED,
    broker: str | None = None,
) -> JobRecord:
    """A record of one message, in the state named by ``kind``; ``broker`` is the identity
    of the broker it was consumed from (``workers.routing.broker_of``)."""
    args, kwargs, embed = split_payload(payload)
    options = publish_options(headers, embed, delivery_info, properties)
    if broker:
        options[BROKER] = broker
    queue = (delivery_info or {}).get("routing_key")
    return JobRecord(
        original_id=task_id,
        task_name=task_name,
        args=args,
        kwargs=kwargs,
        options=options,
        queue=queue,
        kind=kind,
        state=kind,
        operation=operation,
        reason=reason,
        worker=worker,
        activation_id=activation_id,
    )


def embed_of(request: Any) -> dict[str, Any]:
    """The embedded options (callbacks, errbacks, chain, chord) of a ``Request``'s message."""
    try:
        payload = request.message.payload
    except Exception:
        return {}
    if isinstance(payload, list | tuple) and len(payload) == 3:
        return dict(payload[2] or {})
    return {}


def record_from_request(
    request: Any,
    *,
    kind: str,
    operation: str,
    reason: str,
    worker: str | None,
    activation_id: str | None,
    broker: str | None = None,
) -> JobRecord:
    """A record of the message of a Celery ``Request`` (worker main process)."""
    return record_from_message(
        task_name=request.type,
        task_id=request.id,
        headers=request.request_dict,
        payload=(request.args, request.kwargs, embed_of(request)),
        delivery_info=request.delivery_info,
        properties=request.request_dict.get("properties"),
        operation=operation,
        reason=reason,
        worker=worker,
        activation_id=activation_id,
        kind=kind,
        broker=broker,
    )
