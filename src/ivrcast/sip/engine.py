"""The call engine: `await Engine.originate(CallRequest) -> CallOutcome`.

The engine owns the I/O: one UDP socket for SIP shared by every call, one RTP socket
per call, one `MediaClock` for all media, and one timer handle per call. Each call is a
`Call` state machine (`call.py`); the engine feeds it events and carries out the actions
it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ivrcast.clock import Clock, SystemClock
from ivrcast.rtp.amd import AmdConfig, AnsweredBy, AnsweringMachineDetector
from ivrcast.rtp.clock import PTIME, MediaClock
from ivrcast.rtp.errors import RtpError
from ivrcast.rtp.g711 import SILENCE_FRAMES
from ivrcast.rtp.media import MediaPlane, MediaStream, open_media_plane
from ivrcast.rtp.recording import CallRecorder
from ivrcast.rtp.stream import MediaTap, TeeTap, open_rtp_socket
from ivrcast.rtp.voice import EncodedAudio
from ivrcast.sip.actions import (
    Action,
    Emit,
    Finish,
    Send,
    StartMedia,
    StopMedia,
    UpdateMedia,
)
from ivrcast.sip.call import Call, CallConfig, CallState
from ivrcast.sip.errors import SipTransportError
from ivrcast.sip.message import Request, Response, make_response, response_address
from ivrcast.sip.outcome import (
    CallEvent,
    CallOutcome,
    verdict_for_transport_error,
)
from ivrcast.sip.sdp import MediaChoice
from ivrcast.sip.transaction import Timers
from ivrcast.sip.transport import SipTransport
from ivrcast.sip.trunk import Trunk, call_uris, host_in_uri

logger = logging.getLogger(__name__)

Address = tuple[str, int]
DEFAULT_NO_RTP_TIMEOUT = 30.0
RESOLVE_TTL = 60.0


def follow_direction(
    clock: MediaClock, stream: MediaStream, choice: MediaChoice, no_rtp_timeout: float | None
) -> None:
    """Hold (RFC 3264 §8.4): a stream is on the media clock only while the far end
    receives, and its no-RTP timer runs only while the far end sends. Taking a held
    stream off the clock costs nothing per packet; its voice resumes where it stopped."""
    stream.watch_rtp(no_rtp_timeout if choice.far_end_sends else None)
    if choice.far_end_receives:
        clock.add(stream)
    else:
        clock.remove(stream)


@dataclass(frozen=True)
class CallRequest:
    call_uuid: str  # our id, in every log record of the call
    trunk: Trunk
    dest: str  # user part of the Request-URI, formatted for the trunk
    caller_id: str  # user part of From
    audio: EncodedAudio
    wait_time: float  # seconds from the INVITE until CANCEL -> no_answer
    conn_time: float  # longest answered time before our BYE
    # Keys are always recorded. With collect_keys, after the voice ends we wait up to
    # key_wait seconds; a key ends the wait at once, and a key pressed during the
    # voice means no wait at all. The voice is never cut short by a key.
    collect_keys: bool = False
    key_wait: float = 5.0
    # Where to write the call's recording (rtp.recording), from answer to hang-up; None:
    # not recorded.
    record_to: Path | None = None
    # Answering-machine detection (rtp.amd): the voice waits for its decision. Then
    # `amd_action` "hangup" ends a machine's call (status machine), "play" plays anyway,
    # "beep" waits for the greeting's end or beep and plays (a voicemail drop). People
    # and "unknown" always hear the voice.
    amd: AmdConfig | None = None
    amd_action: Literal["hangup", "play", "beep"] = "hangup"


@dataclass
class _ActiveCall:
    call: Call
    stream: MediaStream
    request: CallRequest
    future: asyncio.Future[CallOutcome]
    on_event: Callable[[CallEvent], None] | None
    timer: asyncio.TimerHandle | None = None
    media_started: bool = field(default=False)
    recorder: CallRecorder | None = None
    detector: AnsweringMachineDetector | None = None


class Engine:
    def __init__(
        self,
        *,
        bind_host: str = "127.0.0.1",
        bind_port: int = 0,
        clock: Clock | None = None,
        rtp_port_range: tuple[int, int] | None = None,
        no_rtp_timeout: float | None = DEFAULT_NO_RTP_TIMEOUT,
        timers: Timers | None = None,
        advertised_host: str | None = None,
        user_agent: str = "ivrcast",
        stop_grace: float = 2.0,
    ) -> None:
        self._bind_host = bind_host
        self._bind_port = bind_port
        self._clock: Clock = clock or SystemClock()
        self.rtp_port_range = rtp_port_range
        self.no_rtp_timeout = no_rtp_timeout
        self.timers = timers or Timers()
        self.advertised_host = advertised_host
        self._user_agent = user_agent
        self._stop_grace = stop_grace
        self._transport: SipTransport | None = None
        self.media_clock = MediaClock()
        self._media: MediaPlane | None = None
        self._calls: dict[str, _ActiveCall] = {}
        self._resolved: dict[tuple[str, int], tuple[Address, float]] = {}

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        if self._transport is not None:
            return
        self._transport = await SipTransport.open(
            self._bind_host, self._bind_port, self._on_message
        )
        self._media = open_media_plane(interval=PTIME)
        self.media_clock.start()
        logger.info(
            "SIP engine listening on %s:%s (media: %s)",
            *self.local_address,
            self._media.backend,
            extra={"event": "sip.engine_started"},
        )

    @property
    def local_address(self) -> Address:
        if self._transport is None:
            raise RuntimeError("Engine.start() first")
        return self._transport.local_address

    @property
    def active_calls(self) -> int:
        return sum(1 for e in self._calls.values() if e.call.state is not CallState.ENDED)

    async def stop(self) -> None:
        """End every active call (BYE when answered, CANCEL when ringing), wait up to
        `stop_grace` seconds for the far ends, then close the sockets."""
        if self._transport is None:
            return
        pending = [e for e in self._calls.values() if not e.future.done()]
        for entry in pending:
            self._feed(entry, entry.call.stop())
        waiting = [e.future for e in pending if not e.future.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=self._stop_grace)
        for entry in list(self._calls.values()):
            if not entry.future.done():
                self._feed(entry, entry.call.abort("engine stopped before the far end answered"))
            if entry.timer is not None:
                entry.timer.cancel()
            entry.stream.close()
        self._calls.clear()
        await self.media_clock.stop()
        if self._media is not None:
            self._media.close()
            self._media = None
        self._transport.close()
        self._transport = None

    # -- originate ---------------------------------------------------------------

    async def originate(
        self,
        request: CallRequest,
        on_event: Callable[[CallEvent], None] | None = None,
    ) -> CallOutcome:
        """Place one call and return how it ended. Telephony results (busy, no answer,
        failures, timeouts) are outcomes; only misuse raises."""
        if self._transport is None or self._media is None:
            raise RuntimeError("Engine.start() first")
        trunk = request.trunk
        log_extra = {"call_uuid": request.call_uuid, "trunk": trunk.name}
        try:
            proxy = await self._resolve(trunk.host, trunk.port)
        except OSError as exc:
            logger.warning(
                "cannot resolve trunk %s: %s",
                trunk.host,
                exc,
                extra={"event": "sip.resolve_failed", **log_extra},
            )
            return self._immediate_failure(f"cannot resolve {trunk.host}: {exc}", trunk_failed=True)
        local_host = self._local_host_for(proxy)
        try:
            sock = open_rtp_socket(self._bind_host, self.rtp_port_range)
        except RtpError as exc:
            logger.error("%s", exc, extra={"event": "rtp.no_socket", **log_extra})
            return self._immediate_failure(str(exc), trunk_failed=False)
        loop = asyncio.get_running_loop()
        stream = self._media.stream(sock, label=request.call_uuid, monotonic=loop.time)
        sip_port = self.local_address[1]
        uris = call_uris(trunk, request.dest, request.caller_id)
        contact_host = host_in_uri(local_host)
        config = CallConfig(
            call_uuid=request.call_uuid,
            call_id=f"{secrets.token_hex(12)}@{contact_host}",
            local_tag=secrets.token_hex(6),
            request_uri=uris.request_uri,
            from_uri=uris.from_uri,
            to_uri=uris.to_uri,
            contact=f"<sip:ivrcast@{contact_host}:{sip_port}>",
            via_host=local_host,
            via_port=sip_port,
            proxy=proxy,
            rtp_address=local_host,
            rtp_port=stream.local_address[1],
            session_id=random.getrandbits(31),
            wait_time=request.wait_time,
            conn_time=request.conn_time,
            collect_keys=request.collect_keys,
            key_wait=request.key_wait,
            username=trunk.username,
            password=trunk.password,
            timers=self.timers,
            user_agent=self._user_agent,
        )
        call = Call(config, self._clock)
        entry = _ActiveCall(call, stream, request, loop.create_future(), on_event)
        self._calls[config.call_id] = entry
        stream.on_audio_done = lambda: self._feed(entry, call.on_audio_done())
        stream.on_key = lambda key: self._feed(entry, call.on_key(key))
        stream.on_rtp_timeout = lambda: self._feed(entry, call.on_rtp_timeout())
        logger.info(
            "calling %s via %s",
            request.dest,
            trunk.name,
            extra={"event": "sip.originate", "sip_call_id": config.call_id, **log_extra},
        )
        self._feed(entry, call.start())
        try:
            return await asyncio.shield(entry.future)
        except asyncio.CancelledError:
            # The dialer gave up on the call (its task was cancelled): hang up properly.
            if not entry.future.done():
                self._feed(entry, call.stop())
            raise

    def _immediate_failure(self, reason: str, *, trunk_failed: bool) -> CallOutcome:
        verdict = verdict_for_transport_error()
        now = self._clock.now()
        return CallOutcome(
            status=verdict.status,
            sip_code=None,
            sip_reason=reason,
            q850_cause=None,
            invited_at=now,
            ringing_at=None,
            answered_at=None,
            ended_at=now,
            hangup_by=None,
            hangup_cause=verdict.cause,
            hangup_direction=verdict.direction,
            trunk_failed=trunk_failed,
        )

    async def _resolve(self, host: str, port: int) -> Address:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return host, port
        now = self._clock.monotonic()
        cached = self._resolved.get((host, port))
        if cached is not None and cached[1] > now:
            return cached[0]
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_DGRAM, family=socket.AF_INET
        )
        if not infos:
            raise OSError(f"no address for {host}")
        address = (str(infos[0][4][0]), port)
        self._resolved[(host, port)] = (address, now + RESOLVE_TTL)
        return address

    def _local_host_for(self, peer: Address) -> str:
        """The address to put in Via, Contact and SDP: the advertised one (but not to a
        peer on loopback), the bind address, or (bound to a wildcard) the source address
        the kernel would use."""
        if self.advertised_host and not ipaddress.ip_address(peer[0]).is_loopback:
            # The advertised (public) address is for carriers; a peer on loopback (the
            # demo carrier) is answered on the address it can reach.
            return self.advertised_host
        if self._bind_host not in ("0.0.0.0", "::", ""):
            return self._bind_host
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(peer)
            return str(probe.getsockname()[0])

    # -- carrying out actions ----------------------------------------------------

    def _feed(self, entry: _ActiveCall, actions: list[Action]) -> None:
        for action in actions:
            try:
                self._do(entry, action)
            except Exception:
                # One call's failure (a callback that raised, a closed socket) must not
                # take the other calls or the engine down.
                logger.exception(
                    "action %s failed",
                    type(action).__name__,
                    extra={"event": "sip.action_failed", "call_uuid": entry.request.call_uuid},
                )
        self._reschedule(entry)

    def _do(self, entry: _ActiveCall, action: Action) -> None:
        if isinstance(action, Send):
            self._send(entry, action)
        elif isinstance(action, StartMedia):
            choice = action.choice
            detect = entry.request.amd is not None and entry.detector is None
            entry.stream.start(
                (choice.address, choice.port),
                frames=entry.request.audio.frames_for(choice.codec),
                silence=SILENCE_FRAMES[choice.codec],
                payload_type=choice.payload_type,
                dtmf_payload_type=choice.dtmf_payload_type,
                no_rtp_timeout=self.no_rtp_timeout,
                hold_voice=detect,
            )
            if entry.request.record_to is not None and entry.recorder is None:
                self._start_recording(entry, entry.request.record_to, choice.codec)
            if detect:
                self._start_detection(entry, choice.codec)
            taps: list[MediaTap] = [t for t in (entry.recorder, entry.detector) if t is not None]
            entry.stream.tap = taps[0] if len(taps) == 1 else TeeTap(*taps) if taps else None
            entry.media_started = True
            follow_direction(self.media_clock, entry.stream, choice, self.no_rtp_timeout)
        elif isinstance(action, UpdateMedia):
            if not entry.stream.closed:
                entry.stream.set_remote((action.choice.address, action.choice.port))
                follow_direction(self.media_clock, entry.stream, action.choice, self.no_rtp_timeout)
        elif isinstance(action, StopMedia):
            self.media_clock.remove(entry.stream)
        elif isinstance(action, Emit):
            if entry.on_event is not None:
                entry.on_event(action.event)
        elif isinstance(action, Finish):
            self._finish(entry, action.outcome)

    def _start_recording(self, entry: _ActiveCall, path: Path, codec: str) -> None:
        """Tap the stream into a recording; a file that cannot be opened leaves the call
        unrecorded, never undialed."""
        try:
            entry.recorder = CallRecorder(
                path,
                codec,
                label=entry.request.call_uuid,
                started_at=asyncio.get_running_loop().time(),
            )
        except OSError as exc:
            logger.error(
                "cannot record to %s: %s",
                path,
                exc,
                extra={"event": "rtp.recording_failed", "call_uuid": entry.request.call_uuid},
            )
            return

    def _start_detection(self, entry: _ActiveCall, codec: str) -> None:
        request = entry.request
        assert request.amd is not None
        stream = entry.stream
        action = request.amd_action

        def on_result(answered_by: AnsweredBy, ms: int) -> None:
            detector = entry.detector
            logger.info(
                "answered by %s after %d ms (%s)",
                answered_by,
                ms,
                detector.reason if detector else "",
                extra={"event": "sip.amd", "call_uuid": request.call_uuid},
            )
            if answered_by != "machine" or action == "play":
                stream.release_voice()
            elif action == "hangup":
                self._feed(entry, entry.call.on_machine())

        entry.detector = AnsweringMachineDetector(
            request.amd,
            codec,
            on_result=on_result,
            on_ready=stream.release_voice if action == "beep" else None,
        )

    def _send(self, entry: _ActiveCall, action: Send) -> None:
        try:
            if self._transport is None:
                raise SipTransportError("the SIP transport is closed")
            self._transport.send(action.message, action.address)
        except (OSError, SipTransportError) as exc:
            logger.warning(
                "cannot send to %s:%s: %s",
                *action.address,
                exc,
                extra={"event": "sip.send_failed", "call_uuid": entry.request.call_uuid},
            )
            if isinstance(action.message, Request) and action.message.method == "INVITE":
                self._feed(entry, entry.call.on_transport_error())

    def _finish(self, entry: _ActiveCall, outcome: CallOutcome) -> None:
        stream = entry.stream
        self.media_clock.remove(stream)
        outcome = replace(
            outcome,
            rtp_sent=stream.packets_sent,
            rtp_received=stream.stats.packets_received,
            rtp_lost=stream.stats.packets_lost,
            rtp_rejected=stream.rejected,
        )
        stream.tap = None
        detector = entry.detector
        if detector is not None:
            # A call that ended before the decision (the callee hung up) was "unknown".
            outcome = replace(
                outcome,
                answered_by=detector.result or "unknown",
                amd_ms=detector.result_ms if detector.result else detector.elapsed_ms,
            )
        recorder = entry.recorder
        if recorder is not None:
            recorder.close(asyncio.get_running_loop().time())
            outcome = replace(outcome, recorded=not recorder.failed)
        stream.close()
        if not entry.future.done():
            entry.future.set_result(outcome)

    def _reschedule(self, entry: _ActiveCall) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        deadline = entry.call.deadline()
        if deadline is None:
            if entry.call.finished:
                self._calls.pop(entry.call.config.call_id, None)
            return
        delay = max(deadline - self._clock.monotonic(), 0.0)
        entry.timer = asyncio.get_running_loop().call_later(delay, self._on_timer, entry)

    def _on_timer(self, entry: _ActiveCall) -> None:
        entry.timer = None
        self._feed(entry, entry.call.on_timer())

    # -- incoming SIP ------------------------------------------------------------

    def _on_message(self, message: Request | Response, source: Address) -> None:
        try:
            entry = self._calls.get(message.call_id)
            if entry is not None:
                if isinstance(message, Response):
                    self._feed(entry, entry.call.on_response(message))
                else:
                    self._feed(entry, entry.call.on_request(message, source))
            elif isinstance(message, Request):
                self._answer_stray(message, source)
        except Exception:
            # A message that parsed but breaks a deeper assumption: log it, drop it.
            logger.exception(
                "could not handle %s",
                message.call_id,
                extra={"event": "sip.handle_failed", "sip_call_id": message.call_id},
            )

    def _answer_stray(self, request: Request, source: Address) -> None:
        """Requests outside our calls: OPTIONS pings get 200, the rest 481/501."""
        if request.method == "ACK" or self._transport is None:
            return
        if request.method == "OPTIONS":
            status, reason = 200, "OK"
        elif request.to.tag is not None or request.method in ("BYE", "CANCEL"):
            status, reason = 481, "Call/Transaction Does Not Exist"
        else:
            status, reason = 501, "Not Implemented"
        response: Response = make_response(request, status, reason, source=source)
        with contextlib.suppress(OSError, SipTransportError):
            self._transport.send(response, response_address(request, source))
