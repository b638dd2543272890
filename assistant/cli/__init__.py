"""The command line: a thin layer over the library API.

One module per command group, all importing their shared pieces from
`common` (never from this package module, which imports them):

- `ingest`    `assistant ingest`
- `search`    `assistant search`, `assistant papers`
- `ask`       `assistant ask`
- `digest`    `assistant digest`
- `doctor`    `assistant doctor`, `assistant serve`
- `reindex`   `assistant reindex`
- `sessions`  `assistant chat`, `assistant sessions ...`
- `evaluate`  `assistant eval run|compare|digest`
- `fetch`     `assistant fetch hf|arxiv`
- `follow`    `assistant follow`
- `export`    `assistant export bibtex`

Heavy libraries (chromadb, llama-index, the embedding model, Textual) are
imported inside the commands that need them, so `--help` and listing commands
start fast. Exceptions become exit codes in one place,
`common.AssistantGroup.main`; the codes are tabled in `assistant/errors.py`
(0 success, 1 some work failed, 2 usage error, 130 interrupted).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import ask, digest, doctor, evaluate, export, ingest, reindex, search, sessions
from . import fetch as fetch_cli
from . import follow as follow_cli
from .common import CONTEXT, AssistantGroup


@click.group(cls=AssistantGroup, context_settings=CONTEXT)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    help="Where the store and everything else lives [env: ASSISTANT_HOME].",
)
@click.option(
    "--chroma-url",
    help="Use a Chroma server instead of the embedded store [env: ASSISTANT_CHROMA_URL].",
)
@click.option(
    "--embed-model-dir",
    type=click.Path(path_type=Path),
    help="Local copy of the embedding model, a folder holding onnx/ "
    "[env: ASSISTANT_EMBED_MODEL_DIR].",
)
@click.option("--base-url", help="OpenAI-compatible endpoint [env: OPENAI_BASE_URL].")
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    help="Read settings from this file instead of ./.env.",
)
@click.version_option(package_name="paper-assistant")
@click.pass_context
def cli(ctx: click.Context, home, chroma_url, embed_model_dir, base_url, env_file) -> None:
    """A research-paper assistant: ingest ML paper abstracts, search them, ask cited questions.

    Settings come from these flags, then the environment, then a .env file.
    Start with `assistant ingest` (the bundled sample papers) and `assistant search QUERY`.
    """
    ctx.ensure_object(dict)
    ctx.obj["flags"] = {
        "home": home,
        "chroma_url": chroma_url,
        "embed_model_dir": embed_model_dir,
        "base_url": base_url,
        "env_file": env_file,
    }


for _command in (
    ingest.ingest,
    search.search,
    search.papers,
    ask.ask,
    doctor.doctor,
    doctor.serve,
    reindex.reindex,
    digest.digest,
    sessions.chat,
    sessions.sessions,
):
    cli.add_command(_command)
cli.add_command(evaluate.eval_group, name="eval")
cli.add_command(fetch_cli.fetch)
cli.add_command(follow_cli.follow)
cli.add_command(export.export_group, name="export")


def main(argv: list[str] | None = None) -> int:
    """Entry point (`assistant`, `python -m assistant`): the exit code, never a traceback
    for the user's mistakes."""
    return cli.main(args=argv, prog_name="assistant", standalone_mode=False)


if __name__ == "__main__":
    sys.exit(main())
