"""`vitune serve`: a trained checkpoint behind an OpenAI-compatible chat API, with micro-batching.

- `protocol.py`: the chat-completions request format, validated, and OpenAI's error body;
- `media.py`: images from base64 data URLs or local files;
- `batcher.py`: concurrent requests collected into batches for one worker thread;
- `engine.py`: rendering with the checkpoint's template, position checks, `Generator.complete`
  (greedy, micro-batched) and `Generator.sample` (seeded, one request per call);
- `app.py`: the FastAPI routes; `server.py`: building it from a folder and running it.
"""

from vitune.serve.app import create_app
from vitune.serve.engine import Engine
from vitune.serve.server import BackgroundServer, load_app, serve

__all__ = ["BackgroundServer", "Engine", "create_app", "load_app", "serve"]
