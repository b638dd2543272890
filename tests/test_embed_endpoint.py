"""The `/v1/embeddings` embedder (ASSISTANT_EMBEDDER=endpoint) against the fake server.

It must follow the chat client's policy: 429/5xx retried (Retry-After honoured up
to its cap), a timeout or a refused connection not retried, errors one line
without the API key, and texts sent in batches of the size asked for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import pytest

from assistant.embed import EndpointEmbedder, make_embedder
from assistant.errors import UsageError
from assistant.llm import (
    AuthenticationRefused,
    ConnectionBroken,
    EndpointUnreachable,
    ModelNotFound,
    ModelTimeout,
    ServerError,
)
from assistant.localserver import free_port
from assistant.settings import Settings

try:
    from tests.fakeserver import EMBED_DIM, FakeServer, fake_vector
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from fakeserver import EMBED_DIM, FakeServer, fake_vector

SECRET = "sk-test-SECRET123"
EMBED = "embeddings"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(models=["fake-embed", "fake-model"]) as fake:
        yield fake


def make_embedding(url: str, *, timeout: float = 2.0, key: str | None = SECRET) -> EndpointEmbedder:
    settings = Settings(
        base_url=url, api_key=key, embedder="endpoint", embed_model="fake-embed", timeout=timeout
    )
    embedder = make_embedder(settings)
    assert isinstance(embedder, EndpointEmbedder)
    return embedder


def test_vectors_are_unit_rows_in_input_order_in_batches_of_the_size_asked(
    server: FakeServer,
) -> None:
    texts = [f"paper abstract number {i}" for i in range(10)]
    vectors = make_embedding(server.url).embed(texts, batch=4, concurrency=3)
    assert vectors.shape == (10, EMBED_DIM) and vectors.dtype == np.float32
    expected = np.asarray([fake_vector(t) for t in texts], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)  # row i is text i's vector
    sent = [r.body["input"] for r in server.embedding_requests]
    assert sorted(len(batch) for batch in sent) == [2, 4, 4]
    assert sorted(t for batch in sent for t in batch) == sorted(texts)  # each text once
    assert all(r.body["model"] == "fake-embed" for r in server.embedding_requests)


def test_name_and_dimension_come_from_the_endpoint(server: FakeServer) -> None:
    embedder = make_embedding(server.url)
    assert embedder.name == "endpoint:fake-embed"
    assert embedder.dim == EMBED_DIM
    assert len(server.embedding_requests) == 1  # the probe, once
    assert embedder.dim == EMBED_DIM and len(server.embedding_requests) == 1


def test_500_then_success_is_retried(server: FakeServer) -> None:
    server.add_error(500, "embedder exploded", route=EMBED)
    vectors = make_embedding(server.url).embed(["one text"])
    np.testing.assert_allclose(vectors[0], fake_vector("one text"), atol=1e-6)
    assert len(server.embedding_requests) == 2


def test_429_honours_retry_after(server: FakeServer) -> None:
    server.add_error(429, "slow down", headers={"Retry-After": "1"}, route=EMBED)
    make_embedding(server.url).embed(["one text"])
    first, second = server.embedding_requests
    assert second.at - first.at >= 0.9


def test_429_with_retry_after_beyond_the_cap_is_not_sat_out(server: FakeServer) -> None:
    server.add_error(429, "quota exhausted", headers={"Retry-After": "3600"}, route=EMBED)
    with pytest.raises(ServerError, match="asks to wait 3600 s") as info:
        make_embedding(server.url).embed(["one text"])
    assert "quota exhausted" in str(info.value)
    assert len(server.embedding_requests) == 1


def test_hang_times_out_once_and_names_the_url(server: FakeServer) -> None:
    server.add_hang(10, route=EMBED)
    with pytest.raises(ModelTimeout) as info:
        make_embedding(server.url, timeout=1).embed(["one text"])
    assert server.url in str(info.value) and "ASSISTANT_TIMEOUT" in str(info.value)
    assert len(server.embedding_requests) == 1  # a timeout is not multiplied by retries


def test_reply_cut_mid_body_is_retried(server: FakeServer) -> None:
    server.add_cut_reply(keep_bytes=30, route=EMBED)
    vectors = make_embedding(server.url).embed(["one text"])
    assert vectors.shape == (1, EMBED_DIM)
    assert len(server.embedding_requests) == 2


def test_reply_cut_every_time_is_a_broken_connection(server: FakeServer) -> None:
    for _ in range(4):
        server.add_close(route=EMBED)
    with pytest.raises(ConnectionBroken, match="closed the connection without answering"):
        make_embedding(server.url).embed(["one text"])
    assert len(server.embedding_requests) == 4  # the first try and three retries


def test_refused_key_is_one_line_and_never_shows_the_key(server: FakeServer) -> None:
    server.models = None  # reach the embeddings request itself
    server.add_error(401, f"Incorrect API key provided: {SECRET}\nsee the docs", route=EMBED)
    with pytest.raises(AuthenticationRefused) as info:
        make_embedding(server.url).embed(["one text"])
    message = str(info.value)
    assert "OPENAI_API_KEY" in message and "\n" not in message
    assert SECRET not in message and SECRET not in repr(info.value)
    assert info.value.__cause__ is None
    assert len(server.embedding_requests) == 1  # a refused key is not retried


def test_unknown_embedding_model_is_refused_before_any_request() -> None:
    with FakeServer(models=["fake-model"]) as fake:
        with pytest.raises(ModelNotFound, match="'fake-embed' not found"):
            make_embedding(fake.url).embed(["one text"])
        assert fake.embedding_requests == []


def test_no_server_is_unreachable_and_not_retried() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    with pytest.raises(EndpointUnreachable, match="connection refused"):
        make_embedding(url).embed(["one text"])
    assert time.monotonic() - start < 2  # no backoff before saying so


def test_wrong_number_of_vectors_is_a_server_error(server: FakeServer) -> None:
    one = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [1.0]}]}
    server.add_raw(json.dumps(one).encode(), route=EMBED)
    with pytest.raises(ServerError, match="returned 1 vectors for 2 texts"):
        make_embedding(server.url).embed(["one", "two"])


def test_endpoint_embedder_needs_a_url_and_a_model() -> None:
    with pytest.raises(UsageError, match="OPENAI_BASE_URL"):
        make_embedder(Settings(embedder="endpoint", embed_model="x"))
    with pytest.raises(UsageError, match="ASSISTANT_EMBED_MODEL"):
        make_embedder(Settings(base_url="http://127.0.0.1:1/v1", embedder="endpoint"))
