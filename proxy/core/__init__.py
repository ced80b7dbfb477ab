"""The API-neutral core: the request (`request.py`), the cost gate (`gate.py`), the service
that owns a request's life (`service.py`), planning (`planning.py`: conversation, tools,
grammar, sampling), the run that turns engine tokens into neutral events (`run.py`,
`assembler.py`, `events.py`), and the timing of its writes (`coalesce.py`, `pacing.py`)."""
