"""What a Messages request asks of the answer, beyond its conversation: the reasoning level
(`output_config.effort`, else `thinking`), whether thinking text is shown, the answer's JSON
schema (`output_config.format`), and `context_management`'s clear_thinking edit."""

from __future__ import annotations

from typing import Any

from proxy.api.messages.schema import CountTokensRequest
from proxy.core.errors import InvalidRequest
from proxy.core.request import AssistantTurn, Part

# Budgets of Claude Code's own levels ("think" 4,000, "think hard" 10,000, "ultrathink" 31,999)
# land on gpt-oss's low, medium and high.
_BUDGET_LEVELS = ((8192, "low"), (16384, "medium"))


def clear_thinking(parts: list[Part], management: dict[str, Any] | None) -> list[Part]:
    """`context_management`'s clear_thinking edit: keep the analysis of the last `keep`
    assistant turns that have one (all with `keep: "all"`; 1 by default), drop the rest."""
    edits = (management or {}).get("edits")
    if not isinstance(edits, list):
        return parts
    keep: int | None = None
    for edit in edits:
        if not isinstance(edit, dict) or not str(edit.get("type", "")).startswith("clear_thinking"):
            continue
        wanted = edit.get("keep", {"type": "thinking_turns", "value": 1})
        if wanted == "all":
            return parts
        value = wanted.get("value") if isinstance(wanted, dict) else None
        keep = value if isinstance(value, int) and value >= 0 else 1
    if keep is None:
        return parts
    thinking = [i for i, p in enumerate(parts) if type(p) is AssistantTurn and p.reasoning]
    dropped = set(thinking[: max(0, len(thinking) - keep)])
    return [
        AssistantTurn(p.source, None, p.text, p.phase, p.calls) if i in dropped else p  # type: ignore[union-attr]
        for i, p in enumerate(parts)
    ]


def reasoning_effort(body: CountTokensRequest) -> str | None:
    config = body.output_config or {}
    if config.get("effort") is not None:
        effort = config["effort"]
        if not isinstance(effort, str):
            raise InvalidRequest(
                "output_config.effort: Input should be a valid string",
                param="output_config.effort",
            )
        return effort
    thinking = body.thinking
    if thinking is None:
        return None
    kind = thinking.get("type")
    if kind == "disabled":
        return "low"
    if kind == "adaptive":
        return None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise InvalidRequest(
                "thinking.budget_tokens: Input should be a positive integer",
                param="thinking.budget_tokens",
            )
        return next((level for limit, level in _BUDGET_LEVELS if budget < limit), "high")
    raise InvalidRequest(
        f"thinking.type: Input should be 'enabled', 'disabled' or 'adaptive' (got {kind!r})",
        param="thinking.type",
    )


def thinking_shown(body: CountTokensRequest) -> bool:
    """Whether thinking blocks carry their text (`display: "omitted"`: signature only)."""
    return (body.thinking or {}).get("display") != "omitted"


def final_schema(body: CountTokensRequest) -> dict[str, Any] | None:
    """Structured outputs: `output_config.format` (or the older beta's `output_format`)."""
    fmt = (body.output_config or {}).get("format") or body.output_format
    if fmt is None:
        return None
    param = "output_config.format" if (body.output_config or {}).get("format") else "output_format"
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise InvalidRequest(f"{param}.type: Input should be 'json_schema'", param=f"{param}.type")
    if not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest(f"{param}.schema: Field required", param=f"{param}.schema")
    return fmt["schema"]
