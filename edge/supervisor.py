"""``qihe gateway run``: the gateway of the local config file, or of the config last pushed.

The supervisor runs one :class:`~edge.gateway.Gateway` at a time and listens (through its
publisher) for configs pushed on ``{prefix}/v1/{site}/{gateway}/config`` (docs/remote-config.md).
A push is answered once (by its id): a config equal to the running one is reported applied at
once; one that fails the checks of :func:`~edge.remote_config.check_document` is rejected with
its one-line error, the running gateway untouched. A good one is applied without losing a
reading: the running gateway stops cleanly (its outbox flushed to the SD card; boards keep
what was not acknowledged and send it again), the new config is written beside the last good
one, and a gateway of the new config starts on the same outbox. That is a trial: once its
publisher reaches the broker the config is the last good one; if it has not within the running
config's ``remote_config.rollback_after`` (or the process stops meanwhile, even by a crash:
the trial is in ``state.json``), the last good config comes back and the status says
``rolled_back`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import yaml

from edge.config import GatewayConfig, load_gateway_config
from edge.gateway import Gateway
from edge.remote_config import (
    ConfigStore,
    RemoteConfigError,
    StoredState,
    Trial,
    check_document,
    file_digest,
    one_line,
)
from edge.sdnotify import Notifier
from qihe.clock import Clock, utc_now
from qihe.configfile import ConfigError
from qihe.contract import (
    ConfigPush,
    ConfigReport,
    ConfigState,
    PayloadError,
    TopicTree,
    config_hash,
    parse_config_push,
    short_hash,
)
from qihe.once import OncePerKey

__all__ = ["ConfigSupervisor"]

log = logging.getLogger(__name__)


class MakeGateway(Protocol):
    """Builds the gateway of a config, with the supervisor's hooks (a test adds pin factories)."""

    def __call__(
        self,
        config: GatewayConfig,
        *,
        config_report: Callable[[], ConfigReport | None],
        notifier: Notifier,
    ) -> Gateway: ...


class _SwitchingNotifier(Notifier):
    """Between two gateways of one process systemd hears RELOADING, not STOPPING; the
    notify socket stays open until the last gateway stops."""

    switching = False

    def stopping(self, status: str | None = None) -> bool:
        if self.switching:
            return self.notify("RELOADING=1", "STATUS=正在切换配置 switching the config")
        return super().stopping(status)

    def close(self) -> None:
        if not self.switching:
            super().close()


@dataclass(frozen=True, slots=True)
class _Config:
    """A config the supervisor can run: the model, the document it came from, its hash."""

    config: GatewayConfig
    document: Mapping[str, Any]
    hash: str  # full SHA-256 (hex)

    @property
    def short(self) -> str:
        return short_hash(self.hash)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A pushed config accepted for a trial."""

    config: _Config
    push: ConfigPush


class _TrialFailed(Exception):
    """The config on trial must go: the reason is one line for the status."""


class ConfigSupervisor:
    """Run the gateway of ``local_path`` (or of the config pushed since) until cancelled."""

    def __init__(
        self,
        local_path: str | Path,
        *,
        make_gateway: MakeGateway | None = None,
        clock: Clock = utc_now,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._local_path = Path(local_path)
        self._make: MakeGateway = make_gateway or Gateway
        self._clock = clock
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        # from_environ builds ``cls``: a _SwitchingNotifier here (it is annotated as returning
        # the base class).
        self._notifier = cast(_SwitchingNotifier, _SwitchingNotifier.from_environ())
        self._pending: ConfigPush | None = None
        self._wake = asyncio.Event()
        self._refusals_said = OncePerKey()
        self._state = StoredState()
        self._store: ConfigStore | None = None
        self._report: ConfigReport | None = None
        #: The config that last reached the broker (at start: the one we start with).
        self._good: _Config | None = None
        #: The gateway running now (for tests and the status line).
        self.gateway: Gateway | None = None

    def report(self) -> ConfigReport | None:
        """What the status says of the config now."""
        return self._report

    async def run(self) -> None:
        config = await self._start()
        candidate: _Candidate | None = None
        while True:
            next_step = await self._serve(config, candidate)
            if isinstance(next_step, _Candidate):
                config, candidate = next_step.config, next_step
            else:
                config, candidate = next_step, None

    # Start-up ------------------------------------------------------------------------------

    async def _start(self) -> _Config:
        local, local_digest = await asyncio.to_thread(self._read_local)
        store = self._store = ConfigStore(local.config.state_dir)
        state = self._state = await asyncio.to_thread(store.load_state)
        running, error = local, None
        pushed = await asyncio.to_thread(store.read_document, ConfigStore.LAST_GOOD)
        if pushed is not None and state.base == local_digest:
            try:
                checked = check_document(pushed, environ=self._environ, running=local.config)
            except RemoteConfigError as exc:
                log.error("无法使用上次推送的配置 cannot run the config pushed last: %s", exc)
                error = f"无法使用上次推送的配置 cannot run the config pushed last: {exc}"
            else:
                running = _Config(checked, pushed, config_hash(pushed))
        elif pushed is not None:
            log.warning(
                "本地配置文件在推送后已更改，使用本地文件 %s changed after the last push:"
                " running it instead",
                self._local_path,
            )
            await asyncio.to_thread(store.remove, ConfigStore.LAST_GOOD)
        self._good = running
        previous = state.report
        if state.trial is not None:  # stopped, or crashed, during a trial: it failed
            await asyncio.to_thread(store.remove, ConfigStore.TRIAL)
            self._set_report(
                running,
                "rolled_back",
                push=state.trial.push,
                error="试用期间网关重启，已回滚 restarted during the trial: rolled back",
            )
            state.trial = None
        elif error is not None:
            self._set_report(running, "rejected", push=state.handled, error=error)
        elif previous is not None and previous.hash == running.short:
            self._report = previous  # the last push's outcome still describes what runs
        else:
            self._set_report(running, "applied" if running is not local else "local")
        await self._save()
        return running

    def _read_local(self) -> tuple[_Config, str]:
        """The local config file, validated as ``qihe gateway check`` does, and its digest."""
        config = load_gateway_config(self._local_path)
        try:
            data = self._local_path.read_bytes()
            document = yaml.safe_load(data)
        except (OSError, yaml.YAMLError) as exc:  # it changed under us since the check
            raise ConfigError(f"{self._local_path}: cannot read config file: {exc}") from None
        return _Config(config, document, config_hash(document)), file_digest(data)

    # Running one config ---------------------------------------------------------------------

    async def _serve(self, running: _Config, candidate: _Candidate | None) -> _Config | _Candidate:
        """Run ``running`` until a push replaces it or its trial ends in a rollback."""
        loop = asyncio.get_running_loop()
        gateway = self.gateway = self._make(
            running.config, config_report=self.report, notifier=self._notifier
        )
        settings = running.config
        if settings.remote_config.enabled:
            topic = TopicTree(settings.broker.topic_prefix).config(settings.site, settings.gateway)
            gateway.publisher.listen(topic, self._on_push)
        task = asyncio.create_task(gateway.run(), name="gateway")
        self._notifier.switching = False
        deadline: float | None = None
        connected: asyncio.Task[Any] | None = None
        if candidate is not None:
            assert self._good is not None
            deadline = loop.time() + self._good.config.remote_config.rollback_after.total_seconds()
            connected = asyncio.create_task(gateway.publisher.connected.wait(), name="trial")
        try:
            while True:
                wake = asyncio.create_task(self._wake.wait(), name="config-push-wait")
                waiting: set[asyncio.Future[Any]] = {task, wake}
                if connected is not None:
                    waiting.add(connected)
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    await asyncio.wait(waiting, timeout=timeout, return_when="FIRST_COMPLETED")
                finally:
                    wake.cancel()
                if task.done() and candidate is None:
                    await task  # the gateway failed: its error goes up (as without pushes)
                    raise RuntimeError("网关意外停止 the gateway stopped by itself")
                try:
                    if task.done():
                        raise _TrialFailed(self._crash(task))
                    if candidate is not None and connected is not None and connected.done():
                        await self._trial_passed(candidate, gateway)
                        candidate, connected, deadline = None, None, None
                    elif deadline is not None and loop.time() >= deadline:
                        after = _duration(self._good)
                        raise _TrialFailed(
                            f"无法连接代理，已回滚 rolled back: broker not reached within {after}"
                        )
                except _TrialFailed as failed:
                    assert candidate is not None
                    await self._stop(task, switching=True)
                    return await self._roll_back(candidate, str(failed))
                if self._wake.is_set():
                    self._wake.clear()
                    push, self._pending = self._pending, None
                    if push is not None:
                        step = await self._consider(push, running, gateway)
                        if step is not None:
                            await self._stop(task, switching=True)
                            return step
        finally:
            if connected is not None:
                connected.cancel()
            await self._stop(task, switching=False)

    def _crash(self, task: asyncio.Task[None]) -> str:
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return "网关意外停止 the gateway stopped by itself"
        log.error("网关出错 the gateway failed", exc_info=exc)
        return one_line(f"网关出错 the gateway failed: {exc}")

    async def _stop(self, task: asyncio.Task[None], *, switching: bool) -> None:
        """Stop the running gateway cleanly (it flushes its outbox) and wait for it."""
        if task.done():
            return
        self._notifier.switching = switching
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # Pushes -----------------------------------------------------------------------------------

    def _on_push(self, topic: str, payload: bytes) -> None:
        """On the loop, from the publisher: keep the newest push for the supervisor."""
        try:
            push = parse_config_push(payload)
        except PayloadError as exc:
            if self._refusals_said.first(exc.key):
                log.warning("拒绝配置推送 refused a config push on %s: %s", topic, exc)
            return
        self._pending = push
        self._wake.set()

    async def _consider(
        self, push: ConfigPush, running: _Config, gateway: Gateway
    ) -> _Candidate | None:
        """Answer a push: a candidate to apply, or None (answered in the status already)."""
        if push.id == self._state.handled:
            return None  # a retained push comes again at every connection
        self._state.handled = push.id
        settings = running.config
        if (push.site, push.gateway) != (settings.site, settings.gateway):
            error = (
                f"推送的目标不是本网关 the push is for {push.site}/{push.gateway},"
                f" not {settings.site}/{settings.gateway}"
            )
            await self._answer(gateway, running, "rejected", push, error)
            return None
        digest = config_hash(push.config)
        if digest == running.hash:
            log.info("推送的配置与运行中的相同 pushed config %s is the running one", running.short)
            await self._answer(gateway, running, "applied", push)
            return None
        try:
            config = check_document(push.config, environ=self._environ, running=settings)
        except RemoteConfigError as exc:
            log.warning("拒绝推送的配置 rejected the config pushed by %s: %s", push.by, exc)
            await self._answer(gateway, running, "rejected", push, str(exc))
            return None
        candidate = _Candidate(_Config(config, push.config, digest), push)
        log.info(
            "应用推送的配置 applying the config %s (%s) pushed by %s",
            candidate.config.short,
            config.version or "-",
            push.by,
        )
        assert self._store is not None
        await asyncio.to_thread(self._store.write_document, ConfigStore.TRIAL, push.config)
        self._state.trial = Trial(push=push.id, hash=digest)
        self._set_report(candidate.config, "applying", push=push.id)
        await self._save()
        return candidate

    async def _answer(
        self,
        gateway: Gateway,
        running: _Config,
        state: ConfigState,
        push: ConfigPush,
        error: str | None = None,
    ) -> None:
        """Report the outcome of a push that leaves the running gateway as it is."""
        self._set_report(running, state, push=push.id, error=error)
        await self._save()
        await gateway.publisher.restate_status()

    async def _trial_passed(self, candidate: _Candidate, gateway: Gateway) -> None:
        assert self._store is not None
        await asyncio.to_thread(self._store.promote_trial)
        local = await asyncio.to_thread(self._local_digest)
        self._good = candidate.config
        self._state.trial = None
        self._state.base = local
        self._set_report(candidate.config, "applied", push=candidate.push.id)
        await self._save()
        log.info("推送的配置已生效 the pushed config %s reached the broker", candidate.config.short)
        await gateway.publisher.restate_status()

    async def _roll_back(self, candidate: _Candidate, reason: str) -> _Config:
        assert self._store is not None and self._good is not None
        log.error("回滚推送的配置 rolling back the config %s: %s", candidate.config.short, reason)
        await asyncio.to_thread(self._store.remove, ConfigStore.TRIAL)
        self._state.trial = None
        self._set_report(self._good, "rolled_back", push=candidate.push.id, error=reason)
        await self._save()
        return self._good

    # State --------------------------------------------------------------------------------

    def _set_report(
        self,
        config: _Config,
        state: ConfigState,
        *,
        push: str | None = None,
        error: str | None = None,
    ) -> None:
        self._report = ConfigReport(
            version=config.config.version,
            hash=config.short,
            state=state,
            error=None if error is None else one_line(error),
            push=push,
            at=self._clock(),
        )
        self._state.report = self._report

    async def _save(self) -> None:
        assert self._store is not None
        try:
            await asyncio.to_thread(self._store.save_state, self._state)
        except OSError as exc:  # a full or read-only card: the gateway runs on, logged
            log.error("无法保存远程配置状态 cannot save the remote config state: %s", exc)

    def _local_digest(self) -> str | None:
        try:
            return file_digest(self._local_path.read_bytes())
        except OSError:
            return None


def _duration(good: _Config | None) -> str:
    """``rollback_after`` of the last good config, for people (``2m``, ``90s``)."""
    seconds = 0.0 if good is None else good.config.remote_config.rollback_after.total_seconds()
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"
