"""`vitune serve MODEL_DIR`: a saved checkpoint behind an OpenAI-compatible chat API (`vitune.serve`).

    vitune serve runs/tuned/export --port 8000
    curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \
        -d '{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 32}'
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitune.cli.app import app
from vitune.utils.progress import console


@app.command()
def serve(
    model_dir: Annotated[
        Path, typer.Argument(help="Saved model folder (plain transformers Llava + processor).")
    ],
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    batch_size: Annotated[int, typer.Option(min=1, help="Most requests answered in one batch.")] = 8,
    max_wait_ms: Annotated[
        float, typer.Option(min=0, help="How long a batch waits for more requests before it runs.")
    ] = 10,
    max_tokens_cap: Annotated[
        int, typer.Option(min=1, help="Largest max_tokens a request may ask for (and the default).")
    ] = 512,
    model_name: Annotated[
        str | None, typer.Option(help="The model id clients send (default: the folder's name).")
    ] = None,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    image_root: Annotated[
        Path | None,
        typer.Option(help="Read local image paths only under this folder (default: any readable file)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the seeds drawn for sampled requests that send none.")] = 0,
) -> None:
    """Serve a trained model over an OpenAI-compatible API (greedy micro-batches; seeded sampling)."""
    from vitune.serve.server import load_app
    from vitune.serve.server import serve as run_server

    if not (model_dir / "config.json").is_file():
        console.print(f"[red]error:[/red] {model_dir} is not a saved model folder (no config.json)")
        raise typer.Exit(2)
    api = load_app(
        model_dir,
        model_name=model_name,
        device=device,
        batch_size=batch_size,
        max_wait_ms=max_wait_ms,
        max_tokens_cap=max_tokens_cap,
        image_root=image_root,
        seed=seed,
    )
    console.print(
        f"serving [bold]{api.state.model_name}[/bold] (template {api.state.engine.template}) "
        f"at http://{host}:{port}/v1"
    )
    run_server(api, host=host, port=port)
