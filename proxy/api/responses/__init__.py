"""The Responses API (/v1/responses): request models, input items, output events, state.

A Responses request is read into the core's `GenerationRequest` (request.py, inputs.py,
tools.py) and its output items are a rendering of the core's neutral events (output.py); one
admitted request's run is driven and its response kept by turn.py; the response store
(store*.py) keeps finished responses, each for its owner, for `previous_response_id`.
"""
