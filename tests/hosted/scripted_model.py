"""A scripted "model" for the hosted-tool tests: it calls a tool until the prompt holds enough
tool results, then answers, so a response's rounds are deterministic and each round's prompt
can be read back (`prompts`)."""

from __future__ import annotations

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.conversation import load_encoding
from tests.proxy.helpers import toks

THINK = "<|channel|>analysis<|message|>I should use the tool.<|end|><|start|>assistant"
ANSWER = "<|channel|>analysis<|message|>Now I know.<|end|><|start|>assistant<|channel|>final<|message|>The answer is ready.<|return|>"
# How a tool's answer reads in a Harmony prompt (its author is the tool's address).
RESULT_MARK = " to=assistant<|channel|>commentary<|message|>"


def call(recipient: str, arguments: str) -> str:
    return (
        f"{THINK} to={recipient}<|channel|>commentary <|constrain|>json<|message|>"
        f"{arguments}<|call|>"
    )


def calling(backend: ScriptedBackend, calls: list[str], *, rounds: int = 1) -> None:
    """Script `backend`: while the prompt has fewer than `rounds` tool results, make the
    calls in `calls` (Harmony text, `call(...)` each, concatenated as one turn); then answer."""

    def script_for(prompt: list[int]) -> Script:
        text = load_encoding().decode(prompt)
        if text.count(RESULT_MARK) >= rounds:
            return Script([toks(ANSWER)])
        return Script([toks("".join(calls))])

    backend.script_for = script_for


def prompts(backend: ScriptedBackend) -> list[str]:
    """Every prompt the backend was sent, decoded."""
    return [load_encoding().decode(r.prompt_token_ids) for r in backend.requests]
