"""`vitune serve MODEL_DIR`: a saved checkpoint behind an OpenAI-compatible chat API (`vitune.serve`).

    vitune serve runs/tuned/export --port 8000
    VITUNE_KEY=secret vitune serve runs/tuned/export --host 0.0.0.0 --api-key-env VITUNE_KEY
    curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \
        -d '{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 32}'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from vitune.cli.app import app
from vitune.errors import InputError
from vitune.serve.limits import Limits
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
        typer.Option(help="Accept local image paths, only under this folder (default: data URLs only)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the seeds drawn for sampled requests that send none.")] = 0,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Require 'Authorization: Bearer KEY', KEY read from this environment variable."),
    ] = None,
    insecure: Annotated[bool, typer.Option(help="Allow a non-loopback --host without an API key.")] = False,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body.")] = Limits.max_body_bytes,
    max_chars: Annotated[
        int, typer.Option(min=1, help="Most text characters in one request (all messages).")
    ] = Limits.max_chars,
    max_images: Annotated[
        int, typer.Option(min=0, max=1, help="Images per request (LLaVA-1.5: 1; 0: text only).")
    ] = Limits.max_images,
    max_image_bytes: Annotated[int, typer.Option(min=1, help="Largest image file.")] = Limits.max_image_bytes,
    max_image_pixels: Annotated[
        int, typer.Option(min=1, help="Most pixels of an image (from its header, before decoding).")
    ] = Limits.max_image_pixels,
    max_image_side: Annotated[
        int, typer.Option(min=1, help="Longest side of an image.")
    ] = Limits.max_image_side,
    max_image_aspect: Annotated[
        float, typer.Option(min=1, help="Largest long-side / short-side ratio of an image.")
    ] = Limits.max_image_aspect,
    max_queue: Annotated[
        int, typer.Option(min=1, help="Requests admitted at once; more get 429 with Retry-After.")
    ] = Limits.max_queue,
    timeout_s: Annotated[
        float,
        typer.Option(min=0.001, help="Seconds a request may take from arrival to its last token (504)."),
    ] = Limits.timeout_s,
) -> None:
    """Serve a trained model over an OpenAI-compatible API (greedy micro-batches; seeded sampling;
    streaming). Closed by default: data-URL images only, loopback only unless an API key is set."""
    from vitune.serve.server import check_bind, load_app
    from vitune.serve.server import serve as run_server

    # Bad input raises ValueError / InputError: the root group prints it as one line and exits 2.
    if not (model_dir / "config.json").is_file():
        raise InputError(model_dir, "not a saved model folder (no config.json)")
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env, "")
        if not api_key:
            raise ValueError(f"--api-key-env {api_key_env}: that environment variable is not set or empty")
    check_bind(host, api_key is not None, insecure)
    limits = Limits(
        max_body_bytes=max_body_bytes,
        max_chars=max_chars,
        max_images=max_images,
        max_image_bytes=max_image_bytes,
        max_image_pixels=max_image_pixels,
        max_image_side=max_image_side,
        max_image_aspect=max_image_aspect,
        max_queue=max_queue,
        timeout_s=timeout_s,
    )
    api = load_app(
        model_dir,
        model_name=model_name,
        device=device,
        batch_size=batch_size,
        max_wait_ms=max_wait_ms,
        max_tokens_cap=max_tokens_cap,
        image_root=image_root,
        seed=seed,
        limits=limits,
        api_key=api_key,
    )
    console.print(
        f"serving [bold]{api.state.model_name}[/bold] (template {api.state.engine.template}) "
        f"at http://{host}:{port}/v1"
    )
    run_server(api, host=host, port=port, insecure=insecure)
