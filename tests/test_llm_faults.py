"""Fault behaviour of the model client, against a scripted fake server.

Only failures a real server cannot be made to produce on cue are tested here;
each test states the behaviour a user relies on when the endpoint misbehaves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from assistant.llm import (
    AuthenticationRefused,
    ConnectionBroken,
    EndpointUnreachable,
    LLMError,
    ModelClient,
    ModelNotFound,
    ModelTimeout,
    NotConfigured,
    ServerError,
    StreamInterrupted,
)
from assistant.localserver import free_port
from assistant.settings import Settings

try:
    from tests.fakeserver import FakeServer
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from fakeserver import FakeServer

SECRET = "sk-test-SECRET123"
MESSAGES = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(models=["fake-model", "other-model"]) as fake:
        yield fake


def make_client(
    url: str | None,
    *,
    model: str | None = "fake-model",
    timeout: float = 2.0,
    key: str | None = SECRET,
    max_retries: int = 3,
) -> ModelClient:
    settings = Settings(base_url=url, api_key=key, model=model, timeout=timeout)
    return ModelClient(settings, max_retries=max_retries)


# 1
def test_500_then_success_is_retried(server: FakeServer) -> None:
    server.add_error(500, "upstream exploded").add_reply("hello")
    result = make_client(server.url).chat(MESSAGES)
    assert result.text == "hello"
    assert len(server.chat_requests) == 2


def test_500_every_time_gives_up_with_the_servers_message(server: FakeServer) -> None:
    for _ in range(3):
        server.add_error(500, "upstream exploded")
    with pytest.raises(ServerError, match="upstream exploded") as info:
        make_client(server.url, max_retries=2).chat(MESSAGES)
    assert info.value.status == 500
    assert len(server.chat_requests) == 3


# 2
def test_429_honours_retry_after(server: FakeServer) -> None:
    server.add_error(429, "slow down", headers={"Retry-After": "1"}).add_reply("hello")
    result = make_client(server.url).chat(MESSAGES)
    assert result.text == "hello"
    first, second = server.chat_requests
    assert second.at - first.at >= 0.9


def test_429_with_retry_after_beyond_the_cap_fails_at_once(server: FakeServer) -> None:
    server.add_error(429, "quota exhausted", headers={"Retry-After": "3600"})
    start = time.monotonic()
    with pytest.raises(ServerError, match="3600 s") as info:
        make_client(server.url).chat(MESSAGES)
    assert time.monotonic() - start < 2
    assert "quota exhausted" in str(info.value)
    assert len(server.chat_requests) == 1


# 3
def test_hang_times_out_once_and_names_the_url(server: FakeServer) -> None:
    server.add_hang(10)
    start = time.monotonic()
    with pytest.raises(ModelTimeout) as info:
        make_client(server.url, timeout=1).chat(MESSAGES)
    assert time.monotonic() - start < 3
    assert server.url in str(info.value) and "ASSISTANT_TIMEOUT" in str(info.value)
    assert len(server.chat_requests) == 1  # a timeout is not multiplied by retries


def test_stream_that_sends_headers_then_stalls_times_out(server: FakeServer) -> None:
    server.add_stream(["never"], stall_after=0, stall_s=10)
    start = time.monotonic()
    with pytest.raises(ModelTimeout):
        make_client(server.url, timeout=1).chat(MESSAGES, stream=True)
    assert time.monotonic() - start < 3


def test_stream_that_stalls_mid_answer_keeps_the_partial(server: FakeServer) -> None:
    server.add_stream(["Hel", "lo", " world"], stall_after=2, stall_s=10)
    with pytest.raises(StreamInterrupted) as info:
        make_client(server.url, timeout=1).chat(MESSAGES, stream=True)
    assert info.value.partial == "Hello"


# 4
def test_stream_cut_mid_answer_raises_with_partial_and_is_not_retried(
    server: FakeServer,
) -> None:
    server.add_stream(["Hel", "lo", " world"], cut_after=2)
    seen: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        make_client(server.url).chat(MESSAGES, stream=True, on_token=seen.append)
    assert info.value.partial == "Hello"
    assert seen == ["Hel", "lo"]
    assert server.url in str(info.value)
    assert len(server.chat_requests) == 1


def test_stream_cut_before_any_token_is_retried_once(server: FakeServer) -> None:
    server.add_stream(["x"], cut_after=0).add_stream(["fine"])
    result = make_client(server.url).chat(MESSAGES, stream=True)
    assert result.text == "fine"
    assert len(server.chat_requests) == 2


# 5
def test_unknown_model_is_refused_before_any_chat_request(server: FakeServer) -> None:
    with pytest.raises(ModelNotFound) as info:
        make_client(server.url, model="no-such-model").chat(MESSAGES)
    message = str(info.value)
    assert "'no-such-model'" in message
    assert "fake-model" in message and "other-model" in message
    assert server.chat_requests == []  # llama.cpp would have answered with its own model


def test_404_from_chat_lists_the_servers_models() -> None:
    # The server lists the model, then says it is gone (unloaded between the calls).
    with FakeServer(models=["fake-model"]) as fake:
        client = make_client(fake.url)
        fake.add_reply("first")
        client.chat(MESSAGES)
        fake.models = ["replacement"]
        fake.add_error(404, "model 'fake-model' not found")
        with pytest.raises(ModelNotFound, match="the server has: replacement"):
            client.chat(MESSAGES)


def test_server_without_models_endpoint_skips_the_check() -> None:
    with FakeServer(models=None) as fake:
        fake.add_reply("hello")
        assert make_client(fake.url, model="anything").chat(MESSAGES).text == "hello"


def test_sole_model_is_used_when_none_is_configured() -> None:
    with FakeServer(models=["only-one"]) as fake:
        fake.add_reply("hello")
        client = make_client(fake.url, model=None)
        assert client.chat(MESSAGES).model == "only-one"
        assert fake.chat_requests[0].body["model"] == "only-one"


def test_several_models_and_none_configured_says_how_to_choose(server: FakeServer) -> None:
    with pytest.raises(ModelNotFound, match="ASSISTANT_MODEL"):
        make_client(server.url, model=None).chat(MESSAGES)


# 6
def test_no_server_is_unreachable_and_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    with pytest.raises(EndpointUnreachable) as info:
        make_client(url).chat(MESSAGES)
    assert url in str(info.value) and "connection refused" in str(info.value)
    assert time.monotonic() - start < 2  # a refused connection is not retried with backoff


# 7
def test_401_is_refused_key_and_never_shows_the_key(server: FakeServer) -> None:
    server.models = None  # reach the chat request itself
    server.add_error(401, f"Incorrect API key provided: {SECRET}")
    client = make_client(server.url)
    with pytest.raises(AuthenticationRefused) as info:
        client.chat(MESSAGES)
    assert "OPENAI_API_KEY" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert SECRET not in repr(client)
    assert info.value.__cause__ is None  # the SDK's error text would carry the echoed key
    assert server.chat_requests[0].headers["authorization"] == f"Bearer {SECRET}"


# 8
def test_streaming_happy_path(server: FakeServer) -> None:
    server.add_stream(
        ["Hel", "lo", ", ", "world"], usage={"prompt_tokens": 7, "completion_tokens": 4}
    )
    seen: list[str] = []
    result = make_client(server.url).chat(MESSAGES, stream=True, on_token=seen.append)
    assert seen == ["Hel", "lo", ", ", "world"]
    assert result.text == "Hello, world"
    assert result.first_token_s is not None and 0 <= result.first_token_s <= result.total_s
    assert (result.prompt_tokens, result.completion_tokens) == (7, 4)
    assert not result.usage_estimated
    assert result.finish_reason == "stop"
    assert server.chat_requests[0].body["stream_options"] == {"include_usage": True}


def test_stream_options_rejected_is_retried_without_them(server: FakeServer) -> None:
    server.add_error(400, "unrecognized request argument: stream_options").add_stream(["ok"])
    result = make_client(server.url).chat(MESSAGES, stream=True)
    assert result.text == "ok"
    assert "stream_options" not in server.chat_requests[1].body
    assert result.usage_estimated and result.completion_tokens == 1


def test_think_block_is_stripped_from_the_answer_not_the_tokens(server: FakeServer) -> None:
    server.add_stream(["<think>", "hmm", "</think>", "\n\nAnswer."])
    seen: list[str] = []
    result = make_client(server.url).chat(MESSAGES, stream=True, on_token=seen.append)
    assert result.text == "Answer."
    assert "".join(seen).startswith("<think>")


# 9
def test_cancel_during_streaming_returns_the_partial(server: FakeServer) -> None:
    # The rest of the stream would take 20 s: returning long before that shows the client did
    # not wait for it, with a margin no loaded machine eats (0.7 s once failed under load).
    server.add_stream(["one ", "two ", *["more "] * 100], delay_s=0.2)
    cancel = threading.Event()
    seen: list[str] = []

    def on_token(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 2:
            cancel.set()

    start = time.monotonic()
    result = make_client(server.url).chat(MESSAGES, stream=True, on_token=on_token, cancel=cancel)
    assert result.text == "one two "
    assert result.finish_reason == "cancelled"
    assert time.monotonic() - start < 10  # did not wait for the rest of the stream


# 10
def test_server_error_message_is_passed_through(server: FakeServer) -> None:
    server.add_error(400, "context too long")
    with pytest.raises(LLMError, match="context too long") as info:
        make_client(server.url).chat(MESSAGES)
    assert "\n" not in str(info.value)
    assert len(server.chat_requests) == 1  # a 400 is not retried


# 11
def test_not_configured_without_base_url() -> None:
    with pytest.raises(NotConfigured, match="OPENAI_BASE_URL"):
        make_client(None)


def test_usage_from_server_in_non_streaming_and_estimated_without(server: FakeServer) -> None:
    server.add_reply("hi", usage={"prompt_tokens": 11, "completion_tokens": 1}).add_reply(
        "hello there"
    )
    client = make_client(server.url)
    first = client.chat(MESSAGES)
    assert (first.prompt_tokens, first.completion_tokens, first.usage_estimated) == (11, 1, False)
    second = client.chat(MESSAGES)
    assert second.usage_estimated and second.completion_tokens == 2
    assert second.prompt_tokens is not None and second.prompt_tokens > 3
    assert len(server.model_requests) == 1  # the model check is done once per client


# issue 10, item 4: the server answered, then the connection broke (not "is it running?")
def test_whole_reply_cut_mid_body_is_a_broken_connection_not_unreachable(
    server: FakeServer,
) -> None:
    for _ in range(2):
        server.add_cut_reply("Hello there, this reply never arrives whole.", keep_bytes=25)
    with pytest.raises(ConnectionBroken) as info:
        make_client(server.url, max_retries=1).chat(MESSAGES)
    message = str(info.value)
    assert server.url in message
    assert "closed the connection before the whole reply arrived" in message
    assert "is the server running" not in message and not isinstance(
        info.value, EndpointUnreachable
    )
    assert len(server.chat_requests) == 2  # nothing was shown, so it was retried


def test_server_that_closes_without_answering_is_a_broken_connection(server: FakeServer) -> None:
    server.add_close()
    with pytest.raises(ConnectionBroken, match="closed the connection without answering"):
        make_client(server.url, max_retries=0).chat(MESSAGES)


def test_reply_that_is_not_json_says_so(server: FakeServer) -> None:
    server.add_raw(b"<html>502 Bad Gateway</html>", content_type="application/json")
    server.add_raw(b"<html>a login page</html>", content_type="text/html")
    client = make_client(server.url)
    with pytest.raises(ServerError, match="not valid JSON"):
        client.chat(MESSAGES)
    with pytest.raises(ServerError, match="not a chat completion: '<html>a login page"):
        client.chat(MESSAGES)


# issue 10, item 15: Esc during a non-streamed call (the follow-up rewrite) stops the wait
def test_cancel_during_a_hung_non_streamed_call_returns_at_once(server: FakeServer) -> None:
    server.add_hang(600)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    result = make_client(server.url, timeout=600).chat(MESSAGES, cancel=cancel)
    assert result.finish_reason == "cancelled" and result.text == ""
    assert time.monotonic() - start < 30  # the server hangs for 600 s, the client waits as long


# issue 13, item 4: the cap reads Retry-After as the SDK does, in each of its forms
def test_retry_after_is_read_in_milliseconds_seconds_and_as_a_date() -> None:
    import email.utils

    from assistant.llm_transport import retry_after

    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "2"}) == 2.0
    in_an_hour = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert 3590 <= retry_after({"retry-after": in_an_hour}) <= 3600
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None
    assert retry_after({"retry-after": "-5"}) == 0.0


def test_retry_after_ms_beyond_the_cap_fails_at_once(server: FakeServer) -> None:
    server.add_error(429, "quota exhausted", headers={"Retry-After-Ms": "3600000"})
    with pytest.raises(ServerError, match="3600 s"):
        make_client(server.url).chat(MESSAGES)
    assert len(server.chat_requests) == 1


def test_error_body_that_is_not_openai_shaped_is_still_the_message(server: FakeServer) -> None:
    server.add_raw(b'{"detail": "model is loading"}', status=400)
    server.add_raw(b"plain text failure", content_type="text/plain", status=400)
    client = make_client(server.url)
    with pytest.raises(ServerError, match="answered 400: model is loading"):
        client.chat(MESSAGES)
    with pytest.raises(ServerError, match="answered 400: plain text failure"):
        client.chat(MESSAGES)
