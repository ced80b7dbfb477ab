"""Harmony, the prompt and response format of OpenAI's gpt-oss models, in pure Python.

A drop-in for the reference `openai_harmony` 0.0.8 (`import harmony as openai_harmony` works):
the same classes, methods, token ids, parsed messages and errors. On top of it: an offline
vocabulary (see `_vocab`) and a recovering streaming parser for serving
(`StreamableParser(encoding, Role.ASSISTANT, recover=True)`).

The `from .x import Name as Name` lines re-export names that, as in the reference, are importable
but not part of `__all__`.
"""

from ._errors import HarmonyError
from .encoding import HarmonyEncoding, HarmonyEncodingName, load_harmony_encoding
from .encoding import raise_disallowed_special_token as raise_disallowed_special_token
from .models import (
    Author,
    Content,
    Conversation,
    DeveloperContent,
    Message,
    Role,
    SystemContent,
    TextContent,
    ToolDescription,
)
from .models import ChannelConfig as ChannelConfig
from .models import ReasoningEffort as ReasoningEffort
from .models import RenderConversationConfig as RenderConversationConfig
from .models import RenderOptions as RenderOptions
from .models import ToolNamespaceConfig as ToolNamespaceConfig
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
