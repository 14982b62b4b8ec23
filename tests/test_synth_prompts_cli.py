"""`vitune synth --prompts FILE` overrides prompt keys for one run; `--show-prompt GEN --image ID`
prints the exact messages sent for one image; both checked against what a real server receives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitune.cli import app
from vitune.data.ledger import Ledger
from vitune.sources.merge import load_world
from vitune.synth import build_messages, get_generator
from vitune.synth.fakeserver import FakeChatServer, default_reply
from vitune.world.generate import generate_world

runner = CliRunner()
SYSTEM = "You are a careful annotator. Facts:\n{context}\nWrite {n_items} question-answer pairs."


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sp") / "w"
    generate_world(root, 6, seed=4, workers=1, split_fractions=(1.0, 0.0, 0.0))
    return root


@pytest.fixture
def prompts(tmp_path) -> Path:
    p = tmp_path / "prompts.yaml"
    p.write_text(json.dumps({"complex_reasoning": {"system": SYSTEM, "n_items": 3, "temperature": 0.4}}))
    return p


def test_show_prompt_is_what_the_server_receives(world, prompts, tmp_path):
    rec = load_world(world, "train", Ledger())[0]
    args = ["synth", "--world", str(world), "--out", str(tmp_path / "s"), "--generators", "complex_reasoning"]
    r = runner.invoke(app, [*args, "--prompts", str(prompts), "--show-prompt", "complex_reasoning",
                            "--image", rec.image_id])  # fmt: skip
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown["temperature"] == 0.4 and shown["messages"][0]["content"].startswith("You are a careful")
    assert "Write 3 question-answer pairs." in shown["messages"][0]["content"]
    assert not (tmp_path / "s").exists()  # showing a prompt runs nothing
    # The built-in stays as it was for everyone else in this process.
    assert get_generator("complex_reasoning").system != SYSTEM
    assert shown["messages"] != build_messages(get_generator("complex_reasoning"), rec)

    bodies: list[dict] = []

    def reply(body: dict) -> str:
        bodies.append(body)
        return default_reply(body)

    with FakeChatServer(reply_fn=reply) as srv:
        r = runner.invoke(app, [*args, "--prompts", str(prompts), "--backend", "openai", "--base-url", srv.url,
                                "--model", "m", "--limit", "6"], env={"OPENAI_API_KEY": "k"})  # fmt: skip
    assert r.exit_code == 0, r.output
    sent = [b for b in bodies if b["messages"] == shown["messages"]]
    assert len(sent) >= 1 and sent[0]["temperature"] == 0.4
    assert all(b["messages"][0]["content"].startswith("You are a careful") for b in bodies)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected a mapping of generator name"),
        ('{"complex_reasoning": {"sistem": "x {context}"}}', "unknown generator keys"),
        ('{"complex_reasoning": {"system": "no placeholder", "user": "none"}}', "{context}"),
        ('{"new_gen": {"system": "{context}"}}', "needs 'name', 'format' and 'system'"),
    ],
)
def test_bad_prompts_files_are_clear_errors(world, tmp_path, content, message):
    p = tmp_path / "bad.yaml"
    p.write_text(content)
    args = ["synth", "--world", str(world), "--out", str(tmp_path / "s"), "--prompts", str(p)]
    r = runner.invoke(app, args, env={"COLUMNS": "2000"})  # no wrapping inside the long temp path
    flat = " ".join(r.output.replace("│", " ").split())
    assert r.exit_code == 2 and message in flat and "bad.yaml" in flat


def test_show_prompt_errors(world, tmp_path):
    base = ["synth", "--world", str(world), "--out", str(tmp_path / "s")]
    r = runner.invoke(app, [*base, "--show-prompt", "complex_reasoning"])
    assert r.exit_code == 2
    r = runner.invoke(
        app, [*base, "--show-prompt", "complex_reasoning", "--image", "nope"], env={"COLUMNS": "2000"}
    )
    assert r.exit_code == 2 and "no image 'nope'" in " ".join(r.output.replace("│", " ").split())
