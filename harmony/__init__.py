"""Harmony, the prompt and response format of OpenAI's gpt-oss models, in pure Python.

A drop-in for the reference `openai_harmony` 0.0.8 (`import harmony as openai_harmony` works):
the same classes, methods, token ids, parsed messages and errors. On top of it: an offline
vocabulary (see `_vocab`) and a recovering streaming parser for serving
(`StreamableParser(encoding, Role.ASSISTANT, recover=True)`).
"""

from ._errors import HarmonyError
from .encoding import (
    HarmonyEncoding,
    HarmonyEncodingName,
    load_harmony_encoding,
    raise_disallowed_special_token,
)
from .models import (
    Author,
    ChannelConfig,
    Content,
    Conversation,
    DeveloperContent,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    RenderOptions,
    Role,
    SystemContent,
    TextContent,
    ToolDescription,
    ToolNamespaceConfig,
)
from .parser import StreamableParser, StreamState

__all__ = [
    "Role",
    "Author",
    "Content",
    "TextContent",
    "DeveloperContent",
    "ToolDescription",
    "SystemContent",
    "Message",
    "Conversation",
    "HarmonyEncoding",
    "HarmonyEncodingName",
    "load_harmony_encoding",
    "StreamableParser",
    "StreamState",
    "HarmonyError",
]

# Importable by name like the reference's, but not part of `from harmony import *`.
_EXTRA = (
    ReasoningEffort,
    ChannelConfig,
    ToolNamespaceConfig,
    RenderConversationConfig,
    RenderOptions,
    raise_disallowed_special_token,
)
