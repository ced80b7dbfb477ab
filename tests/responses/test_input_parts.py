"""`to_parts`: the conversation's parts name where they came from, after any kind of item."""

from __future__ import annotations

from proxy.api.responses.inputs import to_parts
from proxy.core.request import AssistantTurn, ToolResult, UserText


def test_parts_after_a_function_call_are_named_by_their_input_index():
    items = [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Weather?"}],
        },
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "get_weather",
            "namespace": "tools",
            "arguments": "{}",
        },
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Thanks"}]},
    ]
    parts = to_parts(items, None, 0)
    assert [type(p) for p in parts] == [UserText, AssistantTurn, ToolResult, UserText]
    assert [p.source for p in parts] == ["input[0]", "input[1]", "input[2]", "input[3]"]
    assert parts[1].calls[0].key == "tools.get_weather"
    # and a conversation's own parameter name is kept the same way
    named = to_parts(items, None, 0, name="items")
    assert named[-1].source == "items[3]"
