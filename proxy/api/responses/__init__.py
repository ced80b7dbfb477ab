"""The Responses API (/v1/responses): request models, input items, output events, state.

It shares the conversation builder, the grammar rules and the generation driver with chat
completions (proxy/core/conversation.py, proxy/core/output_rules.py, proxy/core/run.py): a Responses
request is read into the same conversation, and its output items are a rendering of the same
neutral events (proxy/core/events.py).
"""
