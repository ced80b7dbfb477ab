"""The Responses API (/v1/responses): request models, input items, output events, state.

It shares the conversation builder, the grammar rules and the generation driver with chat
completions (proxy/conversation.py, proxy/structured.py, proxy/completion.py): a Responses
request is read into the same conversation, and its output items are a rendering of the same
neutral events (proxy/events.py).
"""
