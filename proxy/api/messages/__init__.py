"""The Anthropic Messages API (`/v1/messages`): a third surface over the generation core.

schema.py (the wire request), request.py and tools.py (wire -> `GenerationRequest`),
output.py (neutral steps -> content blocks and Anthropic's SSE events), errors.py (Anthropic's
error shape), endpoint.py (the routes: messages and count_tokens).
"""
