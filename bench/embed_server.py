"""llama.cpp's OpenAI-compatible server as an embedding endpoint, for `ingest_bench.py --endpoint`.

`python -m llama_cpp.server --embedding true` returns one vector per token for
a decoder model (its server settings have no pooling option), so this starts the
same server with mean pooling: `llama_cpp.Llama` gets `pooling_type=MEAN` by
default, and everything else is `llama_cpp.server`'s own `main()` with the
arguments given here. It serves the bundled SmolLM2-135M unless `--model` is
given, so the benchmark needs nothing beyond the `local` extra:

    .venv/bin/python bench/embed_server.py --port 8777 &
    .venv/bin/python bench/ingest_bench.py --endpoint http://127.0.0.1:8777/v1 \
        --endpoint-model embed

SmolLM2 is not an embedding model: the vectors are only for timing the client
(requests, batching, concurrency), never for retrieval quality.
"""

from __future__ import annotations

import sys
from functools import partialmethod


def main() -> None:
    import llama_cpp
    from llama_cpp.server.__main__ import main as server_main

    llama_cpp.Llama.__init__ = partialmethod(  # type: ignore[method-assign]
        llama_cpp.Llama.__init__, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN
    )
    args = sys.argv[1:]
    if "--model" not in args:
        from assistant.localserver import smollm2_path

        args = ["--model", str(smollm2_path()), *args]
    defaults = {"--model_alias": "embed", "--embedding": "true", "--n_ctx": "2048"}
    for flag, value in defaults.items():
        if flag not in args:
            args += [flag, value]
    sys.argv = [sys.argv[0], *args]
    server_main()


if __name__ == "__main__":
    main()
