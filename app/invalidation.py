"""Telling every MoCert process that something it caches has changed: the only user of redis-py's pub/sub.

Per-process caches (the OIDC clients, ``services/client_directory.py``) keep the login path free of reads
that every request would repeat. When an administrator changes what such a cache holds, the process that
made the change forgets it at once, and :meth:`Invalidations.publish` tells the others: with Redis
configured (``MOCERT_REDIS_URL``, or the rate limiter's ``redis://`` storage, which production requires),
over one pub/sub channel that each process follows from a daemon thread; without Redis (one machine, the
embedded default), no message goes out and each cache's time to live bounds how stale another worker can be.

A follower that loses its connection may have missed messages: when it reconnects it tells its listeners to
forget everything (``topic`` None), and goes on listening.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

CHANNEL = "mocert:invalidate"
RECONNECT_SECONDS = 1.0  # the first wait after losing the channel, doubling to LONGEST_RECONNECT_SECONDS
LONGEST_RECONNECT_SECONDS = 30.0
LISTEN_SECONDS = 5.0
SCHEMES = ("redis://", "rediss://", "unix://")  # what redis-py's from_url takes

Listener = Callable[[str | None, str | None], None]  # (topic, key): None, None = forget everything


class Invalidations:
    def __init__(self, redis_url: str | None = None) -> None:
        if redis_url is not None and not redis_url.startswith(SCHEMES):
            raise ValueError(f"{redis_url!r} is not a Redis URL redis-py takes ({', '.join(SCHEMES)})")
        self.redis_url = redis_url
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._follower_pid: int | None = None  # the process whose thread follows the channel (forks have none)
        self._token = secrets.token_hex(8)  # with the pid: this one's messages, which it has delivered already

    @property
    def shared(self) -> bool:
        """Whether other processes hear of changes (otherwise only the time to live bounds their caches)."""
        return self.redis_url is not None

    def listen(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def publish(self, topic: str, key: str) -> None:
        """``key`` of ``topic`` changed: forget it here now, and in every other process soon."""
        self._deliver(topic, key)
        if self.redis_url is None:
            return
        try:
            client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
            client.publish(CHANNEL, f"{self._sender()}:{topic}:{key}")
            client.close()
        except (redis.RedisError, OSError) as exc:  # the change is committed; the others' ttl still bounds them
            log.warning("could not tell the other MoCert processes that %s %s changed: %s", topic, key, exc)

    def follow(self) -> None:
        """Start following the channel in this process, once (a forked worker starts its own)."""
        if self.redis_url is None or self._follower_pid == os.getpid():
            return
        with self._lock:
            if self._follower_pid == os.getpid():
                return
            self._follower_pid = os.getpid()
        threading.Thread(target=self._run, name="mocert-invalidations", daemon=True).start()

    def _run(self) -> None:
        wait = RECONNECT_SECONDS
        while True:
            try:
                # A bounded read, and a health check (a PING) when the channel has been quiet: a connection that
                # died without a word (a NAT's idle timeout, a host gone) is noticed, not waited on for ever.
                client = redis.Redis.from_url(self.redis_url, socket_timeout=LISTEN_SECONDS * 2,
                                              socket_keepalive=True, health_check_interval=LISTEN_SECONDS)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self._deliver(None, None)  # what was cached before we listened (or while we were away) goes
                wait = RECONNECT_SECONDS
                while True:
                    message = pubsub.get_message(timeout=LISTEN_SECONDS)
                    if message is None or message.get("type") != "message":
                        continue
                    sender, _, rest = message["data"].decode("utf-8", "replace").partition(":")
                    if sender == self._sender():
                        continue  # delivered here already, by publish()
                    topic, _, key = rest.partition(":")
                    self._deliver(topic, key)
            except Exception as exc:  # noqa: BLE001 - a follower never dies; it forgets and reconnects
                log.warning("lost the invalidation channel (%s); reconnecting in %.0f s", exc, wait)
                self._deliver(None, None)
                time.sleep(wait)
                wait = min(wait * 2, LONGEST_RECONNECT_SECONDS)

    def _sender(self) -> str:
        return f"{self._token}.{os.getpid()}"  # a worker forked with this object is another sender

    def _deliver(self, topic: str | None, key: str | None) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(topic, key)
