"""`dlclassics serve`: the web demo on a local port."""

from pathlib import Path

import click

from dlclassics.errors import InputError
from dlclassics.serve.models import newest_lm_model, newest_mnist_model

RUNS = Path("runs")
MODEL_DIR = click.Path(path_type=Path, exists=True)


@click.command()
@click.option(
    "--lm-model",
    type=MODEL_DIR,
    default=None,
    help="An `lm train` run directory, a trial folder of an `lm study` run, or a checkpoint.pt"
    " (default: the newest forward model under runs/).",
)
@click.option(
    "--mnist-model",
    type=MODEL_DIR,
    default=None,
    help="An `mnist cnn` run directory or a checkpoint.pt (default: the newest under runs/).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port."
)
def serve(lm_model: Path | None, mnist_model: Path | None, host: str, port: int) -> None:
    """Serve the demo: next words, generation and sentence probability from the language model,
    a draw-a-digit canvas for the classifier, and the XOR networks' decision surfaces.

    A model that is not found, or not loadable, leaves its tab showing why; the rest still works.
    """
    try:
        import uvicorn

        from dlclassics.serve.app import create_app
    except ImportError as e:
        raise InputError(f"the demo needs {e.name}: pip install 'dlclassics[demo]'") from e
    app = create_app(lm_model or newest_lm_model(RUNS), mnist_model or newest_mnist_model(RUNS))
    click.echo(f"serving on http://{host}:{port} (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
